"""TF-IDF (word 1-2 grams) + logistic regression with balanced class weights."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from experiment_tracking.data import ReviewData
from experiment_tracking.metrics import classification_metrics

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

BASELINE_PARAMS = {
    "vectorizer": "tfidf",
    "ngram_range": "1-2",
    "min_df": 2,
    "sublinear_tf": True,
    "classifier": "logistic_regression",
    "C": 4.0,
    "class_weight": "balanced",
}


@dataclass
class BaselineResult:
    pipeline: Pipeline
    test_metrics: dict[str, Any]
    validation_metrics: dict[str, Any]
    fit_seconds: float


def build_baseline(seed: int = 0) -> Pipeline:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    return Pipeline(
        [
            ("tfidf", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)),
            (
                "classifier",
                LogisticRegression(
                    C=BASELINE_PARAMS["C"],
                    class_weight="balanced",
                    max_iter=2000,
                    random_state=seed,
                ),
            ),
        ]
    )


def train_baseline(data: ReviewData, seed: int = 0) -> BaselineResult:
    """Fit on the same training rows as the fine-tune; evaluate on validation and test."""
    pipeline = build_baseline(seed)
    started = time.perf_counter()
    pipeline.fit(data.train["text"], data.train["label"])
    fit_seconds = time.perf_counter() - started
    return BaselineResult(
        pipeline=pipeline,
        test_metrics=classification_metrics(
            data.test["label"], pipeline.predict(data.test["text"])
        ),
        validation_metrics=classification_metrics(
            data.validation["label"], pipeline.predict(data.validation["text"])
        ),
        fit_seconds=fit_seconds,
    )
