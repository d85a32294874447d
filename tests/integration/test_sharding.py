"""Sharded evaluation: one job's evaluations run on every worker, and the result stays dspy's.

Every fleet here cuts evaluations into shards of 2 examples, so the small valsets of these jobs are
really spread across worker processes (the shared fleet of the other tests does the same).
"""

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from btq.producer.client import JobClient
from btq.schemas.events import EventType, JobEvent
from tests.conftest import Fleet, running_fleet
from tests.integration.test_parity import assert_same, spec

pytestmark = pytest.mark.integration

ONE_JOB_ENV = {"BTQ_SHARD_LEASE_TTL_S": "2"}


def evaluation_reports(client: JobClient, job_id: str) -> list[JobEvent]:
    """The final progress event of every sharded evaluation of the job."""
    return [
        e
        for _, e in client.events(job_id)
        if e.type is EventType.STEP_PROGRESS
        and (e.detail or {}).get("phase") == "evaluate"
        and "shard_workers" in (e.detail or {})
    ]


def workers_of(reports: list[JobEvent]) -> set[str]:
    return {w.split("@")[0] for e in reports for w in (e.detail or {})["shard_workers"]}


@pytest.fixture(scope="module")
def single() -> Iterator[Fleet]:
    with running_fleet(6, "btq-one", ["solo"], ONE_JOB_ENV) as fleet:
        yield fleet


@pytest.fixture(scope="module")
def trio() -> Iterator[Fleet]:
    with running_fleet(7, "btq-three", ["ta", "tb", "tc"], ONE_JOB_ENV) as fleet:
        yield fleet


CASES = [("p -> w -> p", "given", True, 3), ("w -> p", "ratio", True, 17), ("p -> p", "none", False, 5)]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_one_worker_process_completes_a_sharded_job_identical_to_in_process(single: Fleet, case: Any) -> None:
    # Given one worker process and sharding on: the step works on its own shards while it waits.
    client = single.client()
    job = spec(*case)
    result = client.wait(client.submit(job), timeout_s=120)
    assert_same(result, job)
    assert evaluation_reports(client, result.job_id), "evaluations were sharded"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_three_workers_give_the_in_process_result(trio: Fleet, case: Any) -> None:
    client = trio.client()
    job = spec(*case)
    assert_same(client.wait(client.submit(job), timeout_s=120), job)


def test_shards_of_one_job_run_on_several_worker_processes(trio: Fleet) -> None:
    # Given an LM slow enough that helpers pick shards up before the step finishes them alone.
    client = trio.client()
    job = spec("p", "given", True, 8, lm="t.sim_slow")
    result = client.wait(client.submit(job), timeout_s=120)
    assert_same(result, job)
    assert len(workers_of(evaluation_reports(client, result.job_id))) >= 2


def test_fine_tune_traces_are_collected_on_several_worker_processes(trio: Fleet) -> None:
    # Given a `w` job: BootstrapFinetune runs the program over the 40 training examples to collect the
    # traces it fine-tunes on, with an LM slow enough (120 ms a call, about 5 s for the collection) that
    # helpers take shards of it even on a loaded machine.
    client = trio.client()
    job = spec("w", "given", True, 8, lm="t.sim_slower")
    result = client.wait(client.submit(job), timeout_s=120)
    # The fine-tuned model's name hashes its training data: equal states mean byte-identical data.
    assert_same(result, job)
    collections = [e for e in evaluation_reports(client, result.job_id) if (e.detail or {}).get("traces")]
    assert len(collections) == 1, "the trace collection was sharded"
    assert len(workers_of(collections)) >= 2


@pytest.mark.parametrize("max_errors", [2, 100])
def test_max_errors_fail_or_pass_exactly_as_dspy_evaluate(trio: Fleet, max_errors: int) -> None:
    # A metric that raises on some examples; the optimizer's evaluations count errors against max_errors.
    client = trio.client()
    job = spec("p", "none", True, 4, metric="t.flaky")
    job["optimizers"]["p"]["kwargs"] = {**job["optimizers"]["p"]["kwargs"], "max_errors": max_errors}
    result = client.wait(client.submit(job), timeout_s=120)
    assert_same(result, job)
    assert result.flag_compilation_error_occurred is (max_errors == 2)


def test_a_shard_worker_killed_mid_shard_is_replaced_and_the_score_is_unchanged() -> None:
    with running_fleet(8, "btq-shardkill", ["ka", "kb"], ONE_JOB_ENV) as fleet:
        client = fleet.client()
        job = spec("p", "given", True, 12, lm="t.sim_slower")
        # 40 examples scored one at a time: shards of 7 examples, about 1 s each.
        job.update(valset={"dataset": "t.arith", "split": "train"}, num_threads=1)
        job_id = client.submit(job)
        step_worker = helper = None
        for event in client.follow(job_id, timeout_s=60):
            if event.type is EventType.STEP_STARTED and event.step_index == 0:
                step_worker = (event.worker or "").split("@")[0]
            detail = event.detail or {}
            during_baseline = event.step_index == 0 and detail.get("phase") == "evaluate"
            if step_worker and during_baseline and 2 <= detail.get("shards_done", 0) < detail.get("shards_total", 0):
                helper = next(name for name in fleet.procs if name != step_worker)
                break
        assert helper is not None, "the baseline evaluation was not seen half done"
        # When the helper node dies (main process and pool child) while it holds a shard.
        _kill_node(fleet, helper)

        result = client.wait(job_id, timeout_s=120)

        assert_same(result, job)
        baseline = evaluation_reports(client, job_id)[0].detail or {}
        assert baseline["shards_done"] == baseline["shards_total"]


def _kill_node(fleet: Fleet, name: str) -> None:
    """SIGKILL a worker node: its main process and every pool child."""
    import subprocess

    main = fleet.procs[name].pid
    children = subprocess.run(["pgrep", "-P", str(main)], capture_output=True, text=True, check=False).stdout.split()
    for pid in [main, *map(int, children)]:
        os.kill(int(pid), signal.SIGKILL)
    fleet.procs[name].wait(timeout=10)
