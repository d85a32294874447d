"""Dashboard settings: built at the entry point (`btq dashboard`) and passed in, env prefix `BTQ_`."""

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    dashboard_jobs_limit: int = Field(default=200, description="Most jobs the jobs list shows")
    dashboard_heartbeat_s: float = Field(default=15.0, description="Comment line sent on an idle event stream")
    dashboard_ping_cache_s: float = Field(default=5.0, description="How long a worker ping answer is reused")
    dashboard_worker_events_scan: int = Field(
        default=2000, description="Latest global events read to tell what each worker runs"
    )
