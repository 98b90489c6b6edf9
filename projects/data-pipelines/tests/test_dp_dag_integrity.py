"""DAG integrity: both DAG files import cleanly into a DagBag, the graph has no cycles, every task
retries with a timeout and alerts through the Airflow notifier, tasks are routed to the ingest and
train queues, and the Asset links the pipeline to its downstream DAG."""

from __future__ import annotations

import graphlib
from pathlib import Path
from typing import Any

import pytest
from data_pipelines.names import PIPELINE_DAG_ID, PIPELINE_TASKS, REPORT_DAG_ID


@pytest.fixture(scope="module")
def dags(airflow_home: Path) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag
    from data_pipelines.runner import DAGS_FOLDER

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert bag.import_errors == {}
    return dict(bag.dags)


def test_both_dags_are_defined(dags: dict[str, Any]) -> None:
    assert set(dags) == {PIPELINE_DAG_ID, REPORT_DAG_ID}
    assert set(dags[PIPELINE_DAG_ID].task_dict) == set(PIPELINE_TASKS)


@pytest.mark.parametrize("dag_id", [PIPELINE_DAG_ID, REPORT_DAG_ID])
def test_no_cycles_and_a_single_chain_start(dags: dict[str, Any], dag_id: str) -> None:
    dag = dags[dag_id]
    graph = {task_id: task.upstream_task_ids for task_id, task in dag.task_dict.items()}
    order = list(graphlib.TopologicalSorter(graph).static_order())  # CycleError on a cycle
    if dag_id == PIPELINE_DAG_ID:
        assert order[0] == "fetch" and order[-1] == "publish"
        assert dag.task_dict["publish"].upstream_task_ids == {
            "validate", "preprocess", "train", "evaluate"
        }  # fmt: skip


@pytest.mark.parametrize("dag_id", [PIPELINE_DAG_ID, REPORT_DAG_ID])
def test_every_task_retries_with_backoff_timeout_and_alert(
    dags: dict[str, Any], dag_id: str
) -> None:
    from airflow.sdk import BaseNotifier
    from data_pipelines.alerts import AlertNotifier

    for task in dags[dag_id].tasks:
        assert task.retries >= 1, task.task_id
        assert task.retry_exponential_backoff > 1, task.task_id
        assert task.execution_timeout is not None and task.execution_timeout.total_seconds() > 0
        callbacks = task.on_failure_callback or []
        assert [type(c) for c in callbacks] == [AlertNotifier], task.task_id
        assert isinstance(callbacks[0], BaseNotifier)


def test_tasks_are_routed_to_the_ingest_and_train_queues(
    airflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from data_pipelines.runner import DAGS_FOLDER

    monkeypatch.setenv("DATA_PIPELINES_INGEST_QUEUE", "ingest")
    monkeypatch.setenv("DATA_PIPELINES_TRAIN_QUEUE", "train")
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).get_dag(PIPELINE_DAG_ID)
    assert {t.task_id: t.queue for t in dag.tasks} == {
        "fetch": "ingest", "validate": "ingest", "preprocess": "train", "train": "train",
        "evaluate": "train", "publish": "train",
    }  # fmt: skip


def test_publish_emits_the_asset_the_report_dag_is_scheduled_on(dags: dict[str, Any]) -> None:
    from data_pipelines.tasks import MODEL_ASSET

    assert MODEL_ASSET in dags[PIPELINE_DAG_ID].task_dict["publish"].outlets
    other_outlets = [t.outlets for t in dags[PIPELINE_DAG_ID].tasks if t.task_id != "publish"]
    assert all(not outlets for outlets in other_outlets)
    report = dags[REPORT_DAG_ID]
    assert list(report.timetable.asset_condition.objects) == [MODEL_ASSET]
