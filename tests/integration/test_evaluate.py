"""Held-out evaluation of a finished job's candidates equals dspy.Evaluate on the loaded programs."""

import dspy
import pytest

from btq.producer.client import JobClient
from btq.schemas.exceptions import JobValidationError
from tests import fixture_registry as reg
from tests.integration.test_parity import spec

pytestmark = pytest.mark.integration


def dspy_score(state: dict[str, object]) -> float:
    """Load a candidate with dspy's own loader (trusted here) and evaluate it with dspy.Evaluate."""
    program = dspy.Predict("question -> answer")
    program.load_state(state, allow_unsafe_lm_state=True)
    evaluate = dspy.Evaluate(devset=reg.splits()["test"], metric=reg.exact, display_progress=False)
    score: float = evaluate(program).score
    return score


def test_candidates_scored_on_the_test_split_as_dspy_scores_them(client: JobClient) -> None:
    job_id = client.submit(spec("p -> w -> p", "given", True, 13))
    result = client.wait(job_id, timeout_s=120)
    report = client.evaluate(job_id, "t.arith", "test", timeout_s=120)
    assert report.error is None
    assert set(report.scores) == {"0", "1", "2", "3"}
    for candidate in result.candidates:
        assert report.scores[str(candidate.step_index)] == dspy_score(candidate.program_state)


def test_unknown_split_is_refused_before_anything_is_sent(client: JobClient) -> None:
    job_id = client.submit(spec("p", "given", True, 13))
    client.wait(job_id, timeout_s=60)
    with pytest.raises(JobValidationError) as err:
        client.evaluate(job_id, "t.arith", "holdout", timeout_s=5)
    assert err.value.field == "split"


def test_held_out_scoring_is_sent_behind_steps_and_still_served(client: JobClient) -> None:
    """On Redis it waits in the queue's priority-9 list (steps wait in priority 0); workers consume that list too."""
    from celery.signals import before_task_publish

    from btq.schemas.broker import is_amqp
    from btq.schemas.keys import TASK_EVALUATE
    from btq.schemas.queues import HELD_OUT_PRIORITY

    job_id = client.submit(spec("p", "given", True, 13))
    client.wait(job_id, timeout_s=60)
    sent: dict[str, object] = {}

    def record(sender: str | None = None, properties: dict[str, object] | None = None, **_: object) -> None:
        if sender == TASK_EVALUATE:
            sent["priority"] = (properties or {}).get("priority")

    before_task_publish.connect(record, weak=False)
    try:
        report = client.evaluate(job_id, "t.arith", "test", timeout_s=120)
    finally:
        before_task_publish.disconnect(record)
    assert report.error is None and set(report.scores) == {"0", "1"}
    broker = client.settings.broker_url or client.settings.redis_url
    assert sent["priority"] == (None if is_amqp(broker) else HELD_OUT_PRIORITY)
