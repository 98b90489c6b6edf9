"""End to end with Airflow's own test runner (dag.test(), sqlite metadata DB) against the real
source on 127.0.0.1. Attempts are counted from Airflow's task-instance records."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from data_pipelines.local import tree_digest
from data_pipelines.names import PIPELINE_DAG_ID, PIPELINE_TASKS, REPORT_DAG_ID
from data_pipelines.runner import RunOutcome, run_dag
from data_pipelines.source import FaultSpec, SourceServer
from dp_testing import WebhookReceiver, files_under

pytestmark = pytest.mark.usefixtures("airflow_home")

KEY, NEXT = "2021-02-14", "2021-02-21"


def run(key: str) -> RunOutcome:
    return run_dag(PIPELINE_DAG_ID, datetime.strptime(key, "%Y-%m-%d").replace(tzinfo=UTC))


def test_good_data_publishes_a_model_and_the_report_dag_reads_it(pipeline_env: Path) -> None:
    outcome = run(KEY)
    assert outcome.succeeded
    assert outcome.task_states() == dict.fromkeys(PIPELINE_TASKS, "success")
    assert all(outcome.tries(task) == 1 for task in PIPELINE_TASKS)
    current = (pipeline_env / "models" / KEY / "CURRENT").read_text().strip()
    manifest = json.loads((pipeline_env / "models" / KEY / current / "manifest.json").read_text())
    assert manifest["logical_date"] == f"{KEY}T00:00:00+00:00"
    assert files_under(pipeline_env / ".staging") == []

    report_run = run_dag(REPORT_DAG_ID, datetime(2021, 2, 14, tzinfo=UTC))
    assert report_run.succeeded
    report = json.loads((pipeline_env / "reports" / f"{KEY}.json").read_text())
    assert [m["version"] for m in report["models"]] == [current]


@pytest.mark.parametrize(("fault", "tries"), [(FaultSpec("503", 2), 3), (FaultSpec("reset", 1), 2)])
def test_transient_faults_succeed_after_retries(
    pipeline_env: Path, source: SourceServer, fault: FaultSpec, tries: int
) -> None:
    source.set_faults({KEY: fault})
    outcome = run(KEY)
    assert outcome.succeeded
    assert outcome.tries("fetch") == tries
    fetch_states = [a.state for a in outcome.attempts if a.task_id == "fetch"]
    assert fetch_states == ["failed"] * (tries - 1) + ["success"]
    assert source.requests[KEY] == tries


def test_404_fails_at_once_alerts_and_writes_nothing(
    pipeline_env: Path, source: SourceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    source.set_faults({KEY: FaultSpec("404")})
    with WebhookReceiver() as webhook:
        monkeypatch.setenv("DATA_PIPELINES_ALERT_WEBHOOK_URL", webhook.url)
        outcome = run(KEY)
    assert outcome.state == "failed"
    assert outcome.tries("fetch") == 1  # permanent: no retry
    assert source.requests[KEY] == 1
    assert outcome.task_states()["publish"] == "upstream_failed"
    assert len(webhook.received) == 1
    alert = webhook.received[0]
    assert (alert["dag_id"], alert["task_id"]) == (PIPELINE_DAG_ID, "fetch")
    assert "HTTP 404" in alert["error"]
    assert files_under(pipeline_env) == []


def test_corrupt_slice_is_quarantined_and_released(
    pipeline_env: Path, source: SourceServer
) -> None:
    assert run(KEY).succeeded
    source.set_faults({NEXT: FaultSpec("corrupt")})
    outcome = run(NEXT)
    assert outcome.state == "failed"
    assert outcome.task_states()["validate"] == "failed"
    assert outcome.tries("validate") == 1  # a schema violation is permanent
    report = json.loads((pipeline_env / "quarantine" / NEXT / "report.json").read_text())
    assert "MedInc:in_range(0.0, 20.0)" in report["rules"]
    assert not (pipeline_env / "slices" / f"{NEXT}.csv").exists()
    assert not (pipeline_env / "models" / NEXT).exists()

    from data_pipelines.settings import ProjectSettings
    from data_pipelines.steps import release

    source.set_faults({})
    release(ProjectSettings(), NEXT)
    assert run(NEXT).succeeded
    manifest_dir = pipeline_env / "models" / NEXT
    manifest = json.loads(
        (
            manifest_dir / (manifest_dir / "CURRENT").read_text().strip() / "manifest.json"
        ).read_text()
    )
    assert [w["slice_id"] for w in manifest["window"]] == [KEY, NEXT]


def test_rerun_leaves_identical_outputs(pipeline_env: Path, source: SourceServer) -> None:
    assert run(KEY).succeeded
    before = tree_digest(pipeline_env)
    source.set_faults({KEY: FaultSpec("truncate", 1)})
    again = run(KEY)
    assert again.succeeded and again.tries("fetch") == 2
    assert tree_digest(pipeline_env) == before
    assert len(list((pipeline_env / "models" / KEY).iterdir())) == 2  # one version + CURRENT
