"""Producer settings: built at the entry point (CLI or service) and passed in, env prefix `BTQ_`."""

from pydantic_settings import BaseSettings, SettingsConfigDict


class ProducerSettings(BaseSettings):
    """Where jobs go and how large they may be."""

    model_config = SettingsConfigDict(env_prefix="BTQ_", extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    queue: str = "btq"
    max_spec_bytes: int = 32 * 1024 * 1024
    max_examples: int = 200_000
    redis_reconnect_budget_s: float = 120.0
    """How long `wait`, `follow` and `btq watch` keep reconnecting to an unreachable Redis before failing."""
