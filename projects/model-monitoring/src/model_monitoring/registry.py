"""Serving ``models:/<name>@<alias>`` from the MLflow registry, and following the alias.

A version follows the housing contract (``roadmap_lab.housing_model``): an MLflow pyfunc with a
signature (the raw features in; ``probability`` and ``predicted_class`` out) whose artifacts are
its parameters and its training window's rows. The service turns a version into a bundle:
the version's model folder, downloaded whole into a temp folder beside the bundle folder, plus a
bundle.json whose schema is the signature's inputs (ranges from the window) and whose reference
statistics come from the training window (prediction figures on its held-out rows), written as a
new folder and renamed into place (``bundle.write_bundle``).

* At start (``sync``): the alias must resolve, or the service does not start (one line: the
  registry is unreachable, or the model or alias does not exist).
* While serving: one worker (``RegistryFollower``, elected by a lock file) resolves the alias
  every ``registry_poll_s``; when it names another version, it installs that version's bundle.
  Every worker (``BundleWatcher``) looks at bundle.json every ``bundle_check_s`` and switches to
  a new bundle whose schema matches the one it serves. A registry error, a vanished alias or a
  version that cannot be installed is logged and counted
  (``model_registry_failures_total{stage="poll"}``): the served model stays; nothing is read as
  "no champion". A bundle a worker cannot switch to is counted (``stage="switch"``) and tried
  again at every check; until it switches, the worker answers 503 on ``/health/ready``.
"""

from __future__ import annotations

import fcntl
import logging
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from roadmap_lab import housing_model as contract

from model_monitoring.bundle import (
    BUNDLE_FILE,
    Bundle,
    bundle_identity,
    encode_target,
    feature_specs,
    frame_input,
    read_bundle_json,
    reference_statistics,
    score_reference,
    select_window,
    window_description,
    write_bundle,
)
from model_monitoring.errors import ModelMonitoringError
from model_monitoring.pyfunc import (
    PyfuncPipeline,
    load_pyfunc,
    medians,
    model_artifact,
    params_sha256,
)
from model_monitoring.settings import ProjectSettings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

logger = logging.getLogger(__name__)
FOLLOWER_LOCK = ".registry-follower.lock"


class RegistryUnavailable(ModelMonitoringError):
    """The registry could not be asked (unreachable, refused, an unreadable answer)."""


class NoChampion(ModelMonitoringError):
    """The registry says the registered model or its alias does not exist."""


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:300]


@contextmanager
def registry_errors(settings: ProjectSettings, doing: str) -> Iterator[None]:
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, OSError) as error:  # requests' errors are OSErrors
        raise RegistryUnavailable(
            f"the registry at {settings.tracking_uri} failed while {doing}: {_first_line(error)}"
        ) from error


def registry_client(settings: ProjectSettings) -> MlflowClient:
    from mlflow import MlflowClient

    if not settings.tracking_uri:
        raise ModelMonitoringError(
            f"serving {settings.registered_model} needs the registry: set "
            "MODEL_MONITORING_TRACKING_URI (or MLFLOW_TRACKING_URI) to the tracking server"
        )
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def resolve(settings: ProjectSettings, client: MlflowClient) -> ModelVersion:
    """The version the alias names now: NoChampion only when the registry says it does not
    exist; RegistryUnavailable for any other error."""
    name, alias = str(settings.registered_model), settings.registry_alias
    with registry_errors(settings, f"resolving {name}@{alias}"):
        version = contract.alias_version(client, name, alias)
    if version is None:
        raise NoChampion(
            f"{name}@{alias} does not exist in the registry at {settings.tracking_uri}: "
            "nothing to serve (register a model and set the alias first)"
        )
    return version


def served_source(bundle_dir: Path) -> dict[str, Any] | None:
    """The registry version the bundle folder holds, or None (no bundle, a trained one)."""
    if not (bundle_dir / BUNDLE_FILE).is_file():
        return None
    source: dict[str, Any] | None = read_bundle_json(bundle_dir).get("source")
    return source


def sync(settings: ProjectSettings) -> bool:
    """Make the bundle folder hold the version the alias names; True when it changed."""
    client = registry_client(settings)
    version = resolve(settings, client)
    bundle_dir = settings.resolved_bundle_dir()
    held = served_source(bundle_dir)
    if held is not None and (held["registered_model"], held["version"]) == (
        version.name,
        str(version.version),
    ):
        return False
    install(settings, version)
    return True


def install(settings: ProjectSettings, version: ModelVersion) -> Bundle:
    """Download the version whole, build its bundle and swap it into the bundle folder."""
    import mlflow.artifacts

    bundle_dir = settings.resolved_bundle_dir()
    bundle_dir.parent.mkdir(parents=True, exist_ok=True)
    uri = f"models:/{version.name}/{version.version}"
    with tempfile.TemporaryDirectory(dir=bundle_dir.parent, prefix=".registry-download-") as tmp:
        Path(tmp, "download").mkdir()  # moved out whole below; tmp itself must stay
        with registry_errors(settings, f"downloading {uri}"):
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=uri,
                    dst_path=str(Path(tmp, "download")),
                    tracking_uri=settings.tracking_uri,
                    registry_uri=settings.tracking_uri,
                )
            )
        bundle = build_bundle(local, version, settings.registry_alias)
        write_bundle(bundle_dir, local, bundle)
    logger.info("installed %s (%s) in %s", uri, settings.registry_alias, bundle_dir)
    return bundle


def build_bundle(model_dir: Path, version: ModelVersion, alias: str) -> Bundle:
    """A version's bundle: the signature's inputs as the schema (numbers), the training window's
    reference statistics, prediction figures on its held-out rows (all rows when none is)."""
    pyfunc = load_pyfunc(model_dir)
    features = pyfunc.metadata.get_input_schema().input_names()
    window = pd.read_csv(model_artifact(model_dir, contract.WINDOW_ARTIFACT))
    missing = [c for c in [*features, contract.TARGET, contract.TIMESTAMP] if c not in window]
    if missing:
        raise ModelMonitoringError(f"the training window lacks column(s) {', '.join(missing)}")
    window = select_window(window, contract.TIMESTAMP, None, None)
    specs = [replace(spec, type="float") for spec in feature_specs(window, features)]
    y, classes = encode_target(window[contract.TARGET])
    reference = reference_statistics(window, specs)
    samples = [reference[name].sample for name in features]  # type: ignore[union-attr]
    pipeline = PyfuncPipeline(pyfunc, features, medians(samples))
    held = (window[contract.HELD_OUT] == 1).to_numpy() if contract.HELD_OUT in window else None
    scored = held if held is not None and held.any() else np.ones(len(window), dtype=bool)
    return Bundle(
        version=f"{version.name}/{version.version}",
        target=contract.TARGET,
        classes=classes,
        features=specs,
        reference=reference,
        prediction_reference=score_reference(
            pipeline, frame_input(specs, window)[scored], y[scored]
        ),
        reference_window={
            **window_description(window, contract.TIMESTAMP),
            "scored_rows": int(scored.sum()),
        },
        trained_at=datetime.fromtimestamp(version.creation_timestamp / 1000, UTC).isoformat(
            timespec="seconds"
        ),
        model_sha256=params_sha256(model_dir),
        source={
            "registered_model": version.name,
            "version": str(version.version),
            "alias": alias,
            "run_id": version.run_id,
        },
        pipeline=pipeline,
    )


# --- following the alias ----------------------------------------------------------------------


class RegistryFollower:
    """In the worker that holds the lock file: resolve the alias every ``interval_s`` and install
    the version it names when that changed. Failures are counted and logged; the bundle stays."""

    def __init__(self, settings: ProjectSettings, on_failure: Callable[[], None]) -> None:
        self.settings = settings
        self.on_failure = on_failure
        self.lock_path = settings.resolved_bundle_dir().parent / FOLLOWER_LOCK
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="registry-follower", daemon=True)
        self._lock_file: Any = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock

    def _elected(self) -> bool:
        if self._lock_file is None:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_file = self.lock_path.open("a")
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def poll_once(self) -> bool:
        """One look at the registry; True when a new version was installed."""
        try:
            changed = sync(self.settings)
        except ModelMonitoringError as error:  # the registry, the alias or the version
            self.on_failure()
            logger.error("registry poll failed (the served model stays): %s", error)
            return False
        except Exception:  # an unreadable version, a full disk: the follower must live on
            self.on_failure()
            logger.exception("registry poll failed (the served model stays)")
            return False
        return changed

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.registry_poll_s):
            if self._elected():
                self.poll_once()


class BundleWatcher:
    """In every worker: when bundle.json is replaced (a new folder renamed into place), load the
    new bundle and hand it to ``switch``. ``served`` is the identity of the bundle the worker
    loaded (read before loading it, so a swap in between is seen). A bundle that cannot be
    loaded or switched to is counted (``on_failure``), logged once, and tried again at every
    check: the worker must end up serving what the folder holds."""

    def __init__(
        self,
        settings: ProjectSettings,
        switch: Callable[[Bundle], None],
        on_failure: Callable[[], None],
        served: str | None,
    ) -> None:
        self.bundle_dir = settings.resolved_bundle_dir()
        self.interval_s = settings.bundle_check_s
        self.switch = switch
        self.on_failure = on_failure
        self._seen = served
        self._failed: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bundle-watcher", daemon=True)

    def check_once(self) -> None:
        from model_monitoring.bundle import load_bundle

        seen = bundle_identity(self.bundle_dir)
        # After a failure, the served bundle coming back is loaded again: the switch clears
        # the worker's stale state.
        if seen is None or (seen == self._seen and self._failed is None):
            return
        try:
            bundle = load_bundle(self.bundle_dir)
            self.switch(bundle)
        except Exception:  # a bad bundle must not stop the watcher; the served one stays
            self.on_failure()
            if seen != self._failed:
                logger.exception("cannot switch to the bundle in %s", self.bundle_dir)
            self._failed = seen
            return
        self._seen, self._failed = seen, None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check_once()
