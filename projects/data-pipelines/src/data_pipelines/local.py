"""The CLI's local setup: the embedded source (when no source URL is set), the settings exported
to the environment (the tasks read them there), and Airflow's local metadata DB."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from pydantic import SecretStr
from roadmap_lab.settings import env_prefix

from data_pipelines import PROJECT
from data_pipelines.settings import ProjectSettings
from data_pipelines.source import FaultSpec, SourceServer


def export_settings(settings: ProjectSettings) -> None:
    """Put the settings into os.environ, so that the DAG file (parsed by Airflow) and its tasks
    see the same values as the CLI (paths made absolute, the store as its URL)."""
    for name, value in settings.model_dump().items():
        variable = f"{env_prefix(PROJECT)}{name.upper()}"
        if value is None:
            os.environ.pop(variable, None)
        elif name == "output_root":
            os.environ[variable] = settings.output_url
        elif isinstance(value, Path):
            os.environ[variable] = str(value.resolve())
        elif isinstance(value, SecretStr):
            os.environ[variable] = value.get_secret_value()
        else:
            os.environ[variable] = str(value)


@contextlib.contextmanager
def local_pipeline(
    settings: ProjectSettings, faults: dict[str, FaultSpec] | None = None
) -> Iterator[tuple[ProjectSettings, SourceServer | None]]:
    """Settings exported, Airflow configured; the embedded source running when the settings name
    no source (it stops on exit)."""
    from data_pipelines.runner import configure_airflow

    with contextlib.ExitStack() as stack:
        server = None
        if settings.source_url is None:
            server = stack.enter_context(SourceServer(faults=dict(faults or {})))
            settings = settings.model_copy(update={"source_url": server.url})
        export_settings(settings)
        configure_airflow(settings.airflow_home)
        yield settings, server


def tree_digest(root: Path, exclude: tuple[str, ...] = ("staging",)) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative path -> hex), for byte-identity checks."""
    digests = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and relative.parts[0] not in exclude:
            digests[relative.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests
