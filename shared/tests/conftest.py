"""Shared fixtures; registers the ``slow`` marker for tests that fetch or convert real assets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Nothing in these tests may reach the Hugging Face hub.
os.environ["HF_HUB_OFFLINE"] = "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow: fetches wheels from the package index or converts real models (tens of seconds)",
    )


@pytest.fixture
def lab_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ROADMAP_LAB_CACHE for the test."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("ROADMAP_LAB_CACHE", str(cache))
    return cache
