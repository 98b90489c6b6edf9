"""Fixtures: the shared tiny random Llama (fast training and generation) and an environment with
no settings of this project or MLflow's from outside."""

from __future__ import annotations

from pathlib import Path

import pytest
import roadmap_lab.testing.pytest_plugin  # noqa: F401  (Pants infers dependencies from imports only)
from roadmap_lab.testing.pytest_plugin import Isolation

pytest_plugins = ["roadmap_lab.testing.pytest_plugin"]


@pytest.fixture(scope="session")
def environment_isolation() -> Isolation:
    return Isolation(prefixes=("LLM_ALIGNMENT_",), names=("MLFLOW_TRACKING_URI",))


@pytest.fixture(scope="session")
def tiny_llama_dir() -> Path:
    from roadmap_lab.testing.tiny_models import tiny_causal_lm_dir

    return tiny_causal_lm_dir(0)
