"""Benchmark: wall time per logical date from trigger to success under Airflow's real scheduler
(the LocalExecutor on PostgreSQL, and the CeleryExecutor with two workers on Redis), each against
the same step functions in a plain Python loop on the same dates, measured date by date right
after it (paired); and, as a separate labelled line, the same dates under dag.test() (one
process, sqlite: no scheduler). Every path starts its own history at the first date (a warm-up
run, reported apart) in its own artefact store; all stores must end byte-identical (the
report DAG's output aside).

A scheduler run is timed from just before the REST call that triggers it to the end_date the
scheduler records when it marks the run successful (one clock: the same machine)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from roadmap_lab.results import BenchmarkConditions, ResultsWriter, headline_figure
from roadmap_lab.services import postgres_cluster
from roadmap_lab.stats import paired_ratio, t_interval

from data_pipelines import PROJECT
from data_pipelines.airflow_api import parse_time
from data_pipelines.errors import DataPipelinesError
from data_pipelines.local import local_pipeline, tree_digest
from data_pipelines.names import PIPELINE_DAG_ID
from data_pipelines.runner import run_dag
from data_pipelines.settings import SLICE_PERIOD, ProjectSettings
from data_pipelines.stack import AirflowStack, airflow_stack, celery_workers, redis_server
from data_pipelines.steps import run_plain

EXECUTORS = {"local": "LocalExecutor on PostgreSQL", "celery": "CeleryExecutor, 2 workers"}
QUEUES = ("ingest", "train")
RUN_TIMEOUT_S = 900.0


def wall_time_name(executor: str) -> str:
    return f"end-to-end wall time per logical date ({EXECUTORS[executor]}, mean)"


def run_benchmark(
    settings: ProjectSettings,
    command: str,
    *,
    dates: int = 10,
    executors: Sequence[str] = ("local", "celery"),
) -> tuple[Path, dict[str, Any]]:
    """Measure ``dates`` logical dates after a warm-up one, starting at the settings' start
    date; the results file and the results."""
    unknown = set(executors) - set(EXECUTORS)
    if dates < 2 or unknown:
        raise DataPipelinesError(
            f"need >= 2 dates and executors among {', '.join(EXECUTORS)} (got {dates}, "
            f"{', '.join(sorted(unknown)) or 'none unknown'})"
        )
    conditions = BenchmarkConditions()
    root = settings.run_dir.resolve() / "benchmark"
    keys = [(settings.start + SLICE_PERIOD * i).date().isoformat() for i in range(dates + 1)]
    warmup, timed = keys[0], keys[1:]
    settings = settings.model_copy(
        update={"output_root": str(root / "dag-test"), "airflow_home": root / "airflow",
                "scratch_dir": root / "scratch"}
    )  # fmt: skip
    paths: dict[str, dict[str, Any]] = {}
    with local_pipeline(settings) as (settings, _server):
        paths["dag.test"] = _dag_test_path(settings, root, warmup, timed)
        with postgres_cluster() as cluster:
            for executor in executors:
                database = cluster.create_database(f"airflow_{executor}", "postgresql+psycopg2")
                with _stack(executor, root / executor, database, settings) as stack:
                    paths[executor] = _scheduler_path(
                        stack, settings, root / executor, warmup, timed, conditions, executor
                    )
    stores = [root / "dag-test", *(root / name / "output" for name in executors)]
    stores += [root / f"plain-{name}" for name in paths]
    # The scheduler paths' stores also hold the report DAG's output (the Asset triggers it).
    digests = [tree_digest(store, exclude=("staging", "reports")) for store in stores]
    results = _results(paths, timed, warmup, executors, all(d == digests[0] for d in digests))
    results["conditions"] = conditions.finish()
    writer = ResultsWriter(PROJECT, settings.dist_dir, command, kind="benchmark")
    return writer.write(results), results


def _dag_test_path(
    settings: ProjectSettings, root: Path, warmup: str, timed: list[str]
) -> dict[str, Any]:
    """dag.test() here (sqlite, in-process), each date followed by the plain loop on it."""
    plain = settings.model_copy(update={"output_root": str(root / "plain-dag.test")})
    first = _checked(run_dag(PIPELINE_DAG_ID, _logical(warmup)))
    run_plain(plain, warmup)
    walls, plain_walls = [], []
    for key in timed:
        walls.append(_checked(run_dag(PIPELINE_DAG_ID, _logical(key))))
        plain_walls.append(_plain_wall(plain, key))
    return {"first_s": first, "wall_s": walls, "plain_wall_s": plain_walls}


def _scheduler_path(
    stack: AirflowStack,
    settings: ProjectSettings,
    folder: Path,
    warmup: str,
    timed: list[str],
    conditions: BenchmarkConditions,
    executor: str,
) -> dict[str, Any]:
    """Each date triggered through the REST API and awaited, then the plain loop on it."""
    plain = settings.model_copy(update={"output_root": str(folder.parent / f"plain-{executor}")})
    first = _triggered_wall(stack, warmup)
    run_plain(plain, warmup)
    cpu_before = stack.cpu_seconds()
    walls, plain_walls = [], []
    for key in timed:
        walls.append(_triggered_wall(stack, key))
        plain_walls.append(_plain_wall(plain, key))
    for name, seconds in stack.cpu_seconds().items():
        conditions.add_cpu(f"{executor}: {name}", seconds - cpu_before.get(name, 0.0))
    return {"first_s": first, "wall_s": walls, "plain_wall_s": plain_walls}


@contextlib.contextmanager
def _stack(
    executor: str, folder: Path, database: str, settings: ProjectSettings
) -> Iterator[AirflowStack]:
    pipeline = {
        "DATA_PIPELINES_OUTPUT_ROOT": str(folder / "output"),
        "DATA_PIPELINES_SOURCE_URL": str(settings.source_url),
        "DATA_PIPELINES_START_DATE": settings.start_date.isoformat(),
        "DATA_PIPELINES_INGEST_QUEUE": QUEUES[0],
        "DATA_PIPELINES_TRAIN_QUEUE": QUEUES[1],
    }
    with contextlib.ExitStack() as stack:
        broker, workers = None, []
        if executor == "celery":
            broker = stack.enter_context(redis_server(folder / "redis"))
            workers = celery_workers(folder, QUEUES)
        yield stack.enter_context(
            airflow_stack(folder / "airflow", database, pipeline, broker_url=broker,
                          workers=workers)
        )  # fmt: skip


def _logical(key: str) -> datetime:
    return datetime.strptime(key, "%Y-%m-%d").replace(tzinfo=UTC)


def _checked(outcome: Any) -> float:
    if not outcome.succeeded:
        raise DataPipelinesError(f"benchmark DAG run {outcome.logical_date} {outcome.state}")
    return round(float(outcome.wall_s), 3)


def _plain_wall(settings: ProjectSettings, key: str) -> float:
    started = time.perf_counter()
    run_plain(settings, key)
    return round(time.perf_counter() - started, 3)


def _triggered_wall(stack: AirflowStack, key: str) -> float:
    """Seconds from just before the trigger to the end_date of the successful run."""
    triggered = datetime.now(UTC)
    run_id = stack.api.trigger(PIPELINE_DAG_ID, _logical(key))
    run = stack.api.wait_for_run(PIPELINE_DAG_ID, run_id, RUN_TIMEOUT_S)
    if run["state"] != "success":
        raise DataPipelinesError(f"benchmark run {key} under the scheduler: {run['state']}")
    wall: timedelta = parse_time(run["end_date"]) - triggered
    return round(wall.total_seconds(), 3)


def _results(
    paths: dict[str, dict[str, Any]],
    timed: list[str],
    warmup: str,
    executors: Sequence[str],
    identical: bool,
) -> dict[str, Any]:
    headline = []
    for executor in executors:
        path = paths[executor]
        plain_mean = sum(path["plain_wall_s"]) / len(timed)
        headline += [
            headline_figure(wall_time_name(executor), None, "s", baseline=round(plain_mean, 3),
                            target="< 60", interval=t_interval(path["wall_s"]), digits=2),
            headline_figure(
                f"orchestration overhead: {EXECUTORS[executor]} run / plain Python loop",
                None, "x", baseline=round(plain_mean, 3), baseline_unit="s",
                interval=paired_ratio(path["wall_s"], path["plain_wall_s"]), digits=2,
            ),
        ]  # fmt: skip
    dag_test = paths["dag.test"]
    headline.append(
        headline_figure(
            "wall time per logical date under dag.test (one process, sqlite, no scheduler; mean)",
            None, "s", baseline=round(sum(dag_test["plain_wall_s"]) / len(timed), 3),
            interval=t_interval(dag_test["wall_s"]), digits=2,
        )
    )  # fmt: skip
    return {
        "headline": headline,
        "logical_dates": timed,
        "warmup_date": warmup,
        "paths": paths,
        "artefacts_identical": identical,
        "note": "scheduler paths: trigger (REST) to the run's end_date, one date at a time (the "
        "report DAG that each publish triggers runs beside the next date, as in production); each "
        "date's plain loop runs right after it on its own store; the first date warms each path "
        "(Airflow's first parse, imports) and is reported apart as first_s.",
    }
