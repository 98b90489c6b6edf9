"""Failure alerts as an Airflow notifier (``BaseNotifier``): every task's ``on_failure_callback``,
which Airflow calls once per task, after its final failed try. It logs one line and, when
DATA_PIPELINES_ALERT_WEBHOOK_URL is set, POSTs the alert there as JSON."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import BaseNotifier

logger = logging.getLogger("data_pipelines.alerts")


def alert_payload(context: Any) -> dict[str, Any]:
    ti = context.get("ti") or context.get("task_instance")
    logical_date = context.get("logical_date")
    error = context.get("exception")
    return {
        "dag_id": getattr(ti, "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "run_id": getattr(ti, "run_id", None),
        "try_number": getattr(ti, "try_number", None),
        "logical_date": logical_date.isoformat() if logical_date else None,
        "error_type": type(error).__name__ if error else None,
        "error": str(error) if error else None,
    }


class AlertNotifier(BaseNotifier):
    """The webhook is read from the settings when the alert is sent (in the task's process), so
    one DAG file serves every deployment."""

    def notify(self, context: Any) -> None:
        """Never raises: an alert that fails must not hide the task's own failure."""
        from data_pipelines.settings import ProjectSettings

        payload = alert_payload(context)
        logger.error(
            "ALERT data-pipelines: %s.%s failed on try %s (%s): %s",
            payload["dag_id"],
            payload["task_id"],
            payload["try_number"],
            payload["logical_date"],
            payload["error"],
        )
        url = ProjectSettings().alert_webhook_url
        if not url:
            return
        try:
            import requests

            requests.post(url, json=payload, timeout=5).raise_for_status()
        except Exception as error:  # noqa: BLE001 (see docstring)
            logger.error("ALERT webhook %s failed: %s", url, error)
