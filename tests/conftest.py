from __future__ import annotations

from pathlib import Path

import pytest
from repo_checks import repo_root


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow: takes minutes (builds a container image); CI runs it; deselect: -m 'not slow'",
    )


@pytest.fixture(scope="session")
def repo() -> Path:
    return repo_root()
