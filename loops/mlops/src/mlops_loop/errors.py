"""The loop's errors: the CLI prints them as one line and exits with status 2."""

from __future__ import annotations

from roadmap_lab.errors import LabError


class MlopsLoopError(LabError):
    """Bad input or configuration; the message says what is wrong and how to fix it."""


class AirflowUnavailable(MlopsLoopError):
    """Airflow's api-server could not be reached or answered 5xx: worth trying again later."""


class AirflowRefused(MlopsLoopError):
    """Airflow answered 4xx (bad credentials, an unknown DAG, a conf it rejects): a setting to
    fix, not a transient fault."""
