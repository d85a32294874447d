"""A real llama.cpp server per model: started, reused, stopped, restarted, never orphaned."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import dspy
import pytest

from btq.worker.lm.local.models import ServedModel
from btq.worker.lm.local.procs import wait_until
from btq.worker.lm.local.provider import LlamaCppProvider
from btq.worker.lm.local.server import STRUCTURED, ServerPool, ServerStartError, _healthy, start_server
from btq.worker.lm.local.settings import ServerSettings

pytestmark = pytest.mark.slow
BASE = "llamacpp/smollm2-135m-instruct"


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()


def test_launch_reuse_kill_and_lazy_restart(pool: ServerPool) -> None:
    provider = LlamaCppProvider(pool=pool)
    lm = provider.lm(BASE, max_tokens=16)
    lm.launch()
    server = pool.get(BASE)
    assert server is not None and _healthy(server.base_url) and server.log.exists()
    assert server.ready_s < 60 and (server.rss_bytes() or 0) > 50 * 2**20
    lm.launch()  # launching again (dspy may) reuses the server
    assert pool.get(BASE) is server
    assert provider.lm(BASE).copy(temperature=0.5).provider.pool.get(BASE) is server  # one per model

    text = lm("Reply with one word: hello")[0]
    assert isinstance(text, str) and text
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        prediction = dspy.Predict("question -> answer")(question="What is 2 + 2?")
    assert isinstance(prediction.answer, str)  # the server's grammar enforces JSON: it parses
    structured = pool.get(BASE, STRUCTURED)  # JSON requests have a server of their own
    assert structured is not None and structured.process.pid != server.process.pid

    lm.kill()
    assert wait_until(lambda: _gone(server.process.pid), 15) and pool.get(BASE) is None
    assert wait_until(lambda: _gone(structured.process.pid), 15) and pool.get(BASE, STRUCTURED) is None
    assert server.log.exists()  # logs are kept after stop
    lm("Reply with one word: again")  # a request after kill starts the server again
    restarted = pool.get(BASE)
    assert restarted is not None and restarted.process.pid != server.process.pid


def test_server_does_not_outlive_a_killed_worker(tmp_path: Path, local_extra: None) -> None:
    pid_file = tmp_path / "server.pid"
    script = textwrap.dedent(f"""
        import sys, threading, time
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from btq.worker.lm.local.provider import LlamaCppProvider
        from btq.worker.lm.local.server import ServerPool
        from btq.worker.lm.local.settings import ServerSettings
        provider = LlamaCppProvider(pool=ServerPool(ServerSettings(log_dir={str(tmp_path)!r}, n_ctx=512)))
        lm = provider.lm({BASE!r})
        t = threading.Thread(target=lm.launch)  # launched from a thread that ends, as dspy does
        t.start(); t.join()
        open({str(pid_file)!r}, "w").write(str(provider.pool.get({BASE!r}).process.pid))
        time.sleep(120)
    """)
    worker = subprocess.Popen([sys.executable, "-c", script])
    try:
        assert wait_until(lambda: pid_file.exists() and pid_file.read_text() != "", 90)
        server_pid = int(pid_file.read_text())
        assert not _gone(server_pid)
        worker.send_signal(signal.SIGKILL)  # no atexit, no cleanup: only the parent-death signal
        worker.wait(timeout=10)
        assert wait_until(lambda: _gone(server_pid), 15), f"server {server_pid} outlived its worker"
    finally:
        worker.kill()
        worker.wait()


def test_a_broken_model_fails_fast_with_its_log(tmp_path: Path, local_extra: None) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a gguf")
    settings = ServerSettings(log_dir=tmp_path, start_timeout_s=60)
    with pytest.raises(ServerStartError, match="exited during start"):
        start_server(ServedModel("llamacpp/bogus", bogus), settings)


def test_a_server_per_prompt_format_answers_as_one_server(tmp_path: Path, local_extra: None) -> None:
    """ChatAdapter answers that fall back to JSONAdapter are the same with the structured server on or off."""
    from btq.worker.lm.local.tasks import catalog

    answers: dict[bool, list[str]] = {}
    for split in (False, True):
        settings = ServerSettings(log_dir=tmp_path / "logs", n_ctx=2048, n_threads=1, structured_server=split)
        own = ServerPool(settings)
        try:
            lm = LlamaCppProvider(pool=own).lm(BASE, max_tokens=64, stop=["\n\n", "\n["])
            program = catalog.program()
            program.set_lm(lm)
            answers[split] = [str(program(**ex.inputs()).catalog_name) for ex in catalog.author_splits()["val"][:4]]
            assert (own.get(BASE, STRUCTURED) is not None) is split
        finally:
            own.stop_all()
    assert answers[True] == answers[False]


def test_last_token_logits_only_answers_as_every_token_logits(tmp_path: Path, local_extra: None) -> None:
    """Servers skip the logits of prompt tokens (`logits_all` off) and answer as llama_cpp.server's default does."""
    from btq.worker.lm.local.tasks import catalog

    program = catalog.program()
    program.predictors()[0].demos = list(catalog.author_splits()["train"][:3])
    answers: dict[bool, list[str]] = {}
    for every_token in (True, False):
        settings = ServerSettings(
            log_dir=tmp_path / f"logs-{every_token}", n_ctx=2048, n_threads=1, logits_all=every_token
        )
        own = ServerPool(settings)
        try:
            program.set_lm(LlamaCppProvider(pool=own).lm(BASE, max_tokens=64, stop=["\n\n", "\n["]))
            answers[every_token] = [
                str(program(**ex.inputs()).catalog_name) for ex in catalog.author_splits()["val"][:6]
            ]
            server = own.get(BASE)
            assert server is not None and f"--logits_all {str(every_token).lower()}" in " ".join(server.process.args)
        finally:
            own.stop_all()
    assert answers[False] == answers[True]
