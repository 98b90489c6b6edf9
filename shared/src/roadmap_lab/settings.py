"""Typed settings that every project subclasses, and the location of the shared cache."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

CACHE_ENV_VAR = "ROADMAP_LAB_CACHE"


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
