"""What data-pipelines asks of a running Airflow beyond the shared client's runs
(``roadmap_lab.airflow_api``): a run's task instances and XComs, and backfills created on the
scheduler."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from roadmap_lab.airflow_api import AirflowClient, wait_for


class AirflowApi(AirflowClient):
    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        return list(self.request("GET", path)["task_instances"])

    def xcom_values(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """Every XCom of a run, as ``task_id/key`` -> its value."""
        run = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        entries = self.request("GET", f"{run}/~/xcomEntries?limit=100")["xcom_entries"]
        return {
            f"{e['task_id']}/{e['key']}": self.request(
                "GET", f"{run}/{e['task_id']}/xcomEntries/{e['key']}"
            )["value"]
            for e in entries
        }

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
        return dict(self.request("POST", "/backfills", body=body))

    def wait_for_backfill(self, backfill_id: int, timeout_s: float) -> dict[str, Any]:
        """The backfill once the scheduler completed it (every run finished)."""

        def completed() -> dict[str, Any] | None:
            backfill = self.request("GET", f"/backfills/{backfill_id}")
            return backfill if backfill.get("completed_at") else None

        return wait_for(f"backfill {backfill_id}", completed, timeout_s)
