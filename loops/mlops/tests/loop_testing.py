"""Test helpers: a real Airflow (api-server, scheduler, dag-processor, LocalExecutor) on a
PostgreSQL database with the test DAG folder, whose api-server can be stopped and started again;
alerts posted to Alertmanager's API; the receiver's decision counts; polling."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from roadmap_lab.services import ManagedProcess, ServiceError, free_port, python_child_env

DAGS_DIR = Path(__file__).resolve().parent / "dags"
PROBE_DAG = "retrain_probe"
ADMIN = "admin"
# On a loaded 2-core machine Airflow's processes take a minute or more to start.
STARTUP_TIMEOUT_S = 240.0


@dataclass
class AirflowStack:
    """Airflow on 127.0.0.1: ``url`` and the admin's ``password``; ``release(run_id)`` lets a
    held run of the probe DAG finish."""

    url: str
    password: str
    release_dir: Path
    env: dict[str, str]
    folder: Path
    api_server: ManagedProcess

    def release(self, run_id: str) -> None:
        (self.release_dir / run_id).touch()

    def stop_api_server(self) -> None:
        self.api_server.stop()

    def start_api_server(self) -> None:
        self.api_server = _start_api_server(self.url, self.env, self.folder)


def _airflow(name: str, args: list[str], env: Mapping[str, str], folder: Path,
             ready: str | None = None) -> ManagedProcess:  # fmt: skip
    return ManagedProcess(
        [sys.executable, "-m", "airflow", *args], name=name, ready=ready, env=dict(env),
        log_path=folder / "logs" / f"{name}.log", cwd=folder,
        startup_timeout_s=STARTUP_TIMEOUT_S, stop_grace_s=10.0,
    )  # fmt: skip


def _start_api_server(url: str, env: Mapping[str, str], folder: Path) -> ManagedProcess:
    port = url.rsplit(":", 1)[1]
    server = _airflow("api-server", ["api-server", "--host", "127.0.0.1", "--port", port,
                                     "--workers", "1"], env, folder,
                      ready=f"{url}/api/v2/monitor/health")  # fmt: skip
    server.start()
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def airflow_stack(folder: Path, database_uri: str) -> Iterator[AirflowStack]:
    """Airflow 3 with the LocalExecutor on ``database_uri`` (postgresql+psycopg2://...), the
    probe DAG unpaused, one admin user of the simple auth manager with a password made here."""
    folder.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{free_port()}"
    password = secrets.token_urlsafe(18)
    passwords = folder / "passwords.json"
    passwords.write_text(json.dumps({ADMIN: password}))
    os.chmod(passwords, 0o600)
    release_dir = folder / "release"
    release_dir.mkdir()
    home = folder / "home"
    env = python_child_env(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS_DIR),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=database_uri,
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{ADMIN}:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{url}/execution/",
        AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(home / "logs"),
        AIRFLOW__USAGE_DATA_COLLECTION__ENABLED="False",
        AIRFLOW__API__BASE_URL=url,
        AIRFLOW__API__SECRET_KEY=secrets.token_hex(16),
        # Every process signs and checks tokens with the same key, across api-server restarts.
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1",
        RETRAIN_PROBE_RELEASE_DIR=str(release_dir),
    )
    migrate = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env,
                             cwd=folder, capture_output=True, text=True, timeout=600)  # fmt: skip
    if migrate.returncode != 0:
        raise ServiceError(f"airflow db migrate failed:\n{migrate.stdout[-2000:]}"
                           f"{migrate.stderr[-2000:]}")  # fmt: skip
    with contextlib.ExitStack() as stack:
        for name in ("scheduler", "dag-processor"):
            stack.enter_context(_airflow(name, [name], env, folder))
        airflow = AirflowStack(url, password, release_dir, env, folder,
                               _start_api_server(url, env, folder))  # fmt: skip
        stack.callback(lambda: airflow.api_server.stop())
        yield airflow


# --- Alertmanager and the receiver -------------------------------------------------------------


def post_alerts(alertmanager_url: str, alerts: list[dict[str, Any]]) -> None:
    """Fire (no end) or resolve (``endsAt`` now) alerts through Alertmanager's API."""
    request = urllib.request.Request(
        f"{alertmanager_url}/api/v2/alerts", data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200


def alert(alertname: str, service: str, resolved: bool = False, **labels: str) -> dict[str, Any]:
    """An alert as model-monitoring's rules label it."""
    item: dict[str, Any] = {
        "labels": {"alertname": alertname, "service": service, "component": "model",
                   "severity": "warning", **labels},  # fmt: skip
        "annotations": {"summary": f"{alertname} on {service}"},
    }
    if resolved:
        item["endsAt"] = datetime.now(UTC).isoformat()
    return item


GROUP_KEY = '{}/{alertname=~"ModelFeatureDrift|ModelAccuracyDegradation"}:{service="housing"}'


def notification(status: str = "firing", alertname: str = "ModelFeatureDrift") -> dict[str, Any]:
    """A webhook payload as Alertmanager 0.25 sends it (version 4)."""
    labels = {"alertname": alertname, "service": "housing", "component": "model",
              "severity": "warning", "feature": "MedInc"}  # fmt: skip
    return {
        "version": "4",
        "groupKey": GROUP_KEY,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "retrain-pipeline",
        "groupLabels": {"service": "housing"},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [{
            "status": status, "labels": labels, "annotations": {"summary": "drift"},
            "startsAt": "2026-12-06T23:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "", "fingerprint": "c0ffee",
        }],
    }  # fmt: skip


def decision_counts(receiver_url: str) -> dict[str, float]:
    """The receiver's ``mlops_loop_notifications_total`` by decision."""
    with urllib.request.urlopen(f"{receiver_url}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    pattern = r'^mlops_loop_notifications_total\{decision="(\w+)"\} (\S+)$'
    return {name: float(value) for name, value in re.findall(pattern, text, re.M)}
