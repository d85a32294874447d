"""`btq workers`: the live workers, what each registered and what each is running."""

import json
import time
from typing import Any, TextIO

from btq.producer.fleet.view import LiveWorker


def workers_json(workers: list[LiveWorker]) -> list[dict[str, Any]]:
    """Return the live workers as JSON-ready records (name, profile, registered names, running tasks)."""
    return [
        {
            "name": w.name,
            "profile": w.profile,
            "pool_size": w.pool_size,
            "published_at": w.manifest.published_at,
            "expires_at": w.manifest.expires_at,
            "registered": {
                "programs": sorted(w.manifest.programs),
                "metrics": w.manifest.metrics,
                "lms": w.manifest.lms,
                "datasets": w.manifest.datasets,
                "optimizers": sorted(w.manifest.optimizers),
            },
            "running": w.running,
        }
        for w in workers
    ]


def print_workers(workers: list[LiveWorker], out: TextIO, *, as_json: bool = False) -> None:
    """Print the live workers: a short block per worker, or JSON Lines (one worker per line, as every list)."""
    if as_json:
        for record in workers_json(workers):
            out.write(json.dumps(record) + "\n")
        return
    if not workers:
        out.write("no live workers\n")
        return
    now = time.time()
    for w in workers:
        m = w.manifest
        out.write(
            f"{w.name}  profile {w.profile}  pool {w.pool_size or '?'}  heartbeat {now - m.published_at:.0f}s ago\n"
        )
        out.write(f"  programs  {', '.join(sorted(m.programs)) or '-'}\n")
        out.write(f"  lms       {', '.join(m.lms) or '-'}\n")
        out.write(f"  metrics   {', '.join(m.metrics) or '-'}\n")
        datasets = [f"{name} ({'/'.join(splits)})" for name, splits in m.datasets.items()]
        out.write(f"  datasets  {', '.join(datasets) or '-'}\n")
        running = [f"{r.get('task')} {' '.join(str(a) for a in r.get('args', []))}" for r in w.running.values()]
        out.write(f"  running   {'; '.join(running) or 'idle'}\n")
