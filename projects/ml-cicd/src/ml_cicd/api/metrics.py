"""The service's Prometheus metrics: requests, latency, predictions, the serving model, reloads
and shed requests. With several uvicorn workers (PROMETHEUS_MULTIPROC_DIR set) every worker
writes its values to files there and ``exposition`` combines them."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ml_cicd.serving import LoadedModel

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
RELOAD_OUTCOMES = ("switched", "failed", "busy", "timeout")


class ServiceMetrics:
    """The service's Prometheus metrics in a registry of their own (several apps may live in one
    process, e.g. in tests). With PROMETHEUS_MULTIPROC_DIR set (several uvicorn workers), the
    values go to files there and ``exposition`` combines every worker's."""

    LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
    BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
    P_GREAT_BUCKETS = tuple(round(0.1 * step, 1) for step in range(1, 11))

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "mlcicd_http_requests_total",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "mlcicd_http_request_duration_seconds",
            "HTTP request latency by route, method and status",
            ["route", "method", "status"],
            buckets=self.LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_progress = Gauge(
            "mlcicd_http_requests_in_progress",
            "HTTP requests being served",
            ["route", "method"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.predictions = Counter(
            "mlcicd_predictions_total", "Predicted labels", ["label"], registry=registry
        )
        self.batch_size = Histogram(
            "mlcicd_predict_batch_size",
            "Texts per predict request",
            buckets=self.BATCH_BUCKETS,
            registry=registry,
        )
        self.p_great = Histogram(
            "mlcicd_p_great",
            "Predicted probability of great",
            buckets=self.P_GREAT_BUCKETS,
            registry=registry,
        )
        self.model_info = Gauge(
            "mlcicd_model_info",
            "The model serving now (1); models it replaced (0)",
            ["name", "version", "alias", "data_version", "uri"],
            registry=registry,
            multiprocess_mode="liveall",  # one series per worker: each reports its own
        )
        self.reloads = Counter(
            "mlcicd_model_reloads_total", "Admin reloads by outcome", ["outcome"], registry=registry
        )
        self.shed = Counter(
            "mlcicd_predictions_shed_total",
            "Predict requests answered 503 at once because the prediction queue was full",
            registry=registry,
        )
        # Children looked up once: ``labels()`` takes a lock and a dict lookup per call.
        self._predicted = {label: self.predictions.labels(label) for label in ("great", "other")}
        for outcome in RELOAD_OUTCOMES:
            self.reloads.labels(outcome)
        if not self.multiprocess:
            ProcessCollector(registry=registry)

    def observe_predictions(self, labels: list[str], p_great: np.ndarray) -> None:
        self.batch_size.observe(len(labels))
        for label, counter in self._predicted.items():
            count = labels.count(label)
            if count:
                counter.inc(count)
        self._observe_all(self.p_great, p_great)

    @staticmethod
    def _observe_all(histogram: Any, values: np.ndarray) -> None:
        """``histogram.observe`` of every value, with one update per bucket hit rather than two
        per value: with several workers each update is a locked write to a memory-mapped file.
        (prometheus_client has no batch observe; this uses the same bucket rule, le: the first
        bound >= the value.)"""
        bounds = np.asarray(histogram._upper_bounds)
        counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=bounds.size)
        for index in np.flatnonzero(counts):
            histogram._buckets[index].inc(int(counts[index]))
        histogram._sum.inc(float(np.sum(values)))

    def model_switched(self, previous: LoadedModel | None, current: LoadedModel) -> None:
        if previous is not None:
            self.model_info.labels(*self._model_labels(previous)).set(0)
        self.model_info.labels(*self._model_labels(current)).set(1)

    @staticmethod
    def _model_labels(model: LoadedModel) -> tuple[str, ...]:
        return (
            model.name,
            model.version or "",
            model.alias or "",
            model.data_version or "",
            model.uri,
        )

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

    def worker_exited(self) -> None:
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())
