"""What a finished job keeps in Redis: its records and results, no evaluation keys, compact step records."""

import json

import pytest
import redis

from btq.producer.client import JobClient
from btq.schemas import keys
from btq.schemas.sharding import EvalRequest, ShardResult
from btq.worker.sharding.board import ShardBoard, drop_step_evaluations
from tests.integration.test_parity import assert_same, spec

pytestmark = pytest.mark.integration

JOB_BYTES_MAX = 40 * 1024
RECORD_BYTES_MAX = 2 * 1024
"""A step record without its program state (the generator travels as seed and shuffles done)."""


def test_a_finished_job_keeps_no_evaluation_keys_and_at_most_40_kb(client: JobClient) -> None:
    job = spec("p -> w -> p", "given", True, 23)
    job_id = client.submit(job)
    result = client.wait(job_id, timeout_s=300)
    assert_same(result, job)

    store = client.redis
    job_keys = [k.decode() for k in store.scan_iter(match=keys.job_key(job_id, "*"), count=1000)]
    records = [json.loads(store.get(keys.step_key(job_id, index)) or b"") for index in range(4)]
    assert sum(record["timings_s"].get("sharded_evaluations", 0) for record in records) > 0, "nothing was sharded"
    assert [k for k in job_keys if ":eval:" in k or ":evals:" in k] == []
    assert sum(int(store.memory_usage(k, samples=0) or 0) for k in job_keys) <= JOB_BYTES_MAX
    for record in records:
        assert record["rng"] is not None and record["rng"]["seed"] == 23 and record["rng_state"] == []
        assert len(json.dumps({**record, "program_state": None})) <= RECORD_BYTES_MAX


def _request() -> EvalRequest:
    return EvalRequest(
        job_id="j",
        step_index=1,
        eval_id="ab12cd34",
        program="t.qa",
        program_state={},
        examples=[("val", 0), ("val", 1)],
        shards=[(0, 1), (1, 2)],
        max_errors=5,
    )


def test_evaluation_keys_serve_a_redelivered_step_until_its_record_then_go_for_good(scratch_db: redis.Redis) -> None:
    first = ShardBoard(scratch_db, "j", "ab12cd34", ttl_s=600, lease_ttl_s=5)
    first.publish(_request())
    assert first.store(ShardResult(shard=0, worker="dead", outcomes=[]))

    # The step's holder died: its redelivery publishes again and finds shard 0 finished.
    again = ShardBoard(scratch_db, "j", "ab12cd34", ttl_s=600, lease_ttl_s=5)
    again.publish(_request())
    assert again.done() == {0}
    claim = again.claim_next()
    assert claim is not None and claim[0] == 1
    claim[1].release()

    assert drop_step_evaluations(scratch_db, "j", 1) == 1  # the step's record is stored
    assert list(scratch_db.scan_iter("btq:job:j:eval*")) == []
    # A shard that finishes late stores nothing and brings no key back.
    assert not again.store(ShardResult(shard=1, worker="late", outcomes=[]))
    assert list(scratch_db.scan_iter("btq:job:j:*")) == []
