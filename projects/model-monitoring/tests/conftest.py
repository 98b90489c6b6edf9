"""Fixtures: the default bundle trained once per session, and a clean environment (no
MODEL_MONITORING_* settings or PROMETHEUS_MULTIPROC_DIR from outside). Real servers come from
roadmap_lab.services (its pytest plugin adds ``free_tcp_port`` and ``start_service``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import roadmap_lab.pytest_plugin  # noqa: F401  (Pants infers dependencies from imports only)
from mm_testing import train_default_bundle

pytest_plugins = ["roadmap_lab.pytest_plugin"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: starts real servers or several processes (CI runs them)"
    )


@pytest.fixture(scope="session", autouse=True)
def _no_settings_from_outside() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
        for name in [n for n in os.environ if n.startswith("MODEL_MONITORING_")]:
            patch.delenv(name, raising=False)
        yield


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded default bundle (California housing reference period), trained once."""
    return train_default_bundle(tmp_path_factory.mktemp("bundle") / "bundle")
