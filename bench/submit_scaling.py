"""`python -m bench.submit_scaling [STEPS ...]`: submission time against strategy length.

Validates and enqueues one job per length onto a queue no worker reads (removed afterwards), against
Redis database 13 of `BTQ_BENCH_REDIS`, with a manifest published from the bench registry. It shows that
submission is linear in the strategy's length (Celery's `chain(*tasks)` used to make it quadratic).
"""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import sys
import time
from typing import Any

import redis

from bench.redis_dbs import db_url, flush
from btq.producer.client import JobClient
from btq.producer.settings import ProducerSettings
from btq.schemas import keys
from btq.worker.celery.runtime import WorkerRuntime
from btq.worker.settings import WorkerSettings

DB_SUBMIT = 13
QUEUE = "btq-bench-submit-unread"
DEFAULT_STEPS = (100, 1000, 3000)


def job(steps: int) -> dict[str, Any]:
    """A job of `steps` prompt-optimization steps on the bench's tiny dataset."""
    return {
        "program": {"name": "demo.qa"},
        "lm": "bench.sim0",
        "metric": "demo.exact_match",
        "optimizers": {"p": {"optimizer": "LabeledFewShot", "kwargs": {"k": 2}}},
        "strategy": " -> ".join(["p"] * steps),
        "trainset": {"dataset": "bench.tiny", "split": "train"},
        "seed": 0,
    }


def _publish_manifest(url: str) -> None:
    """Stand in for a live worker: its manifest and heartbeat entry (submission validates against them)."""
    runtime = WorkerRuntime(WorkerSettings(redis_url=url, imports=["bench.registry"]))
    manifest = runtime.registry.manifest("bench@submit").model_copy(update={"published_at": time.time()})
    client = redis.Redis.from_url(url)
    client.set(keys.worker_key("bench@submit", "manifest"), manifest.model_dump_json(), ex=600)
    client.zadd(keys.WORKERS, {"bench@submit": time.time()})
    client.close()


def main(argv: list[str]) -> None:
    """Print `steps  submit_s` for each length in `argv` (or the defaults)."""
    lengths = [int(a) for a in argv] or list(DEFAULT_STEPS)
    url = db_url(DB_SUBMIT)
    flush(DB_SUBMIT)
    _publish_manifest(url)
    client = JobClient(ProducerSettings(redis_url=url, queue=QUEUE, max_strategy_steps=max(lengths)))
    print("steps  submit_s")
    for steps in lengths:
        spec = job(steps)
        started = time.perf_counter()
        client.submit(spec)
        print(f"{steps:5d}  {time.perf_counter() - started:8.3f}")
    flush(DB_SUBMIT)


if __name__ == "__main__":
    main(sys.argv[1:])
