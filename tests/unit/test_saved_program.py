"""btq.schemas.saved_program: a stored candidate becomes exactly the file dspy's Module.save writes."""

import json
from pathlib import Path

import dspy
import pytest

from btq.schemas.exceptions import JobValidationError
from btq.schemas.job import JobSpec
from btq.schemas.result import Candidate, JobResult, JobState
from btq.schemas.saved_program import manifest_path, saved_program, select_candidate


class TwoStep(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.draft = dspy.Predict("question -> answer")
        self.check = dspy.Predict("question, answer -> verdict")


def _tuned(program: dspy.Module, model: str) -> dspy.Module:
    for _, predictor in program.named_predictors():
        predictor.lm = dspy.LM(model, temperature=0.0, max_tokens=32)
        predictor.demos = [dspy.Example(question="1 + 1", answer="2")]
        predictor.signature = predictor.signature.with_instructions("Answer tersely.")
    return program


def _job(programs: list[tuple[str, int, float, dspy.Module]], best: int) -> tuple[JobResult, JobSpec]:
    candidates = [
        Candidate(strategy=s, score=score, step_index=i, program_state=p.dump_state(json_mode=True))
        for s, i, score, p in programs
    ]
    result = JobResult(
        job_id="j1",
        state=JobState.SUCCEEDED,
        strategy="p -> w",
        seed=1,
        candidates=candidates,
        best=candidates[best],
        flag_compilation_error_occurred=False,
        finished_at=0.0,
    )
    spec = JobSpec.model_validate(
        {"program": {"name": "qa.two_step"}, "lm": "openai/gpt-4o-mini", "metric": "exact", "trainset": [{"q": 1}]}
    )
    return result, spec


def test_the_document_is_what_module_save_writes_and_module_load_reads(tmp_path: Path) -> None:
    program = _tuned(TwoStep(), "openai/gpt-4o-mini")
    result, spec = _job([("p", 1, 80.0, program)], best=0)
    dspy_file = tmp_path / "dspy.json"
    program.save(str(dspy_file))

    saved = saved_program(result, spec)
    ours = tmp_path / "ours.json"
    ours.write_text(saved.program_json())

    assert json.loads(ours.read_text()) == json.loads(dspy_file.read_text())
    assert ours.read_text() == dspy_file.read_text()  # byte for byte: indent, key order, trailing newline
    loaded = TwoStep()
    loaded.load(str(ours))
    assert loaded.dump_state() == program.dump_state()
    assert loaded.draft.signature.instructions == "Answer tersely."


def test_a_bare_predict_and_the_manifest_names_fine_tunes(tmp_path: Path) -> None:
    base = _tuned(dspy.Predict("question -> answer"), "openai/base-model")
    tuned = _tuned(dspy.Predict("question -> answer"), "openai/base-model:ft-abc123")
    result, spec = _job([("p -> w", 2, 90.0, tuned), ("", 0, 10.0, base)], best=0)

    saved = saved_program(result, spec, strategy="p->w")
    path = tmp_path / "prog.json"
    path.write_text(saved.program_json())
    loaded = dspy.Predict("question -> answer")
    loaded.load(str(path))
    assert loaded.lm is not None and loaded.lm.model == "openai/base-model:ft-abc123"

    manifest = saved.manifest
    assert (manifest.strategy, manifest.step_index, manifest.rank, manifest.best) == ("p -> w", 2, 0, True)
    assert manifest.program == "qa.two_step" and manifest.job_lm == "openai/gpt-4o-mini"
    [lm] = manifest.predictors
    assert (lm.predictor, lm.base_model, lm.fine_tuned, lm.artifact) == (
        "self",
        "openai/base-model",
        True,
        "openai/base-model:ft-abc123",
    )
    baseline = saved_program(result, spec, strategy="baseline").manifest
    assert baseline.step_index == 0 and not baseline.predictors[0].fine_tuned
    assert manifest_path(path) == tmp_path / "prog.manifest.json"


def test_selection_errors_name_the_field() -> None:
    program = _tuned(TwoStep(), "openai/gpt-4o-mini")
    result, _ = _job([("p", 1, 80.0, program), ("", 0, 10.0, program)], best=0)
    assert select_candidate(result, rank=1)[1].step_index == 0
    with pytest.raises(JobValidationError) as rank:
        select_candidate(result, rank=5)
    assert rank.value.field == "rank" and "0..1" in str(rank.value)
    with pytest.raises(JobValidationError) as strategy:
        select_candidate(result, strategy="p -> p")
    assert strategy.value.field == "strategy" and "'p'" in str(strategy.value)
