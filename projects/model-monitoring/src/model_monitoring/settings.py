"""Typed settings of the project: training, the service and its drift job, the replay and the
benchmark. Environment variables with the prefix ``MODEL_MONITORING_`` override the defaults;
CLI flags override both."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from roadmap_lab.housing_model import CHAMPION
from roadmap_lab.settings import LabSettings, env_prefix

from model_monitoring import PROJECT

# Also names the variables handed to the service's worker processes.
ENV_PREFIX = env_prefix(PROJECT)


class ProjectSettings(LabSettings):
    """Folders, the service's limits and the drift job. Prefix ``MODEL_MONITORING_``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    run_dir: Path = Path("runs/model-monitoring")
    # None: <run_dir>/bundle, trained from the embedded data on first start when missing.
    bundle_dir: Path | None = None
    # None: <run_dir>/predictions. Every worker writes its own rotated files there.
    log_dir: Path | None = None
    log_max_bytes: int = Field(default=20_000_000, ge=10_000)
    log_backups: int = Field(default=5, ge=1, description="rotated files kept per worker")
    max_batch: int = Field(default=1000, ge=1, description="rows per predict request")
    max_body_bytes: int = Field(default=4_000_000, ge=1024)
    max_labels: int = Field(default=5000, ge=1, description="labels per request")
    # POST /labels needs this key in the X-API-Key header; without one configured it answers 503
    # (labels feed the accuracy alerts: nobody unauthenticated may write them).
    labels_api_key: SecretStr | None = None
    # On SIGTERM, in-flight requests get this long to finish before the workers exit.
    graceful_shutdown_s: int = Field(default=30, ge=1)
    # Metrics and the prediction log; off only to measure their cost (the benchmark).
    instrumentation: bool = True
    # The drift job: how often, over how many of the latest rows, from how many rows on.
    drift_interval_s: float = Field(default=15.0, gt=0)
    drift_window_rows: int = Field(default=2000, ge=50)
    drift_min_rows: int = Field(default=500, ge=20)
    labelled_window_rows: int = Field(default=2000, ge=20)
    labelled_min_rows: int = Field(default=200, ge=10)
    # Predictions kept in memory to join delayed labels on.
    pending_label_rows: int = Field(default=200_000, ge=1000)
    access_log: bool = False

    # Serve models:/<registered_model>@<registry_alias> from the MLflow registry at tracking_uri
    # (TRACKING_URI, else MLFLOW_TRACKING_URI) instead of a trained bundle, and follow the
    # alias: one worker polls the registry every registry_poll_s and rebuilds the bundle folder,
    # and every worker looks for a new bundle every bundle_check_s. None: the trained bundle.
    registered_model: str | None = None
    registry_alias: str = CHAMPION
    tracking_uri: str | None = Field(
        default_factory=lambda: os.environ.get("MLFLOW_TRACKING_URI") or None
    )
    registry_poll_s: float = Field(default=30.0, gt=0)
    bundle_check_s: float = Field(default=1.0, gt=0)

    def resolved_bundle_dir(self) -> Path:
        return self.bundle_dir or self.run_dir / "bundle"

    def resolved_log_dir(self) -> Path:
        return self.log_dir or self.run_dir / "predictions"
