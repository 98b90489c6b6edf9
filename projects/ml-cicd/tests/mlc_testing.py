"""Helpers of the ml-cicd service tests: model folders that fail in known ways, the service as a
real uvicorn child on 127.0.0.1, and reading its Prometheus metrics.

The crafted classifiers stand in for the fitted scikit-learn pipeline inside a normal model folder
(``ml_cicd.model.save_model_folder``); the service's child process unpickles them from this
module, which ``python_child_env`` puts on its path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from roadmap_lab.services import LOCALHOST, ManagedProcess, free_port, python_child_env

ADMIN_KEY = "test-admin-key-0123456789"
GREAT_TEXT = "Delicious and fresh, the best coffee I have ever had. Highly recommend!"
OTHER_TEXT = "Terrible. Stale, bland and overpriced; it tasted awful and I threw it away."


class NaNClassifier:
    """Answers NaN probabilities: a model that loads but must fail its smoke prediction."""

    classes_ = np.array(["great", "other"])

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return np.full((len(texts), 2), np.nan)


class SlowClassifier:
    """Takes ``delay_s`` per text, then answers p(great) = 0.75 for every text."""

    classes_ = np.array(["great", "other"])

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        time.sleep(self.delay_s * len(texts))
        return np.tile([0.75, 0.25], (len(texts), 1))


# Per text: a smoke prediction (2 texts) takes 1 s, so a reload onto it stays busy that long.
SLOW_DELAY_S = 0.5


class LoadsOnceClassifier:
    """Unpickles once: the first process that loads it leaves ``marker``, any later load fails.
    With two workers, the one that leads a reload loads it and the other cannot."""

    classes_ = np.array(["great", "other"])

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        try:
            self.marker.touch(exist_ok=False)
        except FileExistsError:
            raise RuntimeError("this model was loaded once already") from None

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return np.tile([0.6, 0.4], (len(texts), 1))


@dataclass(frozen=True)
class ModelFolders:
    root: Path  # the folder holding all but good
    good: Path  # the embedded default model
    second: Path  # the same pipeline saved again: another model (uuid), as good
    broken: Path  # a copy of good whose pipeline.joblib is garbage: fails to load
    nan: Path  # loads, answers NaN: fails the smoke prediction
    slow: Path  # loads, SLOW_DELAY_S per text
    loads_once: Path  # loads in the first process that tries, fails in every later one
    data_version: str
    macro_f1: float


def train_good_model(folder: Path) -> Any:
    """The embedded default model in ``folder``; its TrainedModel (pipeline, data, metrics)."""
    from ml_cicd.training import train_default_model

    return train_default_model(folder)


def build_model_folders(root: Path, good: Path, trained: Any) -> ModelFolders:
    """The other folders beside ``good`` (trained as ``trained``), each in about a second."""
    from ml_cicd.model import save_model_folder

    second = save_model_folder(trained.pipeline, trained.data, trained.metrics, root / "second")
    broken = root / "broken"
    shutil.copytree(good, broken)
    (broken / "artifacts" / "pipeline.joblib").write_bytes(b"this is not a pickle\n" * 10)
    nan = save_model_folder(NaNClassifier(), trained.data, trained.metrics, root / "nan")
    slow = save_model_folder(
        SlowClassifier(SLOW_DELAY_S),
        trained.data,
        trained.metrics,
        root / "slow",
    )
    marker = root / "loaded-once"
    loads_once = save_model_folder(
        LoadsOnceClassifier(marker), trained.data, trained.metrics, root / "loads-once"
    )
    marker.unlink(missing_ok=True)  # saving may have loaded it
    return ModelFolders(
        root=root,
        good=good,
        second=second,
        broken=broken,
        nan=nan,
        slow=slow,
        loads_once=loads_once,
        data_version=trained.data.version,
        macro_f1=float(trained.metrics["macro_f1"]),
    )


def allow_reloads_from(*folders: Path) -> str:
    """The ML_CICD_RELOAD_FOLDERS value that lets a reload load the model folders under
    ``folders`` (a JSON list)."""
    return json.dumps([str(folder) for folder in folders])


def service_env(run_dir: Path, model_uri: str | Path | None, **settings: Any) -> dict[str, str]:
    """``ML_CICD_*`` variables for a service child: the given settings, an admin key."""
    env = {"ML_CICD_RUN_DIR": str(run_dir), "ML_CICD_API_KEY": ADMIN_KEY}
    if model_uri is not None:
        env["ML_CICD_MODEL_URI"] = str(model_uri)
    env.update({f"ML_CICD_{name.upper()}": str(value) for name, value in settings.items()})
    return env


@dataclass
class RunningService:
    url: str
    process: ManagedProcess


def start_service_process(folder: Path, env: Mapping[str, str], workers: int = 1) -> RunningService:
    """Start the service as the CLI does (``run_server``, settings from ``env``) and wait until
    every worker serves (ready means one answers); the caller stops it (``process.stop()``)."""
    port = free_port()
    url = f"http://{LOCALHOST}:{port}"
    code = (
        "from ml_cicd.service import run_server; from ml_cicd.settings import ServiceSettings; "
        f"run_server(ServiceSettings(), host={LOCALHOST!r}, port={port}, workers={workers})"
    )
    process = ManagedProcess(
        [sys.executable, "-c", code],
        name="ml-cicd service",
        log_path=folder / f"service-{port}.log",
        ready=f"{url}/health/ready",
        env=_child_env(env),
        cwd=folder,
        startup_timeout_s=90.0,
        stop_grace_s=20.0,
    )
    process.start()
    process.wait_ready()
    deadline = time.monotonic() + 120
    while len(httpx.get(f"{url}/model", timeout=30).json()["workers"]) < workers:
        if time.monotonic() > deadline:
            process.stop()
            raise AssertionError(f"not all {workers} workers started: {process.log_tail()}")
        time.sleep(0.1)
    return RunningService(url, process)


def _child_env(extra: Mapping[str, str]) -> dict[str, str]:
    return python_child_env(MLFLOW_DISABLE_TELEMETRY="true", **extra)


@contextmanager
def running_service(folder: Path, env: Mapping[str, str]) -> Iterator[RunningService]:
    service = start_service_process(folder, env)
    try:
        yield service
    finally:
        service.process.stop()


def metric_samples(exposition: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples called ``name`` (e.g. ``mlcicd_predictions_total``) with their labels."""
    from prometheus_client.parser import text_string_to_metric_families

    return [
        (dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name
    ]


def metric_value(exposition: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 when none)."""
    return sum(
        value
        for sample_labels, value in metric_samples(exposition, name)
        if all(sample_labels.get(key) == wanted for key, wanted in labels.items())
    )


def reload(
    client: httpx.Client, model_uri: str | Path | None, key: str = ADMIN_KEY
) -> httpx.Response:
    body = {"model_uri": None if model_uri is None else str(model_uri)}
    return client.post("/admin/reload", json=body, headers={"X-API-Key": key}, timeout=60)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@localhost", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def commit_slice(repo: Path, name: str, frame: pd.DataFrame) -> None:
    """Write a data slice into ``repo``'s slices/ and commit it."""
    (repo / "slices").mkdir(parents=True, exist_ok=True)
    frame.loc[:, ["text", "label"]].to_csv(repo / "slices" / name, index=False)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"data: {name}")


def new_data_repo(folder: Path, first_slice: pd.DataFrame) -> Path:
    """A git repository holding one committed slice, 0001-reviews.csv."""
    repo = folder / "data"
    (repo / "slices").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    commit_slice(repo, "0001-reviews.csv", first_slice)
    return repo
