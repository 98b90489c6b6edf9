"""Typed settings that every project subclasses, and the location of the shared cache.

* ``LabSettings``: results, cache, seed, log level; a project sets its ``env_prefix``
  (``env_prefix(PROJECT)``: ``ml-cicd`` -> ``ML_CICD_``).
* ``TrackedSettings``: a project that tracks runs or registers models in MLflow: its run folder,
  the tracking URI (``<PREFIX>TRACKING_URI``, else ``MLFLOW_TRACKING_URI``, else a local sqlite
  store in the run folder) and the local artifact root. ``roadmap_lab.gate.GatedSettings`` adds
  the promotion gate's thresholds.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

CACHE_ENV_VAR = "ROADMAP_LAB_CACHE"
# Offline defaults for every CLI and test run: no hub lookups, no telemetry threads (offline,
# MLflow's fails and edits os.environ while other threads read it), no progress bars of
# libraries inside our own.
OFFLINE_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def env_prefix(project: str) -> str:
    """The prefix of a project's environment variables: ``ml-cicd`` -> ``ML_CICD_``."""
    return project.upper().replace("-", "_") + "_"


def cache_dir() -> Path:
    """Folder for downloaded wheels, extracted data and converted models.

    ``$ROADMAP_LAB_CACHE`` when set, else ``~/.cache/roadmap-lab``.
    """
    configured = os.environ.get(CACHE_ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "roadmap-lab"


class LabSettings(BaseSettings):
    """Settings shared by all projects; a project subclasses it and sets its own ``env_prefix``.

    Example::

        class TrackingSettings(LabSettings):
            model_config = SettingsConfigDict(env_prefix="EXPERIMENT_TRACKING_")
            epochs: int = 3
    """

    model_config = SettingsConfigDict(env_prefix="ROADMAP_LAB_", extra="ignore")

    dist_dir: Path = Path("dist")
    cache_dir: Path = Field(default_factory=cache_dir)
    seed: int = 0
    log_level: str = "INFO"

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        level = value.upper()
        if not isinstance(logging.getLevelName(level), int):
            raise ValueError(f"unknown log level {value!r}; use DEBUG, INFO, WARNING or ERROR")
        return level


def _mlflow_tracking_uri() -> str | None:
    # Read once, when the settings are made: mlflow.set_tracking_uri() later writes
    # MLFLOW_TRACKING_URI into the environment itself.
    return os.environ.get("MLFLOW_TRACKING_URI") or None


class TrackedSettings(LabSettings):
    """Settings of a project that tracks runs or registers models in MLflow.

    ``tracking_uri``: the flag or ``<PREFIX>TRACKING_URI``, else ``MLFLOW_TRACKING_URI``; None
    means a sqlite store (and an artifact folder) in ``run_dir``, so a new user needs no server.
    A subclass sets its ``env_prefix`` and its own ``run_dir`` default (``runs/<project>``).
    """

    run_dir: Path = Path("runs")
    tracking_uri: str | None = Field(default_factory=_mlflow_tracking_uri)

    def resolved_tracking_uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{(self.run_dir / 'mlflow.db').resolve()}"

    def uses_local_store(self) -> bool:
        return not self.tracking_uri

    def local_artifact_root(self) -> Path:
        """Where a local store keeps its artifacts (``<run_dir>/mlartifacts``)."""
        return (self.run_dir / "mlartifacts").resolve()
