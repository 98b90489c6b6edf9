"""The showcase's demo: four weeks through the DAG with Airflow's test runner: one with transient
faults (503s, then a connection reset), one with a corrupt slice that is quarantined, which stops
the week after it until the slice is released and rerun; a rerun that must leave identical
bytes; an upstream that rewrites a past week, refused; the downstream report DAG and its trend
page. Writes results.json and the run-timeline plot."""

from __future__ import annotations

import json
import logging
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from roadmap_lab.results import (
    ResultsWriter,
    committed_results,
    headline_figure,
    reference_headline,
)
from roadmap_lab.stats import t_interval

from data_pipelines import PROJECT
from data_pipelines.local import local_pipeline, tree_digest
from data_pipelines.names import PIPELINE_DAG_ID, REPORT_DAG_ID
from data_pipelines.runner import RunOutcome, run_dag
from data_pipelines.settings import ProjectSettings
from data_pipelines.source import FaultSpec
from data_pipelines.steps import release
from data_pipelines.store import ArtefactStore
from data_pipelines.timeline import timeline_figure

logger = logging.getLogger(__name__)

DEMO_DATES = ["2021-02-14", "2021-02-21", "2021-02-28", "2021-03-07"]
FAULTY_DATE, CORRUPT_DATE, BLOCKED_DATE = DEMO_DATES[1], DEMO_DATES[2], DEMO_DATES[3]
# The runs expected to fail: the corrupt week, the week after it (history incomplete) and the
# rerun of a week whose source changed after it was ingested.
EXPECTED_FAILURES = [CORRUPT_DATE, BLOCKED_DATE, FAULTY_DATE]


def _date(key: str) -> datetime:
    return datetime.strptime(key, "%Y-%m-%d").replace(tzinfo=UTC)


def run_demo(settings: ProjectSettings, command: str) -> Path:
    """Run the demo into ``<run dir>/demo`` (wiped first); the results file's path."""
    demo_root = settings.run_dir.resolve() / "demo"
    output = demo_root / "output"
    shutil.rmtree(demo_root, ignore_errors=True)
    settings = settings.model_copy(
        update={
            "output_root": str(output),
            "scratch_dir": demo_root / "scratch",
            "airflow_home": demo_root / "airflow",
            "start_date": _date(DEMO_DATES[0]).date(),
            # Seconds, not minutes: the demo shows backoff without waiting for it.
            "retry_delay_s": 1.0,
            "retries": 3,
        }
    )
    faults = {FAULTY_DATE: FaultSpec("503", count=2), CORRUPT_DATE: FaultSpec("corrupt")}
    started = time.monotonic()
    outcomes: list[RunOutcome] = []
    with local_pipeline(settings, faults) as (settings, server):
        assert server is not None  # the demo always serves the embedded data
        for key in DEMO_DATES:
            outcomes.append(run_dag(PIPELINE_DAG_ID, _date(key)))
        store = ArtefactStore.of(settings)
        quarantine_report = json.loads((store.quarantine(CORRUPT_DATE) / "report.json").read_text())
        # The source is fixed: release the quarantined slice, then run it and the week after.
        server.set_faults({})
        release(settings, CORRUPT_DATE)
        outcomes += [run_dag(PIPELINE_DAG_ID, _date(key)) for key in (CORRUPT_DATE, BLOCKED_DATE)]
        # A rerun of a date (reset mid-fetch this time) must leave every byte as it was.
        before = tree_digest(output)
        server.set_faults({DEMO_DATES[0]: FaultSpec("reset", count=1)})
        outcomes.append(run_dag(PIPELINE_DAG_ID, _date(DEMO_DATES[0])))
        identical = tree_digest(output) == before
        # The upstream rewrites a past week: refused, quarantined, nothing overwritten.
        server.set_faults({FAULTY_DATE: FaultSpec("changed")})
        outcomes.append(run_dag(PIPELINE_DAG_ID, _date(FAULTY_DATE)))
        kept = {k: v for k, v in tree_digest(output).items() if not k.startswith("quarantine/")}
        identical = identical and kept == before
        report = run_dag(REPORT_DAG_ID, _date(DEMO_DATES[-1]))
        source_log = list(server.log)
    wall = time.monotonic() - started
    return _write_results(
        settings, command, outcomes, report, quarantine_report, identical, source_log, wall
    )


def _write_results(
    settings: ProjectSettings,
    command: str,
    outcomes: list[RunOutcome],
    report: RunOutcome,
    quarantine_report: dict[str, Any],
    identical: bool,
    source_log: list[tuple[str, str]],
    wall: float,
) -> Path:
    writer = ResultsWriter(PROJECT, settings.dist_dir, command)
    figure = timeline_figure(
        outcomes,
        "housing_pipeline under dag.test(): every attempt Airflow recorded "
        f"({FAULTY_DATE}: two 503s; {CORRUPT_DATE}: corrupt, quarantined, released, rerun; "
        f"{BLOCKED_DATE}: waits for it; {FAULTY_DATE} again: changed upstream, refused)",
    )
    writer.save_figure(figure, "run_timeline")
    successes = [o for o in outcomes if o.succeeded]
    per_date = [o.wall_s for o in successes]
    faulty = next(o for o in outcomes if o.logical_date.startswith(FAULTY_DATE))
    headline: list[Any] = [
        headline_figure(
            "end-to-end wall time per logical date (dag.test, mean)",
            None if len(per_date) < 2 else round(sum(per_date) / len(per_date), 1),
            "s",
            target="< 60",
            interval=t_interval(per_date) if len(per_date) > 1 else None,
            digits=1,
        ),
        # Expected: 3 (two retries, then success); the status below fails otherwise.
        headline_figure(
            f"fetch tries with two injected 503s ({FAULTY_DATE})",
            faulty.tries("fetch"),
            "tries",
            baseline=1,
        ),
        headline_figure(
            "reruns and a changed upstream leave the published bytes identical", identical, "bool"
        ),
    ]
    committed = committed_results(PROJECT)
    if committed:
        headline += [dict(item) for item in reference_headline(committed)]
    failed = [o.logical_date[:10] for o in outcomes if not o.succeeded]
    results = {
        "status": "ok"
        if identical and failed == EXPECTED_FAILURES and faulty.tries("fetch") == 3
        else "failed",
        "headline": headline,
        "wall_s": round(wall, 1),
        "runs": [o.as_dict() for o in outcomes],
        "report_run": report.as_dict(),
        "failed_runs": failed,
        "quarantine_report": quarantine_report,
        "rerun_identical": identical,
        "source_requests": [{"slice_id": k, "outcome": v} for k, v in source_log],
        "settings": {
            "retries": settings.retries,
            "retry_delay_s": settings.retry_delay_s,
            "retry_backoff": settings.retry_backoff,
            "task_timeout_s": settings.task_timeout_s,
            "window_slices": settings.window_slices,
            "start_date": settings.start_date.isoformat(),
        },
    }
    return writer.write(results)
