"""Ranking mirrors dspy.BetterTogether: best score first, earlier wins ties, latest without a valset."""

from btq.schemas.errors import ErrorRecord
from btq.schemas.result import JobState, StepOutcome, StepRecord
from btq.worker.core.ranking import build_result


def record(index: int, score: float | None, outcome: StepOutcome = StepOutcome.SUCCEEDED) -> StepRecord:
    return StepRecord(
        index=index,
        strategy=" -> ".join(["p"] * index),
        optimizer_key="p" if index else None,
        outcome=outcome,
        score=score,
        program_state={"step": index} if outcome is StepOutcome.SUCCEEDED else None,
        rng_state=[],
        train_order=[],
        started_at=0,
        finished_at=0,
        error=ErrorRecord(type="RuntimeError", message="x") if outcome is StepOutcome.FAILED else None,
    )


def test_best_score_first_and_earlier_candidate_wins_a_tie() -> None:
    result = build_result("j", "p -> p -> p", 1, [record(0, 10), record(1, 50), record(2, 50), record(3, 20)], False)
    assert [c.step_index for c in result.candidates] == [1, 2, 3, 0]
    assert result.best is not None and result.best.step_index == 1
    assert result.flag_compilation_error_occurred is False
    assert result.state is JobState.SUCCEEDED


def test_without_valset_the_latest_program_is_best() -> None:
    result = build_result("j", "p -> p", 1, [record(0, None), record(1, None), record(2, None)], False)
    assert result.best is not None and result.best.step_index == 2
    assert [c.step_index for c in result.candidates] == [0, 1, 2]


def test_a_failed_step_sets_the_flag_and_keeps_the_best_so_far() -> None:
    records = [record(0, 30), record(1, 40), record(2, None, StepOutcome.FAILED), record(3, None, StepOutcome.SKIPPED)]
    result = build_result("j", "p -> p -> p", 1, records, False)
    assert result.flag_compilation_error_occurred is True
    assert [c.step_index for c in result.candidates] == [1, 0]
    assert result.error is not None and result.error.type == "RuntimeError"


def test_a_failed_baseline_is_a_failed_job_without_candidates() -> None:
    result = build_result(
        "j", "p", 1, [record(0, None, StepOutcome.FAILED), record(1, None, StepOutcome.SKIPPED)], False
    )
    assert result.state is JobState.FAILED
    assert result.best is None and result.candidates == []
    assert result.flag_compilation_error_occurred is False


def test_cancelled_job_keeps_its_candidates() -> None:
    result = build_result("j", "p -> p", 1, [record(0, 5), record(1, None, StepOutcome.CANCELLED)], True)
    assert result.state is JobState.CANCELLED
    assert [c.step_index for c in result.candidates] == [0]
