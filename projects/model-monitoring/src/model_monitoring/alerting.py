"""Alerting: the committed Prometheus and Alertmanager files, their copies scaled to an accelerated
clock, and the webhook receiver that records every notification it gets.

A replay at clock factor k runs k times faster than production: scrape and evaluation intervals,
rule ``for:`` durations, range selectors (``[5m]``), Alertmanager's group waits and the drift
job's interval are all divided by k (``roadmap_lab.prometheus_time``), so the same rules fire
after the same number of evaluation cycles. The committed files and their promtool tests keep
production values.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from roadmap_lab.prometheus_time import scale_duration

from model_monitoring.errors import ModelMonitoringError
from model_monitoring.project_files import project_file

RULES_FILE = "rules/model-monitoring.rules.yml"
PROMETHEUS_FILE = "prometheus.yml"
ALERTMANAGER_FILE = "alertmanager.yml"
SERVICE_JOB = "model-service"


def monitoring_file(relative: str) -> Path:
    """A file of the committed monitoring configuration (prometheus.yml, rules, ...)."""
    return project_file(f"monitoring/{relative}")


def load_yaml(path: Path) -> dict[str, Any]:
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(content, dict):
        raise ModelMonitoringError(f"{path}: expected a YAML mapping")
    return content


def scaled_prometheus_config(
    config: dict[str, Any], clock: float, service_targets: list[str], alertmanager_target: str
) -> dict[str, Any]:
    """The committed prometheus.yml with intervals divided by ``clock`` and local targets."""
    scaled = copy.deepcopy(config)
    global_section = scaled.setdefault("global", {})
    for key in ("scrape_interval", "evaluation_interval", "scrape_timeout"):
        if key in global_section:
            global_section[key] = scale_duration(global_section[key], clock)
    scaled["alerting"] = {
        "alertmanagers": [{"static_configs": [{"targets": [alertmanager_target]}]}]
    }
    for job in scaled.get("scrape_configs", []):
        if job["job_name"] == SERVICE_JOB:
            job["static_configs"] = [{"targets": service_targets}]
    scaled.pop("rule_files", None)  # roadmap_lab.services.prometheus sets its copies
    return scaled


def scaled_alertmanager_config(
    config: dict[str, Any], clock: float, receiver_url: str
) -> dict[str, Any]:
    """The committed alertmanager.yml with waits divided by ``clock`` and every webhook sent to
    ``receiver_url`` (the receiver's path still names the receiver)."""
    scaled = copy.deepcopy(config)

    def scale_route(route: dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval", "repeat_interval"):
            if key in route:
                route[key] = scale_duration(route[key], clock)
        for child in route.get("routes", []):
            scale_route(child)

    scale_route(scaled["route"])
    if "resolve_timeout" in scaled.get("global", {}):
        scaled["global"]["resolve_timeout"] = scale_duration(
            scaled["global"]["resolve_timeout"], clock
        )
    for receiver in scaled.get("receivers", []):
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = f"{receiver_url.rstrip('/')}/{receiver['name']}"
    return scaled


# --- The webhook receiver ------------------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
    """One webhook call from Alertmanager: when it arrived, which receiver, what it carried."""

    received_at: float
    receiver: str
    payload: dict[str, Any]

    def alerts(self, status: str = "firing") -> list[dict[str, Any]]:
        return [a for a in self.payload.get("alerts", []) if a.get("status") == status]


@dataclass
class AlertReceiver:
    """A webhook receiver on 127.0.0.1 (a thread of this process): POST /<receiver> records the
    Alertmanager payload (and appends it to ``record_file`` as a JSON line); GET /notifications
    lists what it got. Use as a context manager."""

    port: int = 0
    record_file: Path | None = None
    host: str = "127.0.0.1"
    notifications: list[Notification] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "receiver not started"
        return f"http://{self.host}:{self._server.server_address[1]}"

    def _record(self, receiver: str, payload: dict[str, Any]) -> None:
        notification = Notification(time.time(), receiver, payload)
        with self._lock:
            self.notifications.append(notification)
            if self.record_file is not None:
                self.record_file.parent.mkdir(parents=True, exist_ok=True)
                with self.record_file.open("a", encoding="utf-8") as stream:
                    stream.write(json.dumps(notification.__dict__) + "\n")

    def snapshot(self) -> list[Notification]:
        with self._lock:
            return list(self.notifications)

    def first_firing(
        self, alertname: str | None = None, since: float = 0.0, component: str | None = None
    ) -> tuple[float, dict[str, Any]] | None:
        """The earliest firing alert received at or after ``since`` matching the filters."""
        for notification in self.snapshot():
            if notification.received_at < since:
                continue
            for alert in notification.alerts("firing"):
                labels = alert.get("labels", {})
                if alertname and labels.get("alertname") != alertname:
                    continue
                if component and labels.get("component") != component:
                    continue
                return notification.received_at, alert
        return None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    payload = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    self._reply(400, {"detail": "the body is not JSON"})
                    return
                if not isinstance(payload, dict):
                    self._reply(400, {"detail": "expected an Alertmanager webhook object"})
                    return
                receiver._record(self.path.strip("/") or "default", payload)
                self._reply(200, {"status": "recorded"})

            def do_GET(self) -> None:  # noqa: N802
                if self.path.rstrip("/") == "/notifications":
                    self._reply(200, [n.__dict__ for n in receiver.snapshot()])
                elif self.path.rstrip("/") == "/health":
                    self._reply(200, {"status": "ok"})
                else:
                    self._reply(404, {"detail": "GET /notifications or /health"})

            def _reply(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # one line per webhook would drown the demo's output

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        threading.Thread(target=self._server.serve_forever, name="receiver", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> AlertReceiver:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
