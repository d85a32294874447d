"""What the worker fleet can run: published by workers, read by producers to validate jobs."""

import hashlib
import json

from pydantic import Field

from btq.schemas.version import VersionedModel, WireModel


class OptimizerSignature(WireModel):
    """An allowlisted optimizer class and the parameters of its constructor and `compile()`."""

    init_params: list[str]
    compile_params: list[str]
    init_var_kwargs: bool = False


class RegistryManifest(VersionedModel):
    """A worker's one heartbeat record: what it registered, its pool size, and when the record lapses.

    Registered names: programs with their predictor names, metrics, LMs, datasets with their splits,
    optimizers. Producers validate and route jobs with it; workers size evaluation shards by the pool
    sizes of live records; `btq workers` and the dashboard show it.
    """

    programs: dict[str, list[str]]
    metrics: list[str]
    lms: list[str]
    datasets: dict[str, list[str]]
    optimizers: dict[str, OptimizerSignature]
    default_optimizers: dict[str, str] = Field(
        default_factory=lambda: {"p": "BootstrapFewShotWithRandomSearch", "w": "BootstrapFinetune"}
    )
    worker: str
    published_at: float
    pool_size: int = Field(default=0, ge=0)
    """Processes in the worker's pool: shards it can score at once (0 in a record that does not say)."""
    expires_at: float = 0.0
    """Unix time the record lapses unless the worker renews it (also the Redis key's own expiry)."""

    def profile(self) -> str:
        """Return a short hash of what is registered: workers with equal profiles run the same jobs.

        Producers route a job to the queue of a profile that covers it (`keys.profile_queue`), so both
        sides compute it from the manifest alone; who published it, when, and its pool size do not count.
        """
        body = self.model_dump(
            mode="json", exclude={"worker", "published_at", "pool_size", "expires_at", "schema_version"}
        )
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
