"""The jobs list, read in pipelined batches; what never changes (strategy, best score) is remembered.

A job's spec and result are written once, so a dashboard refreshing its list on every event only
needs each job's status hash again: one round trip per batch of jobs, not three per job.
"""

import json
import logging
import math
from collections import OrderedDict
from typing import Any, cast

import redis

from btq.schemas import keys
from btq.schemas.codec import decode
from btq.schemas.exceptions import DecodeError
from btq.schemas.result import JobResult, JobState

Json = dict[str, Any]

logger = logging.getLogger(__name__)

_BATCH = 200


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def number(value: object) -> float:
    """A number from a record written by anyone: 0.0 when it is missing, not a number or not finite."""
    try:
        parsed = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return parsed if math.isfinite(parsed) else 0.0  # NaN or inf would make the JSON answer fail


def _strategy(job_id: str, spec: bytes | None) -> str | None:
    if not spec:
        return None
    try:
        value = json.loads(spec).get("strategy")
    except (ValueError, AttributeError):  # not JSON, not UTF-8, not an object
        logger.warning("skipping unreadable spec of job %s", job_id)
        return None
    return value if isinstance(value, str) else None


class JobList:
    """Reads jobs newest first; remembers up to `remember` jobs' strategy and best score."""

    def __init__(self, r: redis.Redis, remember: int = 20_000) -> None:
        self.r = r
        self.remember = remember
        self._strategy: OrderedDict[str, str | None] = OrderedDict()
        self._best: OrderedDict[str, float | None] = OrderedDict()
        self._spent: OrderedDict[str, Json | None] = OrderedDict()

    def rows(self, state: str | None = None, limit: int = 200) -> list[Json]:
        """Return up to `limit` jobs newest first, only those in `state` when given."""
        if state is not None and state not in {s.value for s in JobState}:
            raise ValueError(f"state: {state!r} is not one of {', '.join(s.value for s in JobState)}")
        rows: list[Json] = []
        start = 0
        while len(rows) < limit:
            ids = [_text(i) for i in cast(list[bytes], self.r.zrevrange(keys.JOBS_INDEX, start, start + _BATCH - 1))]
            if not ids:
                break
            start += len(ids)
            rows += self._batch(ids, state)
        return rows[:limit]

    def _batch(self, ids: list[str], state: str | None) -> list[Json]:
        pipe = self.r.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(keys.job_key(job_id, "status"))
        statuses = [{_text(k): _text(v) for k, v in raw.items()} for raw in pipe.execute()]
        # The index outlives expired jobs (their keys have a TTL, the index entry does not): skip those.
        kept = [(j, s) for j, s in zip(ids, statuses, strict=True) if s and (state is None or s.get("state") == state)]
        self._fill([j for j, s in kept if j not in self._best or j not in self._strategy], final={j for j, _ in kept})
        return [self._row(job_id, status) for job_id, status in kept]

    def _fill(self, missing: list[str], final: set[str]) -> None:
        if not missing:
            return
        pipe = self.r.pipeline(transaction=False)
        for job_id in missing:
            pipe.get(keys.job_key(job_id, "spec"))
            pipe.get(keys.job_key(job_id, "result"))
        values = pipe.execute()
        for i, job_id in enumerate(missing):
            spec, result = values[2 * i], values[2 * i + 1]
            self._keep(self._strategy, job_id, _strategy(job_id, spec))
            if result is not None:  # only a stored result is final: a running job's best is not yet known
                try:
                    parsed = decode(JobResult, result)
                except DecodeError as exc:
                    logger.warning("skipping unreadable result of job %s: %s", job_id, str(exc)[:200])
                    continue
                self._keep(self._best, job_id, parsed.best.score if parsed.best else None)
                self._keep(self._spent, job_id, _spent(parsed))

    def _keep(self, cache: "OrderedDict[str, Any]", job_id: str, value: Any) -> None:
        cache[job_id] = value
        cache.move_to_end(job_id)
        while len(cache) > self.remember:
            cache.popitem(last=False)

    def _row(self, job_id: str, status: dict[str, str]) -> Json:
        return {
            "job_id": job_id,
            "state": status.get("state", "unknown"),
            "strategy": self._strategy.get(job_id),
            "steps_done": int(number(status.get("steps_done"))),
            "steps_total": int(number(status.get("steps_total"))),
            "best_score": self._best.get(job_id),
            "lm_usage": self._spent.get(job_id),
            "submitted_at": number(status.get("submitted_at")),
            "updated_at": number(status.get("updated_at")),
        }


def _spent(result: JobResult) -> Json | None:
    """A finished job's LM calls, tokens and cost (text: `unknown` when unpriced), for the jobs table."""
    usage = result.usage
    if usage is None:
        return None
    return {"calls": usage.calls, "tokens": usage.tokens, "cost": usage.cost_text(), "cached_calls": usage.cached_calls}
