"""The jobs list's query (every bad parameter at once, sort with missing values last) and the candidate diff."""

import pytest

from btq.producer.dashboard.candidate_diff import program_diff, text_diff
from btq.producer.dashboard.list_query import ListQuery, ListQueryError


def job(job_id: str, best: float | None, submitted: float, **extra: object) -> dict[str, object]:
    base: dict[str, object] = {
        "job_id": job_id,
        "best_score": best,
        "submitted_at": submitted,
        "strategy": "p -> w",
        "program": "t.qa",
        "lm": "t.sim",
        "submission_id": None,
        "group": None,
        "state": "succeeded",
    }
    return {**base, **extra}


def test_every_bad_parameter_is_named_at_once() -> None:
    with pytest.raises(ListQueryError) as caught:
        ListQuery.from_params({"state": "done", "order": "up", "per_page": "500", "page": "-1"}, max_per_page=200)
    assert [p.split(":")[0] for p in caught.value.problems] == ["state", "order", "page", "per_page"]
    query = ListQuery.from_params({"state": "cancelling", "q": "  Order-47 ", "per_page": "200"}, max_per_page=200)
    assert (query.state, query.q, query.per_page, query.page) == ("cancelling", "Order-47", 200, 1)


def test_search_is_case_insensitive_over_ids_strategy_and_program_and_sorting_puts_missing_last() -> None:
    jobs = [job("a1", None, 3), job("b2", 50.0, 2, submission_id="order-4711"), job("c3", 70.0, 1, program="x.iso")]
    assert [j["job_id"] for j in jobs if ListQuery(q="ORDER-47").matches(j)] == ["b2"]
    assert [j["job_id"] for j in jobs if ListQuery(q="iso").matches(j)] == ["c3"]
    assert [j["job_id"] for j in jobs if ListQuery(program="t.qa").matches(j)] == ["a1", "b2"]
    assert [j["job_id"] for j in ListQuery(sort="best").ordered(jobs)] == ["c3", "b2", "a1"]
    assert [j["job_id"] for j in ListQuery(sort="best", order="asc").ordered(jobs)] == ["b2", "c3", "a1"]


def test_diff_names_changed_words_demos_and_lm_per_predictor() -> None:
    assert text_diff("answer the question", "answer every question") == [
        {"op": "same", "text": "answer "},
        {"op": "del", "text": "the"},
        {"op": "add", "text": "every"},
        {"op": "same", "text": " question"},
    ]
    demo = {"question": "1 + 1?", "answer": "2"}
    old = [{"name": "answer", "instructions": "Answer.", "demos": [demo], "model": "sim/base"}]
    new = [
        {
            "name": "answer",
            "instructions": "Answer.",
            "demos": [demo, {"question": "2 + 2?", "answer": "4"}],
            "model": "ft:x",
        },
        {"name": "check", "instructions": "Check.", "demos": [], "model": None},
    ]
    first, second = program_diff(old, new)
    assert (first["status"], first["model"]["changed"], first["demos"]["kept"]) == ("changed", True, 1)
    assert first["demos"]["added"] == [{"question": "2 + 2?", "answer": "4"}] and first["demos"]["removed"] == []
    assert second["status"] == "added"
    assert [e["status"] for e in program_diff(old, old)] == ["same"]
