"""Where the deploy checks find the stack's files and the Compose Specification's schema."""

from importlib import resources
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"


@pytest.fixture(scope="session")
def compose_schema_path() -> Path:
    """The Compose Specification's JSON schema, as vendored (and kept current) by check-jsonschema."""
    schema = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return Path(str(schema))
