"""The benchmark (the CLI's ``benchmark``, its one entry point): this service against
``mlflow models serve`` of the same model folder, under the same load, in one run; plus the
retrain wall time and, when an image tag is given, the container image's size.

Load: wrk on loopback (``bench/wrk.py``), the same request bodies for both servers covering the
whole held-out set (``bench/requests.py``), each server in every worker count of ``workers`` and
compared at its best one (``bench/summary.py``). Headline: requests per server CPU-second,
ours / MLflow's, with the paired interval over the interleaved repeats (target >= 2), the p99
latency ratio (target <= 1) and the raw requests/s ratio.

Fairness, on a machine as small as 2 cores where the client competes with the servers:

- The client is lean and the same for both: one wrk thread (an event loop in C), pinned to one
  core (``taskset -c <last allowed CPU>``), the same connections, duration, timeout and bodies.
- The servers are not pinned: each may use every core, the client's included, and the scheduler
  shares that core between wrk and the server the same way for both. The headline divides by the
  CPU-seconds each server's process tree used in each run, so a server that got (or took) less
  CPU is not penalised for it; wrk's CPU is recorded beside it.
- Same model folder, interpreter and libraries (``bench/servers.py``); every start is checked
  against the model's own predictions and warmed up before it is measured.
- Repeats are interleaved, the server order rotating each repeat, so drift hits both; every
  measurement is kept in run order.

Latency is wrk's: per request, from send to the end of the answer, in a closed loop (a slow
answer delays the next request on its connection, so percentiles are those of the requests that
were sent, at that concurrency; not wrk2's constant-rate figures).

Results go to ``<dist>/ml-cicd/benchmark/`` with a plot; ``publish`` copies them to the committed
``projects/ml-cicd/benchmarks/``. Console output is the CLI's: ``progress`` receives a line per
stage and per measurement.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roadmap_lab.machine import describe_machine, package_versions
from roadmap_lab.results import (
    BenchmarkConditions,
    Headline,
    ResultsWriter,
    ensure_quiet_machine,
    headline_figure,
    publish_benchmark,
)
from roadmap_lab.services import ServiceError

from ml_cicd import PROJECT
from ml_cicd.bench.image import measure_image_size
from ml_cicd.bench.report import measurement_line, save_figure
from ml_cicd.bench.requests import LABELS, MLFLOW, OURS, SERVERS, request_batches, write_bodies
from ml_cicd.bench.servers import LoadPlan, Measurement, measure_server, uvicorn_shim
from ml_cicd.bench.summary import headlines, summarise
from ml_cicd.bench.wrk import (
    WRK_SCRIPT,
    WRK_THREADS,
    WRK_TIMEOUT_S,
    client_cpu,
    find_wrk,
    wrk_version,
)
from ml_cicd.errors import BenchmarkError
from ml_cicd.settings import DEFAULT_DATA_DIR, ProjectSettings, ServiceSettings, ValidationRules

MEASURED_PACKAGES = (
    "mlflow", "fastapi", "starlette", "uvicorn", "uvloop", "httptools", "pydantic",
    "scikit-learn", "numpy", "pandas",
)  # fmt: skip
# The service's default limit of texts per request.
MAX_BATCH: int = ServiceSettings.model_fields["max_batch"].default
# A published figure needs at least this many interleaved repeats.
MIN_PUBLISHED_REPEATS = 5
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchmarkRun:
    results_file: Path
    summary: dict[str, Any]
    headline: list[Headline]
    published: Path | None


def _validate(concurrency: Sequence[int], duration_s: int, batch: int, workers: Sequence[int],
              repeats: int, warmup_s: int, publish: bool) -> None:  # fmt: skip
    problems = []
    if not concurrency or any(c < 1 for c in concurrency):
        problems.append(f"concurrency levels must be >= 1, got {list(concurrency)}")
    if not workers or any(w < 1 for w in workers):
        problems.append(f"worker counts must be >= 1, got {list(workers)}")
    if duration_s < 1:
        problems.append(f"duration must be at least 1 s, got {duration_s}")
    if warmup_s < 0:
        problems.append(f"warm-up cannot be negative, got {warmup_s}")
    if repeats < 1 or (publish and repeats < MIN_PUBLISHED_REPEATS):
        least = MIN_PUBLISHED_REPEATS if publish else 1
        problems.append(f"repeats must be at least {least}{' to publish' * publish}, got {repeats}")
    if not 1 <= batch <= MAX_BATCH:
        problems.append(f"batch must be between 1 and {MAX_BATCH}, got {batch}")
    if problems:
        raise BenchmarkError("; ".join(problems))


def measure_load(
    plan: LoadPlan,
    workers: Sequence[int],
    repeats: int,
    model_dir: Path,
    folder: Path,
    progress: Progress,
) -> tuple[list[Measurement], list[dict[str, Any]]]:
    """Every server start in run order: repeats interleaved, the server order rotating each
    repeat; (every measurement, every start's record)."""
    measurements: list[Measurement] = []
    starts: list[dict[str, Any]] = []
    for repeat in range(1, repeats + 1):
        shift = (repeat - 1) % len(SERVERS)
        for server in SERVERS[shift:] + SERVERS[:shift]:
            for count in workers:
                try:
                    done, record = measure_server(
                        server, count, repeat, plan, model_dir, folder, len(measurements) + 1,
                        lambda m: progress(measurement_line(m)),
                    )  # fmt: skip
                except ServiceError as error:
                    raise BenchmarkError(f"{LABELS[server]}: {error}") from None
                measurements.extend(done)
                starts.append(record)
    return measurements, starts


def _setup(cpu: int | None, batches: list[list[str]], bodies: dict[str, Path]) -> dict[str, Any]:
    """How the load was made, for the results file."""
    pinned = f"pinned to CPU {cpu}" if cpu is not None else "not pinned (no taskset)"
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    body_bytes = {
        server: round(statistics.fmean(len(line.encode()) for line in
                                       path.read_text(encoding="utf-8").splitlines()), 1)
        for server, path in bodies.items()
    }  # fmt: skip
    return {
        "client": f"wrk, {WRK_THREADS} thread, {pinned}",
        "client_cpu": cpu,
        "servers_pinned": False,
        "cpus_available": cpus,
        "servers": {
            OURS: "python -m ml_cicd serve --workers N --model-uri <folder> (POST /predict)",
            MLFLOW: "python -m mlflow models serve -m <folder> --env-manager local -w N "
            "(POST /invocations, dataframe_split; uvicorn access log off)",
        },
        "texts": "every review of the held-out set (reviews test split) in consecutive batches, "
        "cycled in the same order for both servers; neither server caches answers",
        "request_bodies": len(batches),
        "distinct_texts": len({text for batch in batches for text in batch}),
        "mean_review_chars": round(statistics.fmean(len(t) for b in batches for t in b), 1),
        "body_bytes": body_bytes,
        "cpu_seconds": "server: its process tree (server and workers) from /proc before and "
        "after each wrk run (roadmap_lab.results.process_tree_cpu_seconds); client: wrk's rusage",
    }


def measure_retrain(data_dir: Path, folder: Path) -> dict[str, Any]:
    """One ``retrain`` (validate, train, evaluate, behavioural suites, gate, log and register)
    on a copy of ``data_dir`` into a fresh local store; its wall time."""
    from ml_cicd.retrain import retrain
    from ml_cicd.slices import SLICES_FOLDER

    source = Path(data_dir) / SLICES_FOLDER
    if not source.is_dir():
        raise BenchmarkError(
            f"no data slices in {source}: pass --data-dir (the folder holding slices/*.csv)"
        )
    data_copy = folder / "retrain-data"
    shutil.copytree(source, data_copy / SLICES_FOLDER)
    # Always a fresh local store, whatever MLFLOW_TRACKING_URI says.
    settings = ProjectSettings(run_dir=folder / "retrain-run", data_dir=data_copy)
    settings = settings.model_copy(update={"tracking_uri": None})
    started = time.perf_counter()
    outcome = retrain(settings, ValidationRules())
    seconds = time.perf_counter() - started
    if outcome.status not in ("promoted", "rejected"):
        raise BenchmarkError(f"the retrain did not train ({outcome.status}): {outcome.reason}")
    return {
        "seconds": round(seconds, 2),
        "pipeline_seconds": outcome.seconds,
        "status": outcome.status,
        "rows": outcome.data.rows,
        "slices": len(outcome.data.slices),
        "macro_f1": outcome.challenger_metrics["macro_f1"] if outcome.challenger_metrics else None,
        "data_dir": str(data_dir),
        "note": "validate, train, evaluate on the held-out set, behavioural suites, gate, log and "
        "register in a fresh local store (sqlite), in the benchmark's process (imports warm)",
    }


def run_benchmark(
    dist_dir: Path,
    command: str,
    concurrency: Sequence[int] = (1, 8, 32),
    duration_s: int = 10,
    batch: int = 8,
    workers: Sequence[int] = (1, 2),
    repeats: int = MIN_PUBLISHED_REPEATS,
    warmup_s: int = 2,
    publish: bool = False,
    data_dir: Path = DEFAULT_DATA_DIR,
    image: str | None = None,
    progress: Progress | None = None,
) -> BenchmarkRun:
    """Measure, write ``<dist_dir>/ml-cicd/benchmark/results.json`` and its plot; with
    ``publish`` also copy them to the committed ``projects/ml-cicd/benchmarks/``. ``image``: an
    image tag built before, whose size the build script measures."""
    from ml_cicd.model import load_pyfunc, p_great_function, predict_labels
    from ml_cicd.training import held_out_set, train_default_model

    progress = progress or (lambda line: None)
    concurrency = tuple(sorted(dict.fromkeys(concurrency)))
    workers = tuple(dict.fromkeys(workers))
    _validate(concurrency, duration_s, batch, workers, repeats, warmup_s, publish)
    wrk = find_wrk()
    # Before the load: a tag that was never built fails in seconds, not after the load.
    image_size = measure_image_size(image) if image else None
    if publish:
        ensure_quiet_machine()
    conditions = BenchmarkConditions()
    started = time.monotonic()
    cpu = client_cpu()

    with tempfile.TemporaryDirectory(prefix="ml-cicd-benchmark-") as scratch:
        folder = Path(scratch)
        model_dir = folder / "model"
        progress("1/3 the default model (TF-IDF + logistic regression)")
        begun = time.perf_counter()
        trained = train_default_model(model_dir)
        train_s = time.perf_counter() - begun

        progress(f"2/3 retrain wall time on {data_dir}")
        retrain_figures = measure_retrain(data_dir, folder)
        progress(f"  retrain: {retrain_figures['status']} in {retrain_figures['seconds']} s")

        batches = request_batches(held_out_set()["text"].astype(str).tolist(), batch)
        p_great = p_great_function(load_pyfunc(str(model_dir)))(batches[0])
        expected = list(zip(predict_labels(p_great), (float(p) for p in p_great), strict=True))
        script = folder / "benchmark.lua"
        script.write_text(WRK_SCRIPT, encoding="utf-8")
        bodies = {s: write_bodies(s, batches, folder / f"bodies-{s}.jsonl") for s in SERVERS}
        uvicorn_shim(folder / "shim")
        plan = LoadPlan(concurrency, duration_s, warmup_s, cpu, wrk, script, bodies,
                        (batches[0], expected))  # fmt: skip
        progress(
            f"3/3 load: {repeats} interleaved repeat(s) x {len(SERVERS)} servers x workers "
            f"{list(workers)} x concurrency {list(concurrency)}, {duration_s} s each (wrk on "
            f"CPU {cpu}, servers unpinned)"
        )
        measurements, starts = measure_load(plan, workers, repeats, model_dir, folder, progress)
        setup = _setup(cpu, batches, bodies)

    for m in measurements:
        conditions.add_cpu(
            f"{LABELS[m.server]} ({m.workers} workers), process tree", m.server_cpu_s
        )
        conditions.add_cpu("wrk", m.client_cpu_s)
    summary = summarise(measurements, concurrency, workers)
    headline = headlines(summary, concurrency)
    headline.append(headline_figure(
        "retrain wall time (validate, train, evaluate, gate, register)",
        retrain_figures["seconds"], "s",
    ))  # fmt: skip
    if image_size is not None:
        headline.append(headline_figure(
            "container image size", image_size["megabytes"], "MB", tag=image,
            measured_by=image_size["measured_by"],
        ))  # fmt: skip

    writer = ResultsWriter(PROJECT, dist_dir, command, kind="benchmark")
    save_figure(writer, measurements, summary, concurrency)
    versions: dict[str, Any] = package_versions(*MEASURED_PACKAGES)
    versions["wrk"] = wrk_version(wrk)
    results_file = writer.write({
        "headline": headline,
        "machine": describe_machine(),
        "versions": versions,
        "sizes": {
            "concurrency": list(concurrency),
            "duration_s": duration_s,
            "batch": batch,
            "workers": list(workers),
            "repeats": repeats,
            "warmup_s": warmup_s,
            "wrk_threads": WRK_THREADS,
            "wrk_timeout_s": WRK_TIMEOUT_S,
        },
        "setup": setup,
        "model": {
            "train_seconds": round(train_s, 2),
            "macro_f1": trained.metrics["macro_f1"],
            "data_version": trained.data.version,
        },
        "retrain": retrain_figures,
        **({"image": image_size} if image_size is not None else {}),
        **summary,
        "measurements": [m.as_dict() for m in measurements],  # in run order
        "server_starts": starts,
        "wall_seconds": round(time.monotonic() - started, 1),
        "conditions": conditions.finish(),
    })  # fmt: skip
    published = None
    if publish:
        try:
            published = publish_benchmark(results_file)
        except (ValueError, OSError) as error:
            raise BenchmarkError(f"cannot publish {results_file}: {error}") from error
    return BenchmarkRun(results_file, summary, headline, published)
