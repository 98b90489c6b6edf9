"""housing_model_report: runs whenever housing_pipeline publishes a model (the housing_model
Asset) and writes reports/<slice>.json and .html: the in-window and forward metrics of every
published model so far, with a plot."""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk import dag, get_current_context, task

from data_pipelines import steps
from data_pipelines.names import REPORT_DAG_ID
from data_pipelines.settings import ProjectSettings
from data_pipelines.store import ArtefactStore
from data_pipelines.tasks import MODEL_ASSET, default_args, run_step

SETTINGS = ProjectSettings()


def _latest_published() -> str:
    store = ArtefactStore.of(ProjectSettings())
    published = [w for w in steps.published_weeks(store) if store.current_version(w)]
    if not published:
        raise ValueError(f"no published model under {store.models()}")
    return published[-1]


@dag(
    dag_id=REPORT_DAG_ID,
    schedule=[MODEL_ASSET],
    start_date=SETTINGS.start,
    catchup=False,
    default_args=default_args(SETTINGS),
    tags=["data-pipelines", "report"],
    doc_md=__doc__,
)
def housing_model_report() -> None:
    @task(queue=SETTINGS.train_queue)
    def report() -> dict[str, Any]:
        events = get_current_context()["triggering_asset_events"]
        keys = [
            str(e.extra["slice_id"]) for e in events.get(MODEL_ASSET, []) if "slice_id" in e.extra
        ]
        # Run by hand (no triggering event): report up to the latest published model.
        key = max(keys) if keys else _latest_published()
        result = run_step(steps.model_report, key, keys)
        print(json.dumps(result))
        return result

    report()


housing_model_report()
