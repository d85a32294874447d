"""The `btq mlflow` consumer: reads the global event stream from its own cursor and logs jobs as MLflow runs.

The cursor (`keys.MLFLOW_CURSOR`) moves past an event only once the event is logged, so a restarted exporter
resumes where it stopped; logging is idempotent (see `runs.py`), so an event logged twice changes nothing.
A job whose spec or result expired from Redis is logged with what the events still say.
"""

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import redis
from mlflow import MlflowClient
from pydantic import BaseModel

from btq.producer.mlflow.runs import JobRuns
from btq.schemas import keys
from btq.schemas.codec import decode
from btq.schemas.events import EventType, JobEvent
from btq.schemas.job import JobSpec
from btq.schemas.result import JobResult, StepRecord

log = logging.getLogger(__name__)

_STEP_ENDS = {EventType.STEP_SUCCEEDED, EventType.STEP_FAILED, EventType.STEP_SKIPPED}


class MlflowExporter:
    """Logs the jobs of one Redis database into one MLflow experiment."""

    def __init__(self, client: redis.Redis, tracking: MlflowClient, experiment: str) -> None:
        self.redis = client
        self.tracking = tracking
        found = tracking.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found is not None else tracking.create_experiment(experiment)
        self.runs = JobRuns(tracking, experiment_id)

    @property
    def cursor(self) -> str:
        """The last event logged ('0-0' before the first)."""
        raw = self.redis.get(keys.MLFLOW_CURSOR)
        return raw.decode() if isinstance(raw, bytes) else "0-0"

    def run(self, stop: Callable[[], bool], block_s: float = 1.0) -> int:
        """Log events as they arrive until `stop()`; return how many were logged."""
        done = 0
        while not stop():
            done += self.drain(block_s=block_s)
        return done

    def drain(self, block_s: float = 0.0, batch: int = 100) -> int:
        """Log every event after the cursor (waiting up to `block_s` for the first); return how many."""
        done = 0
        cursor = self.cursor
        while True:
            reply = cast(
                list[Any],
                self.redis.xread({keys.GLOBAL_EVENTS: cursor}, count=batch, block=int(block_s * 1000) or None) or [],
            )
            entries = reply[0][1] if reply else []
            if not entries:
                return done
            for entry_id, fields in entries:
                self._log(fields)
                cursor = entry_id.decode()
                self.redis.set(keys.MLFLOW_CURSOR, cursor)
                done += 1
            block_s = 0.0

    def _log(self, fields: dict[bytes, bytes]) -> None:
        try:
            event = decode(JobEvent, fields[b"event"])
        except Exception:  # a malformed entry is skipped, as every reader does
            log.warning("mlflow: skipped an unreadable event")
            return
        if event.type is EventType.JOB_SUBMITTED:
            self.runs.job_run(event.job_id, self._spec(event.job_id), event.at)
        elif event.type in _STEP_ENDS and event.step_index is not None:
            parent = self.runs.job_run(event.job_id, self._spec(event.job_id), event.at)
            self.runs.step_run(parent, event, self._spec(event.job_id), self._record(event.job_id, event.step_index))
        elif event.type.is_terminal:
            result = self._result(event.job_id)
            if result is not None:
                self.runs.job_result(self.runs.job_run(event.job_id, self._spec(event.job_id), event.at), result)

    def _read(self, key: str) -> bytes | None:
        return cast(bytes | None, self.redis.get(key))

    def _spec(self, job_id: str) -> JobSpec | None:
        raw = self._read(keys.job_key(job_id, "spec"))
        return _decoded(JobSpec, raw, f"spec of job {job_id}")

    def _record(self, job_id: str, index: int) -> StepRecord | None:
        return _decoded(StepRecord, self._read(keys.step_key(job_id, index)), f"step {index} of job {job_id}")

    def _result(self, job_id: str) -> JobResult | None:
        return _decoded(JobResult, self._read(keys.job_key(job_id, "result")), f"result of job {job_id}")


Model = TypeVar("Model", bound=BaseModel)


def _decoded(model: type[Model], raw: bytes | None, what: str) -> Model | None:
    if raw is None:
        return None
    try:
        return decode(model, raw)
    except Exception:
        log.warning("mlflow: %s is unreadable; logged without it", what)
        return None


def serve(client: redis.Redis, tracking_uri: str | None, experiment: str, *, once: bool) -> int:
    """Log jobs until interrupted (or, with `once`, what is in the stream now); return events logged."""
    exporter = MlflowExporter(client, MlflowClient(tracking_uri=tracking_uri), experiment)
    if once:
        return exporter.drain()
    start = time.monotonic()
    try:
        return exporter.run(lambda: False)
    except KeyboardInterrupt:
        log.info("mlflow: stopped after %.0f s", time.monotonic() - start)
        return 0
