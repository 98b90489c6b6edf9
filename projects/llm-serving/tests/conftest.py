"""Fixtures for both resolves of the project (serving and quantizing): SmolLM2 (bf16, converted
once from its PyPI wheel) and the tiny random Llama for fast tests. The shared plugin
(roadmap_lab.testing.pytest_plugin) adds the ``slow`` marker and the environment isolation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import roadmap_lab.testing.pytest_plugin  # noqa: F401  (Pants infers dependencies from imports)
from roadmap_lab.models import smollm2_dir
from roadmap_lab.testing.pytest_plugin import Isolation
from roadmap_lab.testing.tiny_models import build_tiny_causal_lm, tiny_causal_lm_dir

pytest_plugins = ["roadmap_lab.testing.pytest_plugin"]


@pytest.fixture(scope="session")
def environment_isolation() -> Isolation:
    """No settings of the server or the quantizer from outside."""
    return Isolation(prefixes=("LLM_SERVING_", "LLM_QUANTIZE_"))


@pytest.fixture(scope="session")
def smollm2() -> Path:
    return smollm2_dir()


@pytest.fixture(scope="session")
def tiny_llama() -> Any:
    """The tiny random Llama and its tokenizer, in memory."""
    return build_tiny_causal_lm(seed=0)


@pytest.fixture(scope="session")
def tiny_llama_dir() -> Path:
    """The tiny random Llama's folder (built once into the cache)."""
    return tiny_causal_lm_dir(seed=0)
