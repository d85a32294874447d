"""`btq_queue_messages` counts every message waiting in a queue, held-out scoring requests included (real Redis)."""

import pytest
import redis

from btq.producer.metrics.collector import FleetCollector
from btq.schemas.queues import priority_lists

pytestmark = pytest.mark.integration


def test_depth_counts_the_held_out_priority_list_with_the_queue(scratch_db: redis.Redis) -> None:
    queue = "btq-depth"
    steps, held_out = priority_lists(queue)
    scratch_db.rpush(steps, b"step-1", b"step-2")
    scratch_db.rpush(held_out, b"evaluate-1")
    families = {family.name: family for family in FleetCollector(scratch_db, queue).collect()}
    depth = {sample.labels["queue"]: sample.value for sample in families["btq_queue_messages"].samples}
    assert depth[queue] == 3
    assert depth[f"{queue}.eval"] == 0
