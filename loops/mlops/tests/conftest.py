"""Fixtures: a clean environment (no MLOPS_LOOP_*, AIRFLOW*, DATA_PIPELINES_* or
MODEL_MONITORING_* settings from outside) and a
webhook token file. The shared plugin adds the ``slow`` marker and real servers (``postgres``,
``free_tcp_port``, ``start_service``)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import roadmap_lab.testing.pytest_plugin  # noqa: F401  (Pants infers dependencies from imports)
from roadmap_lab.testing.pytest_plugin import Isolation

pytest_plugins = ["roadmap_lab.testing.pytest_plugin"]


@pytest.fixture(scope="session")
def environment_isolation() -> Isolation:
    # The loop's stack also starts data-pipelines and model-monitoring, which read their own
    # prefixes: none of those from outside either.
    return Isolation(
        prefixes=("MLOPS_LOOP_", "AIRFLOW", "DATA_PIPELINES_", "MODEL_MONITORING_")
    )


@pytest.fixture(scope="session")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secrets") / "webhook-token"
    path.write_text(secrets.token_urlsafe(24))
    path.chmod(0o600)
    return path
