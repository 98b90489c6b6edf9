"""Fixtures: a clean environment (no LLM_LOOP_* settings, nor the three projects' own, from
outside). The shared plugin adds the ``slow`` marker."""

from __future__ import annotations

import pytest
import roadmap_lab.testing.pytest_plugin  # noqa: F401  (Pants infers dependencies from imports)
from roadmap_lab.testing.pytest_plugin import Isolation

pytest_plugins = ["roadmap_lab.testing.pytest_plugin"]


@pytest.fixture(scope="session")
def environment_isolation() -> Isolation:
    # The loop starts llm-alignment, llm-serving and prompt-registry, which read their own
    # prefixes (and MLflow's URI): none of those from outside either.
    return Isolation(prefixes=("LLM_LOOP_", "LLM_ALIGNMENT_", "LLM_SERVING_", "PROMPT_REGISTRY_"))
