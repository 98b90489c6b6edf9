"""What instrumentation does on the request path, aggregated per batch: input counters (missing,
out of range, unknown category), feature means, the prediction distribution (one vector of
increments, one write per series that changed), and one prediction log line per batch for the
drift job."""

from __future__ import annotations

import time
from bisect import bisect_left

import numpy as np

from model_monitoring.bundle import Bundle
from model_monitoring.metrics import BatchSeries, ServiceMetrics, bucket_counts
from model_monitoring.predlog import LABELS, PREDICTIONS, RotatingJsonLines
from model_monitoring.settings import ProjectSettings


class Monitor:
    def __init__(self, bundle: Bundle, settings: ProjectSettings, metrics: ServiceMetrics) -> None:
        self.enabled = settings.instrumentation
        self.metrics = metrics
        self.use(bundle)
        # Every series a batch updates, in the order of _increments' vector.
        self.series = BatchSeries()
        self.series.counters(*(metrics.missing.labels(name) for name in self.numeric_names))
        self.series.counters(*(metrics.out_of_range.labels(name) for name in self.numeric_names))
        self.series.summaries(*(metrics.feature_value.labels(name) for name in self.numeric_names))
        self.series.counters(*(metrics.missing.labels(name) for name in self.categorical_names))
        self.series.counters(
            *(metrics.unknown_category.labels(name) for name in self.categorical_names)
        )
        self.series.counters(*metrics.predicted)  # negative, positive
        self.confidence_bounds = self.series.histogram(metrics.confidence)
        self.batch_bounds = self.series.histogram(metrics.batch_rows).tolist()
        self.series.counters(metrics.input_rows)
        log_dir = settings.resolved_log_dir()
        self.predictions_log = RotatingJsonLines(
            log_dir, PREDICTIONS, settings.log_max_bytes, settings.log_backups
        )
        self.labels_log = RotatingJsonLines(
            log_dir, LABELS, settings.log_max_bytes, settings.log_backups
        )

    def use(self, bundle: Bundle) -> None:
        """The schema's names, known categories and valid ranges (a new bundle of the same
        schema may move the ranges)."""
        numeric, categorical = bundle.numeric, bundle.categorical
        self.numeric_names = [spec.name for spec in numeric]
        self.categorical_names = [spec.name for spec in categorical]
        self.known = [frozenset(spec.categories or ()) for spec in categorical]
        self.low = np.array([spec.min for spec in numeric], dtype=float)
        self.high = np.array([spec.max for spec in numeric], dtype=float)

    def observe_batch(
        self,
        version: str,
        ids: list[str],
        numeric: np.ndarray,
        categorical: list[list[str | None]],
        predicted: np.ndarray,
        confidence: np.ndarray,
    ) -> None:
        """``numeric``: rows x numeric features (NaN = missing); ``categorical``: one list of
        values per categorical feature (None = missing)."""
        if not self.enabled:
            return
        self.series.add(self._increments(numeric, categorical, predicted, confidence))
        inputs = dict(zip(self.numeric_names, numeric.T.tolist(), strict=True))  # NaN -> null
        inputs.update(zip(self.categorical_names, categorical, strict=True))
        self.predictions_log.write(
            {
                "ts": time.time(),
                "model_version": version,
                "ids": ids,
                "inputs": inputs,
                "prediction": predicted.tolist(),
                "confidence": np.round(confidence, 6).tolist(),
            }
        )

    def _increments(
        self,
        numeric: np.ndarray,
        categorical: list[list[str | None]],
        predicted: np.ndarray,
        confidence: np.ndarray,
    ) -> list[float]:
        """One increment per series of ``self.series``, in its order."""
        rows = len(predicted)
        missing = np.isnan(numeric)
        missing_counts = missing.sum(axis=0)
        outside = ((numeric < self.low) | (numeric > self.high)).sum(axis=0)  # NaN compares False
        category_missing = [values.count(None) for values in categorical]
        unknown = [
            sum(value not in known for value in values) - missed
            for values, known, missed in zip(categorical, self.known, category_missing, strict=True)
        ]
        positives = int(predicted.sum())
        batch_bucket = [0] * len(self.batch_bounds)
        batch_bucket[bisect_left(self.batch_bounds, rows)] = 1
        return [
            *missing_counts.tolist(),
            *outside.tolist(),
            *(rows - missing_counts).tolist(),  # feature_value: counts, then sums of present values
            *np.where(missing, 0.0, numeric).sum(axis=0).tolist(),
            *category_missing,
            *unknown,
            rows - positives,
            positives,
            *bucket_counts(self.confidence_bounds, confidence).tolist(),
            float(confidence.sum()),
            *batch_bucket,  # batch_rows: one observation
            rows,
            rows,  # input_rows
        ]

    def observe_labels(self, ids: list[str], labels: list[int]) -> None:
        if not self.enabled:
            return
        self.metrics.labels_received.inc(len(ids))
        self.labels_log.write({"ts": time.time(), "ids": ids, "labels": labels})

    def close(self) -> None:
        self.predictions_log.close()
        self.labels_log.close()
