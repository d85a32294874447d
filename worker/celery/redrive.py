"""Re-driving a job from one step: the same Celery chain the producer sends, from that step on.

A Celery chain continues from the step task (the next step is sent when the current one returns), so a
step re-sent alone would end its job there; it is re-sent with every later step and the finalize.
"""

import json

import redis
from celery import Celery, chain

from btq.schemas import keys
from btq.schemas.job import STRATEGY_SEPARATOR
from btq.schemas.labels import finalize_label, step_label
from btq.worker.celery.presence import job_queue
from btq.worker.celery.sweeper import Redrive


def redriver(app: Celery, default_queue: str, client: redis.Redis) -> Redrive:
    """Return a function sending step `index` of a job (steps + 1 = finalize) and the rest of its chain."""

    def redrive(job_id: str, index: int, steps: int) -> None:
        queue = job_queue(client, job_id, default_queue)  # the job's registry profile, as the producer routed it
        names = _strategy_keys(client, job_id)
        sigs = [
            app.signature(
                keys.TASK_STEP, args=(job_id, i), immutable=True, queue=queue, argsrepr=_label(job_id, i, names)
            )
            for i in range(index, steps + 1)
        ]
        final = finalize_label(job_id, names) if names else None
        sigs.append(app.signature(keys.TASK_FINALIZE, args=(job_id,), immutable=True, queue=queue, argsrepr=final))
        chain(*sigs).apply_async()

    return redrive


def _strategy_keys(client: redis.Redis, job_id: str) -> list[str]:
    """The job's strategy keys for task labels (none when its spec cannot be read: the labels are cosmetic)."""
    try:
        raw = client.get(keys.job_key(job_id, "spec"))
        strategy = json.loads(raw)["strategy"] if raw else ""
    except (ValueError, KeyError, TypeError, redis.RedisError):
        return []
    return str(strategy).split(STRATEGY_SEPARATOR) if strategy else []


def _label(job_id: str, index: int, names: list[str]) -> str | None:
    return step_label(job_id, index, names) if names else None
