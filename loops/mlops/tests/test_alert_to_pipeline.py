"""Alert to pipeline on real components: alerts fired through a real Alertmanager (the loop's
routing, rendered for a fast clock) reach the receiver (uvicorn on 127.0.0.1, bearer token),
which triggers the probe DAG on a real Airflow (api-server, scheduler, dag-processor,
LocalExecutor, PostgreSQL). Observed, not assumed: the run and its conf, de-duplication while the
run is held in flight, the cooldown after it finished, resolved notifications, and an api-server
outage answered 5xx until Alertmanager's retries get through."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from loop_testing import (
    ADMIN,
    PROBE_DAG,
    STARTUP_TIMEOUT_S,
    AirflowStack,
    airflow_stack,
    alert,
    decision_counts,
    notification,
    post_alerts,
)
from mlops_loop.airflow_rest import AirflowClient, DagRun, dag_runs
from mlops_loop.alert_routing import alertmanager_config
from mlops_loop.receiver import create_app
from mlops_loop.settings import LoopSettings
from mlops_loop.stack import wait_for
from pydantic import SecretStr
from roadmap_lab.airflow_api import AirflowRefused
from roadmap_lab.services import PostgresCluster, alertmanager, free_port, uvicorn_app

pytestmark = pytest.mark.slow

# Alertmanager calls within a second, reports group changes every 2 s and repeats every ~4 s
# (a repeat waits for the next group flush); the receiver's cooldown is longer than a repeat.
GROUP_WAIT_S, GROUP_INTERVAL_S, REPEAT_INTERVAL_S = 0.5, 2.0, 3.0
COOLDOWN_S = 10.0
RUN_TIMEOUT_S = 120.0


@dataclass
class Loop:
    airflow: AirflowStack
    client: AirflowClient  # the test's own view of Airflow
    receiver_url: str
    receiver_log: Path
    alertmanager_url: str

    def group_runs(self, service: str) -> list[DagRun]:
        return [run for run in dag_runs(self.client, PROBE_DAG)
                if run.conf.get("group_labels") == {"service": service}]  # fmt: skip

    def counts(self) -> dict[str, float]:
        return decision_counts(self.receiver_url)

    def wait_for_decision(self, decision: str, after: float, timeout_s: float = 60) -> None:
        wait_for(f"a {decision!r} decision", lambda: self.counts()[decision] > after, timeout_s)

    def finished(self, run_id: str) -> DagRun:
        def done() -> DagRun | None:
            runs = [r for r in dag_runs(self.client, PROBE_DAG, states=("success", "failed"))
                    if r.run_id == run_id]  # fmt: skip
            return runs[0] if runs else None

        return wait_for(f"run {run_id} to finish", done, RUN_TIMEOUT_S)


def dag_parsed(client: AirflowClient) -> bool:
    try:
        dag_runs(client, PROBE_DAG)
    except AirflowRefused:  # 404 until the dag-processor has parsed it
        return False
    return True


@pytest.fixture(scope="module")
def loop(
    postgres: PostgresCluster, tmp_path_factory: pytest.TempPathFactory, token_file: Path
) -> Iterator[Loop]:
    folder = tmp_path_factory.mktemp("loop")
    database = postgres.create_database("airflow", driver="postgresql+psycopg2")
    receiver_port = free_port()
    with contextlib.ExitStack() as stack:
        airflow = stack.enter_context(airflow_stack(folder / "airflow", database))
        client = AirflowClient(airflow.url, ADMIN, airflow.password, timeout_s=30)
        wait_for("the probe DAG parsed", lambda: dag_parsed(client), STARTUP_TIMEOUT_S, 1.0)
        receiver_url = stack.enter_context(uvicorn_app(
            "mlops_loop.receiver:create_app", folder / "receiver", factory=True,
            port=receiver_port, ready_path="/health",
            env={"MLOPS_LOOP_WEBHOOK_TOKEN_FILE": str(token_file),
                 "MLOPS_LOOP_AIRFLOW_URL": airflow.url,
                 "MLOPS_LOOP_AIRFLOW_PASSWORD": airflow.password,
                 "MLOPS_LOOP_DAG_ID": PROBE_DAG,
                 "MLOPS_LOOP_COOLDOWN_S": str(COOLDOWN_S),
                 "MLOPS_LOOP_AIRFLOW_TIMEOUT_S": "5"},
        ))  # fmt: skip
        settings = LoopSettings(
            receiver_url=receiver_url, webhook_token_file=token_file, group_wait_s=GROUP_WAIT_S,
            group_interval_s=GROUP_INTERVAL_S, repeat_interval_s=REPEAT_INTERVAL_S,
        )  # fmt: skip
        manager = stack.enter_context(
            alertmanager(alertmanager_config(settings), folder / "alertmanager")
        )
        yield Loop(
            airflow=airflow,
            client=client,
            receiver_url=receiver_url,
            receiver_log=folder / "receiver" / f"uvicorn-{receiver_port}.log",
            alertmanager_url=manager.url,
        )


def fresh_receiver(loop: Loop, token_file: Path, password: str) -> TestClient:
    """Another receiver, in this process, that has seen nothing yet."""
    settings = LoopSettings(
        webhook_token_file=token_file,
        airflow_url=loop.airflow.url,
        airflow_password=SecretStr(password),
        dag_id=PROBE_DAG,
        cooldown_s=COOLDOWN_S,
    )
    client = TestClient(create_app(settings))
    client.headers["Authorization"] = f"Bearer {token_file.read_text()}"
    return client


def test_a_drift_alert_triggers_one_run_per_group_then_a_cooldown(
    loop: Loop, token_file: Path
) -> None:
    service = "housing-a"
    post_alerts(loop.alertmanager_url, [alert("ModelFeatureDrift", service, feature="MedInc")])
    first = wait_for("the group's run", lambda: loop.group_runs(service), 60)[0]
    assert first.run_id.startswith("alert__")
    assert first.state in ("queued", "running")
    conf = first.conf
    assert conf["trigger"] == "alertmanager"
    assert 'service="housing-a"' in conf["group_key"]
    [fired] = conf["alerts"]
    assert fired["labels"] == {"alertname": "ModelFeatureDrift", "service": service,
                               "component": "model", "severity": "warning", "feature": "MedInc"}

    # Another alert of the group while the run is held: Alertmanager reports it, no second run.
    before = loop.counts()["deduplicated"]
    post_alerts(loop.alertmanager_url, [alert("ModelAccuracyDegradation", service)])
    loop.wait_for_decision("deduplicated", after=before)
    assert [run.run_id for run in loop.group_runs(service)] == [first.run_id]
    # The state is Airflow's: a receiver without memory of the run decides the same.
    fresh = fresh_receiver(loop, token_file, loop.airflow.password)
    same_group = {**notification(), "groupKey": conf["group_key"]}
    decided = fresh.post("/alerts", json=same_group).json()
    assert (decided["decision"], decided["run_id"]) == ("deduplicated", first.run_id)

    # The run finishes; repeats within the cooldown trigger nothing, the first one after it does.
    cooldowns = loop.counts()["cooldown"]
    loop.airflow.release(first.run_id)
    first_done = loop.finished(first.run_id)
    assert first_done.state == "success"
    decided = fresh.post("/alerts", json=same_group).json()
    assert (decided["decision"], decided["run_id"]) == ("cooldown", first.run_id)
    loop.wait_for_decision("cooldown", after=cooldowns)
    assert len(loop.group_runs(service)) == 1
    second = wait_for("a run after the cooldown",
                      lambda: [r for r in loop.group_runs(service) if r.run_id != first.run_id],
                      COOLDOWN_S + 60)[0]  # fmt: skip
    assert first_done.end_date is not None and second.queued_at is not None
    assert second.queued_at - first_done.end_date >= timedelta(seconds=COOLDOWN_S)
    assert {a["labels"]["alertname"] for a in second.conf["alerts"]} == {
        "ModelFeatureDrift", "ModelAccuracyDegradation"
    }  # fmt: skip

    # Both alerts resolve: the resolved notification triggers nothing.
    resolved = loop.counts()["resolved"]
    post_alerts(loop.alertmanager_url, [
        alert("ModelFeatureDrift", service, resolved=True, feature="MedInc"),
        alert("ModelAccuracyDegradation", service, resolved=True),
    ])  # fmt: skip
    loop.wait_for_decision("resolved", after=resolved)
    assert len(loop.group_runs(service)) == 2
    loop.airflow.release(second.run_id)
    assert loop.finished(second.run_id).state == "success"


def test_an_airflow_outage_is_a_5xx_until_alertmanagers_retry_gets_through(loop: Loop) -> None:
    service = "housing-b"
    errors = loop.counts()["airflow_error"]
    loop.airflow.stop_api_server()
    post_alerts(loop.alertmanager_url, [alert("ModelAccuracyDegradation", service)])
    # Refused at least twice: Alertmanager kept the notification and sent it again.
    wait_for("Alertmanager's retries", lambda: loop.counts()["airflow_error"] >= errors + 2, 60)
    logged = " ".join(loop.receiver_log.read_text().split())  # rich wraps long lines
    assert "answering 503 so Alertmanager retries" in logged

    loop.airflow.start_api_server()
    run = wait_for("the run once Airflow is back", lambda: loop.group_runs(service), 120)[0]
    deduplicated = loop.counts()["deduplicated"]
    loop.wait_for_decision("deduplicated", after=deduplicated)
    assert [r.run_id for r in loop.group_runs(service)] == [run.run_id]
    post_alerts(loop.alertmanager_url, [alert("ModelAccuracyDegradation", service, resolved=True)])
    loop.airflow.release(run.run_id)
    assert loop.finished(run.run_id).state == "success"


def test_wrong_airflow_credentials_are_a_502(loop: Loop, token_file: Path) -> None:
    reply = fresh_receiver(loop, token_file, "wrong-password").post("/alerts", json=notification())
    assert reply.status_code == 502
    assert "401" in reply.json()["detail"]
