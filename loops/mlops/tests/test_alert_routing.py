"""The loop's Alertmanager configuration: valid for amtool as committed and as rendered, routing
model-monitoring's own alerts (its committed rules, as they label them) to the receiver exactly
when they are drift or accuracy alerts, and the rendered copy's timings, URL and token file."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml
from mlops_loop.alert_routing import (
    RECEIVER,
    alertmanager_config,
    committed_config,
    loop_file,
)
from mlops_loop.cli import app as cli_app
from mlops_loop.settings import RETRAIN_ALERTS, LoopSettings
from typer.testing import CliRunner

# The repo root (a checkout, or the Pants sandbox, which holds model-monitoring's resources).
ROOT = Path(__file__).resolve().parents[3]
MONITORING_RULES = ROOT / "projects/model-monitoring/monitoring/rules/model-monitoring.rules.yml"


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["amtool", *args], capture_output=True, text=True, timeout=60)


def routed_to(config: Path, labels: dict[str, str]) -> str:
    result = amtool("config", "routes", "test", f"--config.file={config}",
                    *(f"{name}={value}" for name, value in labels.items()))  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def monitoring_alerts() -> list[dict[str, Any]]:
    rules = yaml.safe_load(MONITORING_RULES.read_text(encoding="utf-8"))
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def test_the_committed_config_is_valid() -> None:
    result = amtool("check-config", str(loop_file("alertmanager.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_model_monitorings_drift_and_accuracy_alerts_reach_the_receiver_and_no_other() -> None:
    alerts = monitoring_alerts()
    # The names the loop relies on still exist in model-monitoring's rules.
    assert set(RETRAIN_ALERTS) <= {rule["alert"] for rule in alerts}
    config = loop_file("alertmanager.yml")
    for rule in alerts:
        labels = {"alertname": rule["alert"], **rule["labels"]}
        if "feature" in rule["expr"]:
            labels["feature"] = "MedInc"
        expected = RECEIVER if rule["alert"] in RETRAIN_ALERTS else "null"
        assert routed_to(config, labels) == expected, rule["alert"]


def test_the_rendered_config_takes_the_settings_timings_url_and_token(
    tmp_path: Path, token_file: Path
) -> None:
    settings = LoopSettings(clock=60, group_interval_s=120, receiver_url="http://127.0.0.1:4242/",
                            webhook_token_file=token_file)  # fmt: skip
    config = alertmanager_config(settings)
    route = config["route"]["routes"][0]
    # group_interval from the settings, the others from the file, all divided by the clock.
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "500ms", "2s", "60s"
    )
    assert config["global"]["resolve_timeout"] == "5s"
    webhook = next(r for r in config["receivers"] if r["name"] == RECEIVER)["webhook_configs"][0]
    assert webhook["url"] == "http://127.0.0.1:4242/alerts"
    assert webhook["http_config"]["authorization"] == {
        "type": "Bearer", "credentials_file": str(token_file.resolve())
    }  # fmt: skip
    assert webhook["send_resolved"] is True
    rendered = tmp_path / "alertmanager.yml"
    rendered.write_text(yaml.safe_dump(config))
    assert amtool("check-config", str(rendered)).returncode == 0
    # The committed file is left as it was.
    assert committed_config()["route"]["routes"][0]["group_wait"] == "30s"


def test_the_cli_writes_the_rendered_config(tmp_path: Path, token_file: Path) -> None:
    output = tmp_path / "out" / "alertmanager.yml"
    result = CliRunner().invoke(cli_app, ["alertmanager-config", "--output", str(output),
                                          "--clock", "30", "--webhook-token-file",
                                          str(token_file)])  # fmt: skip
    assert result.exit_code == 0, result.output
    route = yaml.safe_load(output.read_text())["route"]["routes"][0]
    assert route["group_interval"] == "10s"
    assert amtool("check-config", str(output)).returncode == 0
