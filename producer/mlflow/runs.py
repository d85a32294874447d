"""What one job looks like in MLflow: a parent run per job and a nested run per step, found again by tags.

Runs are looked up by their tags (`btq.job_id`, `btq.step`) before anything is created, and every logging
stage marks its run when it is complete (`btq.logged.*` tags), so replaying the event stream, or a second
exporter after a crash, creates no duplicate run and logs no metric twice.
"""

import json
import platform
from importlib import metadata
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, Run, RunTag

from btq.schemas.events import JobEvent
from btq.schemas.job import JobSpec
from btq.schemas.result import JobResult, JobState, StepRecord

TAG_JOB = "btq.job_id"
TAG_STEP = "btq.step"
TAG_KIND = "btq.kind"
PARENT_TAG = "mlflow.parentRunId"
_MAX_PARAM = 6000  # MLflow's limit on a parameter value (8000 in recent servers, 500 in old ones)

_FINAL_STATUS = {JobState.SUCCEEDED: "FINISHED", JobState.FAILED: "FAILED", JobState.CANCELLED: "KILLED"}


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _param(key: str, value: Any) -> Param:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return Param(key, text[:_MAX_PARAM])


def saved_program(state: dict[str, Any]) -> dict[str, Any]:
    """Return a program state in the layout `dspy.Module.save(path.json)` writes and `load()` reads."""
    versions = {"python": ".".join(platform.python_version_tuple()[:2])}
    try:
        versions["dspy"] = metadata.version("dspy")
    except metadata.PackageNotFoundError:
        versions["dspy"] = "unknown"  # the exporter needs no dspy; load() only warns on a mismatch
    return {**state, "metadata": {"dependency_versions": versions}}


def _source(source: Any) -> Any:
    """A dataset reference as JSON, or how many examples were given inline."""
    return source.model_dump(mode="json") if hasattr(source, "model_dump") else f"{len(source)} inline examples"


def _step_params(event: JobEvent, spec: JobSpec | None) -> list[Param]:
    key = event.optimizer_key
    params = [
        _param("step", event.step_index),
        _param("strategy", event.strategy or ""),
        _param("optimizer_key", key or ""),
    ]
    if spec is not None and key is not None and key in spec.optimizers:
        params += [
            _param("optimizer", spec.optimizers[key].optimizer),
            _param("optimizer.kwargs", spec.optimizers[key].kwargs),
        ]
    return params


def _usage_metrics(usage: Any, at: int) -> list[Metric]:
    """`lm.<field>` metrics (calls, tokens, cost, saved by the cache) of a usage dict; other values skipped."""
    if not isinstance(usage, dict):
        return []
    return [
        Metric(f"lm.{field}", float(value), at, 0)
        for field, value in usage.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]


def _step_metrics(event: JobEvent) -> list[Metric]:
    """Score, duration, the step's timings and its LM usage from its outcome event."""
    at = _ms(event.at)
    metrics = [Metric("duration_s", event.duration_s or 0.0, at, 0)]
    if event.score is not None:
        metrics.append(Metric("score", event.score, at, 0))
    return (
        metrics
        + [
            Metric(f"timing.{field}", float(value), at, 0)
            for field, value in event.detail.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        ]
        + _usage_metrics(event.detail.get("usage"), at)
    )


class JobRuns:
    """Creates and completes the runs of jobs in one experiment."""

    def __init__(self, client: MlflowClient, experiment_id: str) -> None:
        self.client = client
        self.experiment_id = experiment_id

    def _find(self, job_id: str, step: int | None) -> Run | None:
        where = f"tags.`{TAG_JOB}` = '{job_id}' and tags.`{TAG_KIND}` = '{'job' if step is None else 'step'}'"
        if step is not None:
            where += f" and tags.`{TAG_STEP}` = '{step}'"
        runs = self.client.search_runs([self.experiment_id], filter_string=where, max_results=2)
        return runs[0] if runs else None

    def job_run(self, job_id: str, spec: JobSpec | None, submitted_at: float) -> Run:
        """Return the job's run, created (with the spec as params and artifact) if it does not exist."""
        run = self._find(job_id, None)
        if run is None:
            tags = {TAG_JOB: job_id, TAG_KIND: "job"}
            name = f"job {job_id[:8]} {spec.strategy}" if spec else f"job {job_id[:8]}"
            run = self.client.create_run(self.experiment_id, start_time=_ms(submitted_at), tags=tags, run_name=name)
        if spec is not None and "btq.logged.spec" not in run.data.tags:
            self._log_spec(run.info.run_id, spec)
        return run

    def _log_spec(self, run_id: str, spec: JobSpec) -> None:
        params = [
            _param("strategy", spec.strategy),
            _param("seed", spec.seed),
            _param("program", spec.program.name),
            _param("lm", spec.lm if isinstance(spec.lm, str) else spec.lm.model_dump(mode="json")),
            _param("metric", spec.metric),
            _param("trainset", _source(spec.trainset)),
            _param("valset", _source(spec.valset) if spec.valset is not None else f"ratio {spec.valset_ratio}"),
            _param("shuffle_trainset_between_steps", spec.shuffle_trainset_between_steps),
        ]
        for key, optimizer in sorted(spec.optimizers.items()):
            params.append(_param(f"optimizer.{key}", optimizer.optimizer))
            params.append(_param(f"optimizer.{key}.kwargs", optimizer.kwargs))
        self.client.log_batch(run_id, params=params)
        self.client.log_text(run_id, spec.model_dump_json(indent=2), "spec.json")
        self.client.set_tag(run_id, "btq.logged.spec", "1")

    def step_run(self, parent: Run, event: JobEvent, spec: JobSpec | None, record: StepRecord | None) -> None:
        """Create and complete the nested run of one ended step (nothing when it is already complete)."""
        index = event.step_index
        assert index is not None
        run = self._find(event.job_id, index)
        if run is not None and "btq.logged.step" in run.data.tags:
            return
        if run is None:
            tags = {TAG_JOB: event.job_id, TAG_KIND: "step", TAG_STEP: str(index), PARENT_TAG: parent.info.run_id}
            started = record.started_at if record else event.at
            name = f"step {index} {event.strategy or 'baseline'}"
            run = self.client.create_run(self.experiment_id, start_time=_ms(started), tags=tags, run_name=name)
        run_id = run.info.run_id
        outcome = str(event.detail.get("outcome", event.type.value.split(".")[-1]))
        labels = [
            RunTag("worker", event.worker or ""),
            RunTag("attempt", str(event.attempt or 1)),
            RunTag("outcome", outcome),
        ]
        self.client.log_batch(run_id, metrics=_step_metrics(event), params=_step_params(event, spec), tags=labels)
        if record is not None and record.program_state is not None:
            self.client.log_text(run_id, json.dumps(record.program_state, indent=2), "program.json")
        if event.score is not None:  # the job's score curve: one point per step
            self.client.log_metric(parent.info.run_id, "score", event.score, timestamp=_ms(event.at), step=index)
        self.client.set_tag(run_id, "btq.logged.step", "1")
        status = "FINISHED" if outcome == "succeeded" else "FAILED" if outcome == "failed" else "KILLED"
        end = record.finished_at if record else event.at
        self.client.set_terminated(run_id, status=status, end_time=_ms(end))

    def job_result(self, run: Run, result: JobResult) -> None:
        """Log the result (best score, candidates, the best program as dspy's saved JSON) and end the run."""
        run_id = run.info.run_id
        if "btq.logged.result" in run.data.tags:
            return
        metrics = [Metric("candidates", len(result.candidates), _ms(result.finished_at), 0)]
        if result.best is not None and result.best.score is not None:
            metrics.append(Metric("best_score", result.best.score, _ms(result.finished_at), 0))
        if result.usage is not None:  # the whole job's LM calls, tokens and cost
            metrics += _usage_metrics(result.usage.model_dump(mode="json"), _ms(result.finished_at))
        tags = [
            RunTag("outcome", result.state.value),
            RunTag("flag_compilation_error_occurred", str(result.flag_compilation_error_occurred).lower()),
        ]
        if result.best is not None:
            tags.append(RunTag("best_strategy", result.best.strategy or "baseline"))
        self.client.log_batch(run_id, metrics=metrics, tags=tags)
        for candidate in result.candidates:
            body = {"strategy": candidate.strategy, "score": candidate.score, "program_state": candidate.program_state}
            self.client.log_text(run_id, json.dumps(body, indent=2), f"candidates/step-{candidate.step_index}.json")
        if result.best is not None:
            self.client.log_text(
                run_id, json.dumps(saved_program(dict(result.best.program_state)), indent=2), "best_program.json"
            )
        self.client.set_tag(run_id, "btq.logged.result", "1")
        self.client.set_terminated(
            run_id, status=_FINAL_STATUS.get(result.state, "FINISHED"), end_time=_ms(result.finished_at)
        )
