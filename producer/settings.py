"""Producer settings: built at the entry point (CLI, service or `btq intake`) and passed in, env prefix `BTQ_`."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from btq.schemas.broker import DEFAULT_CONSUMER_TIMEOUT_S


class ProducerSettings(BaseSettings):
    """Where jobs go and how large they may be; how the intake reads its stream."""

    model_config = SettingsConfigDict(env_prefix="BTQ_", extra="ignore")

    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Job store and events")
    broker_url: str | None = Field(
        default=None, description="Task messages: redis://... or amqp://... (RabbitMQ); the Redis URL when unset"
    )
    broker_consumer_timeout_s: float = Field(
        default=DEFAULT_CONSUMER_TIMEOUT_S, gt=0, description="RabbitMQ queue argument; the workers' value"
    )
    queue: str = "btq"
    max_strategy_steps: int = Field(default=64, ge=1, description="Longest strategy a job may have, in steps")
    max_spec_bytes: int = 32 * 1024 * 1024
    max_examples: int = 200_000
    intake_max_entry_bytes: int = Field(
        default=4 * 1024 * 1024, description="An intake entry larger than this is rejected unread"
    )
    intake_claim_idle_s: float = Field(
        default=30.0, description="A submission pending this long on a consumer is taken over (its consumer died)"
    )
    intake_max_deliveries: int = Field(
        default=5, description="An entry whose handling keeps failing is rejected after this many deliveries"
    )
    intake_block_s: float = Field(default=1.0, description="Longest blocking read on the intake stream")
    intake_status_ttl_s: int = Field(default=7 * 24 * 3600, description="How long a submission's outcome is kept")
    intake_max_age_s: float = Field(
        default=7 * 24 * 3600,
        description="Intake entries older than this are trimmed from the stream even if no intake handled them "
        "(handled ones are deleted at once)",
    )
    redis_reconnect_budget_s: float = 120.0
    """How long `wait`, `follow` and `btq watch` keep reconnecting to an unreachable Redis before failing."""

    @property
    def broker(self) -> str:
        """The broker task messages go through: `broker_url`, else the Redis URL."""
        return self.broker_url or self.redis_url
