"""docker/compose.yaml against the Compose Specification's JSON schema, and what a user needs from it."""

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.deploy.conftest import DOCKER, ROOT

COMPOSE = DOCKER / "compose.yaml"
BTQ_SERVICES = ("worker", "intake", "dashboard")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_compose_file_is_valid_under_the_compose_specification(compose_schema_path: Path) -> None:
    schema = json.loads(compose_schema_path.read_text())
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_check_jsonschema_accepts_the_file() -> None:
    """The same check as a user runs it: `check-jsonschema --builtin-schema vendor.compose-spec`."""
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_catches_a_broken_file(compose_schema_path: Path) -> None:
    """The check above could fail: an unknown service key is refused by the same validator."""
    schema = json.loads(compose_schema_path.read_text())
    broken = compose()
    broken["services"]["worker"]["restart_policy"] = "always"  # not a Compose key (it is `restart`)
    assert list(jsonschema.Draft201909Validator(schema).iter_errors(broken))


def test_one_image_built_once_and_shared_by_every_btq_service() -> None:
    services = compose()["services"]
    built = [name for name, svc in services.items() if "build" in svc]
    assert built == ["worker"], f"exactly one service builds the image, got {built}"
    images = {services[name]["image"] for name in BTQ_SERVICES}
    assert len(images) == 1, images
    for name in ("intake", "dashboard"):
        assert services[name]["pull_policy"] == "never", f"{name} would try to pull the local image"
    dockerfile = (
        ROOT / services["worker"]["build"]["context"].replace("..", ".") / services["worker"]["build"]["dockerfile"]
    )
    assert dockerfile.resolve() == (DOCKER / "Dockerfile").resolve()


def test_stack_has_what_a_user_submits_to() -> None:
    services = compose()["services"]
    redis_cmd = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_cmd, "Redis keeps jobs across restarts only with AOF"
    assert services["dashboard"]["ports"], "the dashboard publishes a port"
    assert services["dashboard"]["command"][:2] == ["btq", "dashboard"]
    assert "BTQ_DASHBOARD_ALLOWED_HOSTS" in services["dashboard"]["environment"], "bound to 0.0.0.0: name the hosts"
    assert services["intake"]["command"] == ["btq", "intake"]
    check = " ".join(services["worker"]["healthcheck"]["test"])
    assert "inspect ping" in check, "a worker's health is its answer to a Celery ping"
    for name in (*BTQ_SERVICES, "redis", "objects"):
        assert services[name].get("restart") == "unless-stopped", f"{name} has no restart policy"
    for name in BTQ_SERVICES:
        env = services[name]["environment"]
        assert env["BTQ_ARTIFACT_DIR"].startswith("s3://"), "artifacts live in the object store, not a shared disk"
        assert any(v.endswith(":/registry:ro") for v in services[name]["volumes"]), "registry module mount"
        assert services[name]["env_file"][0]["path"] == ".env", "secrets come from an env file"
    assert "objects" in services and "objects-bucket" in services, "an S3-compatible artifact store"


def test_no_secret_is_written_into_the_compose_file() -> None:
    """Keys and tokens come from the env file; the compose file holds only placeholders and defaults."""
    text = COMPOSE.read_text()
    assert not re.search(r"sk-[A-Za-z0-9]{8,}", text)
    assert "BTQ_DASHBOARD_TOKEN:" not in text, "the dashboard token belongs in docker/.env"
    example = (DOCKER / "example.env").read_text()
    assert "BTQ_DASHBOARD_TOKEN=" in example and "AWS_SECRET_ACCESS_KEY=" in example


def test_dockerignore_keeps_the_build_context_small() -> None:
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip()]
    patterns = [ln for ln in lines if not ln.startswith("#")]
    assert patterns[0] == "*", "everything is excluded unless named"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "schemas", "producer", "worker", "docker/requirements.py"}
    copied = re.findall(r"^COPY\s+(.+?)\s+\S+$", (DOCKER / "Dockerfile").read_text(), re.MULTILINE)
    sources = {src.rstrip("/") for line in copied for src in line.split()}
    assert sources <= allowed, f"the Dockerfile copies what .dockerignore leaves out: {sources - allowed}"
