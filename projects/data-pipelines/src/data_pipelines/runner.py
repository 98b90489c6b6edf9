"""Run the DAGs with Airflow's own test runner (``dag.test()``) on a local sqlite metadata DB: no
server to start by hand. Airflow reads its configuration when it is first imported, so
``configure_airflow`` must run before anything imports airflow in this process.

Attempts, durations and states come from Airflow's own records: the task_instance table (the
last try) and task_instance_history (the earlier tries)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import data_pipelines
from data_pipelines.errors import DataPipelinesError

logger = logging.getLogger(__name__)

DAGS_FOLDER = Path(data_pipelines.__file__).resolve().parent / "dags"


def airflow_env(home: Path, sql_alchemy_conn: str | None = None) -> dict[str, str]:
    """The AIRFLOW_* variables of the project's local Airflow (also for child processes)."""
    home = home.resolve()
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn
        or f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        # Offline: no usage data sent.
        "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
    }


def configure_airflow(home: Path) -> None:
    """Point this process's Airflow at ``home`` (sqlite) and the project's DAGs folder, and create
    or upgrade its metadata DB. Fails when airflow was already imported with another home."""
    env = airflow_env(home)
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(env)
    started = time.monotonic()
    from airflow import settings
    from airflow.utils import db

    if env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] != settings.SQL_ALCHEMY_CONN:
        raise DataPipelinesError(
            f"Airflow was configured before configure_airflow({home}) in this process "
            f"(its DB: {settings.SQL_ALCHEMY_CONN})"
        )

    db.upgradedb()
    logger.info("Airflow metadata DB ready in %.1f s (%s)", time.monotonic() - started, home)


@dataclass(frozen=True)
class Attempt:
    dag_id: str
    run_id: str
    logical_date: str
    task_id: str
    try_number: int
    state: str
    start: datetime | None
    end: datetime | None

    @property
    def duration_s(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["start"] = self.start.isoformat() if self.start else None
        data["end"] = self.end.isoformat() if self.end else None
        data["duration_s"] = self.duration_s
        return data


@dataclass
class RunOutcome:
    dag_id: str
    run_id: str
    logical_date: str
    state: str
    wall_s: float
    attempts: list[Attempt]

    @property
    def succeeded(self) -> bool:
        return self.state == "success"

    def tries(self, task_id: str) -> int:
        """How many times Airflow ran a task (its highest try_number)."""
        return max((a.try_number for a in self.attempts if a.task_id == task_id), default=0)

    def task_states(self) -> dict[str, str]:
        final: dict[str, Attempt] = {}
        for attempt in self.attempts:
            if (
                attempt.task_id not in final
                or attempt.try_number > final[attempt.task_id].try_number
            ):
                final[attempt.task_id] = attempt
        return {task_id: attempt.state for task_id, attempt in final.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "logical_date": self.logical_date,
            "state": self.state,
            "wall_s": round(self.wall_s, 3),
            "task_states": self.task_states(),
            "attempts": [a.as_dict() for a in self.attempts],
        }


def load_dag(dag_id: str) -> Any:
    """The DAG object, imported from its file in the DAGs folder (dag.test() needs the DAG to be
    the one the folder defines)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    if bag.import_errors:
        raise DataPipelinesError(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(dag_id)
    if dag is None:
        raise DataPipelinesError(f"no DAG {dag_id} in {DAGS_FOLDER}")
    return dag


def run_dag(dag_id: str, logical_date: datetime) -> RunOutcome:
    """One DAG run with dag.test(); its state and every task attempt."""
    dag = load_dag(dag_id)
    started = time.monotonic()
    dag_run = dag.test(logical_date=logical_date)
    wall = time.monotonic() - started
    state = str(getattr(dag_run.state, "value", dag_run.state))
    attempts = task_attempts(dag_id, dag_run.run_id)
    logger.info("%s %s: %s in %.1f s", dag_id, logical_date.date(), state, wall)
    return RunOutcome(dag_id, dag_run.run_id, logical_date.isoformat(), state, wall, attempts)


def task_attempts(dag_id: str, run_id: str) -> list[Attempt]:
    """Every try of every task of a run, from task_instance_history and task_instance."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session
    from sqlalchemy import select  # pants: no-infer-dep (Airflow's own dependency)

    attempts = []
    models: tuple[Any, ...] = (TaskInstanceHistory, TaskInstance)
    with create_session() as session:
        for model in models:
            query = select(model).where(model.dag_id == dag_id, model.run_id == run_id)
            attempts += [_attempt(ti, dag_id, run_id) for ti in session.scalars(query).all()]
    logical_dates = {a.logical_date for a in attempts if a.logical_date}
    logical = logical_dates.pop() if len(logical_dates) == 1 else ""
    unique = {(a.task_id, a.try_number): a for a in attempts}  # history may repeat the last try
    ordered = (Attempt(**{**asdict(a), "logical_date": logical}) for a in unique.values())
    return sorted(
        ordered, key=lambda a: (a.start.timestamp() if a.start else 0.0, a.task_id, a.try_number)
    )


def xcom_values(dag_id: str, run_id: str) -> dict[str, Any]:
    """Every XCom a run stored, as ``task_id/key`` -> its value (JSON, as the tasks passed it)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select  # pants: no-infer-dep (Airflow's own dependency)

    with create_session() as session:
        rows = session.execute(
            select(XComModel.task_id, XComModel.key, XComModel.value).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run_id
            )
        ).all()
    return {f"{task_id}/{key}": value for task_id, key, value in rows}


def _attempt(ti: Any, dag_id: str, run_id: str) -> Attempt:
    """One try from a task_instance or task_instance_history row."""
    dag_run = getattr(ti, "dag_run", None)  # task_instance rows only
    logical = dag_run.logical_date if dag_run is not None else None
    return Attempt(
        dag_id=dag_id,
        run_id=run_id,
        logical_date=logical.isoformat() if logical else "",
        task_id=ti.task_id,
        try_number=int(ti.try_number),
        state=str(getattr(ti.state, "value", ti.state)),
        start=ti.start_date,
        end=ti.end_date,
    )
