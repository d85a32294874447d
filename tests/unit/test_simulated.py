"""The simulated LM is a pure function of (model, prompt) and learns from demos and fine-tunes."""

import json
from pathlib import Path

import dspy

from btq.worker.artifacts.store import LocalArtifactStore
from btq.worker.lm.simulated import SimulatedEngine, SimulatedFinetuneProvider, simulated_lm
from tests.fixture_registry import exact, splits


def accuracy(lm: dspy.BaseLM, demos: int) -> float:
    data = splits()
    program = dspy.Predict("question -> answer")
    program.set_lm(lm)
    program.demos = data["train"][:demos]
    return sum(exact(e, program(**e.inputs())) for e in data["test"] + data["val"]) / 30


def test_same_prompt_same_answer_across_instances() -> None:
    question = "What is 12 * 7?"
    answers = set()
    for _ in range(3):
        program = dspy.Predict("question -> answer")
        program.set_lm(simulated_lm())
        answers.add(program(question=question).answer)
    assert len(answers) == 1


def test_skill_grows_with_demos_and_fine_tunes() -> None:
    engine = SimulatedEngine()
    assert engine.skill("m", 0) < engine.skill("m", 3) < engine.skill("m:ft-1", 3)
    assert accuracy(simulated_lm(), 0) < accuracy(simulated_lm(), 4)


def test_engine_state_round_trips() -> None:
    engine = SimulatedEngine(task="upper", latency_ms=3)
    assert SimulatedEngine.load_state(json.loads(json.dumps(engine.dump_state()))).dump_state() == engine.dump_state()


def test_finetune_names_are_content_addressed_and_published(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    provider = SimulatedFinetuneProvider(store)
    data = [{"messages": [{"role": "user", "content": "hi"}]}]
    first = provider.finetune(None, "sim/m", data, None, {"epochs": 1})  # type: ignore[arg-type]
    again = provider.finetune(None, "sim/m", data, None, {"epochs": 1})  # type: ignore[arg-type]
    other = provider.finetune(None, "sim/m", data, None, {"epochs": 2})  # type: ignore[arg-type]
    assert first == again != other
    assert first.startswith("sim/m:ft-")
    assert store.exists(first)
    assert json.loads((store.path(first) / "finetune.json").read_text())["examples"] == 1
