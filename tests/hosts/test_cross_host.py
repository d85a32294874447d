"""A `p -> w -> p` job across three simulated hosts with no shared disk: the result equals in-process dspy.

The `w` step's fine-tune is published to the S3 server on the infra host (no host shares a directory);
steps and evaluation shards land on several hosts (the table printed with `-s` says which host ran what).
"""

from collections.abc import Callable

import pytest

from tests.hosts.conftest import HostFleet
from tests.hosts.harness import Network
from tests.hosts.table import host_table, render, summary
from tests.integration.test_parity import assert_same, spec

pytestmark = [pytest.mark.integration, pytest.mark.multihost]


def test_p_w_p_across_three_hosts_equals_in_process(make_network: Callable[[], Network]) -> None:
    network = make_network()
    fleet = HostFleet(network, "btq-hosts")
    fleet.start(["a", "b", "c"])
    job = spec("p -> w -> p", "given", True, 7)
    client = fleet.client()

    result = client.wait(client.submit(job), timeout_s=300)

    assert_same(result, job)
    rows = host_table(fleet.redis(), result.job_id)
    print(f"\nper-step host table (job {result.job_id}):\n{summary(rows)}\n\n{render(rows)}")
    assert {r.step for r in rows if r.shard is None} >= {1, 2, 3}
    assert len({r.host for r in rows}) > 1, "every step and shard ran on one host"
    assert {r.host for r in rows} <= {"btq-a", "btq-b", "btq-c"}
    artifacts = network.s3_client().list_objects_v2(Bucket=network.bucket).get("KeyCount", 0)  # type: ignore[attr-defined]
    assert artifacts > 0, "the fine-tune was not published to the S3 store"
