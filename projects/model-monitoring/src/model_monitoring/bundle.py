"""The model bundle the service serves: a fitted scikit-learn pipeline, the feature schema (names,
types, valid ranges) and the reference window's statistics, trained from any CSV by configuration.

Layout of a bundle folder:
    model.joblib   the fitted pipeline (imputer + gradient-boosted trees)
    bundle.json    schema, reference statistics, version, the model file's sha256

``train_bundle`` writes both; ``rebaseline`` rewrites only the reference statistics (after a
retrain, or when the reference window moves), keeping the model.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
import pandas as pd
from roadmap_lab.results import atomic_write_bytes, atomic_write_json

from model_monitoring.drift import ReferenceFeature, reference_feature
from model_monitoring.errors import ModelMonitoringError

MODEL_FILE = "model.joblib"
BUNDLE_FILE = "bundle.json"
FORMAT_VERSION = 1
# Values a little outside the training range are still plausible; further out counts as invalid.
RANGE_MARGIN = 0.05
VALIDATION_SHARE = 0.2

FeatureType = Literal["float", "int"]


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    type: FeatureType
    min: float
    max: float


@dataclass(frozen=True)
class PredictionReference:
    """Out-of-sample figures of the model on the reference window's validation part."""

    positive_rate: float
    confidence_mean: float
    accuracy: float
    auc: float
    rows: int


@dataclass
class Bundle:
    version: str
    target: str
    classes: list[str]
    features: list[FeatureSpec]
    reference: dict[str, ReferenceFeature]
    prediction_reference: PredictionReference
    reference_window: dict[str, Any]
    trained_at: str
    model_sha256: str
    rebaselined_at: str | None = None
    pipeline: Any = field(default=None, repr=False)

    @property
    def feature_names(self) -> list[str]:
        return [spec.name for spec in self.features]

    def to_json(self) -> dict[str, Any]:
        payload = asdict(self)
        payload.pop("pipeline")
        payload["format"] = FORMAT_VERSION
        return payload


def _feature_type(values: pd.Series) -> FeatureType:
    present = values.dropna()
    if pd.api.types.is_integer_dtype(values) or (
        len(present) and np.all(np.equal(np.mod(present, 1), 0))
    ):
        return "int"
    return "float"


def feature_specs(frame: pd.DataFrame, features: list[str]) -> list[FeatureSpec]:
    specs = []
    for name in features:
        column = frame[name]
        if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            raise ModelMonitoringError(
                f"feature {name!r} is not numeric ({column.dtype}); encode it as numbers first"
            )
        if column.isna().all():
            raise ModelMonitoringError(f"feature {name!r} has no values")
        low, high = float(column.min()), float(column.max())
        margin = (high - low) * RANGE_MARGIN
        specs.append(FeatureSpec(name, _feature_type(column), low - margin, high + margin))
    return specs


def encode_target(target: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Binary target as 0/1 (the second of the sorted class values is the positive class)."""
    classes = sorted(target.dropna().unique().tolist())
    if target.isna().any():
        raise ModelMonitoringError(f"target {target.name!r} has missing values")
    if len(classes) != 2:
        raise ModelMonitoringError(
            f"target {target.name!r} must have exactly 2 classes for binary classification, "
            f"found {len(classes)}"
        )
    return (target == classes[1]).to_numpy(dtype=np.int64), [str(c) for c in classes]


def build_pipeline(seed: int = 0) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    # The imputer makes missing values (JSON null) a supported input, not an error.
    return make_pipeline(
        SimpleImputer(strategy="median"),
        HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, random_state=seed),
    )


def _prediction_reference(pipeline: Any, x: np.ndarray, y: np.ndarray) -> PredictionReference:
    from sklearn.metrics import roc_auc_score

    proba = pipeline.predict_proba(x)[:, 1]
    predicted = (proba >= 0.5).astype(np.int64)
    confidence = np.where(predicted == 1, proba, 1 - proba)
    return PredictionReference(
        positive_rate=float(predicted.mean()),
        confidence_mean=float(confidence.mean()),
        accuracy=float((predicted == y).mean()),
        auc=float(roc_auc_score(y, proba)) if len(set(y.tolist())) == 2 else float("nan"),
        rows=len(y),
    )


def reference_statistics(frame: pd.DataFrame, features: list[str]) -> dict[str, ReferenceFeature]:
    return {name: reference_feature(frame[name].to_numpy(dtype=float)) for name in features}


def select_window(
    frame: pd.DataFrame, timestamp: str | None, start: str | None, end: str | None
) -> pd.DataFrame:
    """Rows with ``start <= timestamp < end`` (either bound optional), in time order."""
    if timestamp is None:
        if start or end:
            raise ModelMonitoringError("--start/--end need a --timestamp column")
        return frame
    if timestamp not in frame.columns:
        raise ModelMonitoringError(f"no timestamp column {timestamp!r} in the data")
    stamps = pd.to_datetime(frame[timestamp], errors="coerce")
    if stamps.isna().any():
        raise ModelMonitoringError(f"timestamp column {timestamp!r} has unparseable values")
    keep = pd.Series(True, index=frame.index)
    if start:
        keep &= stamps >= pd.Timestamp(start)
    if end:
        keep &= stamps < pd.Timestamp(end)
    window = frame[keep].assign(**{timestamp: stamps[keep]}).sort_values(timestamp, kind="stable")
    if window.empty:
        raise ModelMonitoringError(
            f"no rows with {start or '-inf'} <= {timestamp} < {end or '+inf'}"
        )
    return window


def _window_description(window: pd.DataFrame, timestamp: str | None) -> dict[str, Any]:
    described: dict[str, Any] = {"rows": len(window), "timestamp_column": timestamp}
    if timestamp:
        described["start"] = window[timestamp].min().isoformat()
        described["end"] = window[timestamp].max().isoformat()
    return described


def train_bundle(
    frame: pd.DataFrame,
    *,
    target: str,
    output: Path,
    timestamp: str | None = None,
    features: list[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    seed: int = 0,
) -> Bundle:
    """Fit the pipeline on the reference window of ``frame`` and write the bundle to ``output``.

    A random ``VALIDATION_SHARE`` of the window gives the out-of-sample reference
    figures (accuracy, AUC, confidence); the whole window gives the drift reference."""
    if target not in frame.columns:
        raise ModelMonitoringError(
            f"no target column {target!r}; columns: {', '.join(frame.columns)}"
        )
    excluded = {target, *([timestamp] if timestamp else [])}
    if features is None:
        features = [c for c in frame.columns if c not in excluded and c != "id"]
        features = [c for c in features if pd.api.types.is_numeric_dtype(frame[c])]
    unknown = [name for name in features if name not in frame.columns]
    if unknown:
        raise ModelMonitoringError(f"feature column(s) not in the data: {', '.join(unknown)}")
    if not features:
        raise ModelMonitoringError("no numeric feature columns to train on")
    window = select_window(frame, timestamp, start, end)
    y, classes = encode_target(window[target])
    if len(window) < 50:
        raise ModelMonitoringError(
            f"the reference window has {len(window)} rows; at least 50 needed"
        )
    specs = feature_specs(window, features)
    # Plain arrays: the service predicts on arrays, and scikit-learn checks names it was fit with.
    x = window[features].to_numpy(dtype=float)
    # A random split: a window need not be stationary inside (nannyml's housing data moves across
    # the map in time), and the reference figures describe the window as a whole.
    order = np.random.default_rng(seed).permutation(len(window))
    fit_rows, validation_rows = np.split(order, [int(len(window) * (1 - VALIDATION_SHARE))])
    pipeline = build_pipeline(seed).fit(x[fit_rows], y[fit_rows])
    prediction_reference = _prediction_reference(pipeline, x[validation_rows], y[validation_rows])
    pipeline.fit(x, y)  # the served model sees the whole window
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer)
    model_bytes = buffer.getvalue()
    sha = hashlib.sha256(model_bytes).hexdigest()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    bundle = Bundle(
        version=f"{datetime.now(UTC):%Y%m%d%H%M%S}-{sha[:8]}",
        target=target,
        classes=classes,
        features=specs,
        reference=reference_statistics(window, features),
        prediction_reference=prediction_reference,
        reference_window=_window_description(window, timestamp),
        trained_at=now,
        model_sha256=sha,
        pipeline=pipeline,
    )
    # The model first: bundle.json names its hash, so a reader never pairs new JSON with old model.
    atomic_write_bytes(output / MODEL_FILE, model_bytes)
    atomic_write_json(output / BUNDLE_FILE, bundle.to_json())
    return bundle


def rebaseline(
    bundle_dir: Path,
    frame: pd.DataFrame,
    *,
    timestamp: str | None = None,
    start: str | None = None,
    end: str | None = None,
) -> Bundle:
    """Recompute the reference statistics (drift and prediction figures) from a new window of
    labelled data, with the bundle's model; only bundle.json changes."""
    bundle = load_bundle(bundle_dir)
    missing = [name for name in [*bundle.feature_names, bundle.target] if name not in frame]
    if missing:
        raise ModelMonitoringError(f"the data lacks column(s) {', '.join(missing)}")
    window = select_window(frame, timestamp, start, end)
    y, classes = encode_target(window[bundle.target])
    if classes != bundle.classes:
        raise ModelMonitoringError(
            f"target classes {classes} differ from the model's {bundle.classes}"
        )
    x = window[bundle.feature_names].to_numpy(dtype=float)
    bundle.reference = reference_statistics(window, bundle.feature_names)
    bundle.prediction_reference = _prediction_reference(bundle.pipeline, x, y)
    bundle.reference_window = _window_description(window, timestamp)
    bundle.rebaselined_at = datetime.now(UTC).isoformat(timespec="seconds")
    atomic_write_json(bundle_dir / BUNDLE_FILE, bundle.to_json())
    return bundle


def read_bundle_json(bundle_dir: Path) -> dict[str, Any]:
    path = bundle_dir / BUNDLE_FILE
    try:
        payload: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelMonitoringError(f"no model bundle at {bundle_dir} (run `train` first)") from None
    except json.JSONDecodeError as error:
        raise ModelMonitoringError(f"{path} is not valid JSON: {error}") from None
    if payload.get("format") != FORMAT_VERSION:
        raise ModelMonitoringError(f"{path}: unsupported bundle format {payload.get('format')!r}")
    return payload


def bundle_from_json(payload: dict[str, Any], pipeline: Any = None) -> Bundle:
    return Bundle(
        version=payload["version"],
        target=payload["target"],
        classes=payload["classes"],
        features=[FeatureSpec(**spec) for spec in payload["features"]],
        reference={name: ReferenceFeature(**ref) for name, ref in payload["reference"].items()},
        prediction_reference=PredictionReference(**payload["prediction_reference"]),
        reference_window=payload["reference_window"],
        trained_at=payload["trained_at"],
        model_sha256=payload["model_sha256"],
        rebaselined_at=payload.get("rebaselined_at"),
        pipeline=pipeline,
    )


def load_bundle(bundle_dir: Path) -> Bundle:
    payload = read_bundle_json(bundle_dir)
    model_bytes = (bundle_dir / MODEL_FILE).read_bytes()
    if hashlib.sha256(model_bytes).hexdigest() != payload["model_sha256"]:
        raise ModelMonitoringError(
            f"{bundle_dir / MODEL_FILE} does not match {BUNDLE_FILE} (sha256)"
        )
    return bundle_from_json(payload, joblib.load(io.BytesIO(model_bytes)))


def read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise ModelMonitoringError(f"no such data file: {path}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ModelMonitoringError(f"{path} is not a readable CSV: {error}") from None
