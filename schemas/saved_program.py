"""A job's candidate as a file dspy loads: dspy's saved-program JSON and a manifest of what it needs.

`dspy.Module.save("program.json")` writes the program's `dump_state()` plus a `metadata` block
(`{"dependency_versions": {"python": "3.11", "dspy": "3.4.1", "cloudpickle": "3.1"}}`), and
`Module.load("program.json")` reads exactly that back into a module built the same way. A stored
candidate already holds the `dump_state()` (the worker dumped it), so the document is built here without
dspy, by the CLI (`btq export`), the dashboard's download and `JobClient.program` alike:

```python
saved = saved_program(result, spec, rank=0)          # or strategy="p -> w"
Path("program.json").write_text(saved.program_json())
Path(manifest_path("program.json")).write_text(saved.manifest_json())
```

The manifest says what the program needs at serving time: the registered program to build, and for each
predictor the LM its state names (the base model, or a fine-tuned model id and the artifact holding it).
"""

import importlib.metadata
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import Field, JsonValue

from btq.schemas.exceptions import JobValidationError
from btq.schemas.job import STRATEGY_SEPARATOR, JobSpec, LiteLLMSpec
from btq.schemas.result import Candidate, JobResult
from btq.schemas.version import VersionedModel, WireModel

FINETUNE_MARK = ":ft-"
"""The mark btq's fine-tuning providers put in a fine-tuned model's name: `<base>:ft-<hash>`."""

SINGLE_PREDICTOR = "self"
"""The predictor name of a program that is one bare `dspy.Predict` (dspy names it so, too)."""

_PREDICT_KEYS = frozenset({"demos", "signature", "lm"})
"""Keys every `Predict.dump_state()` has: a state with them at top level is one bare `Predict`."""


class PredictorLM(WireModel):
    """The LM one predictor's saved state names, as it must be served."""

    predictor: str = Field(description="predictor name (`self` for a program that is one bare Predict)")
    model: str | None = Field(description="the model id in the predictor's LM state (None: no LM saved)")
    base_model: str | None = Field(description="the model it derives from (equal to `model` unless fine-tuned)")
    fine_tuned: bool
    artifact: str | None = Field(
        default=None,
        description="artifact-store name of a btq fine-tune's files (BTQ_ARTIFACT_DIR); None when not fine-tuned here",
    )


class ProgramManifest(VersionedModel):
    """What an exported program is and what it needs: written beside dspy's JSON as `<name>.manifest.json`."""

    job_id: str
    strategy: str = Field(description="the candidate's strategy prefix ('' is the baseline)")
    step_index: int = Field(description="the step that produced it (0: baseline)")
    rank: int = Field(description="its position in the job's ranked candidates (0: first)")
    best: bool = Field(description="whether it is the job's best program")
    score: float | None = Field(description="its validation score (percent), None without a valset")
    program: str = Field(description="the registered program factory that builds the module to load into")
    job_lm: str = Field(description="the job's LM: a registered LM name or a LiteLLM model string")
    predictors: list[PredictorLM]
    dependency_versions: dict[str, str] = Field(description="what dspy's `metadata.dependency_versions` holds")


class SavedProgram(WireModel):
    """One exported candidate: dspy's saved-program document and its manifest."""

    program: dict[str, JsonValue] = Field(description="exactly what `Module.save(path.json)` writes")
    manifest: ProgramManifest

    def program_json(self) -> str:
        """Return the document as dspy writes it (two-space indent, trailing newline)."""
        return json.dumps(self.program, indent=2, ensure_ascii=False) + "\n"

    def manifest_json(self) -> str:
        """Return the manifest as indented JSON."""
        return self.manifest.model_dump_json(indent=2) + "\n"


def manifest_path(program_path: str | Path) -> Path:
    """Return where the manifest of a program file goes: `program.json` -> `program.manifest.json`."""
    path = Path(program_path)
    return path.with_name(f"{path.stem}.manifest.json")


def local_dependency_versions() -> dict[str, str]:
    """Return dspy's `dependency_versions` for this environment, read without importing dspy.

    The keys dspy writes: `python` (major.minor), `dspy`, `cloudpickle` (major.minor); a package that
    is not installed is left out (dspy's loader compares only the keys present).
    """
    versions = {"python": f"{sys.version_info.major}.{sys.version_info.minor}"}
    for package, parts in (("dspy", None), ("cloudpickle", 2)):
        try:
            version = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
        versions[package] = ".".join(version.split(".")[:parts]) if parts else version
    return versions


def select_candidate(
    result: JobResult, *, rank: int | None = None, strategy: str | None = None
) -> tuple[int, Candidate]:
    """Return (rank, candidate): by 0-based rank in the ranked list, by strategy, or the job's best.

    Raises:
        JobValidationError: the job has no candidate, or none at that rank or with that strategy.
    """
    if rank is not None and strategy is not None:
        raise JobValidationError("rank", "give a rank or a strategy, not both")
    ranked = result.candidates
    if not ranked:
        raise JobValidationError("job_id", f"job {result.job_id} has no candidate program ({result.state_label})")
    if strategy is not None:
        wanted = _normalized(strategy)
        for index, candidate in enumerate(ranked):
            if _normalized(candidate.strategy) == wanted:
                return index, candidate
        known = ", ".join(repr(c.strategy) for c in ranked)
        raise JobValidationError("strategy", f"job {result.job_id} has no candidate {strategy!r} (has {known})")
    if rank is None:
        best = result.best or ranked[0]
        return next(i for i, c in enumerate(ranked) if c.step_index == best.step_index), best
    if not 0 <= rank < len(ranked):
        raise JobValidationError("rank", f"job {result.job_id} has ranks 0..{len(ranked) - 1}, not {rank}")
    return rank, ranked[rank]


def _normalized(strategy: str) -> str:
    # 'p->w', 'p -> w ' and 'baseline' name the same candidates as the stored 'p -> w' and ''.
    parts = [part.strip() for part in strategy.split(STRATEGY_SEPARATOR.strip())]
    joined = STRATEGY_SEPARATOR.join(part for part in parts if part)
    return "" if joined in ("baseline", "(baseline)") else joined


def predictor_states(state: dict[str, JsonValue]) -> dict[str, dict[str, Any]]:
    """Return predictor name -> its saved state (`self` for a bare Predict, whose state is flat)."""
    if state.keys() >= _PREDICT_KEYS:
        return {SINGLE_PREDICTOR: dict(state)}
    return {name: value for name, value in state.items() if isinstance(value, dict) and name != "metadata"}


def _model(predictor_state: dict[str, Any] | None) -> str | None:
    lm = predictor_state.get("lm") if predictor_state else None
    model = lm.get("model") if isinstance(lm, dict) else None
    return model if isinstance(model, str) else None


def predictor_lms(candidate: Candidate, baseline: Candidate | None) -> list[PredictorLM]:
    """Return each predictor's LM; a model other than the baseline's (or `<base>:ft-<hash>`) is a fine-tune."""
    base_states = predictor_states(baseline.program_state) if baseline is not None else {}
    out = []
    for name, state in predictor_states(candidate.program_state).items():
        model = _model(state)
        base = _model(base_states.get(name)) or model
        if model is not None and FINETUNE_MARK in model:
            base = model.split(FINETUNE_MARK, 1)[0]
        tuned_here = model is not None and FINETUNE_MARK in model
        out.append(
            PredictorLM(
                predictor=name,
                model=model,
                base_model=base,
                fine_tuned=model is not None and model != base,
                # btq's providers publish a fine-tune's files under its model id (the store makes it one path component).
                artifact=model if tuned_here else None,
            )
        )
    return out


def saved_program(
    result: JobResult,
    spec: JobSpec,
    *,
    rank: int | None = None,
    strategy: str | None = None,
    dependency_versions: dict[str, str] | None = None,
) -> SavedProgram:
    """Return one candidate of a finished job as dspy's saved-program JSON and its manifest.

    Args:
        result: the job's result (`JobClient.result`).
        spec: the job's spec (names the registered program and the job's LM).
        rank: 0-based position in `result.candidates` (ranked best first); default the job's best.
        strategy: pick the candidate of this strategy prefix instead ('' or 'baseline': step 0).
        dependency_versions: dspy's `metadata.dependency_versions`; default what the worker that
            finished the job recorded in `result.detail`, else this environment's.

    Raises:
        JobValidationError: no such candidate (the message names the field: `rank`, `strategy`, `job_id`).
    """
    index, candidate = select_candidate(result, rank=rank, strategy=strategy)
    recorded = result.detail.get("dependency_versions")
    if dependency_versions is None and isinstance(recorded, dict):
        dependency_versions = {str(k): str(v) for k, v in recorded.items()}
    versions = dependency_versions if dependency_versions is not None else local_dependency_versions()
    baseline = next((c for c in result.candidates if c.step_index == 0), None)
    document: dict[str, JsonValue] = {**candidate.program_state, "metadata": {"dependency_versions": dict(versions)}}
    best = result.best is not None and result.best.step_index == candidate.step_index
    manifest = ProgramManifest(
        job_id=result.job_id,
        strategy=candidate.strategy,
        step_index=candidate.step_index,
        rank=index,
        best=best,
        score=candidate.score,
        program=spec.program.name,
        job_lm=spec.lm.model if isinstance(spec.lm, LiteLLMSpec) else spec.lm,
        predictors=predictor_lms(candidate, baseline),
        dependency_versions=dict(versions),
    )
    return SavedProgram(program=document, manifest=manifest)
