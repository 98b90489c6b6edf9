"""The committed alerting configuration: promtool rule unit tests, Alertmanager routing (amtool)
and inhibition (a real Alertmanager), and no dangling queries in rules or dashboard."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from model_monitoring.alerting import RULES_FILE, load_yaml, monitoring_file
from model_monitoring.dashboard import dashboard_exprs, dashboard_json, queried_metric_names
from model_monitoring.metrics import METRIC_NAMES
from roadmap_lab.services import alertmanager

ROUTES = [
    ({"alertname": "ModelFeatureDrift", "component": "model", "feature": "MedInc"}, "model-team"),
    ({"alertname": "ModelServiceDown", "component": "service"}, "oncall"),
    ({"alertname": "ModelHighLatencyP95", "component": "service"}, "oncall"),
    ({"alertname": "ModelDriftJobStale", "component": "service"}, "oncall"),
    ({"alertname": "ModelFeatureUnknownCategories", "component": "model",
      "feature": "size_of_downpayment"}, "model-team"),
    ({"alertname": "SomethingElse"}, "model-team"),
]


def run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=120)


def test_promtool_unit_tests_pass_on_the_production_rules() -> None:
    tests = monitoring_file("tests/model-monitoring.test.yml")
    result = run(["promtool", "test", "rules", tests.name], cwd=tests.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_labels_and_a_runbook_and_a_promtool_test() -> None:
    rules = load_yaml(monitoring_file(RULES_FILE))
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    tested = set(re.findall(r"alertname: (\w+)", monitoring_file(
        "tests/model-monitoring.test.yml").read_text()))  # fmt: skip
    assert {a["alert"] for a in alerts} <= tested
    for alert in alerts:
        assert alert["labels"]["service"] == "model-monitoring"
        assert alert["labels"]["component"] in ("service", "model")
        assert alert["labels"]["severity"] in ("warning", "critical")
        assert len(alert["annotations"]["runbook"]) > 40
        assert alert["annotations"]["summary"]


@pytest.mark.parametrize(("labels", "receiver"), ROUTES)
def test_amtool_routes_each_alert_to_its_receiver(labels: dict[str, str], receiver: str) -> None:
    config = monitoring_file("alertmanager.yml")
    assert run(["amtool", "check-config", str(config)]).returncode == 0
    result = run(
        ["amtool", "config", "routes", "test", f"--config.file={config}",
         *(f"{k}={v}" for k, v in labels.items())]
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [receiver]


def _post_alerts(url: str, alerts: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        f"{url}/api/v2/alerts", data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200


def _alert_states(url: str) -> dict[str, dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=10) as reply:
        return {a["labels"]["alertname"]: a["status"] for a in json.load(reply)}


@pytest.mark.slow
def test_service_down_inhibits_model_alerts_in_a_real_alertmanager(tmp_path: Path) -> None:
    labels = {"service": "model-monitoring"}
    with alertmanager(monitoring_file("alertmanager.yml"), tmp_path) as manager:
        _post_alerts(manager.url, [
            {"labels": {"alertname": "ModelFeatureDrift", "component": "model", **labels}},
            {"labels": {"alertname": "ModelHighLatencyP95", "component": "service", **labels}},
        ])  # fmt: skip
        time.sleep(1)
        assert all(s["state"] == "active" for s in _alert_states(manager.url).values())
        _post_alerts(manager.url, [
            {"labels": {"alertname": "ModelServiceDown", "component": "service", **labels}},
        ])  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = _alert_states(manager.url)
            if states["ModelFeatureDrift"]["state"] == "suppressed":
                break
            time.sleep(0.2)
        assert states["ModelFeatureDrift"]["inhibitedBy"]
        assert states["ModelHighLatencyP95"]["state"] == "active"  # the service's own alerts stay
        assert states["ModelServiceDown"]["state"] == "active"


def test_rules_and_dashboard_query_only_metrics_the_service_exports() -> None:
    rules = load_yaml(monitoring_file(RULES_FILE))
    rule_exprs = [str(r["expr"]) for g in rules["groups"] for r in g["rules"]]
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    dashboard = json.loads(monitoring_file("grafana/dashboards/model-monitoring.json").read_text())
    exprs = rule_exprs + dashboard_exprs(dashboard)
    queried = queried_metric_names(exprs)
    assert queried - METRIC_NAMES - {"up"} == set()
    # Recording rules used by the dashboard are defined in the rules.
    used_records = {name for e in exprs for name in re.findall(r"\bmodel:[a-z0-9_:]+", e)}
    assert used_records <= recorded
    assert len(queried) > 20  # the check sees the queries (it is not vacuous)


def test_committed_dashboard_is_the_generated_one() -> None:
    committed = monitoring_file("grafana/dashboards/model-monitoring.json").read_text()
    assert committed == dashboard_json(), "regenerate: python -m model_monitoring.dashboard"


def test_compose_file_and_grafana_provisioning_point_at_committed_files() -> None:
    compose_path = monitoring_file("prometheus.yml").parent.parent / "docker-compose.yml"
    compose = yaml.safe_load(compose_path.read_text())
    assert {"model-service", "prometheus", "alertmanager", "grafana", "alert-receiver"} <= set(
        compose["services"]
    )
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (compose_path.parent / source).exists(), source
    datasource = load_yaml(monitoring_file("grafana/provisioning/datasources/prometheus.yml"))
    dashboard = json.loads(monitoring_file("grafana/dashboards/model-monitoring.json").read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", [])}
    assert uids == {datasource["datasources"][0]["uid"]}


def test_compose_builds_by_pip_waits_for_health_binds_locally_and_has_no_default_secret() -> None:
    compose_path = monitoring_file("prometheus.yml").parent.parent / "docker-compose.yml"
    text = compose_path.read_text()
    services = yaml.safe_load(text)["services"]
    dockerfile = compose_path.parent / "Dockerfile"
    for name in ("model-service", "alert-receiver"):  # the project's own image, built by pip
        build = services[name]["build"]
        assert build["dockerfile"] == "projects/model-monitoring/Dockerfile"
        assert (compose_path.parent / build["context"] / build["dockerfile"]).resolve() == (
            dockerfile.resolve()
        )
        assert re.search(rf"^FROM \S+ AS {build['target']}$", dockerfile.read_text(), re.M)
    for name, service in services.items():
        assert "test" in service["healthcheck"], name
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
        for needed in service.get("depends_on", {}).values():
            assert needed == {"condition": "service_healthy"}, name
    # Secrets come from the environment or compose stops: no default to fall back on.
    secrets = {"MODEL_MONITORING_LABELS_API_KEY", "GRAFANA_ADMIN_PASSWORD"}
    for secret in secrets:
        assert re.search(rf"\$\{{{secret}:\?[^}}]+\}}", text), secret
    assert "admin/admin" not in text and ":-" not in text
