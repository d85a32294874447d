"""docker/kubernetes/btq.yaml: every object valid against the Kubernetes schemas, KEDA wired to real queues."""

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.conftest import DOCKER

MANIFEST = DOCKER / "kubernetes" / "btq.yaml"
KUBERNETES_VERSION = "1.30.0"


def objects(path: Path = MANIFEST) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects() if o["kind"] == kind}


def env_of(container: dict[str, Any], config: dict[str, str]) -> dict[str, str]:
    """The container's environment as Kubernetes assembles it: envFrom ConfigMap, then env."""
    env = dict(config) if any("configMapRef" in ref for ref in container.get("envFrom", [])) else {}
    env.update({item["name"]: item["value"] for item in container.get("env", [])})
    return env


@pytest.mark.parametrize("index", range(len(objects())))
def test_core_objects_validate_strictly(index: int) -> None:
    obj = objects()[index]
    if obj["apiVersion"].startswith("keda.sh/"):
        pytest.skip("a KEDA custom resource: checked against its Deployment below (no offline CRD schema)")
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_validator_refuses_a_wrong_field() -> None:
    deployment = dict(by_kind("Deployment")["btq-worker"])
    deployment["spec"] = {**deployment["spec"], "replica": 2}  # a typo of `replicas`
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_each_scaled_object_scales_a_worker_deployment_on_its_own_queues() -> None:
    deployments = by_kind("Deployment")
    config = by_kind("ConfigMap")["btq-config"]["data"]
    redis_service = by_kind("Service")["btq-redis"]
    scaled = by_kind("ScaledObject")
    assert scaled, "KEDA scales the workers"
    for name, obj in scaled.items():
        target = deployments[obj["spec"]["scaleTargetRef"]["name"]]
        container = target["spec"]["template"]["spec"]["containers"][0]
        queue = env_of(container, config)["BTQ_QUEUE"]
        lists = {t["metadata"]["listName"] for t in obj["spec"]["triggers"] if t["type"] == "redis"}
        assert lists == {queue, f"{queue}.eval"}, f"{name}: steps and evaluation shards of queue {queue}"
        for trigger in obj["spec"]["triggers"]:
            host, port = trigger["metadata"]["address"].split(":")
            assert host == redis_service["metadata"]["name"] and int(port) == redis_service["spec"]["ports"][0]["port"]
        assert obj["spec"]["minReplicaCount"] >= 1, "a queue with no consumer would strand its jobs"


def test_scale_down_does_not_kill_a_running_step() -> None:
    """The grace period covers the step's hard time limit, so SIGTERM's warm shutdown can finish the step."""
    limit = float(by_kind("ConfigMap")["btq-config"]["data"]["BTQ_STEP_TIME_LIMIT_S"])
    for name, deployment in by_kind("Deployment").items():
        if not name.startswith("btq-worker"):
            continue
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace >= limit, f"{name}: grace {grace}s < step time limit {limit}s"


def test_worker_queues_are_distinct_and_secrets_come_from_a_secret() -> None:
    config = by_kind("ConfigMap")["btq-config"]["data"]
    queues = []
    for name, deployment in by_kind("Deployment").items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        if name.startswith("btq-worker"):
            queues.append(env_of(container, config)["BTQ_QUEUE"])
            assert any("secretRef" in ref for ref in container["envFrom"]), f"{name}: API keys from a Secret"
    assert len(queues) == len(set(queues)) >= 2, queues
    assert not any("KEY" in k or "TOKEN" in k for k in config), "secrets do not belong in the ConfigMap"
