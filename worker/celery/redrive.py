"""Re-driving a job from one step: the same Celery chain the producer sends, from that step on.

A Celery chain continues from the step task (the next step is sent when the current one returns), so a
step re-sent alone would end its job there; it is re-sent with every later step and the finalize.
"""

import redis
from celery import Celery, chain

from btq.schemas import keys
from btq.worker.celery.presence import job_queue
from btq.worker.celery.sweeper import Redrive


def redriver(app: Celery, default_queue: str, client: redis.Redis) -> Redrive:
    """Return a function sending step `index` of a job (steps + 1 = finalize) and the rest of its chain."""

    def redrive(job_id: str, index: int, steps: int) -> None:
        queue = job_queue(client, job_id, default_queue)  # the job's registry profile, as the producer routed it
        sigs = [
            app.signature(keys.TASK_STEP, args=(job_id, i), immutable=True, queue=queue)
            for i in range(index, steps + 1)
        ]
        sigs.append(app.signature(keys.TASK_FINALIZE, args=(job_id,), immutable=True, queue=queue))
        chain(*sigs).apply_async()

    return redrive
