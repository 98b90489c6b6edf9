"""What the DAGs share: the Asset, default task arguments from the settings, the glue that
turns the project's permanent errors into AirflowFailException (fail now, no retry), and the
worker's name for Airflow's ``[core] hostname_callable``."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from airflow.sdk import Asset, get_current_context
from airflow.sdk.exceptions import AirflowFailException

from data_pipelines.alerts import AlertNotifier
from data_pipelines.errors import PermanentError
from data_pipelines.settings import ProjectSettings
from data_pipelines.steps import logical_slice_id, next_week

T = TypeVar("T")

# Emitted by housing_pipeline's publish task; housing_model_report is scheduled on it.
MODEL_ASSET = Asset(name="housing_model", uri="data-pipelines://housing/model", group="model")


def default_args(settings: ProjectSettings) -> dict[str, Any]:
    """Every task retries with exponential backoff, has a timeout and alerts on final failure."""
    return {
        "owner": "data-pipelines",
        "retries": settings.retries,
        "retry_delay": timedelta(seconds=settings.retry_delay_s),
        "retry_exponential_backoff": settings.retry_backoff,
        "max_retry_delay": timedelta(seconds=settings.max_retry_delay_s),
        "execution_timeout": timedelta(seconds=settings.task_timeout_s),
        "on_failure_callback": AlertNotifier(),
    }


def run_step(step: Callable[..., T], *args: Any) -> T:
    """Run a step with fresh settings (read in the task's process); permanent errors fail the
    task at once, anything else is left to Airflow's retries."""
    try:
        return step(ProjectSettings(), *args)
    except PermanentError as error:
        raise AirflowFailException(str(error)) from error


def current_slice_id() -> str:
    """The slice of the running DAG run: its logical date's (midnight UTC, or the task fails),
    or, for a run without a logical date (an alert-triggered retrain), the next week of the
    history (``steps.next_week``)."""
    logical_date = get_current_context().get("logical_date")
    try:
        if logical_date is None:
            return next_week(ProjectSettings())
        return logical_slice_id(logical_date)
    except PermanentError as error:
        raise AirflowFailException(str(error)) from error


def worker_hostname() -> str:
    """What a task instance records as its host: DATA_PIPELINES_WORKER_HOSTNAME, so that workers
    on one machine tell apart, else the machine's name (Airflow's own default)."""
    return ProjectSettings().worker_hostname or socket.getfqdn()
