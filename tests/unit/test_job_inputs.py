"""The valset split and example conversion match dspy.BetterTogether's own."""

import dspy
import pytest

from btq.worker.core.job_inputs import split_valset, to_examples
from btq.worker.core.registry import Registry


def examples(n: int) -> list[dspy.Example]:
    return [dspy.Example(q=str(i), a=str(i)).with_inputs("q") for i in range(n)]


@pytest.mark.parametrize("n", [1, 7, 10, 33])
@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.25, 0.5, 0.99])
@pytest.mark.parametrize("given", [None, [], "some"])
def test_split_equals_dspy(n: int, ratio: float, given: object) -> None:
    valset = examples(3) if given == "some" else given
    bt = dspy.BetterTogether(metric=lambda *a: 1)
    expected = bt._prepare_trainset_and_valset(examples(n), valset, ratio)  # type: ignore[arg-type]
    assert split_valset(examples(n), valset, ratio) == expected  # type: ignore[arg-type]


def test_split_copies_and_never_mutates_the_trainset() -> None:
    trainset = examples(10)
    train, _ = split_valset(trainset, None, 0.0)
    train.pop()
    assert len(trainset) == 10


def test_inline_records_get_the_job_input_keys() -> None:
    got = to_examples([{"question": "q", "answer": "a"}], ["question"], Registry())
    assert got[0].inputs().toDict() == {"question": "q"}
    assert got[0].labels().toDict() == {"answer": "a"}
