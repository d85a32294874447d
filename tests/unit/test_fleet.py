"""What a job names, what a manifest lacks, and the fleet-wide union (no broker)."""

from typing import Any

from btq.producer.fleet.view import missing_entries, named_entries, union
from btq.schemas.job import JobSpec
from btq.schemas.manifest import OptimizerSignature, RegistryManifest

SIG = OptimizerSignature(init_params=["metric"], compile_params=["student", "trainset"])


def manifest(worker: str, **entries: Any) -> RegistryManifest:
    base: dict[str, Any] = {"programs": {}, "metrics": [], "lms": [], "datasets": {}, "optimizers": {}}
    return RegistryManifest(**{**base, **entries}, worker=worker, published_at=1.0)


def job(**changes: Any) -> JobSpec:
    spec: dict[str, Any] = {
        "program": {"name": "a.qa"},
        "lm": "a.lm",
        "metric": "a.metric",
        "optimizers": {"p": {"optimizer": "Custom", "kwargs": {"metric": {"$metric": "b.metric"}}}},
        "strategy": "p",
        "trainset": {"dataset": "a.data", "split": "train"},
        "seed": 1,
    }
    return JobSpec.model_validate({**spec, **changes})


def test_named_entries_include_references_nested_in_optimizer_kwargs() -> None:
    named = named_entries(job())
    assert named["programs"] == {"a.qa"} and named["lms"] == {"a.lm"}
    assert named["metrics"] == {"a.metric", "b.metric"}
    assert named["datasets"] == {"a.data"} and named["optimizers"] == {"Custom"}


def test_missing_entries_name_each_entry_a_manifest_lacks() -> None:
    m = manifest("w", programs={"a.qa": ["self"]}, metrics=["a.metric"], lms=[], datasets={"a.data": ["train"]})
    assert missing_entries(job(), m) == ["metric 'b.metric'", "lm 'a.lm'", "optimizer 'Custom'"]
    assert missing_entries(job(), m, dataset=("a.data", "test")) == [
        "metric 'b.metric'",
        "lm 'a.lm'",
        "optimizer 'Custom'",
        "split 'test' of dataset 'a.data'",
    ]


def test_union_registers_everything_any_worker_registers_and_profiles_ignore_who_published() -> None:
    a = manifest("a", programs={"a.qa": ["self"]}, datasets={"d": ["train"]}, optimizers={"Custom": SIG})
    b = manifest("b", metrics=["b.metric"], datasets={"d": ["val"]})
    merged = union([a, b])
    assert merged.programs == {"a.qa": ["self"]} and merged.metrics == ["b.metric"]
    assert merged.datasets == {"d": ["train", "val"]} and set(merged.optimizers) == {"Custom"}
    assert a.profile() == a.model_copy(update={"worker": "other", "published_at": 9.0}).profile()
    assert a.profile() != b.profile()
