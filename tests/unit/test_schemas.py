"""The wire contract: dspy's own rules at parse time, JSON Schema export, versioning."""

import json

import pytest

from btq.producer.fleet.validation import parse_spec
from btq.schemas import JobSpec
from btq.schemas.exceptions import JobValidationError
from btq.schemas.export import EXPORTED, json_schema

MINIMAL = {"program": {"name": "x"}, "lm": "l", "metric": "m", "trainset": [{"q": "1"}], "input_keys": ["q"]}


def test_defaults_follow_bettertogether_compile() -> None:
    spec = JobSpec.model_validate(MINIMAL)
    assert spec.strategy == "p -> w -> p"
    assert spec.valset_ratio == 0.1
    assert spec.shuffle_trainset_between_steps is True
    assert spec.seed is None and spec.valset is None and spec.teacher is None
    assert spec.steps() == ["p", "w", "p"]
    assert spec.strategy_prefix(0) == "" and spec.strategy_prefix(2) == "p -> w"


def test_specs_are_frozen_and_versioned() -> None:
    spec = JobSpec.model_validate(MINIMAL)
    assert json.loads(spec.model_dump_json())["schema_version"] == 1
    with pytest.raises(ValueError, match="frozen"):
        spec.strategy = "p"  # type: ignore[misc]
    assert spec.with_seed(5).seed == 5 and spec.seed is None


@pytest.mark.parametrize("version", [0, 2, "1"])
def test_unknown_schema_version_is_refused(version: object) -> None:
    with pytest.raises(JobValidationError) as err:
        parse_spec({**MINIMAL, "schema_version": version})
    assert err.value.field == "schema_version"


@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_json_schema_exports_for_other_languages(name: str) -> None:
    schema = json_schema(name)
    assert schema["type"] == "object" and schema["properties"]
    json.dumps(schema)


def test_job_schema_names_the_compile_options() -> None:
    props = json_schema("job")["properties"]
    for option in (
        "strategy",
        "trainset",
        "valset",
        "teacher",
        "num_threads",
        "max_errors",
        "provide_traceback",
        "seed",
        "valset_ratio",
        "shuffle_trainset_between_steps",
        "optimizer_compile_args",
    ):
        assert option in props
