"""OpenTelemetry: the fixture's job ran on two worker processes exporting spans to one JSON-lines file;
its spans form one connected trace (job > step > evaluation > shard > LM call) across both workers."""

import json
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.observability.conftest import ObservedFleet

pytestmark = pytest.mark.integration


def _job_spans(observed: ObservedFleet) -> list[dict[str, Any]]:
    spans = [json.loads(line) for line in observed.spans.read_text().splitlines() if line.strip()]
    root = next((s for s in spans if s["name"] == "btq.job" and s["attributes"]["btq.job_id"] == observed.job_id), None)
    assert root is not None, "no btq.job span for the job"
    return [s for s in spans if s["trace_id"] == root["trace_id"]]


def test_one_job_is_one_connected_trace_across_workers(observed: ObservedFleet) -> None:
    spans: list[dict[str, Any]] = wait_until(lambda: _job_spans(observed), 10, "the job's spans")  # type: ignore[assignment]
    by_id = {s["span_id"]: s for s in spans}
    roots = [s for s in spans if s["parent_span_id"] is None]
    assert [r["name"] for r in roots] == ["btq.job"]
    # Every span's parent is in the same trace: one tree, however many processes wrote it.
    assert all(s["parent_span_id"] in by_id for s in spans if s is not roots[0])

    def parent(span: dict[str, Any]) -> dict[str, Any]:
        return by_id[span["parent_span_id"]]

    steps = sorted((s for s in spans if s["name"] == "btq.step"), key=lambda s: s["attributes"]["btq.step"])
    assert [s["attributes"]["btq.step"] for s in steps] == [0, 1, 2, 3]
    assert all(parent(s)["name"] == "btq.job" for s in steps)
    assert [s["attributes"].get("btq.optimizer_key") for s in steps] == [None, "p", "w", "p"]
    assert {s["attributes"]["btq.strategy"] for s in steps} == {"p -> w -> p"}
    assert steps[2]["attributes"]["btq.optimizer"] == "BootstrapFinetune"
    # A shard task on the other worker is a child of the evaluation its step published.
    remote = [
        s
        for s in spans
        if s["name"] == "btq.shard"
        and parent(s)["name"] == "btq.evaluation"
        and s["resource"]["process.pid"] != parent(s)["resource"]["process.pid"]
    ]
    assert remote, "no shard task ran in another process than its evaluation"
    chain = [s["name"] for s in _ancestors(by_id, _lm_call_under(spans, by_id, remote[0]["span_id"]))]
    assert chain == ["btq.lm_call", "btq.shard.score", "btq.shard", "btq.evaluation", "btq.step", "btq.job"]
    assert len({s["attributes"]["btq.worker"] for s in steps + remote}) == 2


def _lm_call_under(spans: list[dict[str, Any]], by_id: dict[str, dict[str, Any]], ancestor: str) -> dict[str, Any]:
    for span in spans:
        if span["name"] == "btq.lm_call" and any(a["span_id"] == ancestor for a in _ancestors(by_id, span)):
            return span
    raise AssertionError("no LM call span under the remote shard")


def _ancestors(by_id: dict[str, dict[str, Any]], span: dict[str, Any]) -> list[dict[str, Any]]:
    chain = [span]
    while chain[-1]["parent_span_id"] is not None:
        chain.append(by_id[chain[-1]["parent_span_id"]])
    return chain
