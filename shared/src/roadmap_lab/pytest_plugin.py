"""pytest fixtures for real servers (``roadmap_lab.services``).

Load it from a project's conftest.py with both lines (Pants infers dependencies from imports only):

    import roadmap_lab.pytest_plugin  # noqa: F401
    pytest_plugins = ["roadmap_lab.pytest_plugin"]

Fixtures:
* ``postgres`` (session): one throwaway PostgreSQL cluster; tests create their own databases.
* ``free_tcp_port``: a free port on 127.0.0.1.
* ``start_service``: ``start_service(launcher, *args, **kwargs)`` enters any launcher (e.g.
  ``start_service(prometheus, config, rules, tmp_path)``) and returns what it yields; everything
  started is stopped at teardown, last first.

PYTEST_DONT_REWRITE: conftests import this module before pytest loads it as a plugin; it has no
asserts to rewrite, and the marker spares every run pytest's "already imported" warning.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import ParamSpec, TypeVar

import pytest

# Relative: ruff sorts it the same way whether or not it sees roadmap_lab as first-party.
from .services import PostgresCluster, free_port, postgres_cluster

P = ParamSpec("P")
T = TypeVar("T")


class ServiceStarter:
    """Starts launchers on one exit stack, which the ``start_service`` fixture closes."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack

    def __call__(
        self, launcher: Callable[P, AbstractContextManager[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return self._stack.enter_context(launcher(*args, **kwargs))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture
def free_tcp_port() -> int:
    return free_port()


@pytest.fixture
def start_service() -> Iterator[ServiceStarter]:
    with contextlib.ExitStack() as stack:
        yield ServiceStarter(stack)
