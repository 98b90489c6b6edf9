"""A small client of a running Airflow's REST API (v2): a bearer token for a user of the simple
auth manager (POST /auth/token), DAG runs triggered and awaited, their task instances and XComs,
and backfills created on the scheduler. Timeouts are generous: on a loaded 2-core machine the
api-server has taken longer than 10 s to answer one request."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import requests

from data_pipelines.errors import DataPipelinesError

T = TypeVar("T")
FINISHED = ("success", "failed")
POLL_S = 0.5


class AirflowApiError(DataPipelinesError):
    """The api-server refused a request or a run did not finish in time."""


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float) -> T:
    """Poll ``probe`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(POLL_S)
    raise AirflowApiError(f"timed out after {timeout_s:g} s waiting for {what}")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class AirflowApi:
    def __init__(self, base_url: str, username: str, password: str, timeout_s: float = 60.0):
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.headers: dict[str, str] = {}
        credentials = {"username": username, "password": password}
        token = self._send("POST", f"{self.base_url}/auth/token", credentials)["access_token"]
        self.headers = {"Authorization": f"Bearer {token}"}

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._send(method, f"{self.base_url}/api/v2{path}", body)

    def _send(self, method: str, url: str, body: dict[str, Any] | None) -> Any:
        try:
            response = requests.request(
                method, url, json=body, headers=self.headers, timeout=self.timeout_s
            )
        except requests.RequestException as error:
            raise AirflowApiError(f"{method} {url}: {error}") from error
        if response.status_code >= 400:
            raise AirflowApiError(
                f"{method} {url}: HTTP {response.status_code}: {response.text[:500]}"
            )
        return response.json()

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    # --- runs ----------------------------------------------------------------------------

    def trigger(self, dag_id: str, logical_date: datetime) -> str:
        """Create a run of ``dag_id`` for ``logical_date``; its run id."""
        body = {"logical_date": logical_date.isoformat()}
        return str(self.request("POST", f"/dags/{dag_id}/dagRuns", body)["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"/dags/{dag_id}/dagRuns/{run_id}"))

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        runs = self.get(f"/dags/{dag_id}/dagRuns?limit=100&order_by=logical_date")
        return list(runs["dag_runs"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout_s: float) -> dict[str, Any]:
        """The run once it succeeded or failed."""

        def finished() -> dict[str, Any] | None:
            run = self.dag_run(dag_id, run_id)
            return run if run["state"] in FINISHED else None

        return wait_for(f"{dag_id} run {run_id}", finished, timeout_s)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"])

    def xcom_values(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """Every XCom of a run, as ``task_id/key`` -> its value."""
        run = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        entries = self.get(f"{run}/~/xcomEntries?limit=100")["xcom_entries"]
        return {
            f"{e['task_id']}/{e['key']}": self.get(f"{run}/{e['task_id']}/xcomEntries/{e['key']}")[
                "value"
            ]
            for e in entries
        }

    # --- backfills -----------------------------------------------------------------------

    def create_backfill(self, dag_id: str, first: datetime, last: datetime) -> dict[str, Any]:
        """A backfill of ``dag_id`` over [first, last] on the scheduler, oldest run first and one
        at a time (week t needs week t-1's model); runs that exist already are left alone."""
        body = {
            "dag_id": dag_id,
            "from_date": first.isoformat(),
            "to_date": last.isoformat(),
            "run_backwards": False,
            "max_active_runs": 1,
            "reprocess_behavior": "none",
        }
        return dict(self.request("POST", "/backfills", body))

    def wait_for_backfill(self, backfill_id: int, timeout_s: float) -> dict[str, Any]:
        """The backfill once the scheduler completed it (every run finished)."""

        def completed() -> dict[str, Any] | None:
            backfill = self.get(f"/backfills/{backfill_id}")
            return backfill if backfill.get("completed_at") else None

        return wait_for(f"backfill {backfill_id}", completed, timeout_s)
