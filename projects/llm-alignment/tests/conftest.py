"""Fixtures: the shared tiny random Llama (fast training and generation), fixture files the tests
write themselves, and settings that keep every run, store and result inside a temp folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import roadmap_lab.pytest_plugin  # noqa: F401  (Pants infers dependencies from imports only)

pytest_plugins = ["roadmap_lab.pytest_plugin"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# Offline, MLflow's telemetry thread fails and edits os.environ while other threads read it.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: trains or generates with several models (CI runs them)"
    )


@pytest.fixture(autouse=True)
def _no_settings_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name in [n for n in os.environ if n.startswith("LLM_ALIGNMENT_")]:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    from roadmap_lab.models import tiny_causal_lm_dir

    return tiny_causal_lm_dir(0)


@pytest.fixture
def settings(tmp_path: Path, tiny_model_dir: Path):
    from llm_alignment.settings import ProjectSettings

    return ProjectSettings(
        run_dir=tmp_path / "run", dist_dir=tmp_path / "dist", model_dir=tiny_model_dir
    )
