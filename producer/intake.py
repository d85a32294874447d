"""The intake: jobs submitted as entries on a Redis Stream by services in any language.

`btq intake` processes read `keys.INTAKE` in the consumer group `keys.INTAKE_GROUP` and hand each
entry to `JobClient.submit`, the same validation and enqueue path `btq submit` takes. It runs in its
own process, beside the workers, because it is producer code: validating a job needs only the
manifests workers publish, and a worker importing the producer would break the one-way dependency
`producer -> schemas <- worker` (and tie the intake's availability to the heavy dspy worker).

Delivery is at-least-once, so a submission is idempotent on its id: the job id is derived from it,
the job's spec is written only if absent, and the outcome is written once. Nothing a client sends can
stop the consumer: oversized or malformed entries are rejected (or dropped when they carry no usable
submission id), and a consumer that dies leaves its pending entries to be claimed by another.
"""

import contextlib
import enum
import hashlib
import logging
import os
import signal
import socket
import threading
import time
from typing import Any, cast

import redis

from btq.producer.client import JobClient
from btq.schemas import keys
from btq.schemas.codec import decode
from btq.schemas.errors import ErrorRecord
from btq.schemas.events import EventType, JobEvent
from btq.schemas.exceptions import JobExistsError, JobValidationError
from btq.schemas.intake import ENTRY_FIELDS, SUBMISSION_ID, SubmissionState, SubmissionStatus

log = logging.getLogger(__name__)

Fields = dict[bytes, bytes]


class Retry(enum.Enum):
    """Marks an entry left pending, to be claimed and handled again."""

    RETRY = "retry"


RETRY = Retry.RETRY


def job_id_for(submission_id: str) -> str:
    """Return the job id a submission creates: the same id for every delivery of the same submission."""
    return hashlib.sha256(f"btq-submission:{submission_id}".encode()).hexdigest()[:32]


def submission_status(client: redis.Redis, submission_id: str) -> SubmissionStatus | None:
    """Return what the intake decided about a submission, or None while it has not been handled."""
    raw = client.get(keys.submission_key(submission_id))
    return decode(SubmissionStatus, cast(bytes, raw)) if raw is not None else None


class Intake:
    """One consumer of the intake stream."""

    def __init__(self, client: JobClient, consumer: str | None = None, batch: int = 10) -> None:
        self.client = client
        self.redis = client.redis
        self.settings = client.settings
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}"
        self.batch = batch

    def ensure_group(self) -> None:
        """Create the stream and its consumer group if missing (from the stream's start: nothing is skipped)."""
        try:
            self.redis.xgroup_create(keys.INTAKE, keys.INTAKE_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def serve(self, stop: threading.Event) -> None:
        """Handle submissions until `stop` is set; a Redis outage is waited out, not fatal."""
        self.ensure_group()
        log.info("intake %s reading %s", self.consumer, keys.INTAKE)
        while not stop.is_set():
            try:
                self.serve_once()
            except redis.RedisError as exc:
                log.warning("intake: Redis error, retrying in 1 s: %s", exc)
                stop.wait(1.0)
                if "NOGROUP" in str(exc):  # the stream or group was deleted (or Redis restarted empty)
                    with contextlib.suppress(redis.RedisError):
                        self.ensure_group()

    def serve_once(self) -> int:
        """Handle one batch (a dead consumer's stale entries first, else new ones); return its size."""
        entries = self._claim_stale() or self._read_new()
        for entry_id, fields in entries:
            if self.handle(entry_id, fields) is not RETRY:
                # Acknowledged and deleted only once its outcome is written: a crash before this redelivers
                # the entry. Its outcome lives on under the submission key; the entry (up to megabytes of
                # job JSON) is no longer needed.
                pipe = self.redis.pipeline(transaction=False)
                pipe.xack(keys.INTAKE, keys.INTAKE_GROUP, entry_id)
                pipe.xdel(keys.INTAKE, entry_id)
                pipe.execute()
        if entries:
            self._trim()
        return len(entries)

    def _trim(self) -> None:
        """Bound the stream by age as well: entries nobody handled within `intake_max_age_s` are dropped."""
        oldest_ms = int((time.time() - self.settings.intake_max_age_s) * 1000)
        # Exact, not `~`: an approximate trim only drops whole internal nodes (100 entries), and the
        # intake holds few, large entries.
        self.redis.xtrim(keys.INTAKE, minid=f"{max(0, oldest_ms)}-0", approximate=False)

    def _claim_stale(self) -> list[tuple[str, Fields]]:
        idle_ms = int(self.settings.intake_claim_idle_s * 1000)
        reply: list[Any] = self.redis.xautoclaim(
            keys.INTAKE, keys.INTAKE_GROUP, self.consumer, idle_ms, "0-0", count=self.batch
        )
        claimed = [(_text(eid), fields) for eid, fields in reply[1] if fields is not None]
        if claimed:
            log.info("intake: took over %d submissions pending on a silent consumer", len(claimed))
        return claimed

    def _read_new(self) -> list[tuple[str, Fields]]:
        reply = cast(
            list[Any],
            self.redis.xreadgroup(
                keys.INTAKE_GROUP,
                self.consumer,
                {keys.INTAKE: ">"},
                count=self.batch,
                block=int(self.settings.intake_block_s * 1000),
            ),
        )
        return [(_text(eid), fields) for eid, fields in reply[0][1]] if reply else []

    def handle(self, entry_id: str, fields: Fields) -> SubmissionStatus | Retry | None:
        """Decide one entry: accept (enqueue) or reject it, once; None when dropped or already decided.

        Redis errors propagate (the entry stays pending and is claimed again). Any other error that
        is not the job's fault (no live worker during a fleet restart, a broker hiccup while
        enqueueing) returns RETRY, leaving the entry pending, until the entry was delivered
        `intake_max_deliveries` times: then it is rejected, so no entry can stall or stop the consumer.
        """
        try:
            return self._handle(entry_id, fields)
        except redis.RedisError:
            raise
        except Exception as exc:
            deliveries = self._deliveries(entry_id)
            if deliveries < self.settings.intake_max_deliveries:
                log.warning("intake: entry %s failed (delivery %d), retried later: %r", entry_id, deliveries, exc)
                return RETRY
            log.exception("intake: gave up on entry %s after %d deliveries", entry_id, deliveries)
            submission_id = self._submission_id(entry_id, fields)
            if submission_id is None:
                return None
            message = f"could not be handled after {deliveries} attempts: {type(exc).__name__}: {exc}"
            return self._reject(submission_id, job_id_for(submission_id), "", message)

    def _deliveries(self, entry_id: str) -> int:
        pending = self.redis.xpending_range(keys.INTAKE, keys.INTAKE_GROUP, min=entry_id, max=entry_id, count=1)
        return int(pending[0]["times_delivered"]) if pending else 1

    def _handle(self, entry_id: str, fields: Fields) -> SubmissionStatus | None:
        submission_id = self._submission_id(entry_id, fields)
        if submission_id is None:
            return None
        if self.redis.exists(keys.submission_key(submission_id)):
            log.info("intake: submission %s was already handled (entry %s)", submission_id, entry_id)
            return None
        job_id = job_id_for(submission_id)
        try:
            self._check_entry(fields)
            self.client.submit(fields[b"job"], job_id=job_id, submission_id=submission_id)
        except JobValidationError as exc:
            return self._reject(submission_id, job_id, exc.field, exc.message)
        except JobExistsError:
            # An earlier delivery created the job and died before writing the outcome.
            log.info("intake: job %s of submission %s already exists", job_id, submission_id)
        status = SubmissionStatus(
            submission_id=submission_id, state=SubmissionState.ACCEPTED, job_id=job_id, at=time.time()
        )
        self._record(status)
        log.info("intake: accepted submission %s as job %s", submission_id, job_id)
        return status

    def _submission_id(self, entry_id: str, fields: Fields) -> str | None:
        raw = fields.get(b"submission_id")
        if raw is None:
            return entry_id
        text = raw.decode("utf-8", errors="replace")
        if SUBMISSION_ID.fullmatch(text) is None:
            log.warning("intake: dropped entry %s: submission_id %.80r is not 1-128 of [A-Za-z0-9._:-]", entry_id, text)
            return None
        return text

    def _check_entry(self, fields: Fields) -> None:
        size = sum(len(k) + len(v) for k, v in fields.items())
        if size > self.settings.intake_max_entry_bytes:
            raise JobValidationError(
                "job", f"entry is {size} bytes; the limit is {self.settings.intake_max_entry_bytes}"
            )
        unknown = sorted(
            k.decode("utf-8", errors="replace") for k in fields if k.decode("utf-8", "replace") not in ENTRY_FIELDS
        )
        if unknown:
            raise JobValidationError(unknown[0], f"unknown intake field (an entry has {sorted(ENTRY_FIELDS)})")
        if b"job" not in fields:
            raise JobValidationError("job", "field required: the job spec as JSON text")

    def _reject(self, submission_id: str, job_id: str, field: str, message: str) -> SubmissionStatus | None:
        status = SubmissionStatus(
            submission_id=submission_id,
            state=SubmissionState.REJECTED,
            job_id=job_id,
            field=field,
            message=message,
            at=time.time(),
        )
        if not self._record(status):
            return None
        text = f"{field}: {message}" if field else message
        event = JobEvent(
            type=EventType.JOB_REJECTED,
            job_id=job_id,
            at=status.at,
            steps_total=0,
            error=ErrorRecord(type="JobValidationError", message=text),
            detail={"submission_id": submission_id, "field": field},
        )
        self.redis.xadd(keys.GLOBAL_EVENTS, {"event": event.model_dump_json()})
        log.info("intake: rejected submission %s: %s", submission_id, text)
        return status

    def _record(self, status: SubmissionStatus) -> bool:
        """Write the outcome once; False if another delivery already wrote it."""
        written = self.redis.set(
            keys.submission_key(status.submission_id),
            status.model_dump_json(),
            nx=True,
            ex=self.settings.intake_status_ttl_s,
        )
        return bool(written)


def run_intake(client: JobClient) -> int:
    """Serve the intake in this process until SIGTERM or SIGINT (`btq intake`)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    Intake(client).serve(stop)
    return 0


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
