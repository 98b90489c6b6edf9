"""The model: standardised features + logistic regression (scikit-learn), trained on a trailing
window of slices. It is stored as JSON parameters rounded to 12 significant digits, not as a
pickle: a pickle embeds library internals and is not a stable byte format, while the JSON is the
same bytes for the same data, and rebuilds an equal scikit-learn pipeline."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np
from roadmap_lab.housing_model import MODEL_FORMAT, probability

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

SIGNIFICANT_DIGITS = 12


def _rounded(values: Any) -> Any:
    """Floats (nested lists too) rounded to 12 significant digits: last-bit differences of
    floating-point sums never reach the published bytes."""
    if isinstance(values, list):
        return [_rounded(v) for v in values]
    value = float(values)
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def train_model(features: pd.DataFrame, target: pd.Series, seed: int = 0) -> dict[str, Any]:
    """Fit and return the model as a JSON-ready dict."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    columns = list(features.columns)
    scaler = StandardScaler().fit(features.to_numpy(dtype=float))
    classifier = LogisticRegression(max_iter=1000, random_state=seed)
    classifier.fit(scaler.transform(features.to_numpy(dtype=float)), target.to_numpy())
    return {
        "format": MODEL_FORMAT,
        "features": columns,
        "classes": [int(c) for c in classifier.classes_],
        "scaler_mean": _rounded(scaler.mean_.tolist()),
        "scaler_scale": _rounded(scaler.scale_.tolist()),
        "coef": _rounded(classifier.coef_[0].tolist()),
        "intercept": _rounded(float(classifier.intercept_[0])),
        "train_rows": len(features),
    }


def model_bytes(model: dict[str, Any]) -> bytes:
    return (json.dumps(model, indent=2, sort_keys=True) + "\n").encode()


def predict_proba(model: dict[str, Any], features: pd.DataFrame) -> np.ndarray:
    """P(class 1) from the stored parameters: the registry contract's computation
    (``roadmap_lab.housing_model``), which the registered pyfunc runs too."""
    return probability(model, features)


def to_sklearn(model: dict[str, Any]) -> Pipeline:
    """Rebuild a fitted scikit-learn pipeline from the stored parameters."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler()
    scaler.mean_ = np.asarray(model["scaler_mean"])
    scaler.scale_ = np.asarray(model["scaler_scale"])
    scaler.var_ = scaler.scale_**2
    scaler.n_features_in_ = len(model["features"])
    classifier = LogisticRegression()
    classifier.coef_ = np.asarray([model["coef"]])
    classifier.intercept_ = np.asarray([model["intercept"]])
    classifier.classes_ = np.asarray(model["classes"])
    classifier.n_features_in_ = len(model["features"])
    return make_pipeline(scaler, classifier)
