"""Raw job payload checks: NaN/Infinity and credentials anywhere are refused with the full field path."""

import json
import math

import pytest

from btq.producer.fleet.validation import parse_spec
from btq.schemas.exceptions import JobValidationError
from btq.schemas.finite import non_finite_paths
from btq.schemas.secrets import refusal
from tests.integration.test_parity import spec


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "API_KEY",
        "Api-Key",
        "apiKey",
        "x-api-key",
        "Authorization",
        "access_token",
        "client_secret",
        "PASSWORD",
        "extra_body",
        "ApiBase",
        "base_url",
        "Ocp-Apim-Subscription-Key",
        "aws_secret_access_key",
    ],
)
def test_credential_like_names_are_refused_in_any_casing(name: str) -> None:
    assert refusal(name) is not None


@pytest.mark.parametrize(
    "name", ["max_tokens", "temperature", "num_candidate_programs", "model", "cache", "num_retries", "train_kwargs"]
)
def test_ordinary_lm_and_optimizer_options_pass(name: str) -> None:
    assert refusal(name) is None


def test_non_finite_paths_are_reported_at_any_depth() -> None:
    data = {"a": 1.0, "b": [0.5, {"c": math.inf}], "d": {"e": -math.inf, "f": math.nan}}
    assert sorted(non_finite_paths(data)) == ["b.1.c", "d.e", "d.f"]


def test_nan_in_json_text_is_refused_naming_the_field() -> None:
    text = spec("p", "given", True, 1)
    raw = '{"valset_ratio": NaN, ' + json.dumps(text)[1:]
    with pytest.raises(JobValidationError) as err:
        parse_spec(raw)
    assert err.value.field == "valset_ratio"


def test_overflowing_literal_is_refused() -> None:
    job = spec("p", "given", True, 1)
    raw = json.dumps(job).replace('"seed": 1', '"seed": 1, "valset_ratio": 1e999')
    with pytest.raises(JobValidationError) as err:
        parse_spec(raw)
    assert err.value.field == "valset_ratio"


def test_demo_fields_are_data_but_a_compile_arg_teachers_lm_is_checked() -> None:
    job = spec("p", "given", True, 1)
    demo_state = {"demos": [{"question": "q", "password": "data, not a credential"}], "lm": None}
    job["optimizer_compile_args"] = {"p": {"teacher": {"name": "t.qa", "state": demo_state}}}
    assert parse_spec(job).optimizer_compile_args is not None
    job["optimizer_compile_args"]["p"]["teacher"]["state"]["lm"] = {"Api_Key": "sk"}
    with pytest.raises(JobValidationError) as err:
        parse_spec(job)
    assert err.value.field == "optimizer_compile_args.p.teacher.state.lm.Api_Key"
