"""The Iris task: the paper's 50/50/50 split of scikit-learn's iris data, deterministic by seed; its metric; its job."""

from typing import Any, cast

import dspy
import pytest

from btq.producer.demo.iris import PAPER_TABLE, iris_spec
from btq.producer.fleet.validation import validate_against
from btq.schemas.exceptions import JobValidationError
from btq.schemas.job import JobSpec
from btq.worker.core.job_inputs import ResolvedJob
from btq.worker.core.registry import Registry
from btq.worker.lm.local import registry as local_registry
from btq.worker.lm.local.tasks.iris import FEATURES, SPECIES, iris_splits, species_exact

pytest.importorskip("sklearn", reason="the `local` extra is not installed (scikit-learn)")


def _key(example: dspy.Example) -> tuple[Any, ...]:
    return tuple(example.toDict().items())


def test_splits_are_the_papers_sizes_and_partition_the_150_flowers() -> None:
    splits = iris_splits(0)
    assert {k: len(v) for k, v in splits.items()} == {
        "train": 50,
        "val": 50,
        "test": 50,
        "prompt_train": 15,
        "prompt_val": 35,
    }
    assert splits["prompt_train"] + splits["prompt_val"] == splits["train"]
    flowers = splits["train"] + splits["val"] + splits["test"]
    assert {e.species for e in flowers} == set(SPECIES)
    assert sorted(e.species for e in flowers) == sorted(SPECIES * 50)  # every flower once (by species count)
    assert list(flowers[0].inputs().keys()) == list(FEATURES)
    assert all(float(flowers[0][f]) > 0 for f in FEATURES)


def test_a_seed_gives_the_same_split_and_another_seed_another_one() -> None:
    first, again, other = iris_splits(1), iris_splits(1), iris_splits(2)
    for split in ("train", "val", "test"):
        assert [_key(e) for e in first[split]] == [_key(e) for e in again[split]]
    assert [_key(e) for e in first["test"]] != [_key(e) for e in other["test"]]


def test_metric_wants_the_species_name() -> None:
    example = dspy.Example(sepal_length="5.1", species="setosa")
    assert species_exact(example, dspy.Prediction(species=" Setosa\n"))
    assert not species_exact(example, dspy.Prediction(species="versicolor"))
    assert not species_exact(example, dspy.Prediction(species="Iris setosa"))
    assert not species_exact(example, dspy.Prediction())


def _registry() -> Registry:
    registry = Registry()
    local_registry.register(registry)
    return registry


def test_the_iris_job_validates_against_the_local_registry_and_its_prompt_step_gets_15_and_35() -> None:
    registry = _registry()
    spec = JobSpec.model_validate(iris_spec(2))
    validate_against(spec, registry.manifest("w"), max_examples=1000)
    job = ResolvedJob(
        spec=spec,
        registry=registry,
        resources=cast(Any, None),
        lm=cast(Any, None),
        metric=species_exact,
        trainset=[],
        valset=None,
    )
    args = job.compile_args("p")
    assert (len(args["trainset"]), len(args["valset"])) == (15, 35)
    assert args["trainset"] == iris_splits(2)["prompt_train"]


def test_a_compile_args_split_that_does_not_exist_is_refused_naming_the_field() -> None:
    data = iris_spec(0)
    data["optimizer_compile_args"]["p"]["valset"] = {"dataset": "local.iris.seed0", "split": "nope"}
    with pytest.raises(JobValidationError) as err:
        validate_against(JobSpec.model_validate(data), _registry().manifest("w"), max_examples=1000)
    assert err.value.field == "optimizer_compile_args.p.valset.split"


def test_the_paper_table_has_every_strategy_the_comparison_runs() -> None:
    assert set(PAPER_TABLE) == {"(baseline)", "p", "w", "p -> w", "w -> p", "p -> w -> p"}
