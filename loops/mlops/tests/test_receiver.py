"""The receiver's own rules, on the real app (FastAPI's test client): authentication, payload
validation, resolved and unrelated notifications, and Airflow unreachable (a port nothing
listens on) answered 503 and counted. The paths through a real Airflow and Alertmanager are in
test_alert_to_pipeline.py."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from loop_testing import GROUP_KEY, notification
from mlops_loop.cli import app as cli_app
from mlops_loop.errors import MlopsLoopError
from mlops_loop.receiver import create_app, group_run_prefix
from mlops_loop.settings import LoopSettings
from pydantic import SecretStr
from roadmap_lab.services import free_port
from typer.testing import CliRunner


@pytest.fixture
def settings(token_file: Path) -> LoopSettings:
    # Airflow "runs" on a port nothing listens on: any call to it would fail (503).
    return LoopSettings(
        webhook_token_file=token_file,
        airflow_url=f"http://127.0.0.1:{free_port()}",
        airflow_password=SecretStr("not-used"),
        airflow_timeout_s=2,
    )


@pytest.fixture
def client(settings: LoopSettings) -> TestClient:
    return TestClient(create_app(settings))


def auth(token_file: Path) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_file.read_text()}"}


def counts(client: TestClient) -> dict[str, float]:
    text = client.get("/metrics").text
    pattern = r'^mlops_loop_notifications_total\{decision="(\w+)"\} (\S+)$'
    return {name: float(value) for name, value in re.findall(pattern, text, re.M)}


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-token-of-some-length", "Basic YWRtaW46YWRtaW4=", "Bearer"],
)
def test_the_webhook_needs_the_bearer_token(client: TestClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    reply = client.post("/alerts", json=notification(), headers=headers)
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"] == "Bearer"
    assert sum(counts(client).values()) == 0


def test_resolved_notifications_trigger_nothing(client: TestClient, token_file: Path) -> None:
    reply = client.post("/alerts", json=notification("resolved"), headers=auth(token_file))
    # 200 although Airflow is unreachable: the receiver never called it.
    assert reply.status_code == 200
    assert reply.json()["decision"] == "resolved"
    assert counts(client)["resolved"] == 1


def test_alerts_other_than_drift_and_accuracy_trigger_nothing(
    client: TestClient, token_file: Path
) -> None:
    payload = notification(alertname="ModelServiceDown")
    reply = client.post("/alerts", json=payload, headers=auth(token_file))
    assert reply.status_code == 200
    assert reply.json()["decision"] == "ignored"


def test_airflow_unreachable_is_a_503_counted_and_logged(
    client: TestClient, token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="mlops_loop.receiver"):
        reply = client.post("/alerts", json=notification(), headers=auth(token_file))
    assert reply.status_code == 503
    assert reply.json()["decision"] == "airflow_error"
    assert counts(client)["airflow_error"] == 1
    assert "answering 503 so Alertmanager retries" in caplog.text


@pytest.mark.parametrize(
    "payload",
    [{**notification(), "version": "3"}, {**notification(), "alerts": "none"}, {"groupKey": ""}],
)
def test_a_malformed_payload_is_a_4xx(
    client: TestClient, token_file: Path, payload: dict[str, Any]
) -> None:
    reply = client.post("/alerts", json=payload, headers=auth(token_file))
    assert reply.status_code == 422
    assert reply.json()["detail"]


def test_the_receiver_does_not_start_without_its_secrets(token_file: Path) -> None:
    with pytest.raises(MlopsLoopError, match="WEBHOOK_TOKEN_FILE"):
        create_app(LoopSettings(airflow_password=SecretStr("x")))
    with pytest.raises(MlopsLoopError, match="AIRFLOW_PASSWORD"):
        create_app(LoopSettings(webhook_token_file=token_file))
    short = token_file.parent / "short-token"
    short.write_text("abc\n")
    with pytest.raises(MlopsLoopError, match="under 16 characters"):
        create_app(LoopSettings(webhook_token_file=short, airflow_password=SecretStr("x")))


def test_the_cli_receiver_fails_in_one_line_without_a_token() -> None:
    result = CliRunner().invoke(cli_app, ["receiver"])
    assert result.exit_code == 2
    assert "WEBHOOK_TOKEN_FILE" in result.output
    assert "Traceback" not in result.output


def test_the_receiver_binds_localhost_by_default() -> None:
    assert LoopSettings().host == "127.0.0.1"


def test_a_group_prefix_is_a_valid_run_id_and_names_one_group() -> None:
    prefix = group_run_prefix(GROUP_KEY)
    assert re.fullmatch(r"[A-Za-z0-9_.~:+-]+", prefix)
    assert prefix == group_run_prefix(GROUP_KEY)
    assert prefix != group_run_prefix(GROUP_KEY.replace("housing", "housing-2"))
