"""Poison storm: named poison forms and many random messages interleaved with good jobs on two workers.

Every good job finishes with the in-process result, no worker dies, every bad message is dead-lettered
once. `BTQ_CHAOS_TRIALS` scales the storm (`make chaos`: 8 trials = 80 random messages; default run: 2).
"""

import json
import os
import random

import pytest

from btq.schemas import keys
from tests.conftest import running_fleet, wait_until
from tests.integration.test_parity import assert_same, spec
from tests.integration.test_poison import poison, real_envelope

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

TRIALS = int(os.environ.get("BTQ_CHAOS_TRIALS", "2"))
RANDOM_PER_TRIAL = 10


def test_poison_storm_between_good_jobs_kills_no_worker_and_changes_no_result() -> None:
    rng = random.Random(2024)
    with running_fleet(9, "btq-poison-storm", ["sa", "sb"]) as fleet:
        client = fleet.client()
        named = list(poison(real_envelope(fleet)).values())
        storm = named + [rng.randbytes(rng.randint(1, 2048)) for _ in range(RANDOM_PER_TRIAL * TRIALS)]
        rng.shuffle(storm)
        jobs = [spec("p -> p", "given", True, seed) for seed in range(TRIALS)]
        ids = []
        # Garbage before, between and after the jobs' messages.
        chunk = len(storm) // (len(jobs) + 1) + 1
        for i, job in enumerate(jobs):
            for raw in storm[i * chunk : (i + 1) * chunk]:
                client.redis.lpush(fleet.queue, raw)
            ids.append(client.submit(job))
        for raw in storm[len(jobs) * chunk :]:
            client.redis.lpush(fleet.queue, raw)

        for job, job_id in zip(jobs, ids, strict=True):
            assert_same(client.wait(job_id, timeout_s=300), job)
        # Garbage pushed after the last job may still be in flight when it finishes.
        wait_until(lambda: client.redis.llen(keys.DEAD_LETTERS) >= len(storm), 60, "every bad message handled")
        assert all(proc.poll() is None for proc in fleet.procs.values()), "no worker died"
        entries = [json.loads(e) for e in client.redis.lrange(keys.DEAD_LETTERS, 0, -1)]
        logs = "\n".join(log.read_text(errors="replace") for log in fleet.logs.values())
        assert "Unrecoverable error" not in logs
        assert len(entries) == len(storm), "every bad message dead-lettered exactly once"
        assert client.redis.llen(fleet.queue) == 0
