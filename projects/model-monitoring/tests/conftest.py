"""Fixtures: the default bundle and a car-loan bundle trained once per session, and a clean
environment (no MODEL_MONITORING_* settings, PROMETHEUS_MULTIPROC_DIR or MLFLOW_TRACKING_URI from
outside). The shared plugin adds the ``slow`` marker and real servers (``free_tcp_port``,
``start_service``, ``postgres``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import roadmap_lab.testing.pytest_plugin  # noqa: F401  (Pants infers dependencies from imports)
from mm_testing import train_car_loan_bundle, train_default_bundle
from roadmap_lab.testing.pytest_plugin import Isolation

pytest_plugins = ["roadmap_lab.testing.pytest_plugin"]


@pytest.fixture(scope="session")
def environment_isolation() -> Isolation:
    return Isolation(
        prefixes=("MODEL_MONITORING_",), names=("PROMETHEUS_MULTIPROC_DIR", "MLFLOW_TRACKING_URI")
    )


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded default bundle (California housing reference period), trained once."""
    return train_default_bundle(tmp_path_factory.mktemp("bundle") / "bundle")


@pytest.fixture(scope="session")
def car_loan_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle on nannyml's car-loan data (numeric and categorical features), trained once."""
    return train_car_loan_bundle(tmp_path_factory.mktemp("car-loan") / "bundle")
