"""The service's Prometheus metrics (prometheus-client), in a registry of their own (several apps
may live in one process, e.g. in tests). With PROMETHEUS_MULTIPROC_DIR set (several uvicorn
workers) values go to files there and ``exposition`` combines every process's, the drift job's
gauges included.

The request path aggregates per batch: one write per series that changed (``BatchSeries``), not
one per row, so that instrumentation stays cheap next to a ~1 ms predict. ``METRIC_NAMES`` is the
catalogue the dashboard and rule tests check their queries against.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CONFIDENCE_BUCKETS = tuple(round(0.5 + 0.05 * step, 2) for step in range(1, 11))
BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000)
# The endpoint label's values; any other path is counted as "unmatched" (no label per path).
ENDPOINTS = frozenset(
    {"/predict", "/labels", "/model", "/health/live", "/health/ready", "/metrics"}
)

# Every series name the service exports (histograms and summaries with their suffixes).
METRIC_NAMES = frozenset(
    {
        "model_http_requests_total",
        *(f"model_http_request_duration_seconds_{s}" for s in ("bucket", "sum", "count")),
        "model_client_errors_total",
        "model_predictions_total",
        *(f"model_prediction_confidence_{s}" for s in ("bucket", "sum", "count")),
        *(f"model_predict_batch_rows_{s}" for s in ("bucket", "sum", "count")),
        "model_input_rows_total",
        "model_feature_missing_total",
        "model_feature_out_of_range_total",
        "model_feature_unknown_category_total",
        *(f"model_feature_value_{s}" for s in ("sum", "count")),
        "model_labels_received_total",
        "model_labels_unmatched_total",
        "model_feature_drift_psi",
        "model_feature_drift_ks_statistic",
        "model_feature_drift_ks_p_value",
        "model_feature_drift_chi2_statistic",
        "model_feature_drift_chi2_p_value",
        "model_drift_window_rows",
        "model_drift_last_success_timestamp_seconds",
        "model_drift_interval_seconds",
        "model_drift_run_duration_seconds",
        "model_drift_job_failures_total",
        "model_labelled_accuracy",
        "model_labelled_auc",
        "model_labelled_window_rows",
        "model_reference_confidence_mean",
        "model_reference_accuracy",
        "model_reference_auc",
        "model_reference_positive_rate",
        "model_info",
        "model_registry_failures_total",
    }
)
# Exported only by a bundle with categorical features (their series are labelled by feature).
CATEGORICAL_METRIC_NAMES = frozenset(
    {
        "model_feature_unknown_category_total",
        "model_feature_drift_chi2_statistic",
        "model_feature_drift_chi2_p_value",
    }
)


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def bucket_counts(bounds: np.ndarray, values: np.ndarray) -> np.ndarray:
    """How many of ``values`` fall in each histogram bucket (non-cumulative, ``le`` inclusive):
    the increments of a Histogram's ``_buckets`` for observing every value."""
    return np.bincount(np.searchsorted(bounds, values, side="left"), minlength=bounds.size)


class BatchSeries:
    """A fixed list of series that one request batch updates: ``add`` takes one increment per
    series, in the order they were added, and writes only those that changed.

    prometheus-client has no bulk update, and its public ``inc``/``observe`` re-check the metric on
    every call; in multi-process mode each write goes to a memory-mapped file. This writes to the
    values the library keeps behind Counter (``_value``), Histogram (``_buckets``, one
    non-cumulative value per bucket, and ``_sum``) and Summary (``_count``, ``_sum``), once per
    series and batch. A unit test checks the result against one library update per value."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def counters(self, *children: Any) -> None:
        self.values.extend(child._value for child in children)

    def histogram(self, histogram: Any) -> np.ndarray:
        """Its buckets, then its sum; returns the buckets' upper bounds (``bucket_counts`` gives
        their increments)."""
        self.values.extend([*histogram._buckets, histogram._sum])
        return np.asarray(histogram._upper_bounds)

    def summaries(self, *children: Any) -> None:
        """The counts of every child, then their sums."""
        self.values.extend(child._count for child in children)
        self.values.extend(child._sum for child in children)

    def add(self, increments: list[float]) -> None:
        for value, amount in zip(self.values, increments, strict=True):
            if amount:
                value.inc(amount)


class ServiceMetrics:
    def __init__(
        self, features: list[str], classes: list[str], categorical: list[str] | None = None
    ) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            Summary,
            disable_created_metrics,
        )

        disable_created_metrics()  # *_created series double the exposition and no rule reads them
        self.multiprocess = multiprocess_enabled()
        self.registry = registry = CollectorRegistry()
        # In multi-process mode values live in files; exposition() reads them all.
        own: Any = None if self.multiprocess else registry
        self.features = features
        self.requests = Counter(
            "model_http_requests_total",
            "HTTP requests by endpoint and status",
            ["endpoint", "status"],
            registry=own,
        )
        self.latency = Histogram(
            "model_http_request_duration_seconds",
            "HTTP request latency by endpoint and status",
            ["endpoint", "status"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.client_errors = Counter(
            "model_client_errors_total",
            "Requests rejected with a 4xx, by endpoint and reason",
            ["endpoint", "reason"],
            registry=own,
        )
        self.predictions = Counter(
            "model_predictions_total",
            "Predictions by predicted class (outcome: positive or negative)",
            ["predicted_class", "outcome"],
            registry=own,
        )
        self.confidence = Histogram(
            "model_prediction_confidence",
            "Probability of the predicted class",
            buckets=CONFIDENCE_BUCKETS,
            registry=own,
        )
        self.batch_rows = Histogram(
            "model_predict_batch_rows", "Rows per predict request", buckets=BATCH_BUCKETS,
            registry=own,
        )  # fmt: skip
        self.input_rows = Counter("model_input_rows_total", "Rows predicted", registry=own)
        self.missing = Counter(
            "model_feature_missing_total", "Missing (null) input values", ["feature"], registry=own
        )
        self.out_of_range = Counter(
            "model_feature_out_of_range_total",
            "Input values outside the feature's valid range (bundle schema)",
            ["feature"],
            registry=own,
        )
        self.unknown_category = Counter(
            "model_feature_unknown_category_total",
            "Categorical inputs with a category the model never saw (served as missing)",
            ["feature"],
            registry=own,
        )
        self.feature_value = Summary(
            "model_feature_value", "Present input values (sum and count give the mean)",
            ["feature"], registry=own,
        )  # fmt: skip
        self.labels_received = Counter(
            "model_labels_received_total", "Ground-truth labels accepted", registry=own
        )
        self.model_info = Gauge(
            "model_info",
            "The served model bundle (value 1; 0: a bundle this process served before)",
            [
                "version",
                "trained_at",
                "reference_rows",
                "rebaselined_at",
                "registered_model",
                "registered_version",
            ],
            registry=own,
            multiprocess_mode="max",
        )
        self.registry_failures = Counter(
            "model_registry_failures_total",
            "Following the registry: polls that failed (unreachable, no alias, a version that "
            "cannot be installed) and bundle switches refused; the served model stays",
            ["stage"],
            registry=own,
        )
        self.registry_poll_failures = self.registry_failures.labels("poll")
        self.bundle_switch_failures = self.registry_failures.labels("switch")
        self.predicted = [
            self.predictions.labels(name, outcome)
            for name, outcome in zip(classes, ("negative", "positive"), strict=True)
        ]
        for feature in features:
            self.missing.labels(feature)
            if feature not in (categorical or ()):
                self.out_of_range.labels(feature)
        for feature in categorical or ():
            self.unknown_category.labels(feature)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        from prometheus_client import CollectorRegistry
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept or "")
        if not self.multiprocess:
            return encoder(self.registry), content_type
        from prometheus_client.multiprocess import MultiProcessCollector

        combined = CollectorRegistry()
        MultiProcessCollector(combined)
        return encoder(combined), content_type


class DriftMetrics:
    """Gauges the drift job sets (one process; ``mostrecent`` keeps its latest value even when
    the process that holds the job changes)."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Gauge

        own: Any = None if multiprocess_enabled() else registry

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
            return Gauge(name, doc, list(labels), registry=own, multiprocess_mode="mostrecent")

        self.psi = gauge("model_feature_drift_psi", "PSI, window vs reference", ("feature",))
        self.ks_statistic = gauge(
            "model_feature_drift_ks_statistic", "Kolmogorov-Smirnov statistic", ("feature",)
        )
        self.ks_p_value = gauge(
            "model_feature_drift_ks_p_value", "Kolmogorov-Smirnov p-value", ("feature",)
        )
        self.chi2_statistic = gauge(
            "model_feature_drift_chi2_statistic",
            "Chi-square statistic of the category counts (categorical features)",
            ("feature",),
        )
        self.chi2_p_value = gauge(
            "model_feature_drift_chi2_p_value", "Chi-square p-value", ("feature",)
        )
        self.window_rows = gauge("model_drift_window_rows", "Rows in the drift window")
        self.last_success = gauge(
            "model_drift_last_success_timestamp_seconds",
            "When the drift job last completed a run (its start counts as one)",
        )
        self.interval = gauge(
            "model_drift_interval_seconds", "How often the drift job runs (the staleness alert)"
        )
        self.run_duration = gauge(
            "model_drift_run_duration_seconds", "Seconds the last drift computation took"
        )
        self.failures = Counter(
            "model_drift_job_failures_total",
            "Drift job runs that failed (the gauges keep their last values meanwhile)",
            registry=own,
        )
        self.accuracy = gauge("model_labelled_accuracy", "Accuracy over the labelled window")
        self.auc = gauge("model_labelled_auc", "ROC AUC over the labelled window")
        self.labelled_rows = gauge("model_labelled_window_rows", "Rows in the labelled window")
        self.reference_confidence = gauge(
            "model_reference_confidence_mean", "Mean confidence on the reference validation rows"
        )
        self.reference_accuracy = gauge(
            "model_reference_accuracy", "Accuracy on the reference validation rows"
        )
        self.reference_auc = gauge("model_reference_auc", "ROC AUC on the reference validation")
        self.reference_positive_rate = gauge(
            "model_reference_positive_rate", "Share of positive predictions on the reference"
        )
        self.labels_unmatched = Counter(
            "model_labels_unmatched_total",
            "Labels whose prediction id the drift job does not know (unknown or expired)",
            registry=own,
        )
