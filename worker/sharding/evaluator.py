"""The step's side of sharded evaluation: publish the shards, work on them, take over lost ones, combine.

One `StepEvaluator` lives for one step. Each `Evaluate` call the step makes (its own validation score
and those inside optimizers) is offered to it: it plans the call (or declines, and dspy runs it
in-process), publishes the shards, asks the fleet for help with a group of shard tasks, and claims
shards itself while it waits, so it never idles and never depends on another worker being there.
The combined result equals what `dspy.Evaluate` returns in one process: the same per-example
predictions and scores in devset order, failures scored `failure_score`, and the same exception once
errors reach `max_errors`. BootstrapFinetune's trace collection is one of these calls (see `traces.py`):
its per-example predictions are dspy's `(prediction, trace)` pairs.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dspy
import redis
from dspy.evaluate.evaluate import Evaluate, EvaluationResult

from btq.schemas.exceptions import RetryableStepError
from btq.schemas.metrics import WorkerCount
from btq.schemas.sharding import EvalRequest, ShardResult
from btq.worker.core.job_inputs import ResolvedJob
from btq.worker.core.progress import report
from btq.worker.core.tally import TALLY
from btq.worker.core.tracing import span
from btq.worker.sharding.board import ShardBoard
from btq.worker.sharding.examples import EXECUTOR_ABORT_MESSAGE, EvaluationCancelled, Outcome, score_examples
from btq.worker.sharding.outcomes import UnencodableOutcome, decode, decode_traced, encode, encode_traced
from btq.worker.sharding.plan import ShardPlanner, shard_bounds
from btq.worker.sharding.traces import is_trace_metric, trace_call
from btq.worker.state.infra import report_failure
from btq.worker.state.lease import StepLease
from btq.worker.state.lm_cache import flush_writes

logger = logging.getLogger(__name__)

FIRST_REPORT_INTERVALS = 4
"""An evaluation reports progress before its end only once it ran this many progress intervals (2 s)."""

SendShards = Callable[[str, str, int], None]
"""send(job_id, eval_id, count): enqueue `count` shard tasks for an evaluation (a Celery group)."""


@dataclass(frozen=True)
class ShardingConfig:
    """How evaluations are cut and how long a shard's lease lives (from worker settings)."""

    min_examples: int = 8
    shards_per_slot: int = 4
    lease_ttl_s: float = 10.0
    ttl_s: int = 7 * 24 * 3600
    progress_interval_s: float = 0.5
    cancel_poll_interval_s: float = 0.5


@dataclass(frozen=True)
class ShardingSupport:
    """What a step needs from the fleet to shard: the cut, who is alive, and how to ask for help."""

    config: ShardingConfig
    live_slots: Callable[[], int]
    send_shards: SendShards


@dataclass
class _Progress:
    """What was combined so far, for throttled progress events."""

    seq: int
    total: int
    traces: bool = False
    started_at: float = field(default_factory=time.monotonic)
    last_at: float = 0.0
    last_done: int = 0


class StepEvaluator:
    """Shards the `Evaluate` calls of one step across the fleet (see module docstring)."""

    def __init__(
        self,
        job: ResolvedJob,
        job_id: str,
        step_index: int,
        client: redis.Redis,
        config: ShardingConfig,
        *,
        worker: str,
        live_slots: Callable[[], int],
        send_shards: SendShards,
        is_cancelled: Callable[[], bool],
        timings: dict[str, float] | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.redact = redact
        self.job = job
        self.timings = timings if timings is not None else {}
        self.job_id = job_id
        self.redis = client
        self.config = config
        self.worker = worker
        self.live_slots = live_slots
        self.send_shards = send_shards
        self.is_cancelled = is_cancelled
        self.planner = ShardPlanner(job, job_id, step_index)
        self.seq = 0

    def evaluate(
        self,
        evaluate: Evaluate,
        program: dspy.Module,
        metric: Callable[..., Any],
        devset: list[dspy.Example],
        num_threads: int | None,
    ) -> EvaluationResult | None:
        """Shard one `Evaluate` call, or return None to let dspy run it in-process."""
        try:
            return self._evaluate(evaluate, program, metric, devset, num_threads)
        except (redis.RedisError, RetryableStepError) as exc:
            # Optimizers catch what an evaluation raises and score the candidate 0 (dspy's
            # eval_candidate_program): an outage must end the step as retryable, never become a score.
            report_failure(exc)
            raise

    def _evaluate(
        self,
        evaluate: Evaluate,
        program: dspy.Module,
        metric: Callable[..., Any],
        devset: list[dspy.Example],
        num_threads: int | None,
    ) -> EvaluationResult | None:
        self.seq += 1
        if len(devset) < 2 * self.config.min_examples:
            return None
        traced = trace_call(program, metric)
        if traced is None and is_trace_metric(metric):
            return None  # a trace collection whose options cannot be read: dspy collects it in-process
        max_errors = evaluate.max_errors if evaluate.max_errors is not None else dspy.settings.max_errors
        slots = max(1, self.live_slots())
        request = self.planner.plan(
            self.seq,
            program,
            traced.metric if traced is not None else metric,
            devset,
            num_threads=num_threads,
            max_errors=max_errors,
            provide_traceback=evaluate.provide_traceback,
            failure_score=evaluate.failure_score,
            bounds=shard_bounds(len(devset), slots, self.config.min_examples, self.config.shards_per_slot),
            trace=traced.options if traced is not None else None,
        )
        if request is None:
            return None
        if self.is_cancelled():  # cancelled, or a paused holder that lost its lease: ask the fleet for nothing
            raise EvaluationCancelled("job cancelled")
        # The span is current while shards are sent, so helpers' shard spans join this evaluation's trace.
        with span("btq.evaluation", **{"btq.eval_id": request.eval_id, "btq.shards": len(request.shards)}):
            board = ShardBoard(
                self.redis, self.job_id, request.eval_id, self.config.ttl_s, self.config.lease_ttl_s, self.redact
            )
            request = board.publish(request)
            TALLY.add(WorkerCount.EVALUATIONS_SHARDED)
            helpers = min(len(request.shards) - 1, slots - 1)
            if helpers > 0:
                self.send_shards(self.job_id, request.eval_id, helpers)
            started = time.perf_counter()
            try:
                progress = _Progress(seq=self.seq, total=len(request.shards), traces=request.trace is not None)
                local = self._work(board, request, program, metric, devset, progress)
                board.finish()
                stored = board.results()  # read once: for the last progress event and for the combine
                workers = {r.worker for r in stored.values()} | ({self.worker} if local else set())
                self._report(progress, len(request.shards), workers=sorted(workers))
                return self._combine(request, program, devset, local, stored, evaluate.failure_score)
            finally:
                # How long the step spent in sharded evaluations: the part of a step more workers shorten.
                self.timings["sharded_evaluation_s"] = self.timings.get("sharded_evaluation_s", 0.0) + (
                    time.perf_counter() - started
                )
                self.timings["sharded_evaluations"] = self.timings.get("sharded_evaluations", 0) + 1

    def _work(
        self,
        board: ShardBoard,
        request: EvalRequest,
        program: dspy.Module,
        metric: Callable[..., Any],
        devset: list[dspy.Example],
        progress: _Progress,
    ) -> dict[int, list[Outcome]]:
        """Claim and score shards until every shard has a result; return the ones scored here."""
        local: dict[int, list[Outcome]] = {}
        while True:
            if self.is_cancelled():
                raise EvaluationCancelled("job cancelled")
            done = board.done() | set(local)
            self._report(progress, len(done))
            if len(done) == len(request.shards):
                return local
            claim = board.claim_next()  # a claimed shard had no result when its lease was taken (atomically)
            taken_over = claim is None
            if claim is None:
                claim = self._lost_shard(board, request, done)
            if claim is None:
                board.wait(timeout_s=min(1.0, self.config.lease_ttl_s / 5))
                continue
            shard, lease = claim
            with lease:
                if taken_over and shard in board.done():  # its holder may have stored it before letting go
                    continue
                start, end = request.shards[shard]
                local[shard] = self._score_here(board, request, shard, lease, program, metric, devset[start:end])

    def _lost_shard(self, board: ShardBoard, request: EvalRequest, done: set[int]) -> tuple[int, StepLease] | None:
        """Take over a shard nobody holds any more (its holder died or gave up)."""
        # One read of every open shard's lease first: most are held by live helpers, and asking each in
        # turn would cost two round trips per shard every time the step wakes up.
        for shard in board.unheld([n for n in range(len(request.shards)) if n not in done]):
            lease = board.take_over(shard)
            if lease is not None:
                TALLY.add(WorkerCount.SHARDS_TAKEN_OVER)
                return shard, lease
        return None

    def _score_here(
        self,
        board: ShardBoard,
        request: EvalRequest,
        shard: int,
        lease: StepLease,
        program: dspy.Module,
        metric: Callable[..., Any],
        examples: list[dspy.Example],
    ) -> list[Outcome]:
        """Score one shard with the step's own program object and store what can travel."""
        started = time.time()
        with span("btq.shard.score", **{"btq.eval_id": request.eval_id, "btq.shard": shard}):
            scored = score_examples(
                program,
                examples,
                metric,
                num_threads=request.num_threads,
                max_errors=request.max_errors,
                provide_traceback=request.provide_traceback,
                is_cancelled=self.is_cancelled,
            )
        try:
            if request.trace is not None:
                names = {id(predictor): name for name, predictor in program.named_predictors()}
                wire = [encode_traced(outcome, names) for outcome in scored.outcomes]
            else:
                wire = [encode(outcome) for outcome in scored.outcomes]
        except UnencodableOutcome as exc:
            logger.debug("shard %s of %s kept in-process: %s", shard, request.eval_id, exc)
        else:
            TALLY.add(WorkerCount.SHARDS_SCORED)
            flush_writes()  # a stored shard is reused as it is: the calls it rests on must be replayable
            board.store(
                ShardResult(
                    shard=shard,
                    worker=self.worker,
                    outcomes=wire,
                    aborted=scored.aborted,
                    duration_s=time.time() - started,
                )
            )
        if scored.aborted:
            # The shard alone reached max_errors: the whole evaluation fails, as dspy's would.
            raise Exception(EXECUTOR_ABORT_MESSAGE)
        return scored.outcomes

    def _combine(
        self,
        request: EvalRequest,
        program: dspy.Module,
        devset: list[dspy.Example],
        local: dict[int, list[Outcome]],
        stored: dict[int, ShardResult],
        failure_score: float,
    ) -> EvaluationResult:
        """Rebuild `Evaluate`'s result in devset order from local and stored shard outcomes.

        A trace collection's traces come back with their predictors re-bound to `program`'s own.
        """
        predictors = dict(program.named_predictors()) if request.trace is not None else {}
        outcomes: list[Outcome] = []
        for shard in range(len(request.shards)):
            if shard in local:
                outcomes += local[shard]
                continue
            result = stored[shard]
            if result.aborted:
                raise Exception(EXECUTOR_ABORT_MESSAGE)
            if request.trace is not None:
                outcomes += [decode_traced(wire, predictors) for wire in result.outcomes]
            else:
                outcomes += [decode(wire) for wire in result.outcomes]
        errors = sum(1 for outcome in outcomes if outcome.error is not None)
        if errors >= request.max_errors:
            logger.warning(EXECUTOR_ABORT_MESSAGE)
            raise Exception(EXECUTOR_ABORT_MESSAGE)
        results = [
            (example, dspy.Prediction(), failure_score)
            if outcome.error is not None
            else (example, outcome.prediction, outcome.score)
            for example, outcome in zip(devset, outcomes, strict=True)
        ]
        ncorrect, ntotal = sum(score for *_, score in results), len(devset)
        return EvaluationResult(score=round(100 * ncorrect / ntotal, 2), results=results)

    def _report(self, progress: _Progress, done: int, workers: list[str] | None = None) -> None:
        """Emit shard progress, throttled; the last event (with the workers that scored shards) always.

        Events are what a finished job keeps most of: an evaluation reports while it runs only once it ran
        `FIRST_REPORT_INTERVALS` intervals (a short one reports its end only), and then only changes.
        """
        now = time.monotonic()
        interval = self.config.progress_interval_s
        if workers is None and (
            now - progress.started_at < FIRST_REPORT_INTERVALS * interval
            or now - progress.last_at < interval
            or done == progress.last_done
        ):
            return
        progress.last_at, progress.last_done = now, done
        detail: dict[str, Any] = {
            "phase": "evaluate",
            "evaluation": progress.seq,
            "shards_done": done,
            "shards_total": progress.total,
        }
        if progress.traces:
            detail["traces"] = True  # collecting fine-tuning traces, not only scores
        if workers is not None:
            detail["shard_workers"] = workers
        report(**detail)
