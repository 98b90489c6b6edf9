"""The alert receiver: Alertmanager's webhook (JSON payload version 4) in, a run of the retraining
DAG out, through Airflow's REST API.

For a firing notification that carries a retrain alert (``retrain_alerts``), and only then:
- a run of the same alert group queued or running in Airflow: nothing new (de-duplicated);
- a run of the group that ended less than the cooldown ago: nothing new (cooldown);
- else a run whose id names the group (``alert__<digest of the group key>__<time>``), without a
  logical date (the DAG decides which data a retrain covers), whose conf carries the group key,
  the group's labels, each firing alert's labels and the trigger time.
The run state is Airflow's own, read on every notification, so a restarted receiver keeps the
rule; notifications are decided one at a time. Resolved notifications trigger nothing.

Failures fail closed and visibly: Airflow unreachable or answering 5xx -> 503, refusing (bad
credentials, unknown DAG) -> 502, so Alertmanager keeps the notification and retries; each is
logged and counted in ``mlops_loop_notifications_total{decision="airflow_error"}``. POST /alerts
needs the bearer token (401 otherwise); GET /health and GET /metrics are open."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from roadmap_lab.airflow_api import AirflowApiError, AirflowUnavailable
from roadmap_lab.logs import setup_logging

from mlops_loop.airflow_rest import ACTIVE_STATES, AirflowClient, DagRun, dag_runs, trigger_run
from mlops_loop.settings import LoopSettings

logger = logging.getLogger(__name__)

RUN_PREFIX = "alert"


class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: str = ""
    fingerprint: str = ""


class Notification(BaseModel):
    """Alertmanager's webhook payload, version 4 (the fields the receiver reads)."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    groupKey: str = Field(min_length=1)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    externalURL: str = ""
    alerts: list[Alert]


class Decision(StrEnum):
    TRIGGERED = "triggered"
    DEDUPLICATED = "deduplicated"
    COOLDOWN = "cooldown"
    RESOLVED = "resolved"
    IGNORED = "ignored"
    AIRFLOW_ERROR = "airflow_error"


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    group_key: str
    run_id: str | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": str(self.decision),
            "group_key": self.group_key,
            "run_id": self.run_id,
            "detail": self.detail,
        }


def group_run_prefix(group_key: str) -> str:
    """The run-id prefix of an alert group (Airflow's run ids allow [A-Za-z0-9_.~:+-] only)."""
    return f"{RUN_PREFIX}__{hashlib.sha256(group_key.encode()).hexdigest()[:16]}__"


def run_conf(notification: Notification, alerts: list[Alert], now: datetime) -> dict[str, Any]:
    return {
        "trigger": "alertmanager",
        "group_key": notification.groupKey,
        "group_labels": notification.groupLabels,
        "common_labels": notification.commonLabels,
        "alerts": [
            {"labels": a.labels, "starts_at": a.startsAt, "fingerprint": a.fingerprint}
            for a in alerts
        ],
        "alertmanager_url": notification.externalURL,
        "triggered_at": now.isoformat(),
    }


class PipelineTrigger:
    """Turns one notification into at most one DAG run (see the module's docstring)."""

    def __init__(self, client: AirflowClient, settings: LoopSettings) -> None:
        self.client = client
        self.dag_id = settings.dag_id
        self.retrain_alerts = frozenset(settings.retrain_alerts)
        self.cooldown = timedelta(seconds=settings.wall_seconds(settings.cooldown_s))
        self._one_at_a_time = threading.Lock()

    def handle(self, notification: Notification) -> Outcome:
        key = notification.groupKey
        if notification.status == "resolved":
            return Outcome(Decision.RESOLVED, key, None, "resolved: nothing to trigger")
        alerts = [
            a
            for a in notification.alerts
            if a.status == "firing" and a.labels.get("alertname") in self.retrain_alerts
        ]
        if not alerts:
            return Outcome(Decision.IGNORED, key, None, "no firing retrain alert in the group")
        prefix = group_run_prefix(key)
        with self._one_at_a_time:
            active = self._group_runs(prefix, states=ACTIVE_STATES)
            if active:
                run = active[0]
                return Outcome(Decision.DEDUPLICATED, key, run.run_id, f"run is {run.state}")
            now = datetime.now(UTC)
            ended = [
                (run.end_date, run.run_id)
                for run in self._group_runs(prefix, ended_after=now - self.cooldown)
                if run.end_date is not None
            ]
            if ended:
                end, run_id = max(ended)
                until = end + self.cooldown
                detail = f"run ended {end:%H:%M:%S}; cooldown until {until:%H:%M:%S} UTC"
                return Outcome(Decision.COOLDOWN, key, run_id, detail)
            run_id = f"{prefix}{now:%Y%m%dT%H%M%S.%fZ}"
            # The trigger time is in the conf; the run has no logical date (trigger_run).
            trigger_run(self.client, self.dag_id, run_id, run_conf(notification, alerts, now))
            return Outcome(Decision.TRIGGERED, key, run_id, f"{self.dag_id} run queued")

    def _group_runs(self, prefix: str, **query: Any) -> list[DagRun]:
        runs = dag_runs(self.client, self.dag_id, **query)
        return [run for run in runs if run.run_id.startswith(prefix)]


def create_app(settings: LoopSettings | None = None) -> FastAPI:
    """The receiver's app (an app factory: ``uvicorn --factory``); fails at once without a
    webhook token or an Airflow password."""
    settings = settings or LoopSettings()
    setup_logging(settings.log_level)
    token = settings.webhook_token()
    client = AirflowClient(
        settings.airflow_url,
        settings.airflow_username,
        settings.airflow_secret(),
        timeout_s=settings.airflow_timeout_s,
    )
    trigger = PipelineTrigger(client, settings)
    registry = CollectorRegistry()
    decisions = Counter(
        "mlops_loop_notifications_total",
        "Alertmanager notifications received, by what the receiver decided",
        ["decision"],
        registry=registry,
    )
    for decision in Decision:
        decisions.labels(str(decision))

    def authenticated(authorization: str | None = Header(default=None)) -> None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
            )

    app = FastAPI(title="MLOps loop alert receiver")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "dag_id": settings.dag_id}

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/alerts", dependencies=[Depends(authenticated)])
    def alerts(notification: Notification) -> JSONResponse:
        try:
            outcome = trigger.handle(notification)
        except AirflowApiError as error:  # AirflowUnavailable, or AirflowRefused (4xx)
            status = 503 if isinstance(error, AirflowUnavailable) else 502
            decisions.labels(str(Decision.AIRFLOW_ERROR)).inc()
            logger.error(
                "alert group %s: Airflow failed, answering %d so Alertmanager retries: %s",
                notification.groupKey,
                status,
                error,
            )
            outcome = Outcome(Decision.AIRFLOW_ERROR, notification.groupKey, None, str(error))
            return JSONResponse(outcome.as_dict(), status_code=status)
        decisions.labels(str(outcome.decision)).inc()
        logger.info(
            "alert group %s: %s (%s), run %s",
            outcome.group_key,
            outcome.decision,
            outcome.detail,
            outcome.run_id,
        )
        return JSONResponse(outcome.as_dict())

    return app
