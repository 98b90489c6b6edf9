"""The embedded default model: TF-IDF (word 1-2 grams) + logistic regression with balanced class
weights, which fits the 4,000 reviews in about a second; logged as an MLflow pyfunc model (model
from code, ``pyfunc_model.py``) with a signature, an input example and its data version."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml_cicd.errors import ModelLoadError
from ml_cicd.slices import DataVersion

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

logger = logging.getLogger(__name__)

LABELS = ("other", "great")
INPUT_EXAMPLE = ["Delicious and fresh, my kids love it.", "Stale, bland and overpriced."]
PIP_REQUIREMENTS = ["mlflow==3.17.2", "scikit-learn==1.9.1", "joblib==1.6.0", "pandas", "numpy"]
# The folder `log_model` writes, and what `save_model_folder` lays out, relative to a run.
MODEL_ARTIFACT = "model"


def build_pipeline(seed: int = 0) -> Pipeline:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    return Pipeline(
        [
            ("tfidf", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)),
            (
                "classifier",
                LogisticRegression(
                    C=4.0, class_weight="balanced", max_iter=2000, random_state=seed
                ),
            ),
        ]
    )


def fit(frame: pd.DataFrame, seed: int = 0) -> Pipeline:
    """Fit on a (text, label) frame."""
    pipeline = build_pipeline(seed)
    pipeline.fit(frame["text"].astype(str).tolist(), frame["label"].astype(str).to_numpy())
    return pipeline


def classification_metrics(y_true: list[str], y_pred: list[str]) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, f1_score

    per_class = f1_score(y_true, y_pred, labels=list(LABELS), average=None, zero_division=0)
    return {
        "macro_f1": float(f1_score(y_true, y_pred, labels=list(LABELS), average="macro")),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        **{f"f1_{label}": float(value) for label, value in zip(LABELS, per_class, strict=True)},
        "rows": len(y_true),
    }


def model_metadata(data: DataVersion, metrics: dict[str, Any]) -> dict[str, Any]:
    """Stored in the MLmodel file: a model folder says what it was trained on."""
    return {
        "data_version": data.version,
        "data_slices": json.loads(data.as_tags()["data_slices"]),
        "metrics": metrics,
        "model_type": "tfidf-logistic-regression",
    }


def _pyfunc_arguments(
    pipeline: Pipeline, data: DataVersion, metrics: dict[str, Any], scratch: Path
) -> dict[str, Any]:
    """What ``log_model`` and ``save_model`` both take: the model from code, the pickled pipeline
    (written into ``scratch``), signature, input example, pinned requirements, metadata."""
    import joblib
    from mlflow.models import infer_signature

    example = pd.DataFrame({"text": INPUT_EXAMPLE})
    output = pd.DataFrame({"label": ["great", "other"], "p_great": [0.9, 0.1]})
    pipeline_file = scratch / "pipeline.joblib"
    joblib.dump(pipeline, pipeline_file)
    return {
        "python_model": str(Path(__file__).with_name("pyfunc_model.py")),
        "artifacts": {"pipeline": str(pipeline_file)},
        "signature": infer_signature(example, output),
        "input_example": example,
        "pip_requirements": PIP_REQUIREMENTS,
        "metadata": model_metadata(data, metrics),
    }


def log_model(pipeline: Pipeline, data: DataVersion, metrics: dict[str, Any]) -> Any:
    """Log the pipeline as a pyfunc model in the active MLflow run; returns MLflow's ModelInfo."""
    import mlflow

    with tempfile.TemporaryDirectory() as scratch:
        return mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT, **_pyfunc_arguments(pipeline, data, metrics, Path(scratch))
        )


def save_model_folder(
    pipeline: Pipeline, data: DataVersion, metrics: dict[str, Any], output: Path
) -> Path:
    """Write the pyfunc model to ``output`` (a plain MLflow model folder, no tracking server):
    built beside it and renamed, so a reader never sees half a model."""
    import mlflow

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.name}.") as scratch:
        staged = Path(scratch) / "model"
        mlflow.pyfunc.save_model(
            path=str(staged), **_pyfunc_arguments(pipeline, data, metrics, Path(scratch))
        )
        if output.exists():
            output.rename(Path(scratch) / "old")  # removed with the scratch folder
        staged.rename(output)
    return output


def load_pyfunc(uri: str) -> Any:
    """A pyfunc model from a models:/, runs:/ URI or a folder; ModelLoadError says why not."""
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError, ImportError, ValueError, KeyError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelLoadError(f"cannot load model {uri}: {first}") from error


def p_great_function(model: Any):
    """texts -> p(great): the model's native fast path when it has one, else its pyfunc."""
    try:
        native = model.unwrap_python_model()
    except Exception:  # not a python_function model from code: use the pyfunc interface
        native = None
    if native is not None and callable(getattr(native, "p_great", None)):
        return lambda texts: np.asarray(native.p_great(list(texts)), dtype=float)

    def via_pyfunc(texts: list[str]) -> np.ndarray:
        output = model.predict(pd.DataFrame({"text": list(texts)}))
        return output["p_great"].to_numpy(dtype=float)

    return via_pyfunc


def predict_labels(p_great: np.ndarray) -> list[str]:
    return ["great" if p >= 0.5 else "other" for p in p_great]
