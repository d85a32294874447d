"""The packages live under `btq.*`: the code names them so, and bare names from a checkout are aliases."""

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

BARE_IMPORT = re.compile(r"^\s*(from|import) (schemas|producer|worker)\b", re.M)
# A module path in a string: what subprocess argv, BTQ_IMPORTS and Celery settings name.
BARE_STRING = re.compile(r"[\"'\[](schemas|producer|worker)\.(?!log\b|json\b|txt\b)[a-z_]+")


def _sources() -> list[Path]:
    skip = {".venv", ".git", "build", "node_modules"}
    return [p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts)]


def test_no_module_of_the_repository_imports_a_package_by_its_bare_name() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in _sources() if BARE_IMPORT.search(p.read_text())]
    assert offenders == []


def test_no_string_names_a_module_by_its_bare_package() -> None:
    offenders = [
        f"{p.relative_to(ROOT)}: {m.group(0)}" for p in _sources() for m in BARE_STRING.finditer(p.read_text())
    ]
    assert offenders == []


def test_a_bare_name_from_a_checkout_is_the_same_module_as_the_btq_one() -> None:
    probe = (
        "import warnings\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        "try:\n"
        "    import worker\n"
        "except DeprecationWarning as w:\n"
        "    assert 'import btq.worker' in str(w), w\n"
        "else:\n"
        "    raise SystemExit('no warning')\n"
        "warnings.simplefilter('ignore', DeprecationWarning)\n"
        "import schemas.job, btq.schemas.job, producer.settings, btq.producer.settings\n"
        "assert schemas.job is btq.schemas.job and schemas.job.JobSpec is btq.schemas.job.JobSpec\n"
        "assert producer.settings.ProducerSettings is btq.producer.settings.ProducerSettings\n"
        "from worker.registry import Registry\n"
        "from btq.worker.core.registry import Registry as Real\n"
        "assert Registry is Real\n"
        "print('one copy')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "one copy"
