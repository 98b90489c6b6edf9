"""The model bundle the service serves: a fitted scikit-learn pipeline, the feature schema (names,
types, valid ranges, categories) and the reference window's statistics, trained from any CSV by
configuration.

Layout of a bundle folder:
    model.joblib   the fitted pipeline (imputer and category encoder + gradient-boosted trees)
    bundle.json    schema, reference statistics, version, the model file's sha256

or, for a version of the MLflow registry (``registry.py``; bundle.json's ``source`` names it):
    mlflow-model/  the version's MLflow model as downloaded (a pyfunc and its artifacts)
    bundle.json    schema and reference statistics from the version's training window

The model's input is the numeric features (floats, NaN = missing) followed by the categorical
ones (strings, None = missing), in schema order within each kind (``model_input``).
``train_bundle`` and ``rebaseline`` write a complete new folder and rename it into place, so a
reader sees the old bundle or the new one, never a mix.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
import pandas as pd

from model_monitoring.drift import (
    CategoryReference,
    Reference,
    ReferenceFeature,
    category_reference,
    reference_feature,
)
from model_monitoring.errors import ModelMonitoringError

MODEL_FILE = "model.joblib"
MLFLOW_MODEL_DIR = "mlflow-model"
BUNDLE_FILE = "bundle.json"
FORMAT_VERSION = 2
# Values a little outside the training range are still plausible; further out counts as invalid.
RANGE_MARGIN = 0.05
VALIDATION_SHARE = 0.2
# HistGradientBoosting's native categorical support takes at most this many categories.
MAX_CATEGORIES = 255

FeatureType = Literal["float", "int", "category"]


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    type: FeatureType
    min: float | None = None  # numeric features: the valid range
    max: float | None = None
    categories: list[str] | None = None  # categorical features: the known categories

    @property
    def categorical(self) -> bool:
        return self.type == "category"


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
    reference: dict[str, Reference]
    prediction_reference: PredictionReference
    reference_window: dict[str, Any]
    trained_at: str
    model_sha256: str
    rebaselined_at: str | None = None
    # A registry version: registered_model, version, alias, run_id (None: a trained bundle).
    source: dict[str, Any] | None = None
    pipeline: Any = field(default=None, repr=False)

    @property
    def feature_names(self) -> list[str]:
        return [spec.name for spec in self.features]

    @property
    def numeric(self) -> list[FeatureSpec]:
        return [spec for spec in self.features if not spec.categorical]

    @property
    def categorical(self) -> list[FeatureSpec]:
        return [spec for spec in self.features if spec.categorical]

    def frame_input(self, frame: pd.DataFrame) -> np.ndarray:
        return frame_input(self.features, frame)

    def to_json(self) -> dict[str, Any]:
        payload = asdict(self)
        payload.pop("pipeline")
        payload["format"] = FORMAT_VERSION
        return payload


def model_input(numeric: np.ndarray, categorical: np.ndarray | None) -> np.ndarray:
    """The pipeline's input: the numeric columns (floats), then the categorical ones (objects)."""
    if categorical is None or categorical.shape[1] == 0:
        return numeric
    return np.concatenate([numeric.astype(object), categorical], axis=1)


def frame_input(specs: list[FeatureSpec], frame: pd.DataFrame) -> np.ndarray:
    numeric = frame[[spec.name for spec in specs if not spec.categorical]].to_numpy(dtype=float)
    categorical = [category_values(frame[spec.name]) for spec in specs if spec.categorical]
    return model_input(numeric, np.column_stack(categorical) if categorical else None)


def category_values(column: pd.Series) -> np.ndarray:
    """A categorical column as strings, None where missing (booleans become "True"/"False")."""
    return np.array([None if pd.isna(v) else str(v) for v in column], dtype=object)


def _is_categorical(column: pd.Series) -> bool:
    return pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column)


def _numeric_type(values: pd.Series) -> FeatureType:
    present = values.dropna()
    if pd.api.types.is_integer_dtype(values) or (
        len(present) and np.all(np.equal(np.mod(present, 1), 0))
    ):
        return "int"
    return "float"


def feature_specs(
    frame: pd.DataFrame, features: list[str], categorical: list[str] | None = None
) -> list[FeatureSpec]:
    """The schema of ``features``: a column is categorical when ``categorical`` names it or when
    it is not numeric (strings, booleans)."""
    forced = set(categorical or ())
    specs = []
    for name in features:
        column = frame[name]
        if column.isna().all():
            raise ModelMonitoringError(f"feature {name!r} has no values")
        if name in forced or _is_categorical(column):
            categories = sorted({str(v) for v in column.dropna()})
            if len(categories) > MAX_CATEGORIES:
                raise ModelMonitoringError(
                    f"feature {name!r} has {len(categories)} categories; at most "
                    f"{MAX_CATEGORIES} are supported (group rare ones first)"
                )
            specs.append(FeatureSpec(name, "category", categories=categories))
            continue
        low, high = float(column.min()), float(column.max())
        margin = (high - low) * RANGE_MARGIN
        specs.append(FeatureSpec(name, _numeric_type(column), low - margin, high + margin))
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
    return (target == classes[1]).to_numpy(dtype=np.int64), [_class_name(c) for c in classes]


def _class_name(value: Any) -> str:
    # 0.0/1.0 read from a CSV are the classes "0" and "1", as clients send them.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def build_pipeline(specs: list[FeatureSpec], seed: int = 0) -> Any:
    """Missing numeric values imputed with the median; categories encoded as the model's native
    categorical features (an unknown category is treated as missing); gradient-boosted trees."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    numeric = [spec for spec in specs if not spec.categorical]
    categorical = [spec for spec in specs if spec.categorical]
    model = HistGradientBoostingClassifier(
        max_iter=100,
        learning_rate=0.1,
        random_state=seed,
        categorical_features=[False] * len(numeric) + [True] * len(categorical),
    )
    if not categorical:  # numbers only: the cheapest request path
        return make_pipeline(SimpleImputer(strategy="median"), model)
    encoder = ColumnTransformer(
        [
            ("numeric", SimpleImputer(strategy="median"), list(range(len(numeric)))),
            (
                "categorical",
                OrdinalEncoder(
                    categories=[spec.categories for spec in categorical],
                    handle_unknown="use_encoded_value",
                    unknown_value=np.nan,
                    encoded_missing_value=np.nan,
                ),
                list(range(len(numeric), len(specs))),
            ),
        ]
    )
    return make_pipeline(encoder, model)


def score_reference(pipeline: Any, x: np.ndarray, y: np.ndarray) -> PredictionReference:
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


def reference_statistics(frame: pd.DataFrame, specs: list[FeatureSpec]) -> dict[str, Reference]:
    return {
        spec.name: (
            category_reference(category_values(frame[spec.name]), spec.categories or [])
            if spec.categorical
            else reference_feature(frame[spec.name].to_numpy(dtype=float))
        )
        for spec in specs
    }


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


def window_description(window: pd.DataFrame, timestamp: str | None) -> dict[str, Any]:
    described: dict[str, Any] = {"rows": len(window), "timestamp_column": timestamp}
    if timestamp:
        described["start"] = window[timestamp].min().isoformat()
        described["end"] = window[timestamp].max().isoformat()
    return described


def _default_features(frame: pd.DataFrame, excluded: set[str]) -> list[str]:
    return [c for c in frame.columns if c not in excluded and c != "id"]


def train_bundle(
    frame: pd.DataFrame,
    *,
    target: str,
    output: Path,
    timestamp: str | None = None,
    features: list[str] | None = None,
    categorical: list[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    seed: int = 0,
) -> Bundle:
    """Fit the pipeline on the reference window of ``frame`` and write the bundle to ``output``.

    A random ``VALIDATION_SHARE`` of the window gives the out-of-sample reference
    figures (accuracy, AUC, confidence); the whole window gives the drift reference."""
    if target not in frame.columns:
        raise ModelMonitoringError(
            f"no target column {target!r}; columns: {', '.join(map(str, frame.columns))}"
        )
    features = features or _default_features(frame, {target, *([timestamp] if timestamp else [])})
    unknown = [name for name in [*features, *(categorical or ())] if name not in frame.columns]
    if unknown:
        raise ModelMonitoringError(f"feature column(s) not in the data: {', '.join(unknown)}")
    if not features:
        raise ModelMonitoringError("no feature columns to train on")
    window = select_window(frame, timestamp, start, end)
    y, classes = encode_target(window[target])
    if len(window) < 50:
        raise ModelMonitoringError(
            f"the reference window has {len(window)} rows; at least 50 needed"
        )
    specs = feature_specs(window, features, categorical)
    x = frame_input(specs, window)
    # A random split: a window need not be stationary inside (nannyml's housing data moves across
    # the map in time), and the reference figures describe the window as a whole.
    order = np.random.default_rng(seed).permutation(len(window))
    fit_rows, validation_rows = np.split(order, [int(len(window) * (1 - VALIDATION_SHARE))])
    pipeline = build_pipeline(specs, seed).fit(x[fit_rows], y[fit_rows])
    prediction_reference = score_reference(pipeline, x[validation_rows], y[validation_rows])
    pipeline.fit(x, y)  # the served model sees the whole window
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer)
    model_bytes = buffer.getvalue()
    sha = hashlib.sha256(model_bytes).hexdigest()
    bundle = Bundle(
        version=f"{datetime.now(UTC):%Y%m%d%H%M%S}-{sha[:8]}",
        target=target,
        classes=classes,
        features=specs,
        reference=reference_statistics(window, specs),
        prediction_reference=prediction_reference,
        reference_window=window_description(window, timestamp),
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        model_sha256=sha,
        pipeline=pipeline,
    )
    write_bundle(output, model_bytes, bundle)
    return bundle


def write_bundle(output: Path, model: bytes | Path, bundle: Bundle) -> None:
    """Write the model (``model.joblib`` bytes, or an MLflow model folder, moved in) and
    bundle.json into a new sibling folder, then rename it into place: a reader sees the old
    bundle or the new one (for an instant between the two renames, none), never a mix."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.new-"))
    try:
        files = [(BUNDLE_FILE, json.dumps(bundle.to_json(), indent=2).encode())]
        if isinstance(model, Path):
            shutil.move(model, staging / MLFLOW_MODEL_DIR)
        else:
            files.insert(0, (MODEL_FILE, model))
        for name, data in files:
            with (staging / name).open("wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
        os.chmod(staging, 0o755)  # mkdtemp makes it private; the service may run as another user
        _replace_folder(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace_folder(staging: Path, output: Path) -> None:
    if not output.exists():
        os.rename(staging, output)
        return
    retired = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.old-"))
    try:
        os.rename(output, retired / output.name)
        try:
            os.rename(staging, output)
        except OSError:
            os.rename(retired / output.name, output)  # the old bundle back in place
            raise
    finally:
        shutil.rmtree(retired, ignore_errors=True)


def rebaseline(
    bundle_dir: Path,
    frame: pd.DataFrame,
    *,
    timestamp: str | None = None,
    start: str | None = None,
    end: str | None = None,
) -> Bundle:
    """Recompute the reference statistics (drift and prediction figures) from a new window of
    labelled data, with the bundle's model (the same model file, a new bundle.json)."""
    bundle = load_bundle(bundle_dir)
    if bundle.source is not None:
        raise ModelMonitoringError(
            f"{bundle_dir} serves a registry version: its reference is that version's training "
            "window, and it is rebuilt when the registry's alias moves"
        )
    missing = [name for name in [*bundle.feature_names, bundle.target] if name not in frame]
    if missing:
        raise ModelMonitoringError(f"the data lacks column(s) {', '.join(missing)}")
    window = select_window(frame, timestamp, start, end)
    y, classes = encode_target(window[bundle.target])
    if classes != bundle.classes:
        raise ModelMonitoringError(
            f"target classes {classes} differ from the model's {bundle.classes}"
        )
    bundle.reference = reference_statistics(window, bundle.features)
    bundle.prediction_reference = score_reference(
        bundle.pipeline, bundle.frame_input(window), y
    )
    bundle.reference_window = window_description(window, timestamp)
    bundle.rebaselined_at = datetime.now(UTC).isoformat(timespec="seconds")
    write_bundle(bundle_dir, (bundle_dir / MODEL_FILE).read_bytes(), bundle)
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
        raise ModelMonitoringError(
            f"{path}: unsupported bundle format {payload.get('format')!r} (retrain it)"
        )
    return payload


def _reference_from_json(payload: dict[str, Any]) -> Reference:
    if "categories" in payload:
        return CategoryReference(**payload)
    return ReferenceFeature(**payload)


def bundle_from_json(payload: dict[str, Any], pipeline: Any = None) -> Bundle:
    return Bundle(
        version=payload["version"],
        target=payload["target"],
        classes=payload["classes"],
        features=[FeatureSpec(**spec) for spec in payload["features"]],
        reference={name: _reference_from_json(ref) for name, ref in payload["reference"].items()},
        prediction_reference=PredictionReference(**payload["prediction_reference"]),
        reference_window=payload["reference_window"],
        trained_at=payload["trained_at"],
        model_sha256=payload["model_sha256"],
        rebaselined_at=payload.get("rebaselined_at"),
        source=payload.get("source"),
        pipeline=pipeline,
    )


def bundle_identity(bundle_dir: Path) -> str | None:
    """Which bundle the folder holds now: the hash of its bundle.json (which names the model's
    hash and version). Not the file's inode and mtime: a copy keeps the mtime and a freed inode
    is reused, so a different bundle could look like the served one."""
    try:
        return hashlib.sha256((bundle_dir / BUNDLE_FILE).read_bytes()).hexdigest()
    except FileNotFoundError:  # between the two renames of a swap
        return None


def load_bundle(bundle_dir: Path) -> Bundle:
    payload = read_bundle_json(bundle_dir)
    if payload.get("source") is not None:  # a registry version (registry.py)
        from model_monitoring.pyfunc import pyfunc_pipeline

        bundle = bundle_from_json(payload)
        names = bundle.feature_names
        samples = [bundle.reference[name].sample for name in names]  # type: ignore[union-attr]
        bundle.pipeline = pyfunc_pipeline(
            bundle_dir / MLFLOW_MODEL_DIR, names, samples, bundle.model_sha256
        )
        return bundle
    try:
        model_bytes = (bundle_dir / MODEL_FILE).read_bytes()
    except FileNotFoundError:
        raise ModelMonitoringError(f"no {MODEL_FILE} in {bundle_dir} (run `train`)") from None
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
