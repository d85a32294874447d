"""Worker settings: built once at the worker's entry point and passed in, env prefix `BTQ_`."""

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkerSettings(BaseSettings):
    """Everything a worker process is configured with. Secrets live here, never in job payloads."""

    model_config = SettingsConfigDict(env_prefix="BTQ_", extra="forbid")

    redis_url: str = "redis://127.0.0.1:6379/0"
    queue: str = "btq"
    imports: list[str] = Field(
        default_factory=list,
        description="Modules defining `register(registry)`; imported at worker start, like Celery imports",
    )
    artifact_dir: str = Field(
        default=".btq/artifacts",
        description="Shared artifact store: a directory every worker reaches, or an fsspec URL (s3://...)",
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
    job_ttl_s: int = 7 * 24 * 3600
    job_stream_maxlen: int = 10_000
    global_stream_maxlen: int = 100_000
    cancel_poll_interval_s: float = 0.5
    lm_api_keys: dict[str, SecretStr] = Field(
        default_factory=dict, description="LiteLLM provider prefix (e.g. 'openai') -> API key"
    )
    lm_api_bases: dict[str, str] = Field(default_factory=dict, description="LiteLLM provider prefix -> API base URL")
    allow_litellm_models: bool = True
