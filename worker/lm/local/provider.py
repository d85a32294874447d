"""`LlamaCppProvider`: dspy's launch/kill/finetune for local llama.cpp models, and `local_lm` to build one.

- `launch(lm)` starts (or reuses) this process's llama.cpp server for `lm.model`; `kill(lm)` stops it.
  Requests reach the server through `LlamaCppEngine`, which also starts a server on first use, so an
  LM rebuilt from saved state on another worker works without a `launch`.
- `finetune(...)` trains on CPU (LoRA by default) and returns a content-addressed model name whose
  files are published in the artifact store; dspy then uses `lm.copy(model=<that name>)`, served as the
  untouched base GGUF plus the GGUF LoRA (`--lora_path`) by any worker that can read the store.
"""

import os
import threading
from typing import Any

import dspy
from dspy.clients.provider import Provider, TrainingJob
from dspy.clients.utils_finetune import TrainDataFormat

from btq.worker.artifacts.store import ArtifactStore
from btq.worker.lm.local.engine import LlamaCppEngine
from btq.worker.lm.local.models import PREFIX, resolve
from btq.worker.lm.local.server import LlamaServer, ServerPool, default_pool
from btq.worker.lm.local.settings import FinetuneSettings, TrainerSettings
from btq.worker.lm.local.training.finetune import Finetuner, ProgressCallback

# LiteLLM (loaded by dspy for cost lookups) otherwise fetches its model price list over the network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


class LocalTrainingJob(TrainingJob):  # type: ignore[misc]
    """A fine-tune running in this process's thread; `cancel()` kills its training process."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cancel_requested = threading.Event()
        self.progress: dict[str, Any] = {}

    def cancel(self) -> bool:
        """Stop the training process (the fine-tune then fails with a cancellation error)."""
        self.cancel_requested.set()
        return bool(super().cancel())

    def status(self) -> dict[str, Any]:
        """Return the last progress event (step, loss, ...), or `{"event": "done"}` when finished."""
        return {"event": "done"} if self.done() else dict(self.progress)


class LlamaCppProvider(Provider):  # type: ignore[misc]
    """Serves `llamacpp/...` models with llama.cpp and fine-tunes them on CPU.

    Args:
        artifacts: Where fine-tunes are published and fetched from (required to fine-tune, and to
            serve a fine-tuned model).
        pool: The servers to use; default this process's shared pool (one server per model).
        trainer: CPU resources and time bound of a fine-tune.
        finetune_defaults: The recipe used where `train_kwargs` does not say otherwise.
        on_progress: Called with each fine-tune progress event (`{"event": "step", "step": 3,
            "total_steps": 30, "loss": 1.2, ...}`, also `started`, `phase`, `done`, `published`, `cached`).
    """

    def __init__(
        self,
        artifacts: ArtifactStore | None = None,
        *,
        pool: ServerPool | None = None,
        trainer: TrainerSettings | None = None,
        finetune_defaults: FinetuneSettings | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        super().__init__()
        self.finetunable = True
        self.TrainingJob = LocalTrainingJob
        self.artifacts = artifacts
        self.pool = pool or default_pool()
        self.trainer = trainer or TrainerSettings()
        self.finetune_defaults = finetune_defaults or FinetuneSettings()
        self.on_progress = on_progress

    @staticmethod
    def is_provider_model(model: str) -> bool:
        """Return True for `llamacpp/...` model names."""
        return model.startswith(PREFIX)

    def server_for(self, model: str, slot: str = "") -> LlamaServer:
        """Return the running server of `model` in `slot`, starting it (fetching a fine-tune first) if needed."""
        server = self.pool.get(model, slot)
        if server is not None:
            return server
        return self.pool.ensure(resolve(model, self.artifacts), slot)

    def launch(self, lm: "dspy.LM", launch_kwargs: dict[str, Any] | None = None) -> None:  # type: ignore[override]
        """Start (or reuse) the llama.cpp server of `lm.model`, waiting until it answers."""
        self.server_for(lm.model)

    def kill(self, lm: "dspy.LM", launch_kwargs: dict[str, Any] | None = None) -> None:  # type: ignore[override]
        """Stop the llama.cpp server of `lm.model` in this process, if it runs."""
        self.pool.stop(lm.model)

    def finetune(  # type: ignore[override]
        self,
        job: TrainingJob,
        model: str,
        train_data: list[dict[str, Any]],
        train_data_format: TrainDataFormat | str | None,
        train_kwargs: dict[str, Any] | None = None,
    ) -> str:
        """Fine-tune `model` on chat data and return the new model's name (published in the store).

        Raises:
            ValueError: No artifact store, or data not in chat format, or unknown `train_kwargs` keys.
            FinetuneError: Training failed, timed out or was cancelled.
        """
        if self.artifacts is None:
            raise ValueError("LlamaCppProvider needs an artifact store to fine-tune")
        if train_data_format not in (TrainDataFormat.CHAT, TrainDataFormat.CHAT.value):
            raise ValueError(f"local fine-tuning takes chat data, not {train_data_format!r}")
        recipe = FinetuneSettings.model_validate({**self.finetune_defaults.model_dump(), **(train_kwargs or {})})
        cancelled = job.cancel_requested if isinstance(job, LocalTrainingJob) else None

        def report(event: dict[str, Any]) -> None:
            if isinstance(job, LocalTrainingJob):
                job.progress = event
            if self.on_progress is not None:
                self.on_progress(event)

        return Finetuner(self.artifacts, self.trainer, report).run(model, train_data, recipe, cancelled)

    def lm(self, model: str = f"{PREFIX}smollm2-135m-instruct", **kwargs: Any) -> dspy.LM:
        """Return a `dspy.LM` for `model` served by this provider (kwargs: temperature, max_tokens, ...)."""
        kwargs.setdefault("temperature", 0.0)
        kwargs.setdefault("max_tokens", 512)
        # dspy's disk cache is off by default: evaluations should measure the model, and a base model
        # name does not change when the package shipping its weights does.
        kwargs.setdefault("cache", False)
        return dspy.LM(model, engine=LlamaCppEngine(self), provider=self, **kwargs)
