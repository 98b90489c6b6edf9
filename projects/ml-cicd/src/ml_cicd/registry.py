"""The MLflow model registry the retrain pipeline writes to: versions tagged with their data
version and metrics, the ``champion`` alias that the service loads, ``previous-champion``, and a
one-command rollback along the chain of promotions (each promoted version records the version it
replaced in the tag ``promoted_over``).

Fail closed: only the registry's "registered model does not exist" means there is no champion,
and a missing alias is read from the model's aliases; any other error (an outage, a 403, a 500)
is raised, and ``registry_errors`` turns it into one line that stops the pipeline."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ml_cicd.errors import RegistryError
from ml_cicd.settings import ProjectSettings

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous-champion"
# mlflow.set_tracking_uri / set_registry_uri export these; use_store puts them back.
EXPORTED_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def use_store(settings: ProjectSettings) -> None:
    """Point MLflow at the settings' store (a local sqlite store in run_dir by default).

    ``mlflow.set_tracking_uri`` and ``set_registry_uri`` also export MLFLOW_TRACKING_URI and
    MLFLOW_REGISTRY_URI, which settings made later in this process, and its child processes,
    would read as theirs: the variables are put back as they were (MLflow's own globals take
    precedence over them)."""
    import mlflow

    if settings.uses_local_store():
        settings.run_dir.mkdir(parents=True, exist_ok=True)
    uri = settings.resolved_tracking_uri()
    exported = {name: os.environ.get(name) for name in EXPORTED_VARS}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for name, value in exported.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def configure(settings: ProjectSettings) -> str:
    """``use_store``, and the experiment created if needed; returns the experiment id."""
    import mlflow

    use_store(settings)
    experiment = mlflow.get_experiment_by_name(settings.experiment)
    if experiment is not None:
        return str(experiment.experiment_id)
    artifact_location = (
        settings.local_artifact_root().as_uri() if settings.uses_local_store() else None
    )
    return str(mlflow.create_experiment(settings.experiment, artifact_location=artifact_location))


def client(settings: ProjectSettings) -> MlflowClient:
    from mlflow import MlflowClient

    use_store(settings)
    uri = settings.resolved_tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


# The only registry answer that means "no such registered model" (MLflow's error code).
DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
# Set last on a registered version, once its gate decision is carried out (alias moved or not):
# a version without it was interrupted, and a rerun trains and registers its data again.
REGISTRATION_TAG = "registration"
REGISTRATION_DONE = "complete"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextmanager
def registry_errors(settings: ProjectSettings, doing: str) -> Iterator[None]:
    """Any registry error inside (an outage, a refusal, an answer that cannot be read) becomes
    RegistryError, one line naming the registry and what failed: the pipeline stops, fail
    closed, instead of reading the error as "no champion"."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, OSError) as error:  # requests' errors are OSErrors
        raise RegistryError(
            f"the registry at {settings.resolved_tracking_uri()} failed while {doing}: "
            f"{_first_line(error)[:300]}"
        ) from error


def registered_model(mlflow_client: MlflowClient, name: str) -> Any | None:
    """The registered model, or None when the registry says it does not exist. Every other error
    is raised: an outage or a refusal is not an empty registry."""
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_registered_model(name)
    except MlflowException as error:
        if error.error_code == DOES_NOT_EXIST:
            return None
        raise


def version_for_alias(mlflow_client: MlflowClient, name: str, alias: str) -> Any | None:
    """The model version an alias points at, or None when the model or the alias does not exist
    (read from the model's aliases, not from an error). Any registry error is raised."""
    model = registered_model(mlflow_client, name)
    if model is None or alias not in (model.aliases or {}):
        return None
    return mlflow_client.get_model_version(name, model.aliases[alias])


def versions(mlflow_client: MlflowClient, name: str) -> list[Any]:
    if registered_model(mlflow_client, name) is None:
        return []
    found = mlflow_client.search_model_versions(f"name='{name}'")
    return sorted(found, key=lambda v: int(v.version))


def version_trained_on(mlflow_client: MlflowClient, name: str, data_version: str) -> Any | None:
    """The newest version trained on exactly this data version whose registration completed."""
    matches = [
        v
        for v in versions(mlflow_client, name)
        if v.tags.get("data_version") == data_version
        and v.tags.get(REGISTRATION_TAG) == REGISTRATION_DONE
    ]
    return matches[-1] if matches else None


def promote(mlflow_client: MlflowClient, name: str, version: str) -> str | None:
    """Point ``champion`` at ``version``; the replaced champion becomes ``previous-champion``.
    Returns the replaced version (None when there was none)."""
    old = version_for_alias(mlflow_client, name, CHAMPION)
    old_version = str(old.version) if old is not None else None
    if old_version is not None:
        mlflow_client.set_model_version_tag(name, version, "promoted_over", old_version)
        mlflow_client.set_registered_model_alias(name, PREVIOUS_CHAMPION, old_version)
    mlflow_client.set_registered_model_alias(name, CHAMPION, version)
    logger.info("%s: champion -> version %s (was %s)", name, version, old_version or "none")
    return old_version


def rollback(settings: ProjectSettings) -> dict[str, str | None]:
    """Move ``champion`` back to the version the current champion replaced; the current one is
    tagged ``rolled_back``. Raises RegistryError when there is nothing to roll back to."""
    with registry_errors(settings, "rolling back the champion"):
        return _rollback(client(settings), settings.registered_model)


def _rollback(mlflow_client: MlflowClient, name: str) -> dict[str, str | None]:
    current = version_for_alias(mlflow_client, name, CHAMPION)
    if current is None:
        raise RegistryError(f"{name} has no '{CHAMPION}' alias: nothing to roll back")
    target = current.tags.get("promoted_over")
    if not target:
        raise RegistryError(
            f"{name} version {current.version} was the first champion: no earlier one to restore"
        )
    target_version = mlflow_client.get_model_version(name, target)
    mlflow_client.set_model_version_tag(name, current.version, "rolled_back", "true")
    mlflow_client.set_registered_model_alias(name, CHAMPION, target)
    earlier = target_version.tags.get("promoted_over")
    if earlier:
        mlflow_client.set_registered_model_alias(name, PREVIOUS_CHAMPION, earlier)
    else:
        mlflow_client.delete_registered_model_alias(name, PREVIOUS_CHAMPION)
    logger.info("%s: champion rolled back from version %s to %s", name, current.version, target)
    return {"model": name, "from": str(current.version), "to": target, "previous": earlier}
