"""Units of the observability pieces: task labels, the counter tally, worker settings, the event tally."""

import pytest
from pydantic import ValidationError

from btq.schemas.labels import finalize_label, shard_label, step_label
from btq.schemas.metrics import WorkerCount, parse_counts
from btq.worker.core.tally import Tally
from btq.worker.settings import WorkerSettings


def test_labels_name_the_job_the_step_and_the_strategy_so_far() -> None:
    job_id = "1c95ab12ffffffffffffffffffffffff"
    steps = ["p", "w", "p"]
    assert step_label(job_id, 0, steps) == "job 1c95ab12 step 0/3 baseline"
    assert step_label(job_id, 2, steps) == "job 1c95ab12 step 2/3 p -> w"
    assert step_label(job_id, 3, steps) == "job 1c95ab12 step 3/3 p -> w -> p"
    assert finalize_label(job_id, steps) == "job 1c95ab12 finalize p -> w -> p"
    assert shard_label(job_id, "3f0e9a71aaaa") == "job 1c95ab12 shards of evaluation 3f0e9a71"


def test_tally_keeps_counts_when_a_flush_fails_and_sends_them_with_the_next() -> None:
    sent: list[dict[WorkerCount, float]] = []
    failing = [True]

    def sink(batch: dict[WorkerCount, float]) -> None:
        if failing[0]:
            raise ConnectionError("redis away")
        sent.append(batch)

    tally = Tally(flush_interval_s=3600)
    tally.bind(sink)
    tally.add(WorkerCount.LM_REQUESTS, 2)
    tally.flush()
    assert sent == [] and tally.pending() == {WorkerCount.LM_REQUESTS: 2}
    failing[0] = False
    tally.add(WorkerCount.LM_REQUESTS)
    tally.add(WorkerCount.LM_CACHE_HITS)
    tally.flush()
    assert sent == [{WorkerCount.LM_REQUESTS: 3, WorkerCount.LM_CACHE_HITS: 1}]
    assert tally.pending() == {}


def test_stored_counts_skip_unknown_and_malformed_fields() -> None:
    raw = {b"lm_requests": b"12", b"lm_cache_hits": b"nope", b"future_counter": b"3", b"\xff": b"1"}
    assert parse_counts(raw) == {WorkerCount.LM_REQUESTS: 12.0}


def test_jsonl_exporter_needs_a_path_and_the_error_names_the_setting() -> None:
    with pytest.raises(ValidationError, match="otel_jsonl_path"):
        WorkerSettings(otel_exporter="jsonl")
    with pytest.raises(ValidationError, match="otel_exporter"):
        WorkerSettings(otel_exporter="zipkin")  # type: ignore[arg-type]
    assert WorkerSettings(otel_exporter="jsonl", otel_jsonl_path="/tmp/spans.jsonl").otel_jsonl_path
