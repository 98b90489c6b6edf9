"""End to end with Airflow's own test runner (dag.test(), sqlite metadata DB) against the real
source on 127.0.0.1. Attempts are counted from Airflow's task-instance records, alerts arrive
from the Airflow notifier, XComs are read from the metadata DB."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from data_pipelines.local import tree_digest
from data_pipelines.names import PIPELINE_DAG_ID, PIPELINE_TASKS, REPORT_DAG_ID
from data_pipelines.runner import RunOutcome, run_dag, xcom_values
from data_pipelines.source import FaultSpec, SourceServer
from dp_testing import WebhookReceiver, files_under, local_paths, uris

pytestmark = pytest.mark.usefixtures("airflow_home")

KEY, NEXT, THIRD = "2021-02-14", "2021-02-21", "2021-02-28"  # the tests' history starts at KEY


def run(key: str) -> RunOutcome:
    return run_dag(PIPELINE_DAG_ID, datetime.strptime(key, "%Y-%m-%d").replace(tzinfo=UTC))


def published(output: Path, key: str) -> dict:
    models = output / "models" / key
    return json.loads(
        (models / (models / "CURRENT").read_text().strip() / "manifest.json").read_text()
    )


def test_good_data_publishes_through_the_store_and_the_report_dag_reads_it(
    pipeline_env: Path, tmp_path: Path
) -> None:
    outcome = run(KEY)
    assert outcome.succeeded
    assert outcome.task_states() == dict.fromkeys(PIPELINE_TASKS, "success")
    assert all(outcome.tries(task) == 1 for task in PIPELINE_TASKS)
    assert published(pipeline_env, KEY)["logical_date"] == f"{KEY}T00:00:00+00:00"
    # Tasks passed each other store URIs and hashes, never local paths; scratch is gone.
    xcoms = xcom_values(PIPELINE_DAG_ID, outcome.run_id)
    assert {name.split("/")[0] for name in xcoms} == set(PIPELINE_TASKS)
    assert local_paths(xcoms) == []
    assert uris(xcoms) and all(u.startswith(pipeline_env.as_uri() + "/") for u in uris(xcoms))
    assert files_under(pipeline_env / "staging") == []
    assert (tmp_path / "scratch").is_dir() and files_under(tmp_path / "scratch") == []

    report_run = run_dag(REPORT_DAG_ID, datetime(2021, 2, 14, tzinfo=UTC))
    assert report_run.succeeded
    report = json.loads((pipeline_env / "reports" / f"{KEY}.json").read_text())
    assert [m["slice_id"] for m in report["models"]] == [KEY]
    assert "data:image/png;base64," in (pipeline_env / "reports" / f"{KEY}.html").read_text()


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
    assert [w["slice_id"] for w in published(pipeline_env, NEXT)["window"]] == [KEY, NEXT]


def test_rerun_leaves_identical_outputs(pipeline_env: Path, source: SourceServer) -> None:
    assert run(KEY).succeeded
    before = tree_digest(pipeline_env)
    source.set_faults({KEY: FaultSpec("truncate", 1)})
    again = run(KEY)
    assert again.succeeded and again.tries("fetch") == 2
    assert tree_digest(pipeline_env) == before
    assert len(list((pipeline_env / "models" / KEY).iterdir())) == 2  # one version + CURRENT


def test_an_out_of_order_backfill_fails_clearly_and_mixes_nothing(pipeline_env: Path) -> None:
    early = run(THIRD)  # before the weeks it needs
    assert early.state == "failed" and early.tries("fetch") == 1
    assert early.task_states()["train"] == "upstream_failed"
    assert files_under(pipeline_env) == []
    for key in (KEY, NEXT, THIRD):
        assert run(key).succeeded
    before = tree_digest(pipeline_env)
    assert run(NEXT).succeeded  # an older week again: nothing changes, CURRENT stays
    assert tree_digest(pipeline_env) == before
    current = json.loads((pipeline_env / "models" / "CURRENT").read_text())
    assert current["slice_id"] == THIRD
    window = published(pipeline_env, THIRD)["window"]
    assert [w["slice_id"] for w in window] == [KEY, NEXT, THIRD]


def test_a_missing_middle_slice_stops_the_weeks_after_it(
    pipeline_env: Path, source: SourceServer
) -> None:
    source.set_faults({NEXT: FaultSpec("404")})
    outcomes = [run(key) for key in (KEY, NEXT, THIRD)]
    assert [o.state for o in outcomes] == ["success", "failed", "failed"]
    assert outcomes[2].tries("fetch") == 1  # refused before any download
    assert source.requests[THIRD] == 0
    assert not (pipeline_env / "models" / THIRD).exists()
    source.set_faults({})
    assert run(NEXT).succeeded and run(THIRD).succeeded
    digests = tree_digest(pipeline_env)
    window = published(pipeline_env, THIRD)["window"]
    assert {w["slice_id"]: w["sha256"] for w in window} == {
        key: digests[f"slices/{key}.csv"] for key in (KEY, NEXT, THIRD)
    }


def test_a_source_that_changes_a_past_slice_is_quarantined_and_alerted(
    pipeline_env: Path, source: SourceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(KEY).succeeded and run(NEXT).succeeded
    before = tree_digest(pipeline_env)
    source.set_faults({KEY: FaultSpec("changed")})
    with WebhookReceiver() as webhook:
        monkeypatch.setenv("DATA_PIPELINES_ALERT_WEBHOOK_URL", webhook.url)
        outcome = run(KEY)
    assert outcome.state == "failed" and outcome.tries("fetch") == 1
    assert [(a["task_id"], "changed upstream" in a["error"]) for a in webhook.received] == [
        ("fetch", True)
    ]
    after = tree_digest(pipeline_env)
    assert {k: v for k, v in after.items() if not k.startswith("quarantine/")} == before
    report = json.loads((pipeline_env / "quarantine" / KEY / "report.json").read_text())
    assert report["rules"] == ["changed_after_ingest"]
