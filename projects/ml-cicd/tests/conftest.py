"""Fixtures: model folders trained once per session (a good model, a second good one, and models
that fail to load, fail their smoke prediction or answer slowly), and a clean environment: no
tracking server and no ML_CICD_* settings from outside. Real servers come from
roadmap_lab.services (its pytest plugin adds ``free_tcp_port``, ``postgres``, ``start_service``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import roadmap_lab.pytest_plugin  # noqa: F401  (Pants infers dependencies from imports only)
from mlc_testing import ModelFolders, build_model_folders, train_good_model

pytest_plugins = ["roadmap_lab.pytest_plugin"]

# Offline, MLflow's telemetry thread fails and unsets its session variable in os.environ while
# other threads iterate os.environ.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: starts real servers or several processes (CI runs them)"
    )


@pytest.fixture(scope="session", autouse=True)
def _no_settings_from_outside() -> Iterator[None]:
    # Session-wide, so that servers started by module fixtures see it too; child processes
    # inherit it through python_child_env().
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
        for name in [n for n in os.environ if n.startswith("ML_CICD_")]:
            patch.delenv(name, raising=False)
        yield


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """The embedded default model, trained once: its folder and its TrainedModel."""
    folder = tmp_path_factory.mktemp("default-model") / "model"
    return folder, train_good_model(folder)


@pytest.fixture(scope="session")
def model_folders(
    tmp_path_factory: pytest.TempPathFactory, trained_model: tuple[Path, Any]
) -> ModelFolders:
    return build_model_folders(tmp_path_factory.mktemp("models"), *trained_model)
