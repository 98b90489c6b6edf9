"""The drift job: off the request path, in one process, it reads the shared prediction log, keeps a
sliding window of the latest rows, computes PSI and KS (numeric) or chi-square (categorical) per
feature against the bundle's reference, joins delayed labels on prediction id for accuracy and
AUC, and sets the drift gauges.

With several workers each one starts a ``DriftJobThread``; an exclusive file lock elects the one
that computes (the others retry, so the job moves on when its worker dies). A failed run is
counted (``model_drift_job_failures_total``) and the next one retries; the time of the last
successful run and the interval feed the ModelDriftJobStale alert.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from model_monitoring.bundle import BUNDLE_FILE, Bundle, bundle_from_json, read_bundle_json
from model_monitoring.drift import FeatureDrift, window_drift
from model_monitoring.metrics import DriftMetrics
from model_monitoring.predlog import LABELS, PREDICTIONS, LogTailer
from model_monitoring.settings import ProjectSettings

logger = logging.getLogger(__name__)
LOCK_FILE = ".drift-job.lock"


@dataclass(frozen=True)
class DriftSnapshot:
    at: float
    window_rows: int
    features: dict[str, FeatureDrift]
    labelled_rows: int
    accuracy: float | None
    auc: float | None
    seconds: float


class DriftJob:
    """One computation per ``run_once``; state (window, pending predictions) lives between."""

    def __init__(
        self,
        bundle_dir: Path,
        log_dir: Path,
        metrics: DriftMetrics,
        *,
        window_rows: int,
        min_rows: int,
        labelled_window_rows: int,
        labelled_min_rows: int,
        pending_label_rows: int,
    ) -> None:
        self.bundle_dir = bundle_dir
        self.metrics = metrics
        self.window_rows = window_rows
        self.min_rows = min_rows
        self.labelled_min_rows = labelled_min_rows
        self.pending_label_rows = pending_label_rows
        self._predictions = LogTailer(log_dir, PREDICTIONS)
        self._labels = LogTailer(log_dir, LABELS)
        self._batches: deque[tuple[int, dict[str, list[Any]]]] = deque()  # (rows, inputs)
        self._categorical: set[str] = set()
        self._window_size = 0
        # prediction id -> probability of the positive class, for the delayed labels
        self._pending: OrderedDict[str, float] = OrderedDict()
        self._labelled: deque[tuple[float, int]] = deque(maxlen=labelled_window_rows)
        self._bundle_mtime = -1
        self.bundle: Bundle | None = None
        self.last: DriftSnapshot | None = None

    def _reload_reference(self) -> None:
        # `rebaseline` rewrites bundle.json: pick the new reference up without a restart.
        mtime = (self.bundle_dir / BUNDLE_FILE).stat().st_mtime_ns
        if mtime == self._bundle_mtime:
            return
        self.bundle = bundle_from_json(read_bundle_json(self.bundle_dir))
        self._categorical = {spec.name for spec in self.bundle.categorical}
        self._bundle_mtime = mtime
        reference = self.bundle.prediction_reference
        self.metrics.reference_confidence.set(reference.confidence_mean)
        self.metrics.reference_accuracy.set(reference.accuracy)
        self.metrics.reference_auc.set(reference.auc)
        self.metrics.reference_positive_rate.set(reference.positive_rate)
        logger.info("drift reference loaded: bundle %s", self.bundle.version)

    def _ingest(self) -> None:
        # Labels first: a label is posted after its prediction's reply, and the prediction's line
        # is flushed before that reply, so every label read here finds its prediction below
        # (read the other way round, a label posted in between was counted as unmatched).
        labels = list(self._labels.read_new())
        for record in self._predictions.read_new():
            rows = len(record["ids"])
            # Kept as decoded (lists): most batches leave the window before a run needs them as
            # arrays (at high traffic a run reads many windows' worth), so _window converts.
            self._batches.append((rows, record["inputs"]))
            self._window_size += rows
            for pred_id, predicted, confidence in zip(
                record["ids"], record["prediction"], record["confidence"], strict=True
            ):
                self._pending[pred_id] = confidence if predicted == 1 else 1 - confidence
            # Drop whole batches while the rest still fills the window (as they come: no more
            # than a window's worth of decoded rows stays alive).
            while self._window_size - self._batches[0][0] >= self.window_rows:
                self._window_size -= self._batches.popleft()[0]
        while len(self._pending) > self.pending_label_rows:
            self._pending.popitem(last=False)
        unmatched = 0
        for record in labels:
            for pred_id, label in zip(record["ids"], record["labels"], strict=True):
                proba = self._pending.pop(pred_id, None)
                if proba is None:
                    unmatched += 1
                else:
                    self._labelled.append((proba, int(label)))
        if unmatched:
            self.metrics.labels_unmatched.inc(unmatched)

    def _window(self, features: list[str]) -> dict[str, np.ndarray]:
        columns = {}
        for name in features:
            values = [inputs[name] for _, inputs in self._batches if name in inputs]
            if not values:
                raise ValueError(f"no logged values of feature {name!r}")
            columns[name] = np.asarray(  # null -> NaN for numbers, None for categories
                list(chain.from_iterable(values)),
                dtype=object if name in self._categorical else float,
            )[-self.window_rows :]
        return columns

    def run_once(self) -> DriftSnapshot | None:
        started = time.perf_counter()
        self._reload_reference()
        assert self.bundle is not None
        features = self.bundle.feature_names
        self._ingest()
        drift: dict[str, FeatureDrift] = {}
        window_rows = min(self._window_size, self.window_rows)
        self.metrics.window_rows.set(window_rows)
        if window_rows >= self.min_rows:
            drift = window_drift(self.bundle.reference, self._window(features))
            for name, result in drift.items():
                self.metrics.psi.labels(name).set(result.psi)
                statistic, p_value = (
                    (self.metrics.chi2_statistic, self.metrics.chi2_p_value)
                    if result.test == "chi2"
                    else (self.metrics.ks_statistic, self.metrics.ks_p_value)
                )
                statistic.labels(name).set(result.statistic)
                p_value.labels(name).set(result.p_value)
        accuracy = auc = None
        self.metrics.labelled_rows.set(len(self._labelled))
        if len(self._labelled) >= self.labelled_min_rows:
            accuracy, auc = labelled_scores(self._labelled)
            self.metrics.accuracy.set(accuracy)
            if auc is not None:
                self.metrics.auc.set(auc)
        seconds = time.perf_counter() - started
        self.metrics.run_duration.set(seconds)
        self.metrics.last_success.set(time.time())
        self.last = DriftSnapshot(
            time.time(), window_rows, drift, len(self._labelled), accuracy, auc, seconds
        )
        return self.last


def labelled_scores(labelled: Any) -> tuple[float, float | None]:
    """Accuracy and ROC AUC (None while only one class is labelled) of (proba, label) pairs."""
    from sklearn.metrics import roc_auc_score

    pairs = np.asarray(labelled, dtype=float)
    proba, labels = pairs[:, 0], pairs[:, 1].astype(int)
    accuracy = float(((proba >= 0.5).astype(int) == labels).mean())
    auc = float(roc_auc_score(labels, proba)) if len(np.unique(labels)) == 2 else None
    return accuracy, auc


class DriftJobThread:
    """Runs a ``DriftJob`` every ``interval_s`` in a daemon thread of the worker that holds the
    lock file; the other workers' threads only retry the lock."""

    def __init__(self, job: DriftJob, lock_dir: Path, interval_s: float) -> None:
        self.job = job
        self.lock_path = lock_dir / LOCK_FILE
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="drift-job", daemon=True)
        self._lock_file: Any = None
        self.elected = False

    def start(self) -> None:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def _try_elect(self) -> bool:
        if self._lock_file is None:
            self._lock_file = self.lock_path.open("a")
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        # The lock file names the process that holds the job (for operators and tests).
        os.ftruncate(self._lock_file.fileno(), 0)
        self._lock_file.write(f"{os.getpid()}\n")
        self._lock_file.flush()
        logger.info("this worker runs the drift job")
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self.elected:
                self.elected = self._try_elect()
                if self.elected:  # staleness counts from here
                    self.job.metrics.interval.set(self.interval_s)
                    self.job.metrics.last_success.set(time.time())
            if self.elected:
                try:
                    self.job.run_once()
                except Exception:  # a bad cycle must not end the job; the next one retries
                    self.job.metrics.failures.inc()
                    logger.exception("drift job run failed")
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock


def drift_job_thread(settings: ProjectSettings, metrics: DriftMetrics) -> DriftJobThread:
    """The drift job of a service with these settings, ready to start."""
    job = DriftJob(
        settings.resolved_bundle_dir(),
        settings.resolved_log_dir(),
        metrics,
        window_rows=settings.drift_window_rows,
        min_rows=settings.drift_min_rows,
        labelled_window_rows=settings.labelled_window_rows,
        labelled_min_rows=settings.labelled_min_rows,
        pending_label_rows=settings.pending_label_rows,
    )
    return DriftJobThread(job, settings.resolved_log_dir(), settings.drift_interval_s)
