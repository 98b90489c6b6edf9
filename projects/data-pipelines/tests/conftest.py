"""Fixtures: one local Airflow (sqlite metadata DB) per test session, configured before anything
imports airflow; the embedded source on 127.0.0.1; a fresh artefact store and scratch folder per
test; and, for the slow tests, one real deployment per session (PostgreSQL, Redis, api-server,
scheduler, dag-processor and two Celery workers). The history starts at 2021-02-14. Retry delays
are 1 s (exponential backoff: 1 s, 2 s, ...). The shared plugin
(roadmap_lab.testing.pytest_plugin) adds the ``slow`` marker, the environment isolation and
``free_tcp_port``, ``postgres``, ``start_service``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import roadmap_lab.testing.pytest_plugin  # noqa: F401  (Pants infers dependencies from imports only)
from data_pipelines.runner import airflow_env
from data_pipelines.source import HousingSlices, SourceServer
from data_pipelines.stack import AirflowStack, airflow_stack, celery_workers, redis_server
from roadmap_lab.services import PostgresCluster
from roadmap_lab.testing.pytest_plugin import Isolation

pytest_plugins = ["roadmap_lab.testing.pytest_plugin"]

TEST_SETTINGS = {
    "DATA_PIPELINES_RETRIES": "2",
    "DATA_PIPELINES_RETRY_DELAY_S": "1",
    "DATA_PIPELINES_RETRY_BACKOFF": "2",
    "DATA_PIPELINES_TASK_TIMEOUT_S": "120",
    "DATA_PIPELINES_REQUEST_TIMEOUT_S": "5",
    "DATA_PIPELINES_START_DATE": "2021-02-14",
}
QUEUES = ("ingest", "train")


@pytest.fixture(scope="session")
def environment_isolation(tmp_path_factory: pytest.TempPathFactory) -> Isolation:
    """No DATA_PIPELINES_* or AIRFLOW* from outside: the test settings, and this session's own
    Airflow home (set again before every test, so each sees the Airflow configured once)."""
    home = tmp_path_factory.mktemp("airflow-home")
    return Isolation(
        prefixes=("DATA_PIPELINES_", "AIRFLOW"), values={**TEST_SETTINGS, **airflow_env(home)}
    )


@pytest.fixture(scope="session")
def housing_slices() -> HousingSlices:
    """The embedded data, loaded once per session."""
    slices = HousingSlices()
    _ = slices.frame
    return slices


@pytest.fixture(scope="session")
def airflow_home(environment_isolation: Isolation) -> Path:
    """This process's Airflow: a migrated sqlite DB in the session's temp home."""
    from data_pipelines.runner import configure_airflow

    home = Path(environment_isolation.values["AIRFLOW_HOME"])
    configure_airflow(home)
    return home


@pytest.fixture
def source(housing_slices: HousingSlices) -> Iterator[SourceServer]:
    with SourceServer(slices=housing_slices) as server:
        yield server


@pytest.fixture
def pipeline_env(tmp_path: Path, source: SourceServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The settings a DAG run reads: this test's artefact store (a file:// folder), scratch
    folder and source; the store's folder."""
    output = tmp_path / "output"
    monkeypatch.setenv("DATA_PIPELINES_OUTPUT_ROOT", str(output))
    monkeypatch.setenv("DATA_PIPELINES_SCRATCH_DIR", str(tmp_path / "scratch"))
    monkeypatch.setenv("DATA_PIPELINES_SOURCE_URL", source.url)
    return output


@pytest.fixture(scope="session")
def stack_source(housing_slices: HousingSlices) -> Iterator[SourceServer]:
    with SourceServer(slices=housing_slices) as server:
        yield server


@pytest.fixture(scope="session")
def celery_stack(
    postgres: PostgresCluster, stack_source: SourceServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowStack]:
    """One deployment for the session's Celery and backfill tests: PostgreSQL, Redis, the
    api-server, scheduler, dag-processor and a Celery worker per queue (fetch and validate on
    one, the rest on the other); the artefact store is <folder>/output."""
    folder = tmp_path_factory.mktemp("celery-stack")
    pipeline = {
        **TEST_SETTINGS,
        "DATA_PIPELINES_OUTPUT_ROOT": str(folder / "output"),
        "DATA_PIPELINES_SOURCE_URL": stack_source.url,
        "DATA_PIPELINES_INGEST_QUEUE": QUEUES[0],
        "DATA_PIPELINES_TRAIN_QUEUE": QUEUES[1],
    }
    database = postgres.create_database("airflow_celery", driver="postgresql+psycopg2")
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(redis_server(folder / "redis")).url
        yield stack.enter_context(
            airflow_stack(
                folder / "airflow",
                database,
                pipeline,
                broker_url=broker,
                workers=celery_workers(folder, QUEUES),
            )
        )
