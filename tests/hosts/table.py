"""Which host ran what: a job's step records and evaluation shards, by worker name (`name@hostname`)."""

import json
from dataclasses import dataclass

import redis

from btq.schemas import keys
from btq.schemas.result import StepRecord
from btq.schemas.sharding import EvalRequest, ShardResult


@dataclass(frozen=True)
class Row:
    """One unit of work: a step (shard None) or one shard of an evaluation made by step `step`."""

    step: int
    shard: int | None
    eval_id: str
    worker: str

    @property
    def host(self) -> str:
        return self.worker.split("@", 1)[-1].split(":", 1)[0]


def host_table(client: redis.Redis, job_id: str) -> list[Row]:
    """Every stored step record and shard result of the job, with the worker that made it."""
    rows = []
    for key in client.scan_iter(match=keys.step_key(job_id, 0)[:-1] + "*", count=500):
        record = StepRecord.model_validate_json(client.get(key) or b"{}")
        rows.append(Row(record.index, None, "", record.worker or "?"))
    for key in client.scan_iter(match=keys.eval_key(job_id, "*", "results"), count=500):
        eval_id = key.decode().split(":eval:", 1)[1].rsplit(":", 1)[0]
        raw_request = client.get(keys.eval_key(job_id, eval_id, "request"))
        step = EvalRequest.model_validate_json(raw_request).step_index if raw_request else -1
        for raw in client.hgetall(key).values():
            result = ShardResult.model_validate(json.loads(raw))
            rows.append(Row(step, result.shard, eval_id, result.worker))
    return sorted(rows, key=lambda r: (r.step, r.shard is not None, r.eval_id, r.shard or 0))


def render(rows: list[Row]) -> str:
    """A markdown table of `rows` (the docs and the test output show the same)."""
    lines = ["| step | work | host | worker |", "|---|---|---|---|"]
    for row in rows:
        work = "step" if row.shard is None else f"eval {row.eval_id[:8]} shard {row.shard}"
        lines.append(f"| {row.step} | {work} | {row.host} | {row.worker} |")
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    """One line per step: the host that ran it and how many shards of its evaluations each host scored."""
    lines = ["| step | ran on | evaluation shards scored by |", "|---|---|---|"]
    for step in sorted({r.step for r in rows}):
        ran = sorted({r.host for r in rows if r.step == step and r.shard is None})
        shards: dict[str, int] = {}
        for row in rows:
            if row.step == step and row.shard is not None:
                shards[row.host] = shards.get(row.host, 0) + 1
        scored = ", ".join(f"{host}: {n}" for host, n in sorted(shards.items())) or "-"
        lines.append(f"| {step} | {', '.join(ran) or '-'} | {scored} |")
    return "\n".join(lines)
