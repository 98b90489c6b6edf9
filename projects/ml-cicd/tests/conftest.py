"""Fixtures: model folders trained once per session (a good model, a second good one, and models
that fail to load, fail their smoke prediction or answer slowly), and a clean environment: no
tracking server, no Prometheus multi-process folder and no ML_CICD_* settings from outside. Real
servers come from roadmap_lab.services (the plugin adds ``free_tcp_port``, ``postgres``,
``start_service``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import roadmap_lab.testing.pytest_plugin  # noqa: F401  (Pants infers dependencies from imports)
from mlc_testing import ModelFolders, build_model_folders, train_good_model
from roadmap_lab.testing.pytest_plugin import Isolation

pytest_plugins = ["roadmap_lab.testing.pytest_plugin"]


@pytest.fixture(scope="session")
def environment_isolation() -> Isolation:
    return Isolation(
        prefixes=("ML_CICD_",),
        names=("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "PROMETHEUS_MULTIPROC_DIR"),
    )


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
