"""Typed settings: where data sets, runs, adapters and results live, which base model to align,
and where runs are tracked. Environment variables (prefix ``LLM_ALIGNMENT_``) override the
defaults, CLI flags and YAML configs override both."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict
from roadmap_lab.settings import LabSettings

PROJECT = "llm-alignment"


class ProjectSettings(LabSettings):
    """Where things live and which model and tracking store are used."""

    model_config = SettingsConfigDict(
        env_prefix="LLM_ALIGNMENT_", extra="ignore", populate_by_name=True
    )

    dist_dir: Path = Path("dist")
    run_dir: Path = Path("runs/llm-alignment")
    # An HF causal LM folder; None: SmolLM2-135M-Instruct from the shared cache.
    model_dir: Path | None = None
    # MLflow tracking URI; None: a local sqlite store (and artifact folder) under run_dir.
    tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "tracking_uri", "LLM_ALIGNMENT_TRACKING_URI", "MLFLOW_TRACKING_URI"
        ),
    )
    experiment: str = "llm-alignment"

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    def resolved_tracking_uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{(self.run_dir / 'mlflow.db').resolve()}"

    @property
    def artifacts_dir(self) -> Path:
        return (self.run_dir / "mlartifacts").resolve()


def base_model_dir(model_dir: Path | None) -> Path:
    """``model_dir`` or, when None, the SmolLM2-135M-Instruct folder (converted once)."""
    if model_dir is not None:
        return model_dir
    from roadmap_lab.models import smollm2_dir

    return smollm2_dir()
