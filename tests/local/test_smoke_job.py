"""Real-model smoke job through real workers: `p -> w` on SmolLM2-135M, fine-tuned on CPU.

The fine-tune is produced by one worker; that worker is then stopped and the other one serves the
fine-tuned model from the shared artifact store. Skipped locally without the `local` extra; in CI
(CI=true), where .ci/run installs it, a missing extra fails.
"""

import os
import signal
from collections.abc import Iterator

import pytest

from btq.producer.client import JobClient
from btq.schemas.events import EventType
from btq.worker.lm.local.tasks.dates import date_splits
from tests.conftest import Fleet, running_fleet

pytestmark = pytest.mark.integration

if os.environ.get("CI"):
    import llama_cpp  # noqa: F401  (CI installs the local extra: its absence is a failure there)
else:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("peft")


@pytest.fixture(scope="module")
def local_fleet() -> Iterator[Fleet]:
    with running_fleet(5, "btq-local", ["la", "lb"], {"BTQ_IMPORTS": '["btq.worker.lm.local.registry"]'}) as fleet:
        yield fleet


def smoke_job() -> dict[str, object]:
    val = date_splits()["val"][:4]
    return {
        "program": {"name": "local.iso_date"},
        "lm": "local.smollm2",
        "metric": "local.iso_exact",
        "optimizers": {
            "p": {"optimizer": "BootstrapFewShot", "kwargs": {"max_bootstrapped_demos": 2, "max_labeled_demos": 0}},
            "w": {
                "optimizer": "BootstrapFinetune",
                "kwargs": {"num_threads": 1, "exclude_demos": True, "train_kwargs": {"max_steps": 3, "batch_size": 2}},
            },
        },
        "strategy": "p -> w",
        "trainset": {"dataset": "local.dates", "split": "train"},
        "valset": [{"date_text": e.date_text, "iso_date": e.iso_date} for e in val],
        "input_keys": ["date_text"],
        "optimizer_compile_args": {
            "p": {"teacher": {"name": "local.iso_date.teacher"}},
            "w": {"teacher": {"name": "local.iso_date.teacher"}},
        },
        "num_threads": 1,
        "seed": 0,
    }


@pytest.mark.timeout(1800)  # a real CPU fine-tune: minutes on a busy machine; the waits below are bounded
def test_finetuned_on_one_worker_is_served_by_another(local_fleet: Fleet) -> None:
    client: JobClient = local_fleet.client()
    job_id = client.submit(smoke_job())
    result = client.wait(job_id, timeout_s=1500)

    assert result.state.value == "succeeded" and not result.flag_compilation_error_occurred
    assert [c.strategy for c in sorted(result.candidates, key=lambda c: c.step_index)] == ["", "p", "p -> w"]
    finetuned = next(c for c in result.candidates if c.strategy == "p -> w")
    model = finetuned.program_state["lm"]["model"]  # type: ignore[index]
    assert "-ft-" in model or ":ft" in model or model != result.candidates[0].program_state["lm"]["model"]  # type: ignore[index]
    events = [e for _, e in client.events(job_id)]
    assert any(e.type is EventType.STEP_PROGRESS and e.step_index == 2 for e in events), "fine-tune progress"
    trainer = next(e.worker for e in events if e.type is EventType.STEP_SUCCEEDED and e.step_index == 2)
    assert trainer

    # Stop the worker that fine-tuned: only the other one can now serve the fine-tuned model.
    name = trainer.split("@")[0]
    other = next(n for n in local_fleet.procs if n != name)
    local_fleet.procs[name].send_signal(signal.SIGTERM)
    local_fleet.procs[name].wait(timeout=60)
    report = client.evaluate(job_id, "local.dates", "val", timeout_s=600)

    assert report.error is None, report.error
    assert report.worker and report.worker.startswith(f"{other}@")
    assert report.scores[str(finetuned.step_index)] is not None
