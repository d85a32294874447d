"""The fleet's Prometheus metrics, computed from Redis at scrape time (a prometheus-client custom Collector).

Gauges describe the state now (jobs by state, queue depth, live workers and pool slots, intake lag, dead
letters); counters come from the workers' counters in Redis (`keys.METRICS`) and from the global event
stream (`EventTally`). Labels stay low-cardinality: states, queues, registry profiles, optimizer keys and
classes, outcomes; never a job id. Names follow Prometheus conventions: `btq_` prefix, units in names,
`_total` on counters.
"""

import logging
import time
from collections.abc import Iterator
from typing import Any, cast

import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from btq.producer.fleet.view import FleetView
from btq.producer.metrics.event_tally import EventTally
from btq.schemas import keys
from btq.schemas.metrics import COUNT_HELP, parse_counts
from btq.schemas.queues import priority_lists
from btq.schemas.result import JobState

log = logging.getLogger(__name__)

_JOB_SCAN_BATCH = 1000


class FleetCollector(Collector):  # type: ignore[misc]
    """Every fleet-wide metric of one Redis database and base queue."""

    def __init__(self, client: redis.Redis, queue: str) -> None:
        self.redis = client
        self.queue = queue
        self.events = EventTally(client)
        self._job_queues: set[str] = set()
        """Queues unfinished jobs were routed to, from the last scrape's job scan (their depth is shown too)."""

    def collect(self) -> Iterator[Metric]:
        """One scrape: each group reads Redis; a group that fails is left out and counted as an error."""
        started = time.perf_counter()
        errors = 0
        for group in (self._jobs, self._workers_and_queues, self._intake, self._dead_letters, self._counters):
            try:
                yield from group()
            except (redis.RedisError, ValueError) as exc:
                errors += 1
                log.warning("metrics: %s failed: %r", group.__name__, exc)
        try:
            self.events.update()
            yield from self._event_counts()
        except redis.RedisError as exc:
            errors += 1
            log.warning("metrics: reading events failed: %r", exc)
        failed = GaugeMetricFamily("btq_scrape_errors", "Metric groups this scrape could not read from Redis")
        failed.add_metric([], errors)
        yield failed
        took = GaugeMetricFamily("btq_scrape_duration_seconds", "Time this scrape spent reading Redis")
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _job_states(self) -> tuple[dict[str, int], set[str]]:
        """Jobs by state, and the queues unfinished jobs were routed to."""
        ids = cast(list[bytes], self.redis.zrange(keys.JOBS_INDEX, 0, -1))
        states: dict[str, int] = {s.value: 0 for s in JobState}
        queues: set[str] = set()
        for start in range(0, len(ids), _JOB_SCAN_BATCH):
            pipe = self.redis.pipeline(transaction=False)
            for job_id in ids[start : start + _JOB_SCAN_BATCH]:
                pipe.hmget(keys.job_key(job_id.decode(), "status"), ["state", "queue"])
            for state, queue in cast(list[list[bytes | None]], pipe.execute()):
                if state is None:
                    continue  # expired: its index entry goes with the next cleanup
                name = state.decode()
                states[name] = states.get(name, 0) + 1
                if queue is not None and not JobState(name).is_final:
                    queues.add(queue.decode())
        return states, queues

    def _jobs(self) -> Iterator[Metric]:
        states, self._job_queues = self._job_states()
        jobs = GaugeMetricFamily("btq_jobs", "Jobs kept in Redis, by state", labels=["state"])
        for state, count in sorted(states.items()):
            jobs.add_metric([state], count)
        yield jobs
        running = self.redis.zcard(keys.RUNNING_STEPS)
        waiting = GaugeMetricFamily("btq_steps_pending", "Unfinished jobs' next steps (queued or running)")
        waiting.add_metric([], running)
        yield waiting
        oldest = cast(list[tuple[bytes, float]], self.redis.zrange(keys.RUNNING_STEPS, 0, 0, withscores=True))
        quiet = GaugeMetricFamily(
            "btq_step_oldest_sign_of_life_age_seconds",
            "Age of the oldest sign of life (lease renewal, previous step) of an unfinished job's step",
        )
        quiet.add_metric([], time.time() - oldest[0][1] if oldest else 0.0)
        yield quiet

    def _workers_and_queues(self) -> Iterator[Metric]:
        workers = FleetView(self.redis, self.queue).workers()
        live = GaugeMetricFamily(
            "btq_workers", "Live workers (heartbeat record present), by registry profile", labels=["profile"]
        )
        slots = GaugeMetricFamily(
            "btq_worker_pool_slots", "Pool processes of live workers, by registry profile", labels=["profile"]
        )
        consumers: dict[str, int] = {}
        by_profile: dict[str, list[int]] = {}
        for worker in workers:
            by_profile.setdefault(worker.profile, []).append(worker.pool_size)
            for queue in _queues_of(self.queue, worker.profile):
                consumers[queue] = consumers.get(queue, 0) + 1
        for profile, sizes in sorted(by_profile.items()):
            live.add_metric([profile], len(sizes))
            slots.add_metric([profile], sum(sizes))
        yield live
        yield slots
        queues = set(consumers) | {self.queue, keys.eval_queue(self.queue)}
        for queue in self._job_queues:
            queues |= {queue, keys.eval_queue(queue)}
        per_queue = GaugeMetricFamily("btq_queue_workers", "Live workers consuming a queue", labels=["queue"])
        depth = GaugeMetricFamily(
            "btq_queue_messages",
            "Messages waiting in a queue (Redis broker: the length of its lists, held-out scoring's included)",
            labels=["queue"],
        )
        lists = {queue: priority_lists(queue) for queue in sorted(queues)}
        pipe = self.redis.pipeline(transaction=False)
        for names in lists.values():
            for name in names:
                pipe.llen(name)
        lengths = iter(cast(list[int], pipe.execute()))
        for queue, names in lists.items():
            per_queue.add_metric([queue], consumers.get(queue, 0))
            depth.add_metric([queue], sum(next(lengths) for _ in names))
        yield per_queue
        yield depth

    def _intake(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily("btq_intake_lag_entries", "Intake entries not yet read by the intake group")
        pending = GaugeMetricFamily("btq_intake_pending_entries", "Intake entries read but not yet acknowledged")
        length = GaugeMetricFamily("btq_intake_stream_entries", "Entries in the intake stream")
        groups: list[dict[str, Any]] = []
        if self.redis.exists(keys.INTAKE):
            groups = self.redis.xinfo_groups(keys.INTAKE)
            length.add_metric([], self.redis.xlen(keys.INTAKE))
        else:
            length.add_metric([], 0)
        group = next((g for g in groups if _text(g.get("name")) == keys.INTAKE_GROUP), None)
        lag.add_metric([], float(group.get("lag") or 0) if group else 0.0)
        pending.add_metric([], float(group.get("pending") or 0) if group else 0.0)
        yield from (lag, pending, length)

    def _dead_letters(self) -> Iterator[Metric]:
        dead = GaugeMetricFamily("btq_dead_letters", "Unreadable queue messages kept in Redis (capped list)")
        dead.add_metric([], self.redis.llen(keys.DEAD_LETTERS))
        yield dead

    def _counters(self) -> Iterator[Metric]:
        counts = parse_counts(cast(dict[bytes, bytes], self.redis.hgetall(keys.METRICS)))
        for name, text in COUNT_HELP.items():
            family = CounterMetricFamily(f"btq_{name.value}", text)
            family.add_metric([], counts.get(name, 0.0))
            yield family

    def _event_counts(self) -> Iterator[Metric]:
        tally = self.events
        steps = CounterMetricFamily(
            "btq_steps",
            "Steps ended, by strategy key, optimizer class and outcome",
            labels=["optimizer_key", "optimizer", "outcome"],
        )
        for (key, cls, outcome), count in sorted(tally.steps.items()):
            steps.add_metric([key, cls, outcome], count)
        yield steps
        duration = HistogramMetricFamily(
            "btq_step_duration_seconds", "Duration of ended steps", labels=["optimizer_key", "outcome"]
        )
        for (key, outcome), hist in sorted(tally.durations.items()):
            buckets = [(_bound(b), n) for b, n in zip(hist.bounds, hist.buckets, strict=True)]
            duration.add_metric([key, outcome], [*buckets, ("+Inf", hist.count)], hist.total)
        yield duration
        submitted = CounterMetricFamily("btq_jobs_submitted", "Jobs accepted (submitted events)")
        submitted.add_metric([], tally.jobs_submitted)
        rejected = CounterMetricFamily("btq_intake_rejections", "Intake submissions rejected")
        rejected.add_metric([], tally.jobs_rejected)
        finished = CounterMetricFamily("btq_jobs_finished", "Jobs ended, by final state", labels=["state"])
        for state in ("succeeded", "failed", "cancelled"):
            finished.add_metric([state], tally.jobs_finished.get(state, 0))
        retries = CounterMetricFamily("btq_step_redeliveries", "Steps started again after an earlier attempt")
        retries.add_metric([], tally.step_retries)
        yield from (submitted, rejected, finished, retries)


def _queues_of(base: str, profile: str) -> list[str]:
    """The queues a worker of `profile` consumes: its profile's steps and shards, and the base queue's."""
    own = keys.profile_queue(base, profile)
    return [own, keys.eval_queue(own), base, keys.eval_queue(base)]


def _bound(value: float) -> str:
    return f"{value:g}" if value != int(value) else f"{value:.1f}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
