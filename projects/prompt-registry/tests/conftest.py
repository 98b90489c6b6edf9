"""Fixtures: the tiny random causal LM (fast generation), a copy of the shipped prompts in a temp
folder, settings pointing at both, and a real MLflow server on a free port of 127.0.0.1
(roadmap_lab.services; its pytest plugin adds ``free_tcp_port`` and ``start_service``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import roadmap_lab.pytest_plugin  # noqa: F401  (Pants infers dependencies from imports only)
from roadmap_lab.services import mlflow_server

pytest_plugins = ["roadmap_lab.pytest_plugin"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: starts real servers or loads real models")


@pytest.fixture(autouse=True)
def _no_registry_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name in [n for n in os.environ if n.startswith("PROMPT_REGISTRY_")]:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    from roadmap_lab.models import tiny_causal_lm_dir

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
def settings(tmp_path: Path, prompts_dir: Path, tiny_model_dir: Path, empty_mlflow_db: Path):
    from prompt_registry.settings import ProjectSettings

    (tmp_path / "run").mkdir()
    shutil.copyfile(empty_mlflow_db, tmp_path / "run" / "mlflow.db")
    return ProjectSettings(
        prompts_dir=prompts_dir,
        run_dir=tmp_path / "run",
        dist_dir=tmp_path / "dist",
        model_dir=tiny_model_dir,
        batch_size=8,
    )


@pytest.fixture(scope="module")
def mlflow_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("mlflow")
    with mlflow_server(f"sqlite:///{folder / 'mlflow.db'}", folder) as url:
        yield url
