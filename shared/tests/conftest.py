"""Shared fixtures (and roadmap_lab's pytest plugin); registers the ``slow`` marker for tests that
fetch or convert real assets or start real servers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import roadmap_lab.pytest_plugin  # noqa: F401  (Pants infers dependencies from imports only)

pytest_plugins = ["roadmap_lab.pytest_plugin"]

# Nothing in these tests may reach the Hugging Face hub.
os.environ["HF_HUB_OFFLINE"] = "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow: fetches wheels, converts real models or starts real servers (seconds to a minute)",
    )


@pytest.fixture
def lab_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ROADMAP_LAB_CACHE for the test."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("ROADMAP_LAB_CACHE", str(cache))
    return cache
