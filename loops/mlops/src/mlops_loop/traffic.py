"""Labelled traffic: rows of the source's weekly slices, sent to the service's /predict in small
batches at a steady rate. The true labels of the rows the phase's model never trained on (all
rows of a week after its window; of its own window, only the held-out ones) are posted to
/labels right after, when that model answered them (not in the moment between a switch and the
traffic's next phase): the service's accuracy alert never reads training rows. Every served row
is recorded with the model version that answered, so accuracy is computed per phase and per
version, on the rows each side never trained on."""

from __future__ import annotations

import csv
import io
import itertools
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import requests
from roadmap_lab.housing_model import REGISTERED_MODEL, TARGET, raw_features
from roadmap_lab.stats import Interval, wilson_interval

from mlops_loop.errors import MlopsLoopError

logger = logging.getLogger(__name__)

# data-pipelines holds out the rows whose id is a multiple of 5 from training (its in-window
# test rows, marked held_out in the registry's training_window artifact): a model's own
# distribution without its training rows. (Restated here: reading the artifact would need
# MLflow's artifact API in the loop's resolve for one rule.)
HELD_OUT_EVERY = 5
BATCH_PERIOD_S = 0.1


def served_by(version: str) -> str:
    """The service's ``model_version`` for a registry version."""
    return f"{REGISTERED_MODEL}/{version}"


@dataclass(frozen=True)
class Row:
    week: str
    id: int
    features: dict[str, float]
    label: int
    unseen: bool  # the serving model never trained on it: labelled, counted for accuracy


@dataclass(frozen=True)
class Served:
    """One prediction: when (monotonic seconds), in which phase, of which row, by which model."""

    at: float
    phase: str
    week: str
    row_id: int
    unseen: bool
    version: str
    predicted: int
    label: int


def fetch_week(source_url: str, week: str, trained_on: bool = False) -> list[Row]:
    """The rows of ``week`` as the source serves them (its scenario applied); ``trained_on``:
    the week is in the serving model's window, so only its held-out rows are unseen."""
    reply = requests.get(f"{source_url}/slices/{week}.csv", timeout=30)
    if reply.status_code != 200:
        raise MlopsLoopError(f"the source answered {reply.status_code} for week {week}")
    features = raw_features()
    return [
        Row(week, int(r["id"]), {f: float(r[f]) for f in features}, int(r[TARGET]),
            unseen=not trained_on or int(r["id"]) % HELD_OUT_EVERY == 0)
        for r in csv.DictReader(io.StringIO(reply.text))
    ]


class Traffic:
    """Sends the current rows, cycled, at ``rows_per_second`` real rows per second until
    stopped; ``use`` switches rows, phase and the model version the phase expects. Requests
    that fail are counted, not retried."""

    def __init__(self, service_url: str, labels_api_key: str, rows_per_second: float) -> None:
        self.service_url = service_url
        self.rows_per_second = rows_per_second
        self.session = requests.Session()
        self.labels_headers = {"X-API-Key": labels_api_key}
        self.served: list[Served] = []
        self.failures = 0
        self._phase = ""
        self._version = ""
        self._rows: Iterable[Row] = iter(())
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="traffic", daemon=True)

    @property
    def phase(self) -> str:
        return self._phase

    @property
    def version(self) -> str:
        return self._version

    def use(self, phase: str, rows: Sequence[Row], version: str) -> None:
        """Serve ``rows`` in ``phase``, labelling the unseen ones that ``version`` (a
        ``served_by`` name) answers."""
        if not rows:
            raise MlopsLoopError(f"no rows for the {phase} phase")
        with self._lock:
            self._phase, self._version = phase, version
            self._rows = itertools.cycle(rows)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def __enter__(self) -> Traffic:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _loop(self) -> None:
        per_batch = max(1, round(self.rows_per_second * BATCH_PERIOD_S))
        next_at = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                phase, version = self._phase, self._version
                batch = list(itertools.islice(self._rows, per_batch))
            if batch:
                try:
                    self._send(phase, version, batch)
                except requests.RequestException as error:
                    self.failures += 1
                    logger.warning("traffic: a batch failed: %s", error)
            next_at += per_batch / self.rows_per_second
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _send(self, phase: str, version: str, batch: list[Row]) -> None:
        reply = self.session.post(
            f"{self.service_url}/predict", json={"rows": [r.features for r in batch]}, timeout=10
        )
        reply.raise_for_status()
        answer = reply.json()
        at = time.monotonic()
        predictions = answer["predictions"]
        pairs = list(zip(predictions, batch, strict=True))
        # Another version answering (a switch the loop has not noticed yet) may have trained on
        # these rows: no labels for it.
        expected = answer["model_version"] == version
        labels = [{"id": p["id"], "label": r.label} for p, r in pairs if expected and r.unseen]
        if labels:
            self.session.post(
                f"{self.service_url}/labels", json={"labels": labels},
                headers=self.labels_headers, timeout=10,
            ).raise_for_status()  # fmt: skip
        self.served += [
            Served(at, phase, row.week, row.id, row.unseen, answer["model_version"],
                   int(p["predicted_class"]), row.label)
            for p, row in pairs
        ]  # fmt: skip


def accuracy(served: Iterable[Served]) -> Interval | None:
    """Accuracy on the distinct rows among ``served`` (a row served again by the same model gets
    the same answer: repeats add no evidence), with its Wilson interval; None without rows."""
    outcomes = {(s.week, s.row_id, s.version): s.predicted == s.label for s in served}
    if not outcomes:
        return None
    return wilson_interval(sum(outcomes.values()), len(outcomes))
