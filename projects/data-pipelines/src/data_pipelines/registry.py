"""The register step: every published model goes to the MLflow registry as a version of
``registered_model`` (the contract in ``roadmap_lab.housing_model``: a pyfunc logged from code
with its signature, the JSON parameters and the training window's rows, tagged with the data
window and the published hashes), and the ``champion`` alias moves only through the gate
(``roadmap_lab.gate``: challenger and champion, both loaded from the registry, scored on the same
rows: the window's held-out rows, which no model of the history trained on).

Fail closed: only the registry's "does not exist" (no model, no alias) means there is no
champion; any other registry error stops the step with one line (``RegistryError``, a transient
error: Airflow retries it) before the alias moves. A version is tagged ``registration=complete``
last, once its gate decision is carried out; a rerun of the week finds it (by the manifest's
hash) and changes nothing, and finishes a version whose registration was interrupted.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roadmap_lab import housing_model as contract
from roadmap_lab.gate import decide

from data_pipelines.errors import PermanentError, TransientError
from data_pipelines.source import sha256_hex
from data_pipelines.steps import TEST_EVERY
from data_pipelines.store import ArtefactStore
from data_pipelines.validation import TARGET, read_slice

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from data_pipelines.settings import ProjectSettings

logger = logging.getLogger(__name__)

REGISTRATION_TAG = "registration"
REGISTRATION_DONE = "complete"


class RegistryError(TransientError):
    """The registry failed (unreachable, refused, an unreadable answer): nothing was moved."""


@contextmanager
def registry_errors(settings: ProjectSettings, doing: str) -> Iterator[None]:
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, OSError) as error:  # requests' errors are OSErrors
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise RegistryError(
            f"the registry at {settings.tracking_uri} failed while {doing}: {first[:300]}; "
            "the champion alias was not moved"
        ) from error


def client(settings: ProjectSettings) -> MlflowClient:
    import mlflow

    if not settings.tracking_uri:
        raise PermanentError("no registry configured (DATA_PIPELINES_TRACKING_URI)")
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return mlflow.MlflowClient(settings.tracking_uri, settings.tracking_uri)


# --- what a version carries -----------------------------------------------------------------


def training_window(store: ArtefactStore, manifest: dict[str, Any]) -> pd.DataFrame:
    """The rows of the model's window (every member's hash checked against the manifest), with
    ``held_out`` = 1 for the in-window test rows the model never trained on."""
    import pandas as pd

    frames = []
    for member in manifest["window"]:
        data = store.slice(member["slice_id"]).read_bytes()
        if sha256_hex(data) != member["sha256"]:
            raise PermanentError(f"slices/{member['slice_id']}.csv differs from the manifest's")
        frames.append(read_slice(data))
    rows = pd.concat(frames, ignore_index=True)
    rows[contract.HELD_OUT] = (rows["id"] % TEST_EVERY == 0).astype(int)
    return rows[contract.window_columns()]


def version_tags(
    manifest: dict[str, Any], manifest_sha256: str, window: pd.DataFrame
) -> dict[str, str]:
    stamps = window[contract.TIMESTAMP].astype(str)
    return {
        contract.TAG_SLICE_ID: manifest["slice"]["slice_id"],
        contract.TAG_WINDOW_SLICES: ",".join(m["slice_id"] for m in manifest["window"]),
        contract.TAG_WINDOW_START: stamps.min(),
        contract.TAG_WINDOW_END: stamps.max(),
        contract.TAG_MANIFEST_SHA256: manifest_sha256,
        contract.TAG_MODEL_SHA256: manifest["model"]["sha256"],
    }


def _metrics(prefix: str, metrics: dict[str, Any]) -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in metrics.items() if isinstance(v, int | float)}


# --- the step -------------------------------------------------------------------------------


def register(settings: ProjectSettings, published: dict[str, Any]) -> dict[str, Any]:
    """Register the version ``published`` names (once), gate it against the champion and move
    the alias when it passes; what was decided."""
    store = ArtefactStore.of(settings)
    key, folder = published["slice_id"], store.models(published["slice_id"]) / published["version"]
    manifest_data = (folder / "manifest.json").read_bytes()
    if sha256_hex(manifest_data) != published["manifest_sha256"]:
        raise PermanentError(f"models/{key}/{published['version']} changed since publish")
    manifest = json.loads(manifest_data)
    model_data = (folder / "model.json").read_bytes()
    if sha256_hex(model_data) != manifest["model"]["sha256"]:
        raise PermanentError(f"models/{key}/{published['version']} does not match its manifest")
    window = training_window(store, manifest)
    mlflow_client = client(settings)
    name = settings.registered_model
    with registry_errors(settings, f"registering week {key}"):
        version = _find_version(mlflow_client, name, published["manifest_sha256"])
        if version is None:
            version = _log_version(settings, manifest, published, model_data, window)
            logger.info("registered %s version %s (week %s)", name, version.version, key)
        if version.tags.get(REGISTRATION_TAG) == REGISTRATION_DONE:
            logger.info("%s version %s already registered for %s", name, version.version, key)
            return _result(name, mlflow_client.get_model_version(name, version.version))
        _log_forward_metrics(mlflow_client, name, manifest)
        _gate(settings, mlflow_client, version, window)
        mlflow_client.set_model_version_tag(
            name, version.version, REGISTRATION_TAG, REGISTRATION_DONE
        )
        return _result(name, mlflow_client.get_model_version(name, version.version))


def _find_version(mlflow_client: MlflowClient, name: str, manifest_sha256: str) -> Any | None:
    """The version registered for this manifest (a rerun of the week), if any."""
    found = mlflow_client.search_model_versions(f"name = '{name}'")
    same = [v for v in found if v.tags.get(contract.TAG_MANIFEST_SHA256) == manifest_sha256]
    return min(same, key=lambda v: int(v.version)) if same else None


def _log_version(
    settings: ProjectSettings,
    manifest: dict[str, Any],
    published: dict[str, Any],
    model_data: bytes,
    window: pd.DataFrame,
) -> Any:
    """A run with the in-window metrics and the model (pyfunc + artifacts), registered."""
    import mlflow

    key = manifest["slice"]["slice_id"]
    mlflow.set_experiment(settings.experiment)
    with tempfile.TemporaryDirectory(prefix="register-") as scratch:
        params_file = Path(scratch, "model.json")
        window_file = Path(scratch, f"{contract.WINDOW_ARTIFACT}.csv")
        params_file.write_bytes(model_data)
        window.to_csv(window_file, index=False, lineterminator="\n")
        with mlflow.start_run(run_name=f"{key}-{published['version']}"):
            mlflow.log_params(
                {"slice_id": key, "store_version": published["version"], "history_start":
                 manifest["history_start"], "window_rows": len(window)}
            )  # fmt: skip
            mlflow.log_metrics(_metrics("in_window_", manifest["metrics"]["in_window"]))
            mlflow.log_dict(manifest, "manifest.json")
            info = contract.log_pyfunc(params_file, window_file)
    tags = version_tags(manifest, published["manifest_sha256"], window)
    return mlflow.register_model(info.model_uri, settings.registered_model, tags=tags)


def _log_forward_metrics(mlflow_client: MlflowClient, name: str, manifest: dict[str, Any]) -> None:
    """The forward-in-time figures (the previous week's model on this week's slice) go on the
    evaluated model's run, when that model is registered."""
    forward = manifest["forward_evaluation"]
    if forward is None:
        return
    evaluated = _find_version(mlflow_client, name, forward["model"]["manifest_sha256"])
    if evaluated is None or not evaluated.run_id:
        return
    for metric, value in _metrics("forward_", forward["metrics"]).items():
        mlflow_client.log_metric(evaluated.run_id, metric, value)
    mlflow_client.set_model_version_tag(
        name, evaluated.version, "forward_slice_id", forward["slice"]["slice_id"]
    )


def _gate(
    settings: ProjectSettings, mlflow_client: MlflowClient, version: Any, window: pd.DataFrame
) -> None:
    """Challenger and champion, both as the registry serves them, on the window's held-out rows;
    the alias moves only when the gate promotes."""
    name = settings.registered_model
    champion = contract.alias_version(mlflow_client, name, contract.CHAMPION)
    rows = window[window[contract.HELD_OUT] == 1]
    refusal = _refusal(settings, version, champion, rows)
    if refusal is None:
        promoted, reason = _decide(settings, version, champion, rows)
    else:
        promoted, reason = False, refusal
    decision = {
        "gate.promoted": str(promoted).lower(),
        "gate.reason": reason[:4000],
        "gate.champion": champion.version if champion is not None else "none",
    }
    for tag, value in decision.items():
        mlflow_client.set_model_version_tag(name, version.version, tag, value)
    if promoted:
        _move_alias(mlflow_client, name, version, champion)
    logger.info("%s version %s: %s", name, version.version, reason)


def _refusal(
    settings: ProjectSettings, version: Any, champion: Any | None, rows: pd.DataFrame
) -> str | None:
    """Why the gate must not even score this challenger: too few held-out rows to decide on, or
    a window older than the champion's (a rerun or backfill of a past week must not move the
    alias back in time); None when it may."""
    classes = rows[TARGET].nunique()
    if len(rows) < settings.gate_min_rows or classes < 2:
        return (
            f"refused: {len(rows)} held-out rows with {classes} class(es); the gate needs at "
            f"least {settings.gate_min_rows} with both classes (DATA_PIPELINES_GATE_MIN_ROWS)"
        )
    if champion is None:
        return None
    week = version.tags.get(contract.TAG_SLICE_ID)
    champion_week = champion.tags.get(contract.TAG_SLICE_ID)
    if champion_week is not None and week is not None and week < champion_week:
        return (
            f"refused: week {week} is older than the champion's week {champion_week} "
            f"(version {champion.version}); a past week never takes the alias back"
        )
    return None


def _decide(
    settings: ProjectSettings, version: Any, champion: Any | None, rows: pd.DataFrame
) -> tuple[bool, str]:
    from roadmap_lab.stats import macro_f1_difference
    from sklearn.metrics import f1_score

    name, thresholds = settings.registered_model, settings.thresholds()
    truth = rows[TARGET].to_numpy()
    challenger_pred = _predicted(name, version.version, rows)
    challenger_f1 = float(f1_score(truth, challenger_pred, average="macro", labels=[0, 1]))
    gain = None
    if champion is not None:
        gain = macro_f1_difference(
            truth,
            _predicted(name, champion.version, rows),
            challenger_pred,
            labels=[0, 1],
            resamples=thresholds.resamples,
            confidence=thresholds.confidence,
            seed=settings.seed,
        )
    promoted, reason, _ = decide(challenger_f1, gain, None, thresholds)
    return promoted, f"{reason} ({len(rows)} held-out rows)"


def _move_alias(mlflow_client: MlflowClient, name: str, version: Any, champion: Any | None) -> None:
    """Point the alias at ``version``, unless it moved since the gate read it (another run
    promoted meanwhile): then RegistryError, and the task's retry gates against the new champion.
    MLflow has no compare-and-set, so two registrations within the same instant can still race;
    the DAG runs one at a time (max_active_runs=1)."""
    current = contract.alias_version(mlflow_client, name, contract.CHAMPION)
    now = current.version if current is not None else None
    expected = champion.version if champion is not None else None
    if now != expected:
        raise RegistryError(
            f"the {contract.CHAMPION} alias of {name} moved to version {now} while version "
            f"{version.version} was gated against {expected}; the task's retry gates again"
        )
    if champion is not None:
        mlflow_client.set_model_version_tag(name, version.version, "promoted_over", expected)
    mlflow_client.set_registered_model_alias(name, contract.CHAMPION, version.version)


def _predicted(name: str, version: str, rows: pd.DataFrame) -> Any:
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    return model.predict(rows[contract.raw_features()])[contract.OUTPUT_CLASS].to_numpy()


def _result(name: str, version: Any) -> dict[str, Any]:
    tags = version.tags
    return {
        "registered_model": name,
        "version": str(version.version),
        "promoted": tags.get("gate.promoted") == "true",
        "reason": tags.get("gate.reason"),
        "champion_before": tags.get("gate.champion"),
    }

