"""Settings of the local (llama.cpp + CPU fine-tuning) backend, env prefix `BTQ_LOCAL_`."""

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "btq" / "local"


class ServerSettings(BaseSettings):
    """How llama.cpp servers are started: one per model per worker process."""

    model_config = SettingsConfigDict(env_prefix="BTQ_LOCAL_SERVER_", extra="forbid")

    n_threads: int = Field(default=2, ge=1, description="CPU threads per server")
    n_ctx: int = Field(default=4096, ge=256, description="Context window (prompt plus completion tokens)")
    start_timeout_s: float = Field(default=120.0, gt=0, description="Bound on server start (load + health)")
    stop_timeout_s: float = Field(default=10.0, gt=0, description="SIGTERM grace before SIGKILL")
    log_dir: Path = Field(default_factory=lambda: _default_cache_dir() / "server-logs")
    request_timeout_s: float = Field(default=300.0, gt=0, description="Bound on one completion request")
    logits_all: bool = Field(
        default=False,
        description="Compute the logits of every prompt token, not only the last (llama_cpp.server's default is "
        "True; nothing here reads them, and the output layer over every prompt token costs about a fifth of "
        "prompt evaluation)",
    )
    structured_server: bool = Field(
        default=True,
        description="Serve requests with a response_format (JSONAdapter's) from a second server of the model, "
        "so they do not evict the evaluated prompt prefix of the others",
    )


class FinetuneSettings(BaseModel):
    """One fine-tune's training recipe; every field is part of the fine-tuned model's content name.

    `BootstrapFinetune(train_kwargs=...)` values override the provider's defaults; unknown keys are
    refused rather than ignored so a typo cannot silently train something else.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["lora", "full"] = "lora"
    max_steps: int = Field(default=30, ge=1, le=10_000, description="Upper bound on optimizer steps")
    epochs: float = Field(default=3.0, gt=0, le=100, description="Upper bound in passes over the data")
    batch_size: int = Field(default=4, ge=1, le=256)
    learning_rate: float | None = Field(default=None, gt=0, lt=1, description="None: 2e-4 LoRA, 2e-5 full")
    max_length: int = Field(default=1024, ge=32, le=8192, description="Tokens per example (longer: cut)")
    lora_r: int = Field(default=16, ge=1, le=256)
    lora_alpha: int = Field(default=32, ge=1)
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    seed: int = 0


class TrainerSettings(BaseSettings):
    """Resources a fine-tune may use on this worker (not part of the model's name)."""

    model_config = SettingsConfigDict(env_prefix="BTQ_LOCAL_TRAIN_", extra="forbid")

    threads: int = Field(default=2, ge=1, description="torch CPU threads of the training process")
    timeout_s: float = Field(default=3600.0, gt=0, description="Bound on one fine-tune (train + convert)")
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Per-machine cache: the base model dequantized to safetensors, scratch space",
    )
