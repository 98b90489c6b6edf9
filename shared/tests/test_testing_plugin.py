"""The plugin's environment isolation, run in a pytester subprocess-free session."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_settings_from_outside_never_reach_a_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEMO_PROJECT_RUN_DIR", "/from/outside")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://outside:5000")
    monkeypatch.setenv("UNRELATED", "kept")
    pytester.makeconftest(
        """
import pytest
from roadmap_lab.testing.pytest_plugin import Isolation

pytest_plugins = ["roadmap_lab.testing.pytest_plugin"]


@pytest.fixture(scope="session")
def environment_isolation():
    return Isolation(prefixes=("DEMO_PROJECT_",), values={"DEMO_PROJECT_SEED": "7"})
"""
    )
    pytester.makepyfile(
        """
import os
import pytest


def test_first():
    assert "DEMO_PROJECT_RUN_DIR" not in os.environ and "MLFLOW_TRACKING_URI" not in os.environ
    assert os.environ["DEMO_PROJECT_SEED"] == "7" and os.environ["UNRELATED"] == "kept"
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    # A test (or a library, as mlflow.set_tracking_uri does) that sets one leaks it nowhere.
    os.environ["MLFLOW_TRACKING_URI"] = "http://leaked:1"


def test_second():
    assert "MLFLOW_TRACKING_URI" not in os.environ


@pytest.mark.slow
def test_marked_slow():
    pass
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=3)
