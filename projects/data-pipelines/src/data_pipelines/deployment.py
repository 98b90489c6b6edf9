"""The pipeline deployed on 127.0.0.1 until stopped (``python -m data_pipelines deploy``): the
embedded source (with its faults), a throwaway PostgreSQL holding Airflow's metadata and the
MLflow registry's store, the MLflow server, and Airflow (api-server, scheduler, dag-processor,
LocalExecutor) running housing_pipeline without a schedule, registering every model in that
MLflow and gating ``@champion``. Other systems (the MLOps loop) reach it only through the
endpoints file it writes: Airflow's URL, the file holding the admin's password, the registry's
and the source's URLs. SIGTERM or Ctrl-C stops everything it started."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from roadmap_lab.results import atomic_write_json
from roadmap_lab.services import mlflow_server, postgres_cluster

from data_pipelines.names import PIPELINE_DAG_ID
from data_pipelines.settings import ProjectSettings
from data_pipelines.source import FaultSpec, SourceServer
from data_pipelines.stack import ADMIN, airflow_stack

ENDPOINTS_FILE = "endpoints.json"


def pipeline_env(
    settings: ProjectSettings, folder: Path, source_url: str, tracking_uri: str
) -> dict[str, str]:
    """The DATA_PIPELINES_* settings every Airflow process reads: this deployment's source,
    store and registry, no schedule, and the deploying process's own choices (window, start
    date, retries, gate thresholds)."""
    inherited = {k: v for k, v in os.environ.items() if k.startswith("DATA_PIPELINES_")}
    return {
        **inherited,
        "DATA_PIPELINES_SOURCE_URL": source_url,
        "DATA_PIPELINES_OUTPUT_ROOT": str((folder / "output").resolve()),
        "DATA_PIPELINES_SCRATCH_DIR": str((folder / "scratch").resolve()),
        "DATA_PIPELINES_TRACKING_URI": tracking_uri,
        "DATA_PIPELINES_SCHEDULE": "none",
        "DATA_PIPELINES_START_DATE": settings.start_date.isoformat(),
        "DATA_PIPELINES_WINDOW_SLICES": str(settings.window_slices),
        "DATA_PIPELINES_RETRIES": str(settings.retries),
        "DATA_PIPELINES_RETRY_DELAY_S": str(settings.retry_delay_s),
    }


@contextlib.contextmanager
def deployment(
    settings: ProjectSettings, folder: Path, faults: Mapping[str, FaultSpec]
) -> Iterator[dict[str, Any]]:
    """Start everything, write ``folder/endpoints.json`` (atomically, last) and yield its
    content; stop everything on exit."""
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(SourceServer(faults=dict(faults)))
        cluster = stack.enter_context(postgres_cluster())
        registry_store = cluster.create_database("mlflow", driver="postgresql+psycopg2")
        tracking_uri = stack.enter_context(mlflow_server(registry_store, folder / "mlflow"))
        airflow = stack.enter_context(
            airflow_stack(
                folder / "airflow",
                cluster.create_database("airflow", driver="postgresql+psycopg2"),
                pipeline_env(settings, folder, source.url, tracking_uri),
            )
        )
        password_file = folder / "airflow-password"
        password_file.write_text(airflow.password, encoding="utf-8")
        password_file.chmod(0o600)
        endpoints = {
            "airflow_url": airflow.url,
            "airflow_username": ADMIN,
            "airflow_password_file": str(password_file),
            "dag_id": PIPELINE_DAG_ID,
            "tracking_uri": tracking_uri,
            "source_url": source.url,
            "start_date": settings.start_date.isoformat(),
            "window_slices": settings.window_slices,
            "faults": {key: fault.kind for key, fault in faults.items()},
            "pid": os.getpid(),
        }
        atomic_write_json(folder / ENDPOINTS_FILE, endpoints)
        try:
            yield endpoints
        finally:
            (folder / ENDPOINTS_FILE).unlink(missing_ok=True)


def hold_until_stopped() -> None:
    """Block until SIGTERM or SIGINT (SIGTERM is turned into KeyboardInterrupt, so the
    deployment's context managers stop what they started)."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
