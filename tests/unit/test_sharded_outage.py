"""A Redis outage inside a sharded evaluation makes the step retryable: it never becomes a candidate's score.

dspy's optimizers evaluate candidates through `eval_candidate_program`, which catches any exception and
scores the candidate 0. A Redis error raised by the sharded evaluator (publishing the shards, sending
the shard tasks) must therefore also be reported to the step's `InfraWatch`, which turns the step into
a retry instead of a record. Seen on a host healed after a minute-long partition (tests/hosts): its
first evaluation met a broken pooled connection and the candidate was scored 0.
"""

import socket
from pathlib import Path

import dspy
import pytest
import redis
from dspy.teleprompt.utils import eval_candidate_program

from btq.schemas.exceptions import RetryableStepError
from btq.schemas.job import JobSpec
from btq.schemas.result import StepOutcome, StepRecord
from btq.worker.artifacts.store import LocalArtifactStore
from btq.worker.core.job_inputs import ResolvedJob
from btq.worker.core.registry import WorkerResources, load_registry
from btq.worker.settings import WorkerSettings
from btq.worker.sharding.evaluator import ShardingConfig, StepEvaluator
from btq.worker.sharding.hook import evaluating_with
from btq.worker.state.infra import InfraWatch
from tests.integration.test_parity import spec


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: connecting is refused


def test_a_redis_error_while_sharding_an_optimizer_evaluation_makes_the_step_retryable(tmp_path: Path) -> None:
    settings = WorkerSettings(redis_url="redis://127.0.0.1:1/0", artifact_dir=str(tmp_path))
    job = ResolvedJob.resolve(
        JobSpec.model_validate(spec("p", "given", True, 3)),
        load_registry(["tests.fixture_registry"]),
        WorkerResources(artifacts=LocalArtifactStore(tmp_path)),
        settings,
    )
    unreachable = redis.Redis(host="127.0.0.1", port=_closed_port(), socket_connect_timeout=1)
    evaluator = StepEvaluator(
        job, "job", 1, unreachable, ShardingConfig(min_examples=2),
        worker="w", live_slots=lambda: 2, send_shards=lambda *_: None, is_cancelled=lambda: False,
    )  # fmt: skip
    valset = job.valset or []
    evaluate = dspy.Evaluate(devset=valset, metric=job.metric, num_threads=1)

    with InfraWatch() as watch, evaluating_with(evaluator), dspy.context(lm=job.lm):
        scored = eval_candidate_program(len(valset), valset, job.initial_student(), evaluate)

    assert scored is None or scored.score == 0.0  # dspy swallowed the outage as a score...
    record = StepRecord(
        index=1, strategy="p", optimizer_key="p", outcome=StepOutcome.SUCCEEDED, rng_state=[], train_order=[],
        started_at=0.0, finished_at=0.0,
    )  # fmt: skip
    with pytest.raises(RetryableStepError):  # ...but the step is retried, not recorded
        watch.raise_if_infra_failed(record)
