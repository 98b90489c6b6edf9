"""Shared fixtures, over roadmap_lab's own pytest plugin (the ``slow`` marker, an isolated
offline environment, real servers)."""

from __future__ import annotations

from pathlib import Path

import pytest
import roadmap_lab.testing.pytest_plugin  # noqa: F401  (Pants infers dependencies from imports only)

pytest_plugins = ["roadmap_lab.testing.pytest_plugin"]


@pytest.fixture
def lab_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ROADMAP_LAB_CACHE for the test."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("ROADMAP_LAB_CACHE", str(cache))
    return cache
