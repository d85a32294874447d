"""Shared fixtures of the local-backend tests; the slow ones need the `local` extra and the model."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from btq.worker.lm.local.server import ServerPool
from btq.worker.lm.local.settings import ServerSettings


@pytest.fixture
def local_extra() -> None:
    """Skip unless llama-cpp-python (server), torch, transformers, peft and the model package are installed."""
    for module in ("llama_cpp.server", "torch", "transformers", "peft", "gguf"):
        pytest.importorskip(module, reason="the `local` extra is not installed (scripts/install-local.sh)")
    from btq.worker.lm.local.models import BASE_MODELS

    try:
        BASE_MODELS["smollm2-135m-instruct"].gguf()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def pool(tmp_path: Path, local_extra: None) -> Iterator[ServerPool]:
    """A server pool of its own (logs in tmp_path), every server stopped after the test."""
    own = ServerPool(ServerSettings(log_dir=tmp_path / "logs", n_ctx=2048, start_timeout_s=60))
    try:
        yield own
    finally:
        own.stop_all()
