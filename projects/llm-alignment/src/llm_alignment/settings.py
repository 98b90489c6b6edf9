"""Typed settings: where data sets, runs, adapters and results live, which base model to align,
and where runs are tracked. Environment variables (prefix ``LLM_ALIGNMENT_``) override the
defaults, CLI flags and YAML configs override both."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict
from roadmap_lab.settings import TrackedSettings, env_prefix

from llm_alignment import PROJECT


class ProjectSettings(TrackedSettings):
    """Where things live and which model is aligned; the tracking store comes from
    ``TrackedSettings`` (``LLM_ALIGNMENT_TRACKING_URI``, else ``MLFLOW_TRACKING_URI``, else a
    local sqlite store under ``run_dir``)."""

    model_config = SettingsConfigDict(env_prefix=env_prefix(PROJECT), extra="ignore")

    run_dir: Path = Path("runs/llm-alignment")
    # An HF causal LM folder; None: SmolLM2-135M-Instruct from the shared cache.
    model_dir: Path | None = None
    experiment: str = "llm-alignment"

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"


def base_model_dir(model_dir: Path | None) -> Path:
    """``model_dir`` or, when None, the SmolLM2-135M-Instruct folder (converted once)."""
    if model_dir is not None:
        return model_dir
    from roadmap_lab.models import smollm2_dir

    return smollm2_dir()
