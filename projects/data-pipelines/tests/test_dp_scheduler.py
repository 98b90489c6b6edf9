"""Under a real Airflow: metadata DB on a throwaway PostgreSQL, api-server + scheduler +
dag-processor (LocalExecutor) as child processes, the DAG triggered through the REST API (v2, JWT
from /auth/token) and polled to success, and the downstream DAG run by the Asset event."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from data_pipelines.names import PIPELINE_DAG_ID, PIPELINE_TASKS, REPORT_DAG_ID
from data_pipelines.runner import airflow_env
from data_pipelines.source import FaultSpec, SourceServer
from roadmap_lab.services import ManagedProcess, PostgresCluster, free_port, python_child_env

KEY = "2021-02-14"
RUN_TIMEOUT_S = 300.0


def wait_for(what: str, probe: Callable[[], Any], timeout_s: float = RUN_TIMEOUT_S) -> Any:
    """Poll ``probe`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


class AirflowApi:
    """The REST API v2 with a bearer token from the simple auth manager's /auth/token."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        response = requests.get(f"{base_url}/auth/token", timeout=10)
        response.raise_for_status()
        self.headers = {"Authorization": f"Bearer {response.json()['access_token']}"}

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.base_url}/api/v2{path}", headers=self.headers, timeout=10)

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return requests.post(
            f"{self.base_url}/api/v2{path}", json=body, headers=self.headers, timeout=10
        )


@pytest.mark.slow
def test_scheduler_runs_the_dag_and_the_asset_triggers_the_report(
    postgres: PostgresCluster, tmp_path: Path, source: SourceServer, start_service: Any
) -> None:
    home, output, logs = tmp_path / "airflow", tmp_path / "output", tmp_path / "logs"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    database = postgres.create_database("airflow", driver="postgresql+psycopg2")
    env = python_child_env(
        **airflow_env(home, database),
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__CORE__PARALLELISM="2",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{base_url}/execution/",
        AIRFLOW__API__BASE_URL=base_url,
        AIRFLOW__API__SECRET_KEY=secrets.token_hex(16),
        # Every process signs and checks task tokens with the same key.
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1",
        DATA_PIPELINES_OUTPUT_ROOT=str(output),
        DATA_PIPELINES_SOURCE_URL=source.url,
        DATA_PIPELINES_SCHEDULE="none",  # runs come from the API, not the calendar
    )
    migrate = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]

    def airflow(*args: str, name: str, ready: str | None = None) -> ManagedProcess:
        process: ManagedProcess = start_service(
            ManagedProcess,
            [sys.executable, "-m", "airflow", *args],
            name=name,
            log_path=logs / f"{name}.log",
            ready=ready,
            env=env,
            cwd=tmp_path,
            startup_timeout_s=180.0,
            stop_grace_s=20.0,
        )
        return process

    airflow(
        "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        name="api-server", ready=f"{base_url}/api/v2/monitor/health",
    )  # fmt: skip
    scheduler = airflow("scheduler", name="scheduler")
    airflow("dag-processor", name="dag-processor")
    api = AirflowApi(base_url)
    wait_for(
        "both DAGs parsed",
        lambda: all(api.get(f"/dags/{d}").ok for d in (PIPELINE_DAG_ID, REPORT_DAG_ID)),
        180,
    )

    source.set_faults({KEY: FaultSpec("503", count=1)})  # one retry under the real scheduler
    triggered = api.post(f"/dags/{PIPELINE_DAG_ID}/dagRuns", {"logical_date": f"{KEY}T00:00:00Z"})
    assert triggered.status_code == 200, triggered.text
    run_id = triggered.json()["dag_run_id"]

    def finished() -> str | None:
        state = api.get(f"/dags/{PIPELINE_DAG_ID}/dagRuns/{run_id}").json()["state"]
        return state if state in ("success", "failed") else None

    state = wait_for(f"{PIPELINE_DAG_ID} run {run_id}", finished)
    instances = api.get(f"/dags/{PIPELINE_DAG_ID}/dagRuns/{run_id}/taskInstances").json()
    by_task = {ti["task_id"]: ti for ti in instances["task_instances"]}
    assert state == "success", json.dumps(by_task, indent=1)[:3000] + scheduler.log_tail()
    assert {task: by_task[task]["state"] for task in PIPELINE_TASKS} == dict.fromkeys(
        PIPELINE_TASKS, "success"
    )
    assert by_task["fetch"]["try_number"] == 2

    def report_run() -> dict[str, Any] | None:
        runs = api.get(f"/dags/{REPORT_DAG_ID}/dagRuns").json()["dag_runs"]
        done = [r for r in runs if r["state"] in ("success", "failed")]
        return done[0] if done else None

    report = wait_for(f"{REPORT_DAG_ID} run from the Asset event", report_run)
    assert report["state"] == "success"
    assert report["run_type"] == "asset_triggered"
    written = json.loads((output / "reports" / f"{KEY}.json").read_text())
    assert written["triggered_by"] == [KEY]
    assert len(written["models"]) == 1
