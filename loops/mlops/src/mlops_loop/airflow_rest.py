"""The loop's view of Airflow's DAG runs, over the shared REST client
(``roadmap_lab.airflow_api``: bearer token, fail-closed errors). The loop speaks HTTP to Airflow
and imports none of it: the DAG it triggers belongs to data-pipelines."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from roadmap_lab.airflow_api import ACTIVE_STATES, AirflowClient, parse_time

__all__ = ["ACTIVE_STATES", "AirflowClient", "DagRun", "dag_runs", "trigger_run"]


@dataclass(frozen=True)
class DagRun:
    run_id: str
    state: str
    conf: dict[str, Any]
    queued_at: datetime | None
    end_date: datetime | None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> DagRun:
        return cls(
            run_id=str(data["dag_run_id"]),
            state=str(data["state"]),
            conf=dict(data.get("conf") or {}),
            queued_at=parse_time(data.get("queued_at")),
            end_date=parse_time(data.get("end_date")),
        )


def dag_runs(client: AirflowClient, dag_id: str, **query: Any) -> list[DagRun]:
    """``client.dag_runs`` (the newest 100 first, filtered by ``states`` / ``ended_after``)."""
    return [DagRun.from_api(run) for run in client.dag_runs(dag_id, **query)]


def trigger_run(client: AirflowClient, dag_id: str, run_id: str, conf: dict[str, Any]) -> DagRun:
    """A run of ``dag_id`` without a logical date: the DAG decides what data it covers
    (data-pipelines' trains the next week of its history)."""
    return DagRun.from_api(client.trigger(dag_id, None, run_id=run_id, conf=conf))
