"""`training_lock`: one fine-tune per content name at a time on a machine (no model needed)."""

import threading
from pathlib import Path

from btq.worker.lm.local.training.lock import training_lock


def _contender(cache: Path, name: str, entered: threading.Event) -> threading.Thread:
    def run() -> None:
        with training_lock(cache, name):
            entered.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_second_request_for_the_same_model_waits_until_the_first_is_done(tmp_path: Path) -> None:
    entered = threading.Event()
    with training_lock(tmp_path, "llamacpp/smollm2:ft-abc"):
        thread = _contender(tmp_path, "llamacpp/smollm2:ft-abc", entered)
        assert not entered.wait(timeout=0.5)  # still training: the contender must not start
    assert entered.wait(timeout=10)
    thread.join(timeout=10)


def test_different_models_train_at_the_same_time(tmp_path: Path) -> None:
    entered = threading.Event()
    with training_lock(tmp_path, "llamacpp/smollm2:ft-abc"):
        thread = _contender(tmp_path, "llamacpp/smollm2:ft-def", entered)
        assert entered.wait(timeout=10)
    thread.join(timeout=10)


def test_a_dead_holder_releases_the_lock(tmp_path: Path) -> None:
    import subprocess
    import sys

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib; from btq.worker.lm.local.training.lock import training_lock\n"
            f"with training_lock(pathlib.Path({str(tmp_path)!r}), 'm:ft-x'):\n"
            "    print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
    entered = threading.Event()
    thread = _contender(tmp_path, "m:ft-x", entered)
    assert not entered.wait(timeout=0.5)
    holder.kill()  # SIGKILL: the OS drops the flock with the process
    holder.wait(timeout=10)
    assert entered.wait(timeout=10)
    thread.join(timeout=10)
