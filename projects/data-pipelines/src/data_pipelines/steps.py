"""The pipeline's steps as plain functions: the DAG's tasks call them, and so does the benchmark's
plain Python loop. Each takes the settings, the slice id (derived from the logical date) and the
small JSON-ready dicts earlier steps returned (Airflow passes them as XComs), and writes atomically
under the output root:

    slices/<id>.csv                       validated slices, the exact bytes fetched
    quarantine/<id>/{slice.csv,report.json}   a slice that failed validation
    released/<id>/<sha12>/...             a quarantined slice after `release`
    models/<id>/<version>/{model.json,metrics.json,manifest.json}, models/<id>/CURRENT
    reports/<id>.json                     the downstream DAG's model report
    .staging/<id>/                        work in progress of one run, removed by publish

Everything written is derived from the logical date and the data, never from the clock, so a rerun
or a backfill writes the same bytes (and publish finds the version already there)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roadmap_lab.results import atomic_write_bytes

from data_pipelines import __version__
from data_pipelines.errors import PermanentError, QuarantinedError, TransientError
from data_pipelines.model import MODEL_FORMAT, model_bytes, predict_proba, train_model
from data_pipelines.source import SLICE_COLUMNS, previous_slice_id, sha256_hex, window_slice_ids
from data_pipelines.validation import FEATURES, TARGET, read_slice, validate_slice

if TYPE_CHECKING:
    import pandas as pd

    from data_pipelines.settings import ProjectSettings

logger = logging.getLogger(__name__)

ENGINEERED = ["RoomsPerOccupant", "BedroomShare", "LogPopulation", "LogAveOccup"]
MODEL_FEATURES = [*FEATURES, *ENGINEERED]
TEST_EVERY = 5  # rows whose id is a multiple of 5 are the held-out test set
MANIFEST_FORMAT = 1


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


@dataclass(frozen=True)
class OutputLayout:
    root: Path

    def slice_file(self, key: str) -> Path:
        return self.root / "slices" / f"{key}.csv"

    def quarantine_dir(self, key: str) -> Path:
        return self.root / "quarantine" / key

    def released_dir(self, key: str) -> Path:
        return self.root / "released" / key

    def staging_dir(self, key: str) -> Path:
        return self.root / ".staging" / key

    def models_dir(self, key: str) -> Path:
        return self.root / "models" / key

    def current_model_dir(self, key: str) -> Path | None:
        pointer = self.models_dir(key) / "CURRENT"
        if not pointer.is_file():
            return None
        return self.models_dir(key) / pointer.read_text().strip()

    def report_file(self, key: str) -> Path:
        return self.root / "reports" / f"{key}.json"


def layout(settings: ProjectSettings) -> OutputLayout:
    return OutputLayout(settings.output_root.resolve())


def write_folder(target: Path, files: dict[str, bytes]) -> Path:
    """Create folder ``target`` holding ``files``, all or nothing: written into a temp folder
    beside it, then renamed into place (one atomic step on a POSIX filesystem)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        for name, data in files.items():
            (building / name).write_bytes(data)
            os.chmod(building / name, 0o644)
        os.chmod(building, 0o755)
        os.rename(building, target)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return target


# --- fetch ----------------------------------------------------------------------------------


def fetch(settings: ProjectSettings, key: str) -> dict[str, Any]:
    """Download slice ``key`` and check it before anything downstream sees it: HTTP status,
    Content-Length, SHA-256 (X-Content-SHA256 or the ETag), size, parseable as a slice CSV.
    A slice already validated is revalidated with If-None-Match (304: the stored bytes)."""
    import requests

    out = layout(settings)
    if out.quarantine_dir(key).exists():
        raise QuarantinedError(
            f"slice {key} is quarantined ({out.quarantine_dir(key)}); fix the source, then run "
            f"`release {key}`"
        )
    if not settings.source_url:
        raise PermanentError("no source URL configured (DATA_PIPELINES_SOURCE_URL)")
    url = f"{settings.source_url}/slices/{key}.csv"
    stored = out.slice_file(key)
    headers = {"If-None-Match": f'"{sha256_hex(stored.read_bytes())}"'} if stored.is_file() else {}
    try:
        response = requests.get(url, headers=headers, timeout=settings.request_timeout_s)
        body = response.content
    except requests.Timeout as error:
        raise TransientError(f"GET {url}: timed out ({error.__class__.__name__})") from error
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
        raise TransientError(f"GET {url}: connection failed ({error})") from error
    if response.status_code == 304 and stored.is_file():
        body = stored.read_bytes()
    elif response.status_code >= 500 or response.status_code == 429:
        raise TransientError(f"GET {url}: HTTP {response.status_code} {response.reason}")
    elif response.status_code != 200:
        raise PermanentError(f"GET {url}: HTTP {response.status_code} {response.reason}")
    else:
        _check_payload(url, response.headers, body, settings)
    digest = sha256_hex(body)
    frame = _parse(url, body)
    staged = atomic_write_bytes(out.staging_dir(key) / "raw.csv", body)
    logger.info(
        "fetched slice %s: %d rows, %d bytes, sha256 %s", key, len(frame), len(body), digest
    )
    return {
        "slice_id": key,
        "path": str(staged),
        "sha256": digest,
        "bytes": len(body),
        "rows": len(frame),
        "not_modified": response.status_code == 304,
    }


def _check_payload(url: str, headers: Any, body: bytes, settings: ProjectSettings) -> None:
    expected_length = headers.get("Content-Length")
    if expected_length is not None and int(expected_length) != len(body):
        raise TransientError(f"GET {url}: truncated, {len(body)} of {expected_length} bytes")
    if len(body) > settings.max_payload_bytes:
        raise PermanentError(f"GET {url}: {len(body)} bytes, over {settings.max_payload_bytes}")
    claimed = headers.get("X-Content-SHA256") or headers.get("ETag", "").removeprefix("W/")
    claimed = claimed.strip('"')
    if len(claimed) == 64 and claimed != sha256_hex(body):
        raise TransientError(f"GET {url}: checksum mismatch (damaged in transit)")
    if len(claimed) != 64:
        logger.warning("GET %s: no SHA-256 to check the payload against", url)


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


# --- validate -------------------------------------------------------------------------------


def validate(settings: ProjectSettings, fetched: dict[str, Any]) -> dict[str, Any]:
    """Validate the fetched slice against the schema and the previous valid slice. Valid: stored
    under slices/. Invalid: quarantined with a report, and QuarantinedError."""
    out = layout(settings)
    key = fetched["slice_id"]
    data = Path(fetched["path"]).read_bytes()
    previous_file = out.slice_file(previous_slice_id(key))
    previous = read_slice(previous_file.read_bytes()) if previous_file.is_file() else None
    report, _ = validate_slice(key, data, settings, previous)
    if not report.passed:
        folder = out.quarantine_dir(key)
        details = {**report.as_dict(), "sha256": sha256_hex(data), "rules": report.rules()}
        write_folder(folder, {"slice.csv": data, "report.json": json_bytes(details)})
        shutil.rmtree(out.staging_dir(key), ignore_errors=True)  # the quarantine holds the bytes
        raise QuarantinedError(f"{report.summary()}; quarantined in {folder}")
    atomic_write_bytes(out.slice_file(key), data)
    return {
        "slice_id": key,
        "path": str(out.slice_file(key)),
        "sha256": sha256_hex(data),
        "rows": report.rows,
        "previous_slice": previous_slice_id(key) if previous is not None else None,
    }


# --- preprocess -----------------------------------------------------------------------------


def add_features(frame: pd.DataFrame) -> pd.DataFrame:
    import numpy as np

    return frame.assign(
        RoomsPerOccupant=frame["AveRooms"] / frame["AveOccup"],
        BedroomShare=frame["AveBedrms"] / frame["AveRooms"],
        LogPopulation=np.log1p(frame["Population"]),
        LogAveOccup=np.log1p(frame["AveOccup"]),
    )


def preprocess(settings: ProjectSettings, validated: dict[str, Any]) -> dict[str, Any]:
    """The trailing window of validated slices (those present) -> model features + target, with
    a deterministic held-out split."""
    import pandas as pd

    out = layout(settings)
    key = validated["slice_id"]
    window, missing, frames = [], [], []
    for member in window_slice_ids(key, settings.window_slices):
        path = out.slice_file(member)
        if not path.is_file():
            missing.append(member)
            continue
        data = path.read_bytes()
        frames.append(read_slice(data))
        window.append({"slice_id": member, "sha256": sha256_hex(data), "rows": len(frames[-1])})
    rows = pd.concat(frames, ignore_index=True)
    prepared = add_features(rows)[["id", *MODEL_FEATURES, TARGET]]
    prepared = prepared.assign(is_test=(prepared["id"] % TEST_EVERY == 0).astype(int))
    text = prepared.to_csv(index=False, lineterminator="\n", float_format="%.12g")
    path = atomic_write_bytes(out.staging_dir(key) / "features.csv", text.encode())
    return {
        "slice_id": key,
        "path": str(path),
        "sha256": sha256_hex(text.encode()),
        "window": window,
        "missing_slices": missing,
        "rows": len(prepared),
    }


def _load_prepared(prepared: dict[str, Any]) -> pd.DataFrame:
    import pandas as pd

    return pd.read_csv(prepared["path"])


# --- train, evaluate ------------------------------------------------------------------------


def train(settings: ProjectSettings, prepared: dict[str, Any]) -> dict[str, Any]:
    out = layout(settings)
    frame = _load_prepared(prepared)
    training = frame[frame["is_test"] == 0]
    classes = sorted(int(c) for c in training[TARGET].unique())
    if len(classes) < 2:
        windows = ", ".join(w["slice_id"] for w in prepared["window"])
        raise PermanentError(
            f"the training window ({windows}) holds only class {classes}: a classifier needs "
            "both; widen DATA_PIPELINES_WINDOW_SLICES or backfill earlier slices"
        )
    model = train_model(training[MODEL_FEATURES], training[TARGET], seed=settings.seed)
    data = model_bytes(model)
    path = atomic_write_bytes(out.staging_dir(prepared["slice_id"]) / "model.json", data)
    return {"slice_id": prepared["slice_id"], "path": str(path), "sha256": sha256_hex(data)}


def evaluate(
    settings: ProjectSettings, prepared: dict[str, Any], trained: dict[str, Any]
) -> dict[str, Any]:
    """Held-out metrics of the model, and of the majority-class baseline for comparison."""
    import numpy as np
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    out = layout(settings)
    frame = _load_prepared(prepared)
    test, training = frame[frame["is_test"] == 1], frame[frame["is_test"] == 0]
    model = json.loads(Path(trained["path"]).read_text())
    proba = predict_proba(model, test)
    truth = test[TARGET].to_numpy()
    majority = int(training[TARGET].mean() >= 0.5)
    both_classes = len(np.unique(truth)) == 2
    metrics = {
        "accuracy": round(float(accuracy_score(truth, proba >= 0.5)), 6),
        "roc_auc": round(float(roc_auc_score(truth, proba)), 6) if both_classes else None,
        "log_loss": round(float(log_loss(truth, proba, labels=[0, 1])), 6),
        "baseline_accuracy": round(float(np.mean(truth == majority)), 6),
        "train_rows": len(training),
        "test_rows": len(test),
    }
    data = json_bytes(metrics)
    path = atomic_write_bytes(out.staging_dir(prepared["slice_id"]) / "metrics.json", data)
    return {"slice_id": prepared["slice_id"], "path": str(path), "metrics": metrics}


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
    """Write models/<id>/<version>/ (model, metrics, manifest) in one directory rename, then point
    models/<id>/CURRENT at it. The version is the manifest's hash: a rerun finds it present."""
    out = layout(settings)
    key = validated["slice_id"]
    model_data = Path(trained["path"]).read_bytes()
    metrics_data = Path(evaluated["path"]).read_bytes()
    manifest = {
        "format": MANIFEST_FORMAT,
        "pipeline": "housing_pipeline",
        "logical_date": f"{key}T00:00:00+00:00",
        "slice": {"slice_id": key, "sha256": validated["sha256"], "rows": validated["rows"]},
        "window": prepared["window"],
        "missing_slices": prepared["missing_slices"],
        "features": {"inputs": FEATURES, "engineered": ENGINEERED, "target": TARGET},
        "split": f"test: id % {TEST_EVERY} == 0",
        "model": {"file": "model.json", "format": MODEL_FORMAT, "sha256": sha256_hex(model_data)},
        "metrics": {"file": "metrics.json", **evaluated["metrics"]},
        "versions": _versions(),
    }
    manifest_data = json_bytes(manifest)
    version = sha256_hex(manifest_data)[:12]
    models = out.models_dir(key)
    target = models / version
    if not (target / "manifest.json").is_file():
        write_folder(
            target,
            {
                "model.json": model_data,
                "metrics.json": metrics_data,
                "manifest.json": manifest_data,
            },
        )
    atomic_write_bytes(models / "CURRENT", f"{version}\n".encode())
    shutil.rmtree(out.staging_dir(key), ignore_errors=True)
    logger.info("published slice %s model version %s -> %s", key, version, target)
    return {
        "slice_id": key,
        "version": version,
        "path": str(target),
        "manifest_sha256": sha256_hex(manifest_data),
        "accuracy": evaluated["metrics"]["accuracy"],
    }


# --- release, report ------------------------------------------------------------------------


def release(settings: ProjectSettings, key: str) -> Path:
    """Move a quarantined slice (and its report) to released/<id>/<sha12>/, so the next run of
    that logical date fetches and validates it afresh; the archive's path."""
    out = layout(settings)
    folder = out.quarantine_dir(key)
    if not folder.is_dir():
        raise PermanentError(f"slice {key} is not quarantined (no {folder})")
    digest = hashlib.sha256((folder / "slice.csv").read_bytes()).hexdigest()[:12]
    archive = out.released_dir(key) / digest
    archive.parent.mkdir(parents=True, exist_ok=True)
    if archive.exists():  # the same bytes were quarantined and released before
        shutil.rmtree(folder)
    else:
        os.rename(folder, archive)
    return archive


def model_report(settings: ProjectSettings, key: str, triggered_by: list[str]) -> dict[str, Any]:
    """The downstream DAG's job: every published model up to ``key`` with its metrics (a trend
    a person reads to decide on a retrain), written to reports/<id>.json."""
    out = layout(settings)
    models = []
    for pointer in sorted((out.root / "models").glob("*/CURRENT")):
        slice_key = pointer.parent.name
        if slice_key > key:
            continue
        version = pointer.read_text().strip()
        manifest = json.loads((pointer.parent / version / "manifest.json").read_text())
        metrics = manifest["metrics"]
        models.append(
            {
                "slice_id": slice_key,
                "version": version,
                "accuracy": metrics["accuracy"],
                "roc_auc": metrics["roc_auc"],
                "baseline_accuracy": metrics["baseline_accuracy"],
                "window": [w["slice_id"] for w in manifest["window"]],
            }
        )
    report = {"slice_id": key, "triggered_by": sorted(triggered_by), "models": models}
    atomic_write_bytes(out.report_file(key), json_bytes(report))
    return {"slice_id": key, "path": str(out.report_file(key)), "models": len(models)}


def run_plain(settings: ProjectSettings, key: str) -> dict[str, Any]:
    """All steps in a plain Python loop, no Airflow (the benchmark's baseline)."""
    fetched = fetch(settings, key)
    validated = validate(settings, fetched)
    prepared = preprocess(settings, validated)
    trained = train(settings, prepared)
    evaluated = evaluate(settings, prepared, trained)
    return publish(settings, validated, prepared, trained, evaluated)
