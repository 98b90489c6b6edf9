"""The embedded default data: nannyml's California housing (reference period to train on, the
analysis period that drifts for real over a year), loaded offline through roadmap_lab.data."""

from __future__ import annotations

from typing import Any

import pandas as pd
from roadmap_lab.data import HOUSING_FEATURES, load_california_housing

TARGET = "clf_target"
TIMESTAMP = "timestamp"


def default_training_frame() -> tuple[pd.DataFrame, dict[str, Any]]:
    """The reference period and the train arguments that go with it."""
    reference, _ = load_california_housing()
    return reference, {"target": TARGET, "timestamp": TIMESTAMP, "features": list(HOUSING_FEATURES)}


def housing_periods() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reference, analysis), both in time order."""
    reference, analysis = load_california_housing()
    return (
        reference.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True),
        analysis.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True),
    )
