"""The fleet's side of sharded evaluation: a shard task claims shards of one evaluation until none is left.

Everything is rebuilt from references: the job from its stored spec and this worker's registry, the
program from its registered factory and state, LMs from the job LM, the metric by name, the examples by
index. A trace collection (BootstrapFinetune's) runs dspy's own `bootstrap_trace_data` on the shard's
slice. A shard that cannot be rebuilt or whose outcomes cannot travel is given back (its lease released)
and the step scores it itself; an infrastructure error leaves it to the step the same way.
"""

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import dspy
import redis

from btq.schemas.metrics import WorkerCount
from btq.schemas.sharding import EvalRequest, ShardResult
from btq.worker.core.job_inputs import ResolvedJob
from btq.worker.core.lm_binding import LMBinder
from btq.worker.core.metering import Meter
from btq.worker.core.program_state import load_program
from btq.worker.core.tally import TALLY
from btq.worker.core.tracing import span
from btq.worker.core.valset import cancellable, polled
from btq.worker.sharding.board import ShardBoard
from btq.worker.sharding.evaluator import ShardingConfig
from btq.worker.sharding.examples import EvaluationCancelled, ScoredSlice, score_examples
from btq.worker.sharding.outcomes import encode, encode_traced
from btq.worker.sharding.traces import collect_traces
from btq.worker.state.fleet_gate import FleetMetering
from btq.worker.state.lm_cache import caching_for

logger = logging.getLogger(__name__)

_Built = tuple[dspy.Module, Callable[..., Any] | None, dspy.BaseLM, list[dspy.Example], Callable[[], bool]]
"""What a shard runner rebuilds once per evaluation: program, metric, context LM, examples, cancel check."""

ResolveJob = Callable[[str], ResolvedJob]
"""resolve(job_id): the job's spec resolved with this worker's registry."""


class ShardRunner:
    """Scores shards of evaluations published by steps running anywhere in the fleet."""

    def __init__(
        self,
        client: redis.Redis,
        config: ShardingConfig,
        resolve: ResolveJob,
        is_cancelled: Callable[[str], bool],
        worker: str,
        redact: Callable[[str], str] | None = None,
        metering: FleetMetering | None = None,
    ) -> None:
        self.redact = redact
        self.metering = metering
        self.redis = client
        self.config = config
        self.resolve = resolve
        self.is_cancelled = is_cancelled
        self.worker = worker
        self._jobs: OrderedDict[str, ResolvedJob] = OrderedDict()

    def work(self, job_id: str, eval_id: str) -> int:
        """Claim and score shards of one evaluation until none is queued; return how many were stored."""
        board = ShardBoard(self.redis, job_id, eval_id, self.config.ttl_s, self.config.lease_ttl_s, self.redact)
        request = board.request()
        if request is None or request.job_id != job_id:
            return 0  # finished and expired, or a message naming something that does not exist
        built: _Built | None = None
        stored = 0
        while (claim := board.claim_next()) is not None:
            shard, lease = claim
            with lease:
                try:
                    built = built or self._build(request)
                except Exception:  # what cannot be rebuilt here, the step scores itself with its own objects
                    logger.warning("evaluation %s cannot be rebuilt here; its step scores it", eval_id, exc_info=True)
                    return stored
                try:
                    stored += self._score(board, request, shard, *built)
                except EvaluationCancelled:
                    return stored
                except Exception:  # given back: the step scores this shard itself with its own objects
                    logger.warning("shard %s of evaluation %s given back to its step", shard, eval_id, exc_info=True)
        return stored

    def _job(self, job_id: str) -> ResolvedJob:
        if job_id not in self._jobs:
            self._jobs[job_id] = self.resolve(job_id)
            while len(self._jobs) > 4:  # a few recent jobs: shards of one evaluation arrive together
                self._jobs.popitem(last=False)
        self._jobs.move_to_end(job_id)
        return self._jobs[job_id]

    def _build(self, request: EvalRequest) -> "_Built":
        job = self._job(request.job_id)
        binder = LMBinder(job.lm)
        factory = job.registry.get("programs", request.program)
        program = load_program(factory(), dict(request.program_state), binder)
        context_lm = binder.lm_for(dict(request.context_lm)) if request.context_lm is not None else job.lm
        assert context_lm is not None
        metric = job.metric if request.metric is None else job.registry.get("metrics", request.metric)
        if request.trace is not None and not request.trace.has_metric:
            metric = None  # a trace collection without a metric: dspy's wrapper scores every example True
        sets = {"train": job.trainset, "val": job.valset or []}
        examples = [sets[name][index] for name, index in request.examples]
        # Predictors without an LM (optimizers reset them) run on the context LM: launch what will serve.
        for lm in {id(p.lm): p.lm for p in program.predictors() if p.lm is not None}.values() or [context_lm]:
            lm.launch()
        if any(p.lm is None for p in program.predictors()):
            context_lm.launch()
        # Asked once per poll interval, not once per example: it is in the metric and between examples.
        is_cancelled = polled(lambda: self.is_cancelled(request.job_id), self.config.cancel_poll_interval_s)
        checked = cancellable(metric, is_cancelled) if metric is not None else None
        return program, checked, context_lm, examples, is_cancelled

    def _score(
        self,
        board: ShardBoard,
        request: EvalRequest,
        shard: int,
        program: dspy.Module,
        metric: Callable[..., Any] | None,
        context_lm: dspy.BaseLM,
        examples: list[dspy.Example],
        is_cancelled: Callable[[], bool],
    ) -> int:
        started = time.time()
        start, end = request.shards[shard]
        job = self._job(request.job_id)
        meter: Meter | None = None
        with ExitStack() as stack:
            stack.enter_context(span("btq.shard.score", **{"btq.eval_id": request.eval_id, "btq.shard": shard}))
            if self.metering is not None:  # this shard's LM usage counts towards its step's and job's
                meter = stack.enter_context(self.metering.metered(request.job_id, request.step_index, job.spec.budget))
                is_cancelled = _or_stopped(is_cancelled, meter)
            stack.enter_context(dspy.context(lm=context_lm, trace=[], disable_history=True))
            stack.enter_context(caching_for(job, request.cache))
            checked = is_cancelled

            def score(run: dspy.Module, scoring: Callable[..., Any], devset: list[dspy.Example]) -> ScoredSlice:
                return score_examples(
                    run,
                    devset,
                    scoring,
                    num_threads=request.num_threads,
                    max_errors=request.max_errors,
                    provide_traceback=request.provide_traceback,
                    is_cancelled=checked,
                )

            if request.trace is not None:  # dspy's own trace collection on this slice (see traces.py)
                scored = collect_traces(
                    program, examples[start:end], metric, request.trace, request.failure_score, score
                )
                names = {id(predictor): name for name, predictor in program.named_predictors()}
                outcomes = [encode_traced(outcome, names) for outcome in scored.outcomes]
            else:
                assert metric is not None  # only a trace collection may have none
                scored = score(program, metric, examples[start:end])
                outcomes = [encode(outcome) for outcome in scored.outcomes]
        result = ShardResult(
            shard=shard,
            worker=self.worker,
            outcomes=outcomes,
            aborted=scored.aborted,
            duration_s=time.time() - started,
            usage=meter.usage() if meter is not None else None,
        )
        TALLY.add(WorkerCount.SHARDS_SCORED)
        return int(board.store(result))


def _or_stopped(is_cancelled: Callable[[], bool], meter: Meter) -> Callable[[], bool]:
    """A cancel check that also answers True once the job's budget refused this shard a call."""
    return lambda: meter.stopped() or is_cancelled()
