"""The pytest plugin every project's conftest.py loads: the ``slow`` marker, an isolated and
offline environment, and fixtures for real servers (``roadmap_lab.services``).

Load it from a conftest.py with both lines (Pants infers dependencies from imports only):

    import roadmap_lab.testing.pytest_plugin  # noqa: F401
    pytest_plugins = ["roadmap_lab.testing.pytest_plugin"]

* Marker ``slow``: tests that take minutes or start real servers; CI runs them, a quick local
  loop deselects them with ``-m "not slow"``.
* The environment: offline defaults (no hub, no telemetry, no progress bars) are set when the
  plugin loads. Settings from outside never reach a test: the variables that
  ``environment_isolation`` names are removed, and its values set, for the whole session (so
  servers that session fixtures start see the same) and again before every test (so a test that
  set one, e.g. ``mlflow.set_tracking_uri``, does not leak it). A project overrides the fixture:

      @pytest.fixture(scope="session")
      def environment_isolation() -> Isolation:
          return Isolation(prefixes=("ML_CICD_",))

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
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

import pytest

# Relative: ruff sorts it the same way whether or not it sees roadmap_lab as first-party.
from ..services import PostgresCluster, free_port, postgres_cluster
from ..settings import OFFLINE_ENVIRONMENT

P = ParamSpec("P")
T = TypeVar("T")

for _name, _value in {**OFFLINE_ENVIRONMENT, "WANDB_SILENT": "true"}.items():
    os.environ.setdefault(_name, _value)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow: takes minutes or starts real servers or processes; CI runs it "
        "(deselect: -m 'not slow')",
    )


@dataclass(frozen=True)
class Isolation:
    """What tests must not inherit from outside: every variable starting with one of
    ``prefixes`` and each of ``names``; ``values`` are set for the tests instead."""

    prefixes: tuple[str, ...] = ()
    names: tuple[str, ...] = ("MLFLOW_TRACKING_URI",)
    values: Mapping[str, str] = field(default_factory=dict)

    def apply(self, patch: pytest.MonkeyPatch) -> None:
        for name in [n for n in os.environ if n.startswith(self.prefixes) or n in self.names]:
            patch.delenv(name)
        for name, value in self.values.items():
            patch.setenv(name, value)


@pytest.fixture(scope="session")
def environment_isolation() -> Isolation:
    """Override in a project's conftest with its own prefixes, names and values."""
    return Isolation()


@pytest.fixture(scope="session", autouse=True)
def _isolated_session(environment_isolation: Isolation) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        environment_isolation.apply(patch)
        yield


@pytest.fixture(autouse=True)
def _isolated_test(environment_isolation: Isolation, monkeypatch: pytest.MonkeyPatch) -> None:
    environment_isolation.apply(monkeypatch)


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
