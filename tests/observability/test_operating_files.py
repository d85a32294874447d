"""The operator's files in examples/observability: the alert rules pass `promtool check rules`, and the
Grafana dashboard loads as JSON and names only metrics the fleet's `/metrics` serves."""

import json
import os
import re
import shutil
import subprocess

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT
from tests.observability.conftest import ObservedFleet

pytestmark = pytest.mark.integration

FILES = ROOT / "examples" / "observability"
RULES = FILES / "btq-alerts.rules.yml"
DASHBOARD = FILES / "grafana-dashboard.json"
METRIC = re.compile(r"\bbtq_[a-z_]+\b")


def _served(observed: ObservedFleet) -> set[str]:
    text = httpx.get(f"{observed.dashboard}/metrics", timeout=10).text
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def test_alert_rules_pass_promtool_and_name_served_metrics(observed: ObservedFleet) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is required in CI: scripts/install-prometheus.sh installs it")
        pytest.skip("promtool is not installed (scripts/install-prometheus.sh)")
    checked = subprocess.run(
        [promtool, "check", "rules", str(RULES)], check=False, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    named = set(METRIC.findall(RULES.read_text()))
    assert named and named <= _served(observed), named - _served(observed)


def test_grafana_dashboard_loads_and_names_only_served_metrics(observed: ObservedFleet) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(exprs) >= 10
    named = {name for expr in exprs for name in METRIC.findall(expr)}
    missing = named - _served(observed)
    assert not missing, f"the dashboard names metrics /metrics does not serve: {sorted(missing)}"
    assert dashboard["__inputs"][0]["pluginId"] == "prometheus"
