"""A real CPU fine-tune through dspy.BootstrapFinetune: trained, published, served by another provider."""

from pathlib import Path
from typing import Any

import dspy
import pytest

from btq.worker.artifacts.store import LocalArtifactStore
from btq.worker.lm.local.models import MANIFEST, FinetuneManifest, is_finetuned
from btq.worker.lm.local.provider import LlamaCppProvider
from btq.worker.lm.local.server import ServerPool
from btq.worker.lm.local.settings import FinetuneSettings, ServerSettings
from btq.worker.lm.local.tasks.dates import date_splits, iso_exact, program, teacher

pytestmark = pytest.mark.slow
BASE = "llamacpp/smollm2-135m-instruct"
TINY = {"max_steps": 2, "batch_size": 2, "max_length": 512}


def test_bootstrap_finetune_trains_publishes_and_any_worker_serves(tmp_path: Path, pool: ServerPool) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    events: list[dict[str, Any]] = []
    provider = LlamaCppProvider(store, pool=pool, on_progress=events.append)
    student = program()
    student.set_lm(provider.lm(BASE, max_tokens=32))
    trainset = date_splits()["train"][:4]

    optimizer = dspy.BootstrapFinetune(metric=iso_exact, train_kwargs=TINY, num_threads=1)
    with dspy.context(adapter=dspy.ChatAdapter()):
        finetuned = optimizer.compile(student, trainset=trainset, teacher=teacher(trainset))
    model = finetuned.predictors()[0].lm.model
    assert is_finetuned(model) and store.exists(model)

    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == [1, 2] and all(e["loss"] > 0 for e in steps)
    assert events[-1]["event"] == "published"
    published = store.fetch(model)
    manifest = FinetuneManifest.read(published)
    assert manifest.kind == "lora" and manifest.parent == BASE and manifest.examples == 4
    assert FinetuneSettings.model_validate(manifest.recipe).max_steps == 2
    assert (published / manifest.gguf).stat().st_size > 0
    assert (published / manifest.hf_dir / "adapter_config.json").exists() and (published / MANIFEST).exists()

    # Another worker: its own provider and pool, the same store, the LM rebuilt from the model name.
    other_pool = ServerPool(ServerSettings(log_dir=tmp_path / "other-logs", n_ctx=2048))
    try:
        other = LlamaCppProvider(LocalArtifactStore(tmp_path / "store"), pool=other_pool)
        lm = other.lm(BASE, max_tokens=32).copy(model=model)
        assert isinstance(lm(f"[[ ## date_text ## ]]\n{trainset[0].date_text}")[0], str)
        served = other_pool.get(model)
        assert served is not None and served.served.lora == published / manifest.gguf
        assert "--lora_path" in served.process.args
    finally:
        other_pool.stop_all()

    # A retried step (same parent, data, recipe) reuses the published fine-tune: no training.
    events.clear()
    student_again = program()
    student_again.set_lm(provider.lm(BASE, max_tokens=32))
    with dspy.context(adapter=dspy.ChatAdapter()):
        again = optimizer.compile(student_again, trainset=trainset, teacher=teacher(trainset))
    assert again.predictors()[0].lm.model == model
    assert [e["event"] for e in events] == ["cached"]


def test_full_finetune_and_a_lora_on_top_are_served(tmp_path: Path, pool: ServerPool) -> None:
    from dspy.clients.utils_finetune import TrainDataFormat

    from btq.worker.lm.local.tasks.dates import NormalizeDate

    store = LocalArtifactStore(tmp_path / "store")
    provider = LlamaCppProvider(store, pool=pool)
    adapter = dspy.ChatAdapter()
    data = [
        adapter.format_finetune_data(NormalizeDate, [], ex.inputs().toDict(), {"iso_date": ex.iso_date})
        for ex in date_splits()["train"][:2]
    ]
    full = provider.lm(BASE, max_tokens=16).finetune(data, TrainDataFormat.CHAT, {**TINY, "method": "full"}).result()
    assert isinstance(full, dspy.LM)
    full_dir = store.fetch(full.model)
    assert FinetuneManifest.read(full_dir).kind == "full"
    assert isinstance(full("[[ ## date_text ## ]]\nMay 1, 2020")[0], str)
    assert pool.get(full.model).served.gguf == full_dir / "model.gguf"  # type: ignore[union-attr]

    lora = full.finetune(data, TrainDataFormat.CHAT, {**TINY, "max_steps": 1}).result()
    assert isinstance(lora, dspy.LM)
    manifest = FinetuneManifest.read(store.fetch(lora.model))
    assert manifest.kind == "lora" and manifest.parent == full.model and manifest.lora_base == full.model
    assert isinstance(lora("[[ ## date_text ## ]]\nMay 1, 2020")[0], str)
    served = pool.get(lora.model)
    assert served is not None and served.served.gguf == full_dir / "model.gguf" and served.served.lora is not None
