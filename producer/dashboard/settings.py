"""Dashboard settings: built at the entry point (`btq dashboard`) and passed in, env prefix `BTQ_`."""

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from btq.producer.dashboard.guard import is_loopback


class DashboardSettings(BaseSettings):
    """Where the dashboard listens and what protects it."""

    model_config = SettingsConfigDict(env_prefix="BTQ_", extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    queue: str = "btq"
    broker_url: str | None = Field(
        default=None, description="The workers' broker, checked by /readyz (Redis when unset)"
    )
    dashboard_host: str = Field(default="127.0.0.1", description="Bind address; loopback unless a token is set")
    dashboard_port: int = 8750
    dashboard_token: SecretStr | None = Field(
        default=None, description="Bearer token required on every request (and to cancel) when set"
    )
    dashboard_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra names the dashboard answers to in the Host header (comma-separated; '*' for any), "
        "e.g. the name of a proxy in front of it; the bound address (and loopback names on loopback) always are",
    )
    dashboard_jobs_limit: int = Field(default=200, description="Most jobs one page of the jobs list shows (per_page)")
    dashboard_heartbeat_s: float = Field(default=15.0, description="Comment line sent on an idle event stream")
    dashboard_ping_cache_s: float = Field(default=5.0, description="How long a worker ping answer is reused")
    dashboard_worker_events_scan: int = Field(
        default=2000, description="Latest global events read to tell what each worker runs"
    )

    @field_validator("dashboard_token", mode="before")
    @classmethod
    def _blank_token_is_none(cls, value: object) -> object:
        # An empty or whitespace-only token would let every request through: it counts as no token at all.
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(raw, str):
            return raw.strip() or None
        return value

    @field_validator("dashboard_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    def exposure_problem(self) -> str | None:
        """Why serving with these settings would be unsafe (no token beyond loopback), or None."""
        if self.dashboard_token is None and not is_loopback(self.dashboard_host):
            return (
                f"refusing to listen on {self.dashboard_host} (beyond loopback) without BTQ_DASHBOARD_TOKEN "
                "(unset, empty or blank)"
            )
        return None
