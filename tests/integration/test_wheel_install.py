"""The wheel as another Python service installs it: under `btq.*`, beside PyPI's unrelated packages.

A wheel is built from a copy of the repository's packaged files and installed with its dependencies
into a fresh venv, together with PyPI's `schemas` (a marshalling library) and `worker` (a task helper),
which own the top-level names our folders have. Used from outside the repository: every package keeps
its own files, ours and theirs import, `btq --help` works, and the client install (no `worker` extra,
so no dspy) submits a job to the real fleet, waits for it and reads its result.

PyPI's `schemas` is Python 2 code in every release (`print` statements): it cannot import on Python 3
whatever is installed beside it, so for it the check is that its installed files are its own, untouched.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, Fleet
from tests.integration.test_parity import spec

pytestmark = pytest.mark.integration

# PyPI projects that own the top-level names `schemas` and `worker` (pinned: the check is coexistence).
PYPI_SCHEMAS = "schemas==0.7.1"
PYPI_WORKER = "worker==2018.4.1"
PACKAGED = ("pyproject.toml", "README.md", "schemas", "producer", "worker")


def _run(argv: list[str | Path], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{argv}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the built wheel (no extras) and PyPI's `schemas`."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in PACKAGED:  # a copy, so the build writes nothing into the checkout
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp / "dist", src], tmp, 600)
    wheel = next((tmp / "dist").glob("bettertogether_queue-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv], tmp, 120)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q"]
    _run([*pip, wheel, PYPI_SCHEMAS], tmp, 900)
    # Its own dependencies (aiohttp, ...) play no part in whose files `worker` resolves to.
    _run([*pip, "--no-deps", PYPI_WORKER], tmp, 300)
    return venv


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that would put the checkout on the path."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    return {**env, **extra}


PROBE = """
import base64, hashlib, importlib.metadata as md, importlib.util, json
import btq.schemas, btq.worker, btq.producer.client, worker
theirs = md.distribution("schemas")
files = [f for f in theirs.files if f.suffix == ".py"]
def digest(f):
    return base64.urlsafe_b64encode(hashlib.sha256(f.read_binary()).digest()).rstrip(b"=").decode()
print(json.dumps({
    "schemas_origin": importlib.util.find_spec("schemas").origin,
    "schemas_files": [str(f.locate()) for f in files],
    "schemas_untouched": bool(files) and all(f.hash is not None and f.hash.value == digest(f) for f in files),
    "schemas_text": (theirs.locate_file("schemas/__init__.py")).read_text(),
    "btq_schemas": btq.schemas.__file__,
    "btq_has_jobspec": hasattr(btq.schemas, "JobSpec"),
    "worker": worker.__file__,
    "worker_version": md.version("worker"),
    "btq_worker": btq.worker.__file__,
}))
"""


def test_wheel_installs_under_btq_beside_pypi_schemas_and_worker(client_venv: Path) -> None:
    out = json.loads(_run([client_venv / "bin" / "python", "-c", PROBE], client_venv, 60, _clean_env()))
    site = str(client_venv / "lib")
    # PyPI's `schemas` owns site-packages/schemas, and its files are its own (its marshalling code).
    assert out["schemas_origin"].startswith(site) and out["schemas_origin"].endswith("/schemas/__init__.py")
    assert "Schema violation" in out["schemas_text"] and "bettertogether" not in out["schemas_text"]
    assert out["schemas_untouched"], out["schemas_files"]  # every file matches the hash pip recorded
    # Ours is btq.schemas, next to it.
    assert out["btq_schemas"].startswith(site) and out["btq_schemas"].endswith("/btq/schemas/__init__.py")
    assert out["btq_has_jobspec"]
    # PyPI's `worker` imports as itself, and so does btq.worker.
    assert out["worker"].endswith("/site-packages/worker/__init__.py") and out["worker_version"] == "2018.4.1"
    assert out["btq_worker"].endswith("/site-packages/btq/worker/__init__.py")


def test_btq_help_works_from_the_client_venv(client_venv: Path) -> None:
    out = _run([client_venv / "bin" / "btq", "--help"], client_venv, 60, _clean_env())
    for command in ("submit", "watch", "result", "jobs", "dashboard"):
        assert command in out


def test_client_install_has_no_dspy_and_refuses_to_start_a_worker(client_venv: Path) -> None:
    python = client_venv / "bin" / "python"
    absent = subprocess.run([python, "-c", "import dspy"], capture_output=True, timeout=60, check=False)
    assert absent.returncode != 0
    run = subprocess.run(
        [client_venv / "bin" / "btq", "worker"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_env(),
    )
    assert run.returncode == 2
    assert "bettertogether-queue[worker]" in run.stderr and "dspy" in run.stderr


def test_client_install_submits_waits_and_reads_the_result(client_venv: Path, fleet: Fleet, tmp_path: Path) -> None:
    env = _clean_env(BTQ_REDIS_URL=fleet.url, BTQ_QUEUE=fleet.queue)
    if fleet.broker_url:
        env["BTQ_BROKER_URL"] = fleet.broker_url
    job = tmp_path / "job.json"
    job.write_text(json.dumps(spec("p -> w", "given", True, 3)))
    btq = client_venv / "bin" / "btq"
    out = _run([btq, "submit", job, "--wait", "--timeout", "120"], tmp_path, 180, env)
    job_id = out.splitlines()[0].split()[1]
    result = json.loads(_run([btq, "result", job_id, "--json"], tmp_path, 60, env))
    assert result["job_id"] == job_id and result["state"] == "succeeded"
    # The baseline and one candidate per step, ranked, read back by a process with no dspy.
    assert len(result["candidates"]) == 3 and result["best"] is not None
