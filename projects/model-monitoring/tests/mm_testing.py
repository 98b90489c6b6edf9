"""Helpers shared by the tests: the default bundle, housing rows as request payloads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from model_monitoring.bundle import train_bundle
from model_monitoring.datasets import default_training_frame, housing_periods
from roadmap_lab.data import HOUSING_FEATURES


def train_default_bundle(folder: Path) -> Path:
    frame, defaults = default_training_frame()
    train_bundle(frame, output=folder, **defaults)
    return folder


def reference_rows(count: int, seed: int = 0) -> pd.DataFrame:
    reference, _ = housing_periods()
    return reference.sample(count, random_state=seed)


def payload(rows: pd.DataFrame) -> dict[str, Any]:
    return {"rows": rows[HOUSING_FEATURES].to_dict(orient="records")}
