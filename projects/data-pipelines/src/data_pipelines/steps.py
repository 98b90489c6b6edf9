"""The pipeline's steps as plain functions: the DAG's tasks call them, and so does the benchmark's
plain Python loop. Each takes the settings, the slice id (derived from the logical date) and the
small JSON-ready dicts earlier steps returned (Airflow passes them as XComs: URIs in the artefact
store and hashes, never local paths), and writes through the store (store.py has the layout).

The history is a chain of weeks from ``start_date``: week t runs only once week t-1 has published
its model, so a window is always complete and a model is evaluated on the week after its window.
Everything written derives from the logical date and the data, never from the clock, so a rerun
or a backfill writes the same bytes (and publish finds the version already there)."""

from __future__ import annotations

import importlib.metadata
import io
import json
import logging
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

from roadmap_lab.housing_model import ENGINEERED, MODEL_FORMAT, add_features

from data_pipelines import __version__
from data_pipelines.download import download
from data_pipelines.errors import PermanentError, QuarantinedError
from data_pipelines.model import model_bytes, predict_proba, train_model
from data_pipelines.settings import SLICE_PERIOD
from data_pipelines.source import (
    SLICE_COLUMNS,
    previous_slice_id,
    sha256_hex,
    slice_id,
    window_slice_ids,
)
from data_pipelines.store import ArtefactStore, scratch_folder
from data_pipelines.validation import FEATURES, TARGET, read_slice, validate_slice

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import ObjectStoragePath

    from data_pipelines.settings import ProjectSettings

logger = logging.getLogger(__name__)

MODEL_FEATURES = [*FEATURES, *ENGINEERED]
TEST_EVERY = 5  # in-window evaluation: rows whose id is a multiple of 5 are held out
MANIFEST_FORMAT = 2


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


# --- the history ----------------------------------------------------------------------------


def logical_slice_id(logical_date: datetime | None) -> str:
    """The slice of a run's logical date, which must be midnight UTC (a slice is the week that
    ends at it: 06:00 would name the same slice id for other hours)."""
    if logical_date is None:
        raise PermanentError("housing_pipeline needs a logical date (the slice's week end)")
    utc = logical_date.astimezone(UTC)
    if utc.time() != time(0):
        raise PermanentError(
            f"logical date {logical_date.isoformat()} is not at 00:00 UTC: a slice's week ends "
            "at midnight UTC"
        )
    return slice_id(utc)


def next_week(settings: ProjectSettings) -> str:
    """The week a run without a logical date trains on (an alert-triggered retrain): the one
    after the newest published model, or the start date when none is. The history advances one
    week at a time and in order, whatever triggered the run."""
    store = ArtefactStore.of(settings)
    published = [week for week in published_weeks(store) if store.current_version(week)]
    if not published:
        return settings.start_date.isoformat()
    return slice_id(date.fromisoformat(published[-1]) + SLICE_PERIOD)


def check_history(settings: ProjectSettings, store: ArtefactStore, key: str) -> None:
    """Week ``key`` may run only on the weekly grid from the start date, and only once the week
    before it has published its model (a backfill runs oldest first)."""
    day, start = date.fromisoformat(key), settings.start_date
    if day < start:
        raise PermanentError(
            f"{key} is before the history's start date {start} (DATA_PIPELINES_START_DATE)"
        )
    if (day - start).days % 7:
        raise PermanentError(f"{key} is not a weekly date of the history that starts on {start}")
    previous = previous_slice_id(key)
    if day > start and store.current_version(previous) is None:
        raise PermanentError(
            f"history incomplete: week {previous} has no published model, so {key} cannot run "
            f"yet; run the weeks from {start} in order (a backfill runs oldest first)"
        )


def window_members(settings: ProjectSettings, key: str) -> list[str]:
    """The trailing window of week ``key``, oldest first, cut at the start date."""
    start = settings.start_date.isoformat()
    return [m for m in window_slice_ids(key, settings.window_slices) if m >= start]


# --- fetch ----------------------------------------------------------------------------------


def fetch(settings: ProjectSettings, key: str, run_id: str = "plain") -> dict[str, Any]:
    """Download slice ``key`` through the task's local scratch and check it (download.py, then
    parseable as a slice CSV) before staging it in run ``run_id``'s folder of the store. An
    ingested slice is revalidated with If-None-Match; a different body for it is quarantined,
    and the ingested bytes stay. Later steps stage their work in the folder this passes on."""
    store = ArtefactStore.of(settings)
    staging = store.staging(key, run_id)
    check_history(settings, store, key)
    if store.is_quarantined(key):
        raise QuarantinedError(
            f"slice {key} is quarantined ({store.quarantine(key)}); fix the source, then run "
            f"`release {key}`"
        )
    if not settings.source_url:
        raise PermanentError("no source URL configured (DATA_PIPELINES_SOURCE_URL)")
    url = f"{settings.source_url}/slices/{key}.csv"
    ingested = store.slice(key)
    held_data = ingested.read_bytes() if ingested.exists() else None
    held = sha256_hex(held_data) if held_data is not None else None
    with scratch_folder(settings, f"fetch-{key}") as scratch:
        body = download(url, scratch / "slice.csv", settings, if_none_match=held)
        if body.not_modified:
            assert held_data is not None  # a 304 answers our If-None-Match only
            staged, digest, rows = ingested, held, len(_parse(url, held_data))
        else:
            assert body.path is not None and body.sha256 is not None
            data = body.path.read_bytes()
            rows = len(_parse(url, data))
            if held is not None and body.sha256 != held:
                _quarantine_changed(store, key, data, held)
            staged, digest = store.upload(staging / "raw.csv", body.path), body.sha256
    logger.info("fetched slice %s: %d rows, sha256 %s", key, rows, digest)
    return {
        "slice_id": key,
        "staging": str(staging),
        "uri": str(staged),
        "sha256": digest,
        "rows": rows,
        "not_modified": body.not_modified,
    }


def _parse(url: str, body: bytes) -> pd.DataFrame:
    import pandas as pd

    if not body.strip():
        raise PermanentError(f"GET {url}: empty payload")
    try:
        frame = pd.read_csv(io.BytesIO(body))
    except (ValueError, UnicodeDecodeError) as error:
        raise PermanentError(f"GET {url}: not parseable as CSV ({error})") from error
    missing = [c for c in SLICE_COLUMNS if c not in frame.columns]
    if missing:
        raise PermanentError(f"GET {url}: not a slice, missing column(s) {', '.join(missing)}")
    return frame


def _quarantine_changed(store: ArtefactStore, key: str, data: bytes, held: str) -> None:
    details: dict[str, Any] = {
        "slice_id": key,
        "passed": False,
        "rules": ["changed_after_ingest"],
        "sha256": sha256_hex(data),
        "ingested_sha256": held,
        "detail": "a different body for a slice already ingested (the source changed it, or "
        "another run ingested other bytes first); the ingested bytes stay in slices/ and every "
        "model built on them stands",
    }
    folder = quarantine(store, key, data, details)
    raise QuarantinedError(
        f"slice {key} changed upstream after it was ingested (sha256 {held[:12]} -> "
        f"{details['sha256'][:12]}); quarantined in {folder}, nothing overwritten"
    )


def quarantine(
    store: ArtefactStore, key: str, data: bytes, details: dict[str, Any]
) -> ObjectStoragePath:
    """Keep refused bytes and their report (written last: it marks the quarantine)."""
    folder = store.quarantine(key)
    store.write(folder / "slice.csv", data)
    store.write(folder / "report.json", json_bytes(details))
    return folder


# --- validate -------------------------------------------------------------------------------


def validate(settings: ProjectSettings, fetched: dict[str, Any]) -> dict[str, Any]:
    """Validate the fetched slice against the schema and the previous week's slice (always
    there after the start date: check_history). Valid: stored under slices/ once (the first
    writer wins; different bytes already there are quarantined). Invalid: quarantined with a
    report, and QuarantinedError."""
    store = ArtefactStore.of(settings)
    key, staging = fetched["slice_id"], store.at(fetched["staging"])
    data = store.read_pinned(fetched["uri"], fetched["sha256"])
    previous = None
    if key > settings.start_date.isoformat():
        previous_file = store.slice(previous_slice_id(key))
        if not previous_file.exists():
            raise PermanentError(f"previous slice {previous_slice_id(key)} is not ingested")
        previous = read_slice(previous_file.read_bytes())
    report, _ = validate_slice(key, data, settings, previous)
    if not report.passed:
        details = {**report.as_dict(), "sha256": sha256_hex(data), "rules": report.rules()}
        folder = quarantine(store, key, data, details)
        store.remove(staging)  # the quarantine holds the bytes
        raise QuarantinedError(f"{report.summary()}; quarantined in {folder}")
    held = sha256_hex(store.write_once(store.slice(key), data))
    if held != sha256_hex(data):
        store.remove(staging)
        _quarantine_changed(store, key, data, held)
    return {
        "slice_id": key,
        "staging": str(staging),
        "uri": str(store.slice(key)),
        "sha256": sha256_hex(data),
        "rows": report.rows,
        "previous_slice": previous_slice_id(key) if previous is not None else None,
    }


# --- preprocess -----------------------------------------------------------------------------


def preprocess(settings: ProjectSettings, validated: dict[str, Any]) -> dict[str, Any]:
    """The complete trailing window (every member ingested, or a clear failure) -> model
    features + target with the in-window held-out split; each member's hash is pinned, and
    this week's must be the one validate stored."""
    import pandas as pd

    store = ArtefactStore.of(settings)
    key = validated["slice_id"]
    members = window_members(settings, key)
    missing = [m for m in members if not store.slice(m).exists()]
    if missing:
        raise PermanentError(
            f"the window of {key} is incomplete: slice(s) {', '.join(missing)} not ingested; "
            "run their weeks first"
        )
    window, frames = [], []
    for member in members:
        data = store.slice(member).read_bytes()
        frames.append(read_slice(data))
        window.append({"slice_id": member, "sha256": sha256_hex(data), "rows": len(frames[-1])})
    if window[-1]["sha256"] != validated["sha256"]:
        raise PermanentError(f"slices/{key}.csv changed since validate stored it (sha256 differs)")
    prepared = add_features(pd.concat(frames, ignore_index=True))[["id", *MODEL_FEATURES, TARGET]]
    prepared = prepared.assign(is_test=(prepared["id"] % TEST_EVERY == 0).astype(int))
    data = prepared.to_csv(index=False, lineterminator="\n", float_format="%.12g").encode()
    staged = store.write(store.at(validated["staging"]) / "features.csv", data)
    return {
        "slice_id": key,
        "staging": validated["staging"],
        "uri": str(staged),
        "sha256": sha256_hex(data),
        "window": window,
        "rows": len(prepared),
    }


def _features(store: ArtefactStore, staged: dict[str, Any]) -> pd.DataFrame:
    import pandas as pd

    return pd.read_csv(io.BytesIO(store.read_pinned(staged["uri"], staged["sha256"])))


# --- train, evaluate ------------------------------------------------------------------------


def train(settings: ProjectSettings, prepared: dict[str, Any]) -> dict[str, Any]:
    store = ArtefactStore.of(settings)
    frame = _features(store, prepared)
    training = frame[frame["is_test"] == 0]
    classes = sorted(int(c) for c in training[TARGET].unique())
    if len(classes) < 2:
        windows = ", ".join(w["slice_id"] for w in prepared["window"])
        raise PermanentError(
            f"the training window ({windows}) holds only class {classes}: a classifier needs "
            "both; widen DATA_PIPELINES_WINDOW_SLICES or start the history earlier"
        )
    data = model_bytes(train_model(training[MODEL_FEATURES], training[TARGET], seed=settings.seed))
    staged = store.write(store.at(prepared["staging"]) / "model.json", data)
    return {"slice_id": prepared["slice_id"], "uri": str(staged), "sha256": sha256_hex(data)}


def classification_metrics(
    model: dict[str, Any], rows: pd.DataFrame, majority: int
) -> dict[str, Any]:
    """Accuracy, ROC AUC (None with one class), log loss, and the accuracy of always answering
    ``majority`` (the training rows' majority class) on ``rows``."""
    import numpy as np
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    proba = predict_proba(model, rows)
    truth = rows[TARGET].to_numpy()
    return {
        "accuracy": round(float(accuracy_score(truth, proba >= 0.5)), 6),
        "roc_auc": round(float(roc_auc_score(truth, proba)), 6)
        if len(np.unique(truth)) == 2
        else None,
        "log_loss": round(float(log_loss(truth, proba, labels=[0, 1])), 6),
        "baseline_accuracy": round(float(np.mean(truth == majority)), 6),
        "rows": len(rows),
    }


def evaluate(
    settings: ProjectSettings, prepared: dict[str, Any], trained: dict[str, Any]
) -> dict[str, Any]:
    """Two figures: the new model on its window's held-out rows (in-window), and the model the
    previous week published on this week's slice, which it never saw (forward in time)."""
    store = ArtefactStore.of(settings)
    key = prepared["slice_id"]
    frame = _features(store, prepared)
    test, training = frame[frame["is_test"] == 1], frame[frame["is_test"] == 0]
    model = json.loads(store.read_pinned(trained["uri"], trained["sha256"]))
    majority = int(training[TARGET].mean() >= 0.5)
    metrics = {
        "in_window": {
            **classification_metrics(model, test, majority),
            "train_rows": len(training),
            "train_majority_class": majority,
        },
        "forward": forward_evaluation(settings, store, key),
    }
    data = json_bytes(metrics)
    staged = store.write(store.at(prepared["staging"]) / "metrics.json", data)
    return {"slice_id": key, "uri": str(staged), "sha256": sha256_hex(data), "metrics": metrics}


def forward_evaluation(
    settings: ProjectSettings, store: ArtefactStore, key: str
) -> dict[str, Any] | None:
    """The model published for the previous week, scored on week ``key``'s slice; None for the
    first week of the history (no earlier model)."""
    if key == settings.start_date.isoformat():
        return None
    previous = previous_slice_id(key)
    version = store.current_version(previous)
    if version is None:
        raise PermanentError(f"week {previous} has no published model to evaluate on {key}")
    folder = store.models(previous) / version
    manifest_data = (folder / "manifest.json").read_bytes()
    manifest = json.loads(manifest_data)
    model_data = (folder / "model.json").read_bytes()
    if sha256_hex(model_data) != manifest["model"]["sha256"]:
        raise PermanentError(f"model {previous}/{version} does not match its manifest")
    if key in [member["slice_id"] for member in manifest["window"]]:
        raise PermanentError(f"model {previous}/{version} was trained on {key}")
    slice_data = store.slice(key).read_bytes()
    rows = add_features(read_slice(slice_data))
    majority = manifest["metrics"]["in_window"]["train_majority_class"]
    return {
        "model": {
            "slice_id": previous,
            "version": version,
            "manifest_sha256": sha256_hex(manifest_data),
        },
        "slice": {"slice_id": key, "sha256": sha256_hex(slice_data)},
        "metrics": classification_metrics(json.loads(model_data), rows, majority),
    }


# --- publish --------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    names = ["scikit-learn", "pandas", "numpy", "pandera"]
    return {"data-pipelines": __version__} | {n: importlib.metadata.version(n) for n in names}


def publish(
    settings: ProjectSettings,
    validated: dict[str, Any],
    prepared: dict[str, Any],
    trained: dict[str, Any],
    evaluated: dict[str, Any],
) -> dict[str, Any]:
    """Write models/<id>/<version>/ (model, metrics, then the manifest), point models/<id>/CURRENT
    at it, record the forward evaluation beside the evaluated model, move models/CURRENT if this
    week is newer, and remove the run's staging. The version is the manifest's hash: a rerun
    finds it present. A retry after the staging was removed (the task died before Airflow
    recorded its success) finds this run's version already published and finishes from it."""
    store = ArtefactStore.of(settings)
    key = validated["slice_id"]
    version = _published_version(store, validated, prepared, trained, evaluated)
    if version is None:
        version = _write_version(settings, store, validated, prepared, trained, evaluated)
    return _point_at(store, key, version, store.at(validated["staging"]))


def _published_version(
    store: ArtefactStore,
    validated: dict[str, Any],
    prepared: dict[str, Any],
    trained: dict[str, Any],
    evaluated: dict[str, Any],
) -> str | None:
    """The version models/<id>/CURRENT names when it holds exactly this run's slice, window,
    model and metrics; else None."""
    version = store.current_version(validated["slice_id"])
    if version is None:
        return None
    folder = store.models(validated["slice_id"]) / version
    manifest = json.loads((folder / "manifest.json").read_bytes())
    same = (
        manifest["slice"]["sha256"] == validated["sha256"]
        and manifest["window"] == prepared["window"]
        and manifest["model"]["sha256"] == trained["sha256"]
        and sha256_hex((folder / "metrics.json").read_bytes()) == evaluated["sha256"]
    )
    return version if same else None


def _write_version(
    settings: ProjectSettings,
    store: ArtefactStore,
    validated: dict[str, Any],
    prepared: dict[str, Any],
    trained: dict[str, Any],
    evaluated: dict[str, Any],
) -> str:
    key = validated["slice_id"]
    model_data = store.read_pinned(trained["uri"], trained["sha256"])
    metrics_data = store.read_pinned(evaluated["uri"], evaluated["sha256"])
    metrics = evaluated["metrics"]
    manifest = {
        "format": MANIFEST_FORMAT,
        "pipeline": "housing_pipeline",
        "logical_date": f"{key}T00:00:00+00:00",
        "history_start": settings.start_date.isoformat(),
        "slice": {"slice_id": key, "sha256": validated["sha256"], "rows": validated["rows"]},
        "window": prepared["window"],
        "features": {"inputs": FEATURES, "engineered": ENGINEERED, "target": TARGET},
        "split": f"in-window test: id % {TEST_EVERY} == 0",
        "model": {"file": "model.json", "format": MODEL_FORMAT, "sha256": sha256_hex(model_data)},
        "metrics": {"file": "metrics.json", "in_window": metrics["in_window"]},
        "forward_evaluation": metrics["forward"],
        "versions": _versions(),
    }
    manifest_data = json_bytes(manifest)
    version = sha256_hex(manifest_data)[:12]
    folder = store.models(key) / version
    if not (folder / "manifest.json").exists():
        store.write(folder / "model.json", model_data)
        store.write(folder / "metrics.json", metrics_data)
        store.write(folder / "manifest.json", manifest_data)  # last: the version is complete
    return version


def _point_at(
    store: ArtefactStore, key: str, version: str, staging: ObjectStoragePath
) -> dict[str, Any]:
    """Everything after the version is complete (each step safe to repeat): the week's CURRENT,
    the forward record (forward/<key>.json in the evaluated model's version folder, which its
    manifest does not list), models/CURRENT, the staging; publish's result."""
    folder = store.models(key) / version
    manifest_data = (folder / "manifest.json").read_bytes()
    manifest = json.loads(manifest_data)
    store.write(store.models(key) / "CURRENT", f"{version}\n".encode())
    forward = manifest["forward_evaluation"]
    if forward is not None:
        evaluated_model = store.models(forward["model"]["slice_id"]) / forward["model"]["version"]
        record = {**forward, "by": {"slice_id": key, "version": version}}
        store.write(evaluated_model / "forward" / f"{key}.json", json_bytes(record))
    current = advance_current(store, key, version)
    store.remove(staging)
    logger.info("published slice %s model version %s -> %s", key, version, folder)
    return {
        "slice_id": key,
        "version": version,
        "uri": str(folder),
        "manifest_sha256": sha256_hex(manifest_data),
        "accuracy": manifest["metrics"]["in_window"]["accuracy"],
        "current": current,
    }


def advance_current(store: ArtefactStore, key: str, version: str) -> dict[str, str]:
    """Point models/CURRENT at week ``key`` unless it already names a later week (a backfill of
    an old week never moves it back); the pointer as it is afterwards."""
    pointer = store.models() / "CURRENT"
    current = json.loads(pointer.read_bytes()) if pointer.exists() else None
    if current is not None and current["slice_id"] > key:
        logger.info("models/CURRENT stays at %s (newer than %s)", current["slice_id"], key)
        return dict(current)
    moved = {"slice_id": key, "version": version}
    if moved != current:
        store.write(pointer, json_bytes(moved))
    return moved


# --- release, report ------------------------------------------------------------------------


def release(settings: ProjectSettings, key: str) -> str:
    """Move a quarantined slice (and its report) to released/<id>/<sha12>/, so the next run of
    that week fetches and checks it afresh; the archive's URI."""
    store = ArtefactStore.of(settings)
    folder = store.quarantine(key)
    if not store.is_quarantined(key):
        raise PermanentError(f"slice {key} is not quarantined (no {folder})")
    data = (folder / "slice.csv").read_bytes()
    archive = store.released(key) / sha256_hex(data)[:12]
    store.write(archive / "slice.csv", data)
    store.write(archive / "report.json", (folder / "report.json").read_bytes())
    store.remove(folder / "report.json")  # first: the slice is no longer quarantined
    store.remove(folder)
    return str(archive)


def published_weeks(store: ArtefactStore) -> list[str]:
    """The weeks with a model folder, oldest first."""
    if not store.models().exists():
        return []
    return sorted(path.name for path in store.models().iterdir() if path.is_dir())


def model_report(settings: ProjectSettings, key: str, triggered_by: list[str]) -> dict[str, Any]:
    """The downstream DAG's job: every published model up to week ``key`` with its in-window
    and forward metrics (a trend a person reads to decide on a retrain), as reports/<id>.json
    and an HTML page with a plot, reports/<id>.html."""
    from data_pipelines.trend import trend_page

    store = ArtefactStore.of(settings)
    models = []
    for week in published_weeks(store):
        version = store.current_version(week)
        if week > key or version is None:
            continue
        manifest = json.loads((store.models(week) / version / "manifest.json").read_bytes())
        forward = manifest["forward_evaluation"]
        models.append(
            {
                "slice_id": week,
                "version": version,
                "in_window": manifest["metrics"]["in_window"],
                "forward": None
                if forward is None
                else {"model": forward["model"]["slice_id"], **forward["metrics"]},
                "window": [w["slice_id"] for w in manifest["window"]],
            }
        )
    report = {"slice_id": key, "triggered_by": sorted(triggered_by), "models": models}
    store.write(store.report(key, "json"), json_bytes(report))
    store.write(store.report(key, "html"), trend_page(report).encode())
    return {"slice_id": key, "uri": str(store.report(key, "html")), "models": len(models)}


def run_plain(settings: ProjectSettings, key: str, run_id: str = "plain") -> dict[str, Any]:
    """All steps in a plain Python loop, no Airflow (the benchmark's baseline)."""
    fetched = fetch(settings, key, run_id)
    validated = validate(settings, fetched)
    prepared = preprocess(settings, validated)
    trained = train(settings, prepared)
    evaluated = evaluate(settings, prepared, trained)
    return publish(settings, validated, prepared, trained, evaluated)
