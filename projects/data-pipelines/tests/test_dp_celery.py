"""Under a real deployment, one per test session (conftest's ``celery_stack``): PostgreSQL, Redis,
the api-server, scheduler, dag-processor and two Celery workers, one per queue, each with its own
hostname, log-server port and scratch folder. A run triggered through the REST API uses both
workers; Airflow's own backfill runs on the scheduler when the CLI is pointed at the server.
Timeouts are generous: on a loaded 2-core machine one run has taken minutes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from data_pipelines.cli import app
from data_pipelines.names import PIPELINE_DAG_ID, PIPELINE_TASKS, REPORT_DAG_ID
from data_pipelines.source import FaultSpec, SourceServer
from data_pipelines.stack import AirflowStack, celery_workers, executor_env
from dp_testing import files_under, local_paths, uris
from typer.testing import CliRunner

KEY, NEXT, THIRD = "2021-02-14", "2021-02-21", "2021-02-28"  # the history starts at KEY
RUN_TIMEOUT_S = 900.0
QUEUE_OF = {"fetch": "ingest", "validate": "ingest", "preprocess": "train", "train": "train",
            "evaluate": "train", "publish": "train"}  # fmt: skip


def logical(key: str) -> datetime:
    return datetime.strptime(key, "%Y-%m-%d").replace(tzinfo=UTC)


def store_folder(stack: AirflowStack) -> Path:
    return Path(stack.env["DATA_PIPELINES_OUTPUT_ROOT"])


def failure_details(stack: AirflowStack, instances: Any) -> str:
    return json.dumps(instances, indent=1, default=str)[:3000] + "\n".join(
        process.log_tail(30) for process in stack.processes.values()
    )


def test_each_worker_has_its_own_queue_hostname_log_port_and_scratch(tmp_path: Path) -> None:
    workers = celery_workers(tmp_path, ("ingest", "train"))
    for field in ("queue", "hostname", "log_port", "scratch_dir"):
        assert len({getattr(worker, field) for worker in workers}) == 2, field
    env = executor_env("postgresql+psycopg2://u@h/db", "redis://127.0.0.1:1/0")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    # Celery's result backend names the driver (plain postgresql:// means psycopg 3 today).
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql+psycopg2://u@h/db"


@pytest.mark.slow
def test_a_run_through_the_rest_api_uses_both_workers_and_passes_no_local_path(
    celery_stack: AirflowStack, stack_source: SourceServer
) -> None:
    api = celery_stack.api
    stack_source.set_faults({KEY: FaultSpec("503", count=1)})  # one retry on the ingest worker
    run_id = api.trigger(PIPELINE_DAG_ID, logical(KEY))["dag_run_id"]
    run = api.wait_for_run(PIPELINE_DAG_ID, run_id, RUN_TIMEOUT_S)
    instances = {ti["task_id"]: ti for ti in api.task_instances(PIPELINE_DAG_ID, run_id)}
    assert run["state"] == "success", failure_details(celery_stack, instances)
    assert {t: instances[t]["state"] for t in PIPELINE_TASKS} == dict.fromkeys(
        PIPELINE_TASKS, "success"
    )
    assert instances["fetch"]["try_number"] == 2
    # The task-instance records: each task on its queue's worker, so both workers ran tasks.
    assert {t: instances[t]["queue"] for t in PIPELINE_TASKS} == QUEUE_OF
    assert {t: instances[t]["hostname"] for t in PIPELINE_TASKS} == {
        t: f"worker-{queue}" for t, queue in QUEUE_OF.items()
    }
    xcoms = api.xcom_values(PIPELINE_DAG_ID, run_id)
    assert local_paths(xcoms) == []
    store = store_folder(celery_stack).as_uri() + "/"
    assert uris(xcoms) and all(uri.startswith(store) for uri in uris(xcoms))
    for worker in celery_stack.workers:
        assert worker.scratch_dir.is_dir() and files_under(worker.scratch_dir) == []

    def report_run() -> dict[str, Any] | None:
        done = [r for r in api.dag_runs(REPORT_DAG_ID) if r["state"] in ("success", "failed")]
        return done[0] if done else None

    from roadmap_lab.airflow_api import wait_for

    report = wait_for(f"{REPORT_DAG_ID} run from the Asset event", report_run, RUN_TIMEOUT_S)
    assert (report["state"], report["run_type"]) == ("success", "asset_triggered")
    written = json.loads((store_folder(celery_stack) / "reports" / f"{KEY}.json").read_text())
    assert written["triggered_by"] == [KEY]
    assert (store_folder(celery_stack) / "reports" / f"{KEY}.html").is_file()


@pytest.mark.slow
def test_the_cli_backfill_runs_airflows_backfill_on_the_scheduler(
    celery_stack: AirflowStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATA_PIPELINES_AIRFLOW_API_URL", celery_stack.url)
    monkeypatch.setenv("DATA_PIPELINES_AIRFLOW_PASSWORD", celery_stack.password)
    monkeypatch.setenv("DATA_PIPELINES_BACKFILL_TIMEOUT_S", str(RUN_TIMEOUT_S))
    # From the history's start: a week that already ran (the test above) is left alone.
    result = CliRunner().invoke(app, ["backfill", "--start", KEY, "--end", THIRD])
    api = celery_stack.api
    runs = {r["logical_date"][:10]: r for r in api.dag_runs(PIPELINE_DAG_ID)}
    assert result.exit_code == 0, result.output + failure_details(celery_stack, runs)
    assert {key: runs[key]["state"] for key in (KEY, NEXT, THIRD)} == dict.fromkeys(
        (KEY, NEXT, THIRD), "success"
    )
    assert runs[NEXT]["run_type"] == runs[THIRD]["run_type"] == "backfill"
    assert runs[NEXT]["end_date"] < runs[THIRD]["start_date"]  # one at a time, oldest first
    for key in (NEXT, THIRD):
        hosts = {
            ti["hostname"] for ti in api.task_instances(PIPELINE_DAG_ID, runs[key]["dag_run_id"])
        }
        assert hosts == {"worker-ingest", "worker-train"}
    current = json.loads((store_folder(celery_stack) / "models" / "CURRENT").read_text())
    assert current["slice_id"] == THIRD
