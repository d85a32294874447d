"""Worker settings: built once at the worker's entry point and passed in, env prefix `BTQ_`."""

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from btq.schemas.broker import DEFAULT_CONSUMER_TIMEOUT_S


def default_artifact_dir() -> str:
    """Return the per-user data directory artifacts go to by default: `$XDG_DATA_HOME/btq/artifacts`.

    Not the working directory: a worker started in a checkout would write into it, and workers started in
    different directories would silently not share fine-tunes. Workers on several hosts need a shared
    store (`s3://...`, or a directory on a mount all of them see).
    """
    data_home = os.environ.get("XDG_DATA_HOME", "")
    if not os.path.isabs(data_home):  # the XDG spec: a relative value is ignored
        data_home = str(Path.home() / ".local" / "share")
    return str(Path(data_home) / "btq" / "artifacts")


class LMRateLimit(BaseModel):
    """Requests and tokens per minute one model (or provider prefix) may take across the whole fleet."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rpm: float | None = Field(default=None, gt=0, description="Requests per minute")
    tpm: float | None = Field(default=None, gt=0, description="Prompt + completion tokens per minute")
    burst_requests: int = Field(default=1, ge=1, description="Requests allowed back to back before spacing applies")
    burst_tokens: int = Field(default=0, ge=0, description="Tokens allowed beyond the per-minute pace")


class WorkerSettings(BaseSettings):
    """Everything a worker process is configured with. Secrets live here, never in job payloads."""

    model_config = SettingsConfigDict(env_prefix="BTQ_", extra="forbid")

    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Job store, events and leases")
    broker_url: str | None = Field(
        default=None, description="Task messages: redis://... or amqp://... (RabbitMQ); the Redis URL when unset"
    )
    broker_consumer_timeout_s: float = Field(
        default=DEFAULT_CONSUMER_TIMEOUT_S,
        gt=0,
        description="RabbitMQ x-consumer-timeout of the task queue; same value on producers; above the longest step",
    )
    queue: str = "btq"
    imports: list[str] = Field(
        default_factory=list,
        description="Modules defining `register(registry)`; imported at worker start, like Celery imports",
    )
    artifact_dir: str = Field(
        default_factory=default_artifact_dir,
        description="Shared artifact store: a directory every worker reaches, s3://bucket/prefix (any S3-compatible "
        "store), or another fsspec URL; default $XDG_DATA_HOME/btq/artifacts (~/.local/share/btq/artifacts)",
    )
    step_soft_time_limit_s: float = 6 * 3600
    step_time_limit_s: float = 6 * 3600 + 300
    visibility_timeout_s: float = 7 * 3600
    unacked_restore_interval_s: float = Field(
        default=10.0,
        description="How often a worker sweeps for messages of dead workers (redelivery comes "
        "visibility_timeout_s after delivery, plus up to this)",
    )
    max_deliveries_per_step: int = 3
    step_lease_ttl_s: float = Field(
        default=30.0,
        description="A running step's lease, renewed every third of it; a step whose lease lapsed (its worker "
        "died) is re-driven by the sweeper, a delivery finding a dead local holder takes over at once",
    )
    sweep_interval_s: float = Field(
        default=10.0, description="How often the fleet's sweeper looks for lost steps (one worker sweeps at a time)"
    )
    job_stall_timeout_s: float = Field(
        default=900.0,
        description="A job with no live lease and no sign of life for this long is re-driven (watchdog); "
        "after max_deliveries_per_step re-drives of the same step it is failed with the reason",
    )
    worker_manifest_ttl_s: float = Field(
        default=30.0,
        description="A worker's heartbeat record (manifest, pool size) expires this long after its last renewal",
    )
    job_ttl_s: int = 7 * 24 * 3600
    job_stream_maxlen: int = 10_000
    global_stream_maxlen: int = 100_000
    cancel_poll_interval_s: float = 0.5
    dead_letter_maxlen: int = Field(
        default=1000, ge=1, description="Unreadable queue messages kept in Redis (btq:dead-letters), newest first"
    )
    lm_api_keys: dict[str, SecretStr] = Field(
        default_factory=dict, description="LiteLLM provider prefix (e.g. 'openai') -> API key"
    )
    lm_api_bases: dict[str, str] = Field(default_factory=dict, description="LiteLLM provider prefix -> API base URL")
    allow_litellm_models: bool = True
    sharding_enabled: bool = Field(
        default=True, description="Shard a step's evaluations across the fleet (off: every evaluation in-process)"
    )
    shard_min_examples: int = Field(
        default=8,
        ge=1,
        description=(
            "Smallest shard (halved when the fleet has more processes than such shards); evaluations of "
            "fewer than twice this stay in-process"
        ),
    )
    shards_per_slot: int = Field(
        default=4, ge=1, description="Most shards cut per live worker process, in whole rounds (load balancing)"
    )
    shard_lease_ttl_s: float = Field(
        default=10.0, gt=0, description="A claimed shard's lease; a shard whose holder died is re-run after it lapses"
    )
    heartbeat_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="How often a worker renews its heartbeat record (manifest, pool size, expiry); "
        "at least three times per worker_manifest_ttl_s",
    )
    lm_cache_enabled: bool = Field(default=True, description="Use the fleet's shared LM-call cache in Redis")
    lm_cache_ttl_s: int = Field(default=7 * 24 * 3600, ge=1, description="How long a cached LM call is kept")
    lm_cache_max_entries: int = Field(default=1_000_000, ge=1, description="Cap on cached LM calls (oldest dropped)")
    lm_cache_max_value_bytes: int = Field(default=1_000_000, ge=1, description="Larger responses are not cached")
    lm_cache_flight_ttl_s: float = Field(
        default=30.0,
        ge=0,
        description="Single flight: how long others wait for the worker making an uncached call (0: off)",
    )
    lm_rate_limits: dict[str, LMRateLimit] = Field(
        default_factory=dict,
        description="Fleet-wide LM rate limits by model name or LiteLLM provider prefix (`openai`), e.g. "
        '{"openai/gpt-4o-mini": {"rpm": 500, "tpm": 200000}}; every worker shares one bucket per name',
    )
    lm_rate_limit_max_wait_s: float = Field(
        default=300.0, gt=0, description="Longest an LM call waits for rate-limit capacity before it fails"
    )
    lm_budget_reserve_calls: int = Field(
        default=8,
        ge=1,
        description="Budget calls a worker process reserves at once (fewer Redis round trips; bounded overshoot)",
    )
    worker_send_events: bool = Field(
        default=False, description="Send Celery task events (what Flower and `celery events` show)"
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Serve Prometheus /metrics of this worker on this port (main process; needs the metrics extra)",
    )
    metrics_host: str = Field(default="127.0.0.1", description="Bind address of the worker's /metrics")
    otel_exporter: Literal["none", "otlp", "jsonl"] = Field(
        default="none",
        description="OpenTelemetry spans (needs the otel extra): otlp (OTEL_EXPORTER_OTLP_* env) or jsonl "
        "(one JSON span per line appended to otel_jsonl_path)",
    )
    otel_jsonl_path: str | None = Field(default=None, description="File the jsonl span exporter appends to")

    @model_validator(mode="after")
    def _jsonl_needs_a_path(self) -> "WorkerSettings":
        if self.otel_exporter == "jsonl" and not self.otel_jsonl_path:
            raise ValueError("otel_jsonl_path: required when otel_exporter is jsonl (BTQ_OTEL_JSONL_PATH)")
        return self
