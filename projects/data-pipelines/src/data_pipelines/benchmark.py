"""Benchmark: wall time per logical date from trigger to success under Airflow's real scheduler
(the LocalExecutor on PostgreSQL, and the CeleryExecutor with two workers on Redis), each against
the same step functions in a plain Python loop on the same dates, measured date by date right
after it (paired); and, as a separate labelled line, the same dates under dag.test() (one
process, sqlite: no scheduler; the DAG parse is outside the timed region). Every path starts its
own history at the first date (a warm-up run, reported apart) in its own artefact store; all
stores must end byte-identical, and no date may need a retry (either is an error).

A scheduler run is timed from just before the REST call that triggers it to the end_date the
scheduler records when it marks the run successful (one clock: the same machine). The report DAG
is paused in the benchmark's deployments, so no report run overlaps a timed date or a plain loop
(the Celery test runs it). The CPU-seconds of every Airflow process, of PostgreSQL and of Redis
are recorded over the timed dates (their plain loops included)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from roadmap_lab.results import (
    BenchmarkConditions,
    ResultsWriter,
    headline_figure,
    process_tree_cpu_seconds,
)
from roadmap_lab.services import PostgresCluster, postgres_cluster
from roadmap_lab.stats import paired_ratio, t_interval

from data_pipelines import PROJECT
from data_pipelines.errors import DataPipelinesError
from data_pipelines.local import local_pipeline, tree_digest
from data_pipelines.names import PIPELINE_DAG_ID, REPORT_DAG_ID
from data_pipelines.runner import RunOutcome, run_dag
from data_pipelines.settings import SLICE_PERIOD, ProjectSettings
from data_pipelines.stack import AirflowStack, airflow_stack, celery_workers, redis_server
from data_pipelines.steps import run_plain

EXECUTORS = {"local": "LocalExecutor on PostgreSQL", "celery": "CeleryExecutor, 2 workers"}
QUEUES = ("ingest", "train")
RUN_TIMEOUT_S = 900.0
# What the figures ran on, written into the results' conditions (the README says the same).
DEPLOYMENT = {
    "postgresql": "a throwaway cluster (roadmap_lab.services.postgres_cluster) with fsync=off, "
    "synchronous_commit=off, full_page_writes=off, shared with the tests: commits do not wait "
    "for the disk, as a production metadata DB's would",
    "scheduler": "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC=1 and "
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=5 (Airflow's defaults: 5 s and 300 s): the "
    "scheduler takes up queued work sooner than a default deployment",
    "report_dag": f"{REPORT_DAG_ID} paused: each date is timed without a report run beside it",
}


def wall_time_name(executor: str) -> str:
    return f"mean wall time per logical date, trigger to success ({EXECUTORS[executor]})"


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
                with _stack(executor, root / executor, cluster, settings) as (stack, services):
                    paths[executor] = _scheduler_path(
                        stack, services, settings, root / executor, warmup, timed, conditions,
                        executor,
                    )  # fmt: skip
    stores = [root / "dag-test", *(root / name / "output" for name in executors)]
    _check_identical([*stores, *(root / f"plain-{name}" for name in paths)])
    results = _results(paths, timed, warmup, executors)
    results["conditions"] = {**conditions.finish(), "deployment": DEPLOYMENT}
    writer = ResultsWriter(PROJECT, settings.dist_dir, command, kind="benchmark")
    return writer.write(results), results


def _check_identical(stores: list[Path]) -> None:
    """Every path must have written the same bytes (its work in progress aside)."""
    digests = {store: tree_digest(store) for store in stores}
    differ = [str(store) for store, digest in digests.items() if digest != digests[stores[0]]]
    if differ:
        raise DataPipelinesError(
            f"artefacts differ from {stores[0]}'s in {', '.join(differ)}: the paths did not "
            "compute the same thing, so their times do not compare"
        )


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
    services: dict[str, int],
    settings: ProjectSettings,
    folder: Path,
    warmup: str,
    timed: list[str],
    conditions: BenchmarkConditions,
    executor: str,
) -> dict[str, Any]:
    """Each date triggered through the REST API and awaited, then the plain loop on it."""
    plain = settings.model_copy(update={"output_root": str(folder.parent / f"plain-{executor}")})
    stack.api.request("PATCH", f"/dags/{REPORT_DAG_ID}", body={"is_paused": True})
    first = _triggered_wall(stack, warmup)
    run_plain(plain, warmup)
    cpu_before = _cpu_seconds(stack, services)
    walls, plain_walls = [], []
    for key in timed:
        walls.append(_triggered_wall(stack, key))
        plain_walls.append(_plain_wall(plain, key))
    for name, seconds in _cpu_seconds(stack, services).items():
        conditions.add_cpu(f"{executor}: {name}", seconds - cpu_before.get(name, 0.0))
    if stack.api.dag_runs(REPORT_DAG_ID):
        raise DataPipelinesError(f"{REPORT_DAG_ID} ran although paused: the dates overlapped it")
    return {"first_s": first, "wall_s": walls, "plain_wall_s": plain_walls}


def _cpu_seconds(stack: AirflowStack, services: dict[str, int]) -> dict[str, float]:
    """CPU-seconds so far of every Airflow process and of the services it runs on."""
    own = {name: process_tree_cpu_seconds(pid) for name, pid in services.items()}
    return {**stack.cpu_seconds(), **own}


@contextlib.contextmanager
def _stack(
    executor: str, folder: Path, cluster: PostgresCluster, settings: ProjectSettings
) -> Iterator[tuple[AirflowStack, dict[str, int]]]:
    """The executor's deployment on its own database, and the pids of the services under it."""
    database = cluster.create_database(f"airflow_{executor}", "postgresql+psycopg2")
    services = {"PostgreSQL": cluster.process.pid}
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
            redis = stack.enter_context(redis_server(folder / "redis"))
            broker, services["Redis"] = redis.url, redis.pid
            workers = celery_workers(folder, QUEUES)
        airflow = stack.enter_context(
            airflow_stack(folder / "airflow", database, pipeline, broker_url=broker,
                          workers=workers)
        )  # fmt: skip
        yield airflow, services


def _logical(key: str) -> datetime:
    return datetime.strptime(key, "%Y-%m-%d").replace(tzinfo=UTC)


def _checked(outcome: RunOutcome) -> float:
    if not outcome.succeeded:
        raise DataPipelinesError(f"benchmark DAG run {outcome.logical_date} {outcome.state}")
    _check_one_try(outcome.logical_date, max(a.try_number for a in outcome.attempts))
    return round(float(outcome.wall_s), 3)


def _check_one_try(key: str, tries: int) -> None:
    """A date that needed a retry timed a retry delay, not the pipeline: refused."""
    if tries > 1:
        raise DataPipelinesError(
            f"benchmark date {key} needed a retry (a task ran {tries} times): its time is not "
            "the pipeline's; find the failure in the task logs and rerun"
        )


def _plain_wall(settings: ProjectSettings, key: str) -> float:
    started = time.perf_counter()
    run_plain(settings, key)
    return round(time.perf_counter() - started, 3)


def _triggered_wall(stack: AirflowStack, key: str) -> float:
    """Seconds from just before the trigger to the end_date of the successful run."""
    triggered = datetime.now(UTC)
    run_id = stack.api.trigger(PIPELINE_DAG_ID, _logical(key))["dag_run_id"]
    run = stack.api.wait_for_run(PIPELINE_DAG_ID, run_id, RUN_TIMEOUT_S)
    if run["state"] != "success":
        raise DataPipelinesError(f"benchmark run {key} under the scheduler: {run['state']}")
    instances = stack.api.task_instances(PIPELINE_DAG_ID, run_id)
    _check_one_try(key, max(int(ti["try_number"]) for ti in instances))
    wall: timedelta = datetime.fromisoformat(run["end_date"]) - triggered
    return round(wall.total_seconds(), 3)


def _results(
    paths: dict[str, dict[str, Any]], timed: list[str], warmup: str, executors: Sequence[str]
) -> dict[str, Any]:
    headline = []
    for executor in executors:
        path = paths[executor]
        plain_mean = sum(path["plain_wall_s"]) / len(timed)
        headline += [
            headline_figure(wall_time_name(executor), None, "s", baseline=round(plain_mean, 3),
                            target="< 60", interval=t_interval(path["wall_s"]), digits=2),
            headline_figure(f"slowest logical date, trigger to success ({EXECUTORS[executor]})",
                            max(path["wall_s"]), "s", baseline=max(path["plain_wall_s"])),
            headline_figure(
                f"orchestration overhead: {EXECUTORS[executor]} run / plain Python loop",
                None, "x", baseline=round(plain_mean, 3), baseline_unit="s",
                interval=paired_ratio(path["wall_s"], path["plain_wall_s"]), digits=2,
            ),
        ]  # fmt: skip
    dag_test = paths["dag.test"]
    headline.append(
        headline_figure(
            "mean wall time per logical date under dag.test (one process, sqlite, no scheduler, "
            "DAG parse excluded)",
            None, "s", baseline=round(sum(dag_test["plain_wall_s"]) / len(timed), 3),
            interval=t_interval(dag_test["wall_s"]), digits=2,
        )
    )  # fmt: skip
    return {
        "headline": headline,
        "logical_dates": timed,
        "warmup_date": warmup,
        "paths": paths,
        "artefacts_identical": True,  # checked: the benchmark fails otherwise
        "note": "scheduler paths: trigger (REST) to the run's end_date, one date at a time, with "
        "the report DAG paused (no report run beside a timed date or a plain loop); each date's "
        "plain loop runs right after it on its own store; the first date warms each path "
        "(Airflow's first parse, imports) and is reported apart as first_s; every task of every "
        "date ran once (a retry is an error, checked from the task-instance records); the "
        "deployment's non-default settings are in conditions.deployment.",
    }
