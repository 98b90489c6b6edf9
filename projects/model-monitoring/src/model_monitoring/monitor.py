"""What instrumentation does on the request path, aggregated per batch: input counters (missing,
out of range, unknown category), feature means, the prediction distribution, and one prediction
log line per batch for the drift job."""

from __future__ import annotations

import time

import numpy as np

from model_monitoring.bundle import Bundle
from model_monitoring.metrics import ServiceMetrics, observe_many, observe_summary_many
from model_monitoring.predlog import LABELS, PREDICTIONS, RotatingJsonLines
from model_monitoring.settings import ProjectSettings


class Monitor:
    def __init__(self, bundle: Bundle, settings: ProjectSettings, metrics: ServiceMetrics) -> None:
        self.enabled = settings.instrumentation
        self.metrics = metrics
        self.version = bundle.version
        numeric, categorical = bundle.numeric, bundle.categorical
        self.numeric_names = [spec.name for spec in numeric]
        self.categorical_names = [spec.name for spec in categorical]
        self.known = [frozenset(spec.categories or ()) for spec in categorical]
        self.low = np.array([spec.min for spec in numeric], dtype=float)
        self.high = np.array([spec.max for spec in numeric], dtype=float)
        self.missing = [metrics.missing.labels(name) for name in self.numeric_names]
        self.out_of_range = [metrics.out_of_range.labels(name) for name in self.numeric_names]
        self.values = [metrics.feature_value.labels(name) for name in self.numeric_names]
        self.category_missing = [metrics.missing.labels(name) for name in self.categorical_names]
        self.unknown = [metrics.unknown_category.labels(name) for name in self.categorical_names]
        self.predicted = metrics.predicted
        log_dir = settings.resolved_log_dir()
        self.predictions_log = RotatingJsonLines(
            log_dir, PREDICTIONS, settings.log_max_bytes, settings.log_backups
        )
        self.labels_log = RotatingJsonLines(
            log_dir, LABELS, settings.log_max_bytes, settings.log_backups
        )

    def observe_batch(
        self,
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
        rows = len(ids)
        self._observe_numeric(numeric, rows)
        self._observe_categorical(categorical)
        positives = int(predicted.sum())
        if positives:
            self.predicted[1].inc(positives)
        if rows - positives:
            self.predicted[0].inc(rows - positives)
        observe_many(self.metrics.confidence, confidence)
        self.metrics.batch_rows.observe(rows)
        self.metrics.input_rows.inc(rows)
        inputs = dict(zip(self.numeric_names, numeric.T.tolist(), strict=True))  # NaN -> null
        inputs.update(zip(self.categorical_names, categorical, strict=True))
        self.predictions_log.write(
            {
                "ts": time.time(),
                "model_version": self.version,
                "ids": ids,
                "inputs": inputs,
                "prediction": predicted.tolist(),
                "confidence": np.round(confidence, 6).tolist(),
            }
        )

    def _observe_numeric(self, x: np.ndarray, rows: int) -> None:
        missing = np.isnan(x)
        missing_counts = missing.sum(axis=0)
        outside = ((x < self.low) | (x > self.high)).sum(axis=0)  # NaN compares False
        sums = np.nansum(x, axis=0)
        for index in range(x.shape[1]):
            if missing_counts[index]:
                self.missing[index].inc(int(missing_counts[index]))
            if outside[index]:
                self.out_of_range[index].inc(int(outside[index]))
            observe_summary_many(
                self.values[index], rows - int(missing_counts[index]), float(sums[index])
            )

    def _observe_categorical(self, columns: list[list[str | None]]) -> None:
        for index, values in enumerate(columns):
            missing = values.count(None)
            unknown = sum(value not in self.known[index] for value in values) - missing
            if missing:
                self.category_missing[index].inc(missing)
            if unknown:
                self.unknown[index].inc(unknown)

    def observe_labels(self, ids: list[str], labels: list[int]) -> None:
        if not self.enabled:
            return
        self.metrics.labels_received.inc(len(ids))
        self.labels_log.write({"ts": time.time(), "ids": ids, "labels": labels})

    def close(self) -> None:
        self.predictions_log.close()
        self.labels_log.close()
