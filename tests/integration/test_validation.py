"""Every validation rule: a clear error naming the field, nothing enqueued, no Redis keys left behind."""

import threading
from collections.abc import Callable
from typing import Any

import pytest

from btq.producer.client import JobClient
from btq.schemas.exceptions import JobValidationError
from tests.integration.test_parity import P, spec

pytestmark = pytest.mark.integration


def base() -> dict[str, Any]:
    return spec("p -> w -> p", "given", True, 1)


def edit(**changes: Any) -> Callable[[dict[str, Any]], None]:
    return lambda job: job.update(changes)


CASES: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("empty trainset", edit(trainset=[], input_keys=["question"]), "trainset", "trainset cannot be empty"),
    ("ratio of 1", edit(valset_ratio=1.0), "valset_ratio", "valset_ratio must be in range [0, 1), got 1.0"),
    ("negative ratio", edit(valset_ratio=-0.1), "valset_ratio", "must be in range [0, 1)"),
    ("empty strategy", edit(strategy=""), "strategy", "strategy cannot be empty"),
    ("blank strategy", edit(strategy="   "), "strategy", "strategy cannot be empty"),
    ("unknown strategy key", edit(strategy="p -> x"), "strategy", "invalid optimizer keys: ['x']"),
    ("default keys only", lambda j: (j.pop("optimizers"), j.update(strategy="p -> q")), "strategy", "['q']"),
    ("separator without spaces", edit(strategy="p->w"), "strategy", "invalid optimizer keys: ['p->w']"),
    (
        "compile arg not accepted",
        edit(optimizer_compile_args={"p": {"num_trials": 3}}),
        "optimizer_compile_args.p",
        "Invalid compile arguments for optimizer 'p': ['num_trials']",
    ),
    (
        "compile args for unknown key",
        edit(optimizer_compile_args={"z": {}}),
        "optimizer_compile_args",
        "Invalid optimizer key 'z'",
    ),
    (
        "student in compile args",
        edit(optimizer_compile_args={"p": {"student": {"name": "t.qa"}}}),
        "optimizer_compile_args.p",
        "'student' is not allowed",
    ),
    ("unknown program", edit(program={"name": "nope"}), "program.name", "'nope' is not registered"),
    ("unknown metric", edit(metric="nope"), "metric", "'nope' is not registered"),
    ("unknown lm", edit(lm="nope"), "lm", "'nope' is not registered"),
    (
        "unknown dataset",
        edit(trainset={"dataset": "nope", "split": "train"}),
        "trainset.dataset",
        "not registered",
    ),
    (
        "unknown split",
        edit(valset={"dataset": "t.arith", "split": "dev"}),
        "valset.split",
        "has no split 'dev'",
    ),
    (
        "optimizer not allowed",
        edit(optimizers={"p": {"optimizer": "os.system"}}, strategy="p"),
        "optimizers.p.optimizer",
        "not an allowed optimizer",
    ),
    (
        "optimizer kwarg unknown",
        edit(optimizers={"p": {**P, "kwargs": {"bogus": 1}}}, strategy="p"),
        "optimizers.p.kwargs",
        "does not accept ['bogus']",
    ),
    (
        "reference to unknown metric",
        edit(optimizers={"p": {**P, "kwargs": {"metric": {"$metric": "nope"}}}}, strategy="p"),
        "optimizers.p.kwargs.metric",
        "'nope' is not registered",
    ),
    (
        "secret in a LiteLLM spec",
        edit(lm={"model": "openai/gpt-4o-mini", "kwargs": {"api_key": "sk-1"}}),
        "lm.kwargs.api_key",
        "may not be sent in a job",
    ),
    (
        "inline examples without input keys",
        edit(trainset=[{"question": "q", "answer": "a"}]),
        "input_keys",
        "required when trainset is given inline",
    ),
    (
        "example missing an input",
        edit(trainset=[{"question": "q"}, {"answer": "a"}], input_keys=["question"]),
        "trainset.1",
        "lacks input keys ['question']",
    ),
    ("trainset of the wrong type", edit(trainset="all of them"), "trainset", ""),
    ("misspelled option", edit(num_thread=4), "num_thread", "Extra inputs are not permitted"),
    ("threads below one", edit(num_threads=0), "num_threads", "greater than or equal to 1"),
    (
        "program state of another shape",
        edit(program={"name": "t.two", "state": {"draft": {}}}),
        "program.state",
        "missing entries ['check']",
    ),
    (
        "GEPA with a teacher",
        edit(
            optimizers={"p": {"optimizer": "GEPA", "kwargs": {"auto": "light"}}},
            strategy="p",
            teacher={"name": "t.qa"},
            optimizer_compile_args={"p": {}},
        ),
        "teacher",
        "GEPA does not accept a teacher argument",
    ),
]


def snapshot(client: JobClient) -> dict[bytes, Any]:
    return {k: client.redis.type(k) for k in client.redis.keys("*")} | {
        b"#queue": client.redis.llen(client.settings.queue),
        b"#events": client.redis.xlen("btq:events") if client.redis.exists("btq:events") else 0,
    }


@pytest.mark.parametrize(("case", "change", "field", "message"), CASES, ids=[c[0] for c in CASES])
def test_invalid_job_is_refused_naming_the_field_and_leaves_nothing(
    client: JobClient, case: str, change: Callable[[dict[str, Any]], None], field: str, message: str
) -> None:
    job = base()
    change(job)
    before = snapshot(client)
    with pytest.raises(JobValidationError) as err:
        client.submit(job)
    assert err.value.field == field, str(err.value)
    assert message in str(err.value)
    assert snapshot(client) == before


def test_malformed_json_text_is_refused(client: JobClient) -> None:
    before = snapshot(client)
    with pytest.raises(JobValidationError):
        client.submit('{"program": ')
    assert snapshot(client) == before


def test_a_valid_job_after_refusals_is_accepted(client: JobClient) -> None:
    job_id = client.submit(base())
    assert client.wait(job_id, timeout_s=120).state.value == "succeeded"


@pytest.mark.parametrize("where", ["trainset", "program.state", "optimizer_compile_args"])
def test_cyclic_input_is_refused_naming_the_field_instead_of_hanging(client: JobClient, where: str) -> None:
    job = base()
    loop: dict[str, Any] = {"demos": []}
    loop["again"] = loop
    if where == "trainset":
        job.update(trainset=[{"question": "1+1", "answer": loop}], input_keys=["question"])
    elif where == "program.state":
        job["program"]["state"] = loop
    else:
        job["optimizer_compile_args"] = {"p": {"x": [loop]}}
    outcome: list[BaseException | str] = []

    def submit() -> None:
        try:
            outcome.append(client.submit(job))
        except BaseException as exc:  # the thread hands any outcome back to the test
            outcome.append(exc)

    worker = threading.Thread(target=submit, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert outcome, "submit() did not return for a cyclic job"
    (error,) = outcome
    assert isinstance(error, JobValidationError), error
    assert error.field.startswith(where) and error.field.endswith("again") and "circular reference" in str(error)
