"""housing_pipeline: fetch -> validate -> preprocess -> train -> evaluate -> publish, one weekly
slice of California-housing data per logical date (the week that ends at it). Tasks exchange URIs
in the artefact store, never local paths, so fetch and validate may run on one worker (the ingest
queue) and the rest on another (the train queue). Publish emits the housing_model Asset. With a
registry configured (DATA_PIPELINES_TRACKING_URI), a register task after
publish registers the model in MLflow and moves the champion alias through the gate.
Settings: DATA_PIPELINES_* (see data_pipelines.settings)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, get_current_context, task

from data_pipelines import steps
from data_pipelines.names import PIPELINE_DAG_ID
from data_pipelines.settings import LAST_SLICE_DATE, ProjectSettings
from data_pipelines.tasks import MODEL_ASSET, current_slice_id, default_args, run_step

SETTINGS = ProjectSettings()


@dag(
    dag_id=PIPELINE_DAG_ID,
    schedule=SETTINGS.schedule_or_none(),
    start_date=SETTINGS.start,
    # On a schedule the history ends with the data; runs triggered without a logical date
    # (schedule "none": alert-triggered retrains) run after it, so they get no end date.
    end_date=LAST_SLICE_DATE if SETTINGS.schedule_or_none() else None,
    catchup=False,
    # Week t needs week t-1's model: one run at a time, in logical-date order.
    max_active_runs=1,
    default_args=default_args(SETTINGS),
    tags=["data-pipelines", "ml"],
    doc_md=__doc__,
)
def housing_pipeline() -> None:
    @task(queue=SETTINGS.ingest_queue)
    def fetch() -> dict[str, Any]:
        return run_step(steps.fetch, current_slice_id(), get_current_context()["run_id"])

    @task(queue=SETTINGS.ingest_queue)
    def validate(fetched: dict[str, Any]) -> dict[str, Any]:
        return run_step(steps.validate, fetched)

    @task(queue=SETTINGS.train_queue)
    def preprocess(validated: dict[str, Any]) -> dict[str, Any]:
        return run_step(steps.preprocess, validated)

    @task(queue=SETTINGS.train_queue)
    def train(prepared: dict[str, Any]) -> dict[str, Any]:
        return run_step(steps.train, prepared)

    @task(queue=SETTINGS.train_queue)
    def evaluate(prepared: dict[str, Any], trained: dict[str, Any]) -> dict[str, Any]:
        return run_step(steps.evaluate, prepared, trained)

    @task(queue=SETTINGS.train_queue, outlets=[MODEL_ASSET])
    def publish(
        validated: dict[str, Any],
        prepared: dict[str, Any],
        trained: dict[str, Any],
        evaluated: dict[str, Any],
    ) -> dict[str, Any]:
        published = run_step(steps.publish, validated, prepared, trained, evaluated)
        # The event carries what a consumer needs to find the artefacts.
        get_current_context()["outlet_events"][MODEL_ASSET].extra = {
            "slice_id": published["slice_id"],
            "version": published["version"],
            "manifest_sha256": published["manifest_sha256"],
        }
        return published

    @task(queue=SETTINGS.train_queue)
    def register(published: dict[str, Any]) -> dict[str, Any]:
        from data_pipelines import registry  # MLflow loads only in this task

        return run_step(registry.register, published)

    # Called in the DAG body, the tasks take and return XComArgs (their results at run time).
    validated: Any = validate(fetch())  # type: ignore[arg-type]
    prepared: Any = preprocess(validated)
    trained: Any = train(prepared)
    evaluated: Any = evaluate(prepared, trained)
    published: Any = publish(validated, prepared, trained, evaluated)
    if SETTINGS.registers:
        register(published)


housing_pipeline()
