"""Typed settings: where runs and the local MLflow store live, which trackers run, gate thresholds,
and the training hyper-parameters. Environment variables override defaults, CLI flags override
both."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, cast, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict
from roadmap_lab.gate import GatedSettings
from roadmap_lab.settings import env_prefix

from experiment_tracking import PROJECT
from experiment_tracking.errors import ConfigError

TrackerName = Literal["mlflow", "wandb"]
MixedPrecision = Literal["auto", "no", "fp16", "bf16"]
WandbMode = Literal["offline", "online", "disabled", "shared"]


class TrainConfig(BaseModel):
    """Hyper-parameters of one fine-tune; all of them are logged as run parameters."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key in a config file is an error

    max_length: int = Field(default=64, ge=8, le=512)
    batch_size: int = Field(default=32, ge=1)
    eval_batch_size: int = Field(default=64, ge=1)
    learning_rate: float = Field(default=1e-4, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    max_grad_norm: float = Field(default=1.0, ge=0)
    epochs: int = Field(default=3, ge=1)
    max_steps: int | None = Field(
        default=None, ge=1, description="stop after this many optimizer steps"
    )
    train_subset: int | None = Field(
        default=None, ge=2, description="train on the first N shuffled rows"
    )
    validation_fraction: float = Field(default=0.1, gt=0, lt=0.5)
    eval_every_steps: int | None = Field(
        default=None, ge=1, description="None: evaluate once per epoch"
    )
    patience: int = Field(
        default=2, ge=1, description="evaluations without improvement before stopping"
    )
    min_delta: float = Field(default=0.001, ge=0)
    log_every_steps: int = Field(default=10, ge=1)
    checkpoint_every_steps: int | None = Field(
        default=None, ge=1, description="None: at each evaluation"
    )
    keep_checkpoints: int = Field(default=2, ge=1)
    mixed_precision: MixedPrecision = "auto"
    seed: int = 0


class BenchmarkSizes(BaseModel):
    """How much the benchmark measures; every size is a flag of ``benchmark``."""

    quality_epochs: int = Field(default=2, ge=1)
    quality_rows: int | None = Field(default=None, ge=2, description="None: every training row")
    seeds: int = Field(default=3, ge=2, description="quality fine-tunes (split and initialisation)")
    throughput_rows: int = Field(default=1536, ge=2)
    throughput_epochs: int = Field(default=1, ge=1)
    repeats: int = Field(default=5, ge=2, description="interleaved repeats of each throughput run")


class ProjectSettings(GatedSettings):
    """Where things live and how they are tracked. Prefix: ``EXPERIMENT_TRACKING_``; the tracking
    URI, local store and gate thresholds (``<PREFIX>GATE_*``) come from ``GatedSettings``."""

    model_config = SettingsConfigDict(env_prefix=env_prefix(PROJECT), extra="ignore")

    run_dir: Path = Path("runs/experiment-tracking")
    experiment: str = "review-classifier"
    registered_model: str = "review-classifier"
    trackers: Annotated[list[TrackerName], NoDecode] = ["mlflow", "wandb"]
    wandb_project: str = "experiment-tracking"
    # None: WANDB_MODE when set, else offline.
    wandb_mode: WandbMode | None = None
    # None: all-MiniLM-L6-v2 from the shared model cache.
    model_dir: Path | None = None

    @field_validator("trackers", mode="before")
    @classmethod
    def _split_trackers(cls, value: object) -> object:
        # EXPERIMENT_TRACKING_TRACKERS=mlflow,wandb or "none"
        if isinstance(value, str):
            value = value.strip()
            return [] if value.lower() in ("", "none") else [v.strip() for v in value.split(",")]
        return value

    def resolved_wandb_mode(self) -> WandbMode:
        mode = self.wandb_mode or os.environ.get("WANDB_MODE") or "offline"
        if mode not in get_args(WandbMode):
            raise ConfigError(f"W&B mode {mode!r}: use {', '.join(get_args(WandbMode))}")
        return cast(WandbMode, mode)
