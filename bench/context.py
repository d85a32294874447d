"""What every section shares: the plan, a scratch directory, and the start-up times of every worker."""

from dataclasses import dataclass, field
from pathlib import Path

from bench.config import Plan
from bench.fleet import Fleet


@dataclass
class BenchContext:
    """The run's plan and shared collectors; sections receive it instead of reading globals."""

    plan: Plan
    quick: bool
    workdir: Path
    startup_s: list[float] = field(default_factory=list)
    """Spawn-to-manifest seconds of every worker started by any section (each started alone)."""

    def fleet(self, db: int, section: str, env: dict[str, str] | None = None) -> Fleet:
        """Return an empty fleet for `section` on bench database `db`, with its own artifacts and logs."""
        root = self.workdir / section
        (root / "logs").mkdir(parents=True, exist_ok=True)
        return Fleet(db, root / "artifacts", root / "logs", on_started=self.startup_s.append, env=dict(env or {}))
