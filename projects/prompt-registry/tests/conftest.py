"""Fixtures: the tiny random Llama (fast generation), a copy of the shipped prompts in a temp
folder, settings pointing at both, and a real MLflow server on a free port of 127.0.0.1
(roadmap_lab.services). The shared pytest plugin adds the ``slow`` marker, the offline and
isolated environment, ``free_tcp_port`` and ``start_service``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import roadmap_lab.testing.pytest_plugin  # noqa: F401 (Pants infers deps from imports only)
from roadmap_lab.services import mlflow_server
from roadmap_lab.testing.pytest_plugin import Isolation

pytest_plugins = ["roadmap_lab.testing.pytest_plugin"]


@pytest.fixture(scope="session")
def environment_isolation() -> Isolation:
    """No registry or project setting from outside reaches a test; an unreachable registry
    fails at once (MLflow would retry for minutes)."""
    return Isolation(
        prefixes=("PROMPT_REGISTRY_", "MLFLOW_HTTP_REQUEST_"),
        names=("MLFLOW_TRACKING_URI",),
        values={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"},
    )


@pytest.fixture(scope="session")
def tiny_llama_dir() -> Path:
    from roadmap_lab.testing.tiny_models import tiny_causal_lm_dir

    return tiny_causal_lm_dir(0)


@pytest.fixture
def prompts_dir(tmp_path: Path) -> Path:
    from prompt_registry.settings import SHIPPED_PROMPTS

    return Path(shutil.copytree(SHIPPED_PROMPTS, tmp_path / "prompts"))


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow sqlite store with its schema made once: each test copies it (the migrations
    take seconds, far longer than what a test does with the store)."""
    from prompt_registry.registry import Registry

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    Registry(f"sqlite:///{path}")
    return path


@pytest.fixture
def settings(tmp_path: Path, prompts_dir: Path, tiny_llama_dir: Path, empty_mlflow_db: Path):
    from prompt_registry.settings import ProjectSettings

    (tmp_path / "run").mkdir()
    shutil.copyfile(empty_mlflow_db, tmp_path / "run" / "mlflow.db")
    return ProjectSettings(
        prompts_dir=prompts_dir,
        run_dir=tmp_path / "run",
        dist_dir=tmp_path / "dist",
        model_dir=tiny_llama_dir,
        batch_size=8,
    )


@pytest.fixture(scope="module")
def mlflow_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("mlflow")
    with mlflow_server(f"sqlite:///{folder / 'mlflow.db'}", folder) as url:
        yield url
