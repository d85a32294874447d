"""Many jobs written straight into Redis in the real key layout, built from the real schemas.

What workers and the producer would leave behind after a busy week: specs, status hashes, the jobs index,
`job.submitted` events (with submission ids and comparison groups), step records, results with every
candidate's program (instructions, demos, LM), usage and held-out reports. Writing them directly keeps a
2,000-job test at seconds instead of hours of real jobs; every record is validated by its model first.
"""

import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis

from btq.schemas import keys
from btq.schemas.errors import ErrorRecord
from btq.schemas.events import EventType, JobEvent
from btq.schemas.job import JobSpec
from btq.schemas.result import Candidate, EvaluationReport, JobResult, JobState, StepOutcome, StepRecord
from btq.schemas.usage import Usage

STRATEGIES = ("p", "w", "p -> w", "w -> p", "p -> w -> p")
PROGRAMS = ("t.qa", "t.two_step", "local.iso_date")
BASE_INSTRUCTIONS = "Given the fields `question`, produce the fields `answer`."
TUNED_INSTRUCTIONS = (
    "Read the arithmetic question carefully, compute the result step by step, and answer with the number only."
)


@dataclass
class Seeded:
    """What was written: every job id (oldest first) and the ids of the jobs tests look at."""

    ids: list[str] = field(default_factory=list)
    failed_step: str = ""
    group: str = ""
    group_ids: list[str] = field(default_factory=list)
    submission: tuple[str, str] = ("", "")


def _predictor(step: int, strategy: str, model: str) -> dict[str, Any]:
    keys_so_far = strategy.split(" -> ") if strategy else []
    prompt_steps = keys_so_far.count("p")
    demos = [
        {"question": f"{a} + {a + step}?", "answer": str(2 * a + step), "augmented": True}
        for a in range(prompt_steps * 2)
    ]
    instructions = TUNED_INSTRUCTIONS if prompt_steps else BASE_INSTRUCTIONS
    return {
        "traces": [],
        "train": [],
        "demos": demos,
        "signature": {
            "instructions": instructions,
            "fields": [
                {"prefix": "Question:", "description": "${question}"},
                {"prefix": "Answer:", "description": "${answer}"},
            ],
        },
        "lm": {"model": model, "temperature": 0.0},
    }


def _program(strategy: str, step: int, two: bool) -> dict[str, Any]:
    model = (
        "ft:sim-" + uuid.uuid5(uuid.NAMESPACE_OID, strategy).hex[:8] if "w" in strategy.split(" -> ") else "sim/base"
    )
    names = ("draft", "check") if two else ("answer",)
    return {name: _predictor(step, strategy, model) for name in names}


def _event(kind: EventType, job_id: str, at: float, steps: int, **fields: Any) -> dict[str, str]:
    return {"event": JobEvent(type=kind, job_id=job_id, at=at, steps_total=steps, **fields).model_dump_json()}


def seed_job(
    pipe: Any,
    *,
    job_id: str,
    strategy: str,
    program: str,
    state: JobState,
    submitted_at: float,
    seed: int,
    fail_at: int | None = None,
    submission_id: str | None = None,
    group: str | None = None,
    held_out: dict[str, float] | None = None,
    rng: random.Random,
) -> None:
    """Queue every key of one job on `pipe` (a pipeline): spec, status, index, events, steps and result."""
    spec = JobSpec.model_validate(
        {
            "program": {"name": program},
            "lm": "t.sim",
            "metric": "t.exact",
            "strategy": strategy,
            "trainset": {"dataset": "t.arith", "split": "train"},
            "seed": seed,
        }
    )
    parts = spec.steps()
    steps = len(parts)
    final = state.is_final
    done = steps if state is JobState.SUCCEEDED else (rng.randint(0, steps) if not final else steps)
    if fail_at is not None:
        done = fail_at - 1
    if state is JobState.FAILED:  # the baseline itself could not run: no candidate at all
        fail_at, done = 0, -1
    pipe.set(keys.job_key(job_id, "spec"), spec.model_dump_json())
    detail: dict[str, Any] = {"seed": seed}
    if submission_id:
        detail["submission_id"] = submission_id
    if group:
        detail["group"] = group
    events = keys.job_key(job_id, "events")
    pipe.xadd(events, _event(EventType.JOB_SUBMITTED, job_id, submitted_at, steps, strategy=strategy, detail=detail))
    at = submitted_at + rng.uniform(0.5, 4)
    candidates: list[Candidate] = []
    total = Usage()
    step_usage: dict[int, Usage] = {}
    score = rng.uniform(20, 40)
    last_index = min(done, steps) if fail_at is None else fail_at
    for index in range(last_index + 1):
        so_far = spec.strategy_prefix(index)
        failed = fail_at is not None and index == fail_at
        duration = rng.uniform(2, 40)
        score = min(100.0, score + rng.uniform(0, 20)) if index else score
        calls = rng.randint(20, 200)
        usage = Usage(
            calls=calls,
            prompt_tokens=calls * rng.randint(60, 90),
            completion_tokens=calls * rng.randint(5, 9),
            cost_usd=round(calls * 0.00004, 6),
            cached_calls=rng.randint(0, 30),
        )
        step_usage[index] = usage
        total = total.plus(usage)
        state_dict = _program(so_far, index, program == "t.two_step")
        record = StepRecord(
            index=index,
            strategy=so_far,
            optimizer_key=parts[index - 1] if index else None,
            outcome=StepOutcome.FAILED if failed else StepOutcome.SUCCEEDED,
            score=None if failed else round(score, 2),
            program_state=None if failed else state_dict,
            rng_state=[],
            train_order=[],
            worker=f"w{index % 2 + 1}@host",
            started_at=at,
            finished_at=at + duration,
            error=ErrorRecord(
                type="RuntimeError",
                message="injected failure",
                traceback="Traceback ...\nRuntimeError: injected failure",
            )
            if failed
            else None,
            timings_s={"optimize": duration * 0.7, "evaluate": duration * 0.3},
            usage=usage,
        )
        if index <= done or failed:
            pipe.set(keys.step_key(job_id, index), record.model_dump_json())
            common = {"step_index": index, "strategy": so_far, "worker": record.worker, "attempt": 1}
            pipe.xadd(events, _event(EventType.STEP_STARTED, job_id, at, steps, **common))
            kind = EventType.STEP_FAILED if failed else EventType.STEP_SUCCEEDED
            pipe.xadd(
                events,
                _event(
                    kind,
                    job_id,
                    at + duration,
                    steps,
                    **common,
                    score=record.score,
                    duration_s=duration,
                    error=record.error,
                ),
            )
        if not failed and index <= done:
            candidates.append(
                Candidate(strategy=so_far, score=record.score, step_index=index, program_state=state_dict)
            )
        at += duration + rng.uniform(0.1, 2)
    status = {
        "state": state.value,
        "steps_total": steps,
        "steps_done": max(0, min(done, steps)) if fail_at is None else fail_at,
        "submitted_at": submitted_at,
        "updated_at": at,
        "queue": "btq",
    }
    pipe.hset(keys.job_key(job_id, "status"), mapping=status)
    pipe.zadd(keys.JOBS_INDEX, {job_id: submitted_at})
    if not final:
        return
    ranked = sorted(candidates, key=lambda c: -(c.score or 0))
    result = JobResult(
        job_id=job_id,
        state=JobState.FAILED if state is JobState.FAILED else state,
        strategy=strategy,
        seed=seed,
        candidates=ranked if state is not JobState.FAILED else [],
        best=ranked[0] if ranked and state is not JobState.FAILED else None,
        flag_compilation_error_occurred=fail_at is not None and state is not JobState.FAILED,
        error=ErrorRecord(type="RuntimeError", message="baseline could not run") if state is JobState.FAILED else None,
        finished_at=at,
        usage=total,
        step_usage=step_usage,
    )
    pipe.set(keys.job_key(job_id, "result"), result.model_dump_json())
    terminal = {JobState.SUCCEEDED: EventType.JOB_SUCCEEDED, JobState.FAILED: EventType.JOB_FAILED}.get(
        state, EventType.JOB_CANCELLED
    )
    pipe.xadd(
        events,
        _event(
            terminal,
            job_id,
            at,
            steps,
            strategy=result.best.strategy if result.best else None,
            score=result.best.score if result.best else None,
            detail={"flag_compilation_error_occurred": result.flag_compilation_error_occurred},
        ),
    )
    if held_out is not None:
        report = EvaluationReport(
            job_id=job_id,
            dataset="t.arith",
            split="test",
            scores={str(c.step_index): held_out.get(c.strategy) for c in candidates},
        )
        pipe.hset(keys.held_out_key(job_id), "t.arith/test", report.model_dump_json())


def seed_jobs(store: redis.Redis, count: int, rng_seed: int = 7) -> Seeded:
    """Write `count` jobs (the newest last): mostly succeeded, some running, queued, cancelling, cancelled or
    failed, one with a failed step, one comparison of five strategies, one submitted through the intake."""
    rng = random.Random(rng_seed)
    seeded = Seeded(group="compare-20261204-120000-abc123")
    now = time.time()
    states = [JobState.SUCCEEDED] * 14 + [JobState.CANCELLED, JobState.FAILED, JobState.RUNNING, JobState.QUEUED]
    pipe = store.pipeline(transaction=False)
    test_scores = {"": 31.0, "p": 52.0, "w": 47.0, "p -> w": 61.0, "w -> p": 58.0, "p -> w -> p": 66.0}
    for n in range(count):
        job_id = uuid.UUID(int=rng.getrandbits(128)).hex
        submitted = now - (count - n) * 60
        kwargs: dict[str, Any] = {
            "strategy": rng.choice(STRATEGIES),
            "program": rng.choice(PROGRAMS),
            "state": rng.choice(states),
        }
        if n == count - 3:
            kwargs.update(strategy="p -> w -> p", program="t.qa", state=JobState.SUCCEEDED, fail_at=2)
            seeded.failed_step = job_id
        elif n == count - 4:
            kwargs.update(state=JobState.CANCELLING)
        elif n == count - 5:
            kwargs["submission_id"] = "order-4711"
            seeded.submission = ("order-4711", job_id)
        elif count - 12 <= n < count - 12 + len(STRATEGIES):
            strategy = STRATEGIES[n - (count - 12)]
            kwargs.update(
                strategy=strategy, program="t.qa", state=JobState.SUCCEEDED, group=seeded.group, held_out=test_scores
            )
            seeded.group_ids.append(job_id)
        seed_job(pipe, job_id=job_id, submitted_at=submitted, seed=n, rng=rng, **kwargs)
        seeded.ids.append(job_id)
        if n % 200 == 199:
            pipe.execute()
    pipe.execute()
    return seeded
