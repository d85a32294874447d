"""One CPU fine-tune: name it by content, reuse it if published, else train, convert and publish it.

The name hashes the parent model, the training data and the recipe (`finetune_name`), so a retried
step, on this worker or another, finds the artifact an earlier attempt published and skips training.
Training runs in a child process (`btq.worker.lm.local.training.train`) that dies with the worker, is bounded by
`TrainerSettings.timeout_s`, can be cancelled, and reports progress as JSON lines.
"""

import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from btq.worker.artifacts.store import ArtifactStore, content_name
from btq.worker.core import interrupt
from btq.worker.lm.local.models import (
    BASE_MODELS,
    FT_MARK,
    MANIFEST,
    PREFIX,
    FinetuneManifest,
    base_of,
    is_finetuned,
)
from btq.worker.lm.local.procs import spawn, tail, terminate
from btq.worker.lm.local.settings import FinetuneSettings, TrainerSettings
from btq.worker.lm.local.training.lock import training_lock
from btq.worker.lm.local.training.train import ADAPTER_DIR, MODEL_DIR, TrainSpec

logger = logging.getLogger(__name__)

RECIPE_VERSION = 2
"""Part of every fine-tune's name: bump it when training code changes what a recipe produces."""

ProgressCallback = Callable[[dict[str, Any]], None]


class FinetuneError(RuntimeError):
    """Training failed, timed out or was cancelled; the message ends with the training log's tail."""


def finetune_name(parent: str, train_data: list[dict[str, Any]], recipe: FinetuneSettings) -> str:
    """Return the content-addressed model name of fine-tuning `parent` on `train_data` with `recipe`."""
    prefix = f"{PREFIX}{base_of(parent)}{FT_MARK}"
    return content_name(prefix, RECIPE_VERSION, parent, train_data, recipe.model_dump(mode="json"))


class Finetuner:
    """Runs fine-tunes for one provider: shared store, per-machine cache, bounded resources."""

    def __init__(
        self,
        store: ArtifactStore,
        settings: TrainerSettings | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or TrainerSettings()
        self.on_progress = on_progress

    def _report(self, event: dict[str, Any]) -> None:
        if self.on_progress is not None:
            try:
                self.on_progress(event)
            except Exception:  # a reporting failure must not fail the fine-tune
                logger.exception("fine-tune progress callback failed")

    def run(
        self,
        parent: str,
        train_data: list[dict[str, Any]],
        recipe: FinetuneSettings,
        cancelled: threading.Event | None = None,
    ) -> str:
        """Return the fine-tuned model's name, training and publishing it unless already published.

        Raises:
            FinetuneError: Training or conversion failed, timed out, or was cancelled.
        """
        name = finetune_name(parent, train_data, recipe)
        if self.store.exists(name):
            self._report({"event": "cached", "model": name})
            return name
        with training_lock(self.settings.cache_dir, name):
            if self.store.exists(name):  # another worker on this machine trained it while we waited
                self._report({"event": "cached", "model": name})
                return name
            return self._train_and_publish(name, parent, train_data, recipe, cancelled)

    def _train_and_publish(
        self,
        name: str,
        parent: str,
        train_data: list[dict[str, Any]],
        recipe: FinetuneSettings,
        cancelled: threading.Event | None,
    ) -> str:
        self.settings.cache_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="finetune-", dir=self.settings.cache_dir))
        try:
            spec = self._spec(parent, train_data, recipe, work)
            summary = self._train(spec, work, cancelled or threading.Event(), name)
            out = Path(spec.out)
            manifest = FinetuneManifest(
                kind=recipe.method,
                base=base_of(parent),
                parent=parent,
                lora_base=self._lora_base(parent) if recipe.method == "lora" else None,
                gguf=summary["gguf"],
                hf_dir=summary["hf_dir"],
                recipe=recipe.model_dump(mode="json"),
                examples=summary["examples"],
                stats={k: summary[k] for k in ("train_s", "convert_s", "peak_rss_mb")},
            )
            (out / MANIFEST).write_bytes(manifest.to_json())
            (out / "convert.log").unlink(missing_ok=True)
            self.store.publish_dir(name, out)
            self._report({"event": "published", "model": name, **manifest.stats})
            return name
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _lora_base(self, parent: str) -> str:
        """The model whose GGUF a LoRA trained from `parent` applies to."""
        if not is_finetuned(parent):
            return parent
        manifest = FinetuneManifest.read(self.store.fetch(parent))
        if manifest.kind == "full":
            return parent
        return manifest.lora_base or f"{PREFIX}{manifest.base}"  # continued training: same GGUF below

    def _spec(self, parent: str, data: list[dict[str, Any]], recipe: FinetuneSettings, work: Path) -> TrainSpec:
        start_dir = parent_adapter = None
        if is_finetuned(parent):
            directory = self.store.fetch(parent)
            manifest = FinetuneManifest.read(directory)
            if manifest.kind == "full":
                start_dir = str(directory / MODEL_DIR)
            else:
                parent_adapter = str(directory / ADAPTER_DIR)
                lora_base = manifest.lora_base or f"{PREFIX}{manifest.base}"
                if is_finetuned(lora_base):
                    start_dir = str(self.store.fetch(lora_base) / MODEL_DIR)
        (work / "data.jsonl").write_text("".join(json.dumps(row) + "\n" for row in data))
        (work / "out").mkdir()
        return TrainSpec(
            data=str(work / "data.jsonl"),
            out=str(work / "out"),
            base_gguf=str(BASE_MODELS[base_of(parent)].gguf()),
            cache_dir=str(self.settings.cache_dir),
            recipe=recipe.model_dump(mode="json"),
            threads=self.settings.threads,
            start_dir=start_dir,
            parent_adapter=parent_adapter,
            convert_timeout_s=self.settings.timeout_s,
        )

    def _train(self, spec: TrainSpec, work: Path, cancelled: threading.Event, name: str) -> dict[str, Any]:
        spec_path = work / "spec.json"
        spec.write(spec_path)
        log = work / "train.log"
        threads = str(self.settings.threads)
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "TOKENIZERS_PARALLELISM": "false"}
        process = spawn(
            [sys.executable, "-m", "btq.worker.lm.local.training.train", str(spec_path)],
            log=log,
            env=env,
            stdout_pipe=True,
        )
        self._report({"event": "started", "model": name, "pid": process.pid})
        # The watchdog ends the child on timeout or cancel; reading its stdout then sees EOF.
        stop = threading.Event()
        why: list[str] = []

        def watchdog() -> None:
            deadline = time.monotonic() + self.settings.timeout_s
            while not stop.wait(0.2):
                if interrupt.is_cancelled():  # the job was cancelled: the child is terminated, nothing published
                    cancelled.set()
                if cancelled.is_set() or time.monotonic() > deadline:
                    why.append("cancelled" if cancelled.is_set() else f"timed out after {self.settings.timeout_s}s")
                    terminate(process, 5)
                    return

        guard = threading.Thread(target=watchdog, name="btq-finetune-watchdog", daemon=True)
        guard.start()
        summary: dict[str, Any] | None = None
        try:
            assert process.stdout is not None
            for line in process.stdout:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a library printed to stdout; it is not a progress event
                if event.get("event") == "done":
                    summary = event
                self._report({**event, "model": name})
            code = process.wait()
        finally:
            stop.set()
            guard.join()
            terminate(process, 5)
        if why or code != 0 or summary is None:
            reason = why[0] if why else f"exited with {code}"
            raise FinetuneError(f"fine-tune {name} {reason}:\n{tail(log)}")
        return summary
