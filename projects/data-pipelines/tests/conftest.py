"""Fixtures: one local Airflow (sqlite metadata DB) per test session, configured before anything
imports airflow; the embedded source on 127.0.0.1; a fresh output root per test. Retry delays are
1 s (exponential backoff: 1 s, 2 s, ...). Real servers come from roadmap_lab.services (its pytest
plugin adds ``free_tcp_port``, ``postgres``, ``start_service``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import roadmap_lab.pytest_plugin  # noqa: F401  (Pants infers dependencies from imports only)
from data_pipelines.source import HousingSlices, SourceServer

pytest_plugins = ["roadmap_lab.pytest_plugin"]

TEST_SETTINGS = {
    "DATA_PIPELINES_RETRIES": "2",
    "DATA_PIPELINES_RETRY_DELAY_S": "1",
    "DATA_PIPELINES_RETRY_BACKOFF": "2",
    "DATA_PIPELINES_TASK_TIMEOUT_S": "120",
    "DATA_PIPELINES_REQUEST_TIMEOUT_S": "5",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: starts real servers or several processes (CI runs them)"
    )


@pytest.fixture(scope="session", autouse=True)
def _clean_environment() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith(("DATA_PIPELINES_", "AIRFLOW"))]:
            patch.delenv(name)
        for name, value in TEST_SETTINGS.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="session")
def housing_slices() -> HousingSlices:
    """The embedded data, loaded once per session."""
    slices = HousingSlices()
    _ = slices.frame
    return slices


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This process's Airflow: a migrated sqlite DB in a temp home."""
    from data_pipelines.runner import configure_airflow

    home = tmp_path_factory.mktemp("airflow-home")
    configure_airflow(home)
    return home


@pytest.fixture
def source(housing_slices: HousingSlices) -> Iterator[SourceServer]:
    with SourceServer(slices=housing_slices) as server:
        yield server


@pytest.fixture
def pipeline_env(tmp_path: Path, source: SourceServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The settings a DAG run reads: this test's output root and source; the output root."""
    output = tmp_path / "output"
    monkeypatch.setenv("DATA_PIPELINES_OUTPUT_ROOT", str(output))
    monkeypatch.setenv("DATA_PIPELINES_SOURCE_URL", source.url)
    return output
