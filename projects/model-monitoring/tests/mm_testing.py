"""Helpers shared by the tests: the default bundle, a small car-loan bundle (categorical
features), rows as request payloads."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
from model_monitoring.bundle import train_bundle
from model_monitoring.datasets import (
    dataset_config,
    default_training_frame,
    housing_periods,
    load_periods,
    split_reference,
)
from prometheus_client.parser import text_string_to_metric_families
from roadmap_lab.data import HOUSING_FEATURES

LABELS_KEY = "test-labels-key-0123456789"
CAR_LOAN_TRAIN_ROWS = 4000


def train_car_loan_bundle(folder: Path) -> Path:
    """A bundle on the first 4,000 rows of the car-loan reference period (quick to train)."""
    config = dataset_config("car-loan")
    reference, _ = load_periods("car-loan")
    train_bundle(reference.head(CAR_LOAN_TRAIN_ROWS), output=folder, **config.train_arguments())
    return folder


def car_loan_held_out() -> pd.DataFrame:
    """Car-loan reference rows after the replay's split (never seen by any bundle)."""
    reference, _ = load_periods("car-loan")
    return split_reference(dataset_config("car-loan"), reference)[1]


def train_default_bundle(folder: Path) -> Path:
    frame, defaults = default_training_frame()
    train_bundle(frame, output=folder, **defaults)
    return folder


def reference_rows(count: int, seed: int = 0) -> pd.DataFrame:
    reference, _ = housing_periods()
    return reference.sample(count, random_state=seed)


def payload(rows: pd.DataFrame) -> dict[str, Any]:
    return {"rows": rows[HOUSING_FEATURES].to_dict(orient="records")}


def metric_values(client: Any, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of metric ``name`` at the client's /metrics, keyed by their labels."""
    text = client.get("/metrics").text
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def wait_for(check: Any, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError("condition not met in time")
