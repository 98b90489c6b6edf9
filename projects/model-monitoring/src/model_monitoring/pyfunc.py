"""A registry version's MLflow pyfunc (the housing contract, ``roadmap_lab.housing_model``)
behind the interface the service calls on a bundle's pipeline (``predict_proba``)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from roadmap_lab import housing_model as contract

from model_monitoring.errors import ModelMonitoringError


class PyfuncPipeline:
    """``predict_proba`` of a pyfunc whose output has the contract's probability column; a
    missing value (JSON null) is imputed with the training window's median first, as a trained
    bundle's pipeline does."""

    def __init__(self, pyfunc: Any, features: list[str], medians: np.ndarray) -> None:
        self.pyfunc = pyfunc
        self.features = features
        self.medians = medians

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        values = np.where(np.isnan(x), self.medians, x.astype(float))
        out = self.pyfunc.predict(pd.DataFrame(values, columns=self.features))
        positive = out[contract.OUTPUT_PROBABILITY].to_numpy(dtype=float)
        return np.column_stack([1 - positive, positive])


def model_artifact(model_dir: Path, key: str) -> Path:
    """An artifact of the pyfunc, as its MLmodel file lists it."""
    from mlflow.models import Model

    flavor = Model.load(str(model_dir)).flavors.get("python_function", {})
    entry = (flavor.get("artifacts") or {}).get(key)
    if not entry:
        raise ModelMonitoringError(f"{model_dir} has no {key!r} artifact (not a housing version)")
    return model_dir / entry["path"]


def params_sha256(model_dir: Path) -> str:
    params = model_artifact(model_dir, contract.PARAMS_ARTIFACT).read_bytes()
    return hashlib.sha256(params).hexdigest()


def medians(samples: list[list[float]]) -> np.ndarray:
    """What imputes a missing value: the median of each feature's reference sample."""
    return np.array([np.median(sample) for sample in samples])


def load_pyfunc(model_dir: Path) -> Any:
    import mlflow.pyfunc

    try:
        return mlflow.pyfunc.load_model(str(model_dir))
    except Exception as error:  # the model's code runs at load time
        raise ModelMonitoringError(f"cannot load the model in {model_dir}: {error}") from error


def pyfunc_pipeline(
    model_dir: Path, features: list[str], samples: list[list[float]], sha256: str
) -> PyfuncPipeline:
    """The pipeline of a downloaded version whose parameters have hash ``sha256``; ``samples``:
    each feature's reference sample (their medians impute missing values)."""
    if params_sha256(model_dir) != sha256:
        raise ModelMonitoringError(f"{model_dir}: the model's parameters changed (sha256)")
    return PyfuncPipeline(load_pyfunc(model_dir), features, medians(samples))
