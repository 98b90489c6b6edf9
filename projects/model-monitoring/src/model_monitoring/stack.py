"""The full monitoring stack on 127.0.0.1, on an accelerated clock: the alert receiver, the real
Alertmanager, the service (uvicorn, several workers, multi-process metrics) and the real
Prometheus scraping it, with the committed rules and configs scaled by ``clock``. The service
runs with its production settings (window sizes, thresholds); only its drift job's interval is
divided by the clock, like every interval of Prometheus and Alertmanager."""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roadmap_lab.prometheus_time import parse_duration, scaled_rules
from roadmap_lab.services import alertmanager, prometheus, uvicorn_app

from model_monitoring.alerting import (
    ALERTMANAGER_FILE,
    PROMETHEUS_FILE,
    RULES_FILE,
    AlertReceiver,
    load_yaml,
    monitoring_file,
    scaled_alertmanager_config,
    scaled_prometheus_config,
)
from model_monitoring.metrics import MULTIPROC_ENV
from model_monitoring.settings import ENV_PREFIX, ProjectSettings

# The drift job's production interval (the service's default).
DRIFT_INTERVAL_S = ProjectSettings.model_fields["drift_interval_s"].default


@dataclass(frozen=True)
class Stack:
    service_url: str
    prometheus_url: str
    alertmanager_url: str
    receiver: AlertReceiver
    clock: float
    evaluation_interval_s: float
    folder: Path
    labels_api_key: str

    def query(self, promql: str) -> list[dict[str, Any]]:
        return self._api("query", {"query": promql})

    def query_range(self, promql: str, start: float, end: float) -> list[dict[str, Any]]:
        step = max(self.evaluation_interval_s, 0.1)
        return self._api("query_range", {"query": promql, "start": start, "end": end, "step": step})

    def active_alerts(self, component: str | None = None) -> list[dict[str, Any]]:
        """Prometheus' pending and firing alerts (optionally of one component)."""
        with urllib.request.urlopen(f"{self.prometheus_url}/api/v1/alerts", timeout=10) as reply:
            alerts: list[dict[str, Any]] = json.load(reply)["data"]["alerts"]
        return [a for a in alerts if component is None or a["labels"].get("component") == component]

    def _api(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        url = f"{self.prometheus_url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=30) as reply:
            result: list[dict[str, Any]] = json.load(reply)["data"]["result"]
        return result


def write_scaled_configs(folder: Path, clock: float) -> tuple[dict[str, Any], Path, dict[str, Any]]:
    """The scaled prometheus.yml (targets still to fill), rules file and alertmanager.yml."""
    folder.mkdir(parents=True, exist_ok=True)
    rules_path = folder / "model-monitoring.rules.scaled.yml"
    rules = scaled_rules(load_yaml(monitoring_file(RULES_FILE)), clock)
    rules_path.write_text(yaml_dump(rules), encoding="utf-8")
    return (
        load_yaml(monitoring_file(PROMETHEUS_FILE)),
        rules_path,
        load_yaml(monitoring_file(ALERTMANAGER_FILE)),
    )


def yaml_dump(content: Any) -> str:
    import yaml

    return yaml.safe_dump(content, sort_keys=False, width=100)


@contextlib.contextmanager
def monitoring_stack(
    folder: Path,
    bundle_dir: Path,
    *,
    clock: float = 30.0,
    workers: int = 2,
    service_env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """Start everything (receiver, Alertmanager, service, Prometheus); stop it all on exit."""
    folder = folder.resolve()  # the servers run in their own folders: no relative paths
    prometheus_config, rules_path, alertmanager_config = write_scaled_configs(
        folder / "config", clock
    )
    multiproc = folder / "prometheus-multiproc"
    log_dir = folder / "predictions"
    for stale in (multiproc, log_dir):  # uvicorn has no child-exit hook: start from empty
        shutil.rmtree(stale, ignore_errors=True)
        stale.mkdir(parents=True)
    labels_api_key = secrets.token_urlsafe(24)
    env = {
        MULTIPROC_ENV: str(multiproc),
        f"{ENV_PREFIX}BUNDLE_DIR": str(bundle_dir.resolve()),
        f"{ENV_PREFIX}LOG_DIR": str(log_dir.resolve()),
        f"{ENV_PREFIX}DRIFT_INTERVAL_S": str(DRIFT_INTERVAL_S / clock),
        f"{ENV_PREFIX}LABELS_API_KEY": labels_api_key,
        **(service_env or {}),
    }
    evaluation_interval = parse_duration(prometheus_config["global"]["evaluation_interval"])
    with contextlib.ExitStack() as stack:
        receiver = stack.enter_context(AlertReceiver(record_file=folder / "notifications.jsonl"))
        manager = stack.enter_context(
            alertmanager(
                scaled_alertmanager_config(alertmanager_config, clock, receiver.url),
                folder / "alertmanager",
            )
        )
        service_url = stack.enter_context(
            uvicorn_app(
                "model_monitoring.service:create_app",
                folder / "service",
                factory=True,
                workers=workers,
                env=env,
                ready_path="/health/ready",
                extra_args=["--no-access-log"],
            )
        )
        target = urllib.parse.urlsplit(service_url).netloc
        manager_target = urllib.parse.urlsplit(manager.url).netloc
        server = stack.enter_context(
            prometheus(
                scaled_prometheus_config(prometheus_config, clock, [target], manager_target),
                [rules_path],
                folder / "prometheus",
            )
        )
        yield Stack(
            service_url=service_url,
            prometheus_url=server.url,
            alertmanager_url=manager.url,
            receiver=receiver,
            clock=clock,
            evaluation_interval_s=evaluation_interval / clock,
            folder=folder,
            labels_api_key=labels_api_key,
        )
