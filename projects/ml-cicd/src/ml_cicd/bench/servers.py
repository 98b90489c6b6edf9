"""The two servers and the measurements against them.

Both serve the same model folder with the same interpreter and libraries, and both run uvicorn
with uvloop and httptools (installed in the environment, so uvicorn picks them for either):

- ours: ``python -m ml_cicd serve --workers N --model-uri <folder>``;
- MLflow's: ``python -m mlflow models serve -m <folder> --env-manager local -w N`` as it ships,
  with one change in its favour: its uvicorn's per-request access log is off
  (``UVICORN_ACCESS_LOG=false``; each start records the access-log lines it wrote anyway). Its
  ``uvicorn`` command is this interpreter's (a shim on PATH; Pants and PEX environments put no
  console scripts there).

Both inherit uvicorn's multi-worker flaw (Kludex/uvicorn#3149): with ``--workers`` above 1 the
shared listening socket leaves Nagle's algorithm on, and an answer on a keep-alive connection can
wait ~40 ms for the client's delayed ACK. Ours sets TCP_NODELAY on its connections; MLflow's is
measured as it ships, and the best-worker rule picks whichever count serves each better.

Every start waits until each worker has logged its startup, checks one request against the
model's own predictions and, with a warm-up, runs wrk once at the highest concurrency before it
is measured. Each wrk run reads the CPU-seconds of the server's whole process tree (the server
and its workers, ``roadmap_lab.results.process_tree_cpu_seconds``) before and after, and wrk's
own from its rusage: the server's figure is the headline's denominator. It also reads each
worker's own CPU-seconds (``/proc/<pid>/stat``; the pids from the line uvicorn logs as each worker
starts), for the balance rule below.

**The balance rule**, declared before measuring and the same for both servers: uvicorn's workers
share one listening socket and each serves the connections it happens to accept, so a worker can
sit idle for a whole run (in the earlier data one of MLflow's two workers did: its server used one
core of two, and that run's ratios moved far from the others). A run with at least
``CHECKED_CONNECTIONS_PER_CORE`` connections per core it can use (``min(workers, cores)``) counts
only when the server's process tree kept at least ``BUSY_FLOOR`` of those cores busy: 0.65 cores
with 1 worker, 1.3 with 2 or more on 2 cores, which one busy process (at most one core) cannot
reach. With more workers than cores an idle worker is harmless as long as the cores are busy, so
the rule is on the cores, not on each worker (each worker's share is recorded). A start with a
run that breaks it is redone on a fresh start (``benchmark.measure_start``).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roadmap_lab.results import process_tree_cpu_seconds
from roadmap_lab.services import (
    DEFAULT_PATH,
    LOCALHOST,
    ManagedProcess,
    free_port,
    python_child_env,
)

from ml_cicd.bench.requests import LABELS, MLFLOW, OURS, PREDICT_PATH, check_predictions
from ml_cicd.bench.wrk import WrkResult, run_wrk
from ml_cicd.errors import BenchmarkError

logger = logging.getLogger(__name__)

READY_PATH = {OURS: "/health/ready", MLFLOW: "/health"}
STARTUP_TIMEOUT_S = 120.0
STARTUP_LINE = "Application startup complete."  # uvicorn's, once per worker
WORKER_STARTED = re.compile(r"Started server process \[(\d+)\]")  # uvicorn's, once per worker
SETTLE_S = 0.2
# The balance rule (module docstring).
CHECKED_CONNECTIONS_PER_CORE = 4
BUSY_FLOOR = 0.65


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class Measurement:
    """One wrk run at one concurrency against one server start."""

    run: int  # 1-based, in run order
    repeat: int
    server: str
    workers: int
    concurrency: int
    result: WrkResult
    server_cpu_s: float  # the server's process tree during the run
    client_cpu_s: float  # wrk's
    worker_cpu_s: tuple[float, ...]  # each worker's own during the run, one per worker started
    cores: int = field(default_factory=available_cores)  # the cores the server could use
    # Wall time of the whole wrk process, over which both CPU figures are read (wrk's own timed
    # run is shorter by the connections' stagger); None: wrk's timed run.
    wall_s: float | None = None

    @property
    def requests_per_s(self) -> float:
        return self.result.requests_per_s

    @property
    def bytes_per_response(self) -> float:
        return self.result.bytes_read / self.result.requests if self.result.requests else 0.0

    @property
    def least_busy_worker_share(self) -> float:
        """The least busy worker's share of the server's CPU during the run (0 when a worker
        never logged its start)."""
        if len(self.worker_cpu_s) < self.workers or self.server_cpu_s <= 0:
            return 0.0
        return min(self.worker_cpu_s) / self.server_cpu_s

    @property
    def cpu_window_s(self) -> float:
        return self.wall_s or self.result.duration_s

    @property
    def server_cpu_cores(self) -> float:
        """The cores the server's process tree kept busy during the run."""
        return self.server_cpu_s / self.cpu_window_s if self.cpu_window_s > 0 else 0.0

    @property
    def usable_cores(self) -> int:
        return min(self.workers, self.cores)

    @property
    def uneven(self) -> bool:
        """True when the run breaks the balance rule (module docstring)."""
        checked = self.concurrency >= CHECKED_CONNECTIONS_PER_CORE * self.usable_cores
        return checked and self.server_cpu_cores < BUSY_FLOOR * self.usable_cores

    @property
    def requests_per_cpu_s(self) -> float:
        """Requests answered per CPU-second the server used: what one core's worth serves."""
        return self.result.requests / self.server_cpu_s if self.server_cpu_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        requests = self.result.requests or 1
        return {
            "run": self.run,
            "repeat": self.repeat,
            "server": self.server,
            "workers": self.workers,
            "concurrency": self.concurrency,
            "requests_per_s": round(self.requests_per_s, 2),
            "requests_per_cpu_s": round(self.requests_per_cpu_s, 2),
            "p50_ms": self.result.latency_ms["p50"],
            "p90_ms": self.result.latency_ms["p90"],
            "p99_ms": self.result.latency_ms["p99"],
            "max_ms": self.result.latency_ms["max"],
            "mean_ms": self.result.latency_ms["mean"],
            "requests": self.result.requests,
            "duration_s": round(self.result.duration_s, 3),
            "errors": self.result.errors,
            "bytes_per_response": round(self.bytes_per_response, 1),
            "server_cpu_s": round(self.server_cpu_s, 3),
            "worker_cpu_s": [round(seconds, 3) for seconds in self.worker_cpu_s],
            "least_busy_worker_share": round(self.least_busy_worker_share, 3),
            "server_cpu_cores": round(self.server_cpu_cores, 3),
            "server_cpu_ms_per_request": round(self.server_cpu_s * 1000 / requests, 3),
            "client_cpu_s": round(self.client_cpu_s, 3),
            "client_cpu_cores": round(self.client_cpu_s / (self.cpu_window_s or 1.0), 3),
            "wrk_wall_s": None if self.wall_s is None else round(self.wall_s, 3),
        }


@dataclass(frozen=True)
class LoadPlan:
    concurrency: tuple[int, ...]
    duration_s: int
    warmup_s: int
    cpu: int | None  # wrk's CPU
    wrk: str
    script: Path
    bodies: dict[str, Path]  # per server
    check: tuple[list[str], list[tuple[str, float]]]  # texts and the model's predictions


def server_argv(server: str, model_dir: Path, port: int, workers: int) -> list[str]:
    if server == OURS:
        return [sys.executable, "-m", "ml_cicd", "serve", "--host", LOCALHOST, "--port",
                str(port), "--workers", str(workers), "--model-uri", str(model_dir)]  # fmt: skip
    return [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_dir),
            "--env-manager", "local", "--host", LOCALHOST, "--port", str(port),
            "-w", str(workers)]  # fmt: skip


def uvicorn_shim(folder: Path) -> Path:
    """A folder with a ``uvicorn`` that runs this interpreter's: ``mlflow models serve`` execs
    ``uvicorn`` from PATH through bash."""
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / "uvicorn"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m uvicorn "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    return folder


def server_env(server: str, shim_dir: Path) -> dict[str, str]:
    extra = {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    if server == MLFLOW:
        extra["PATH"] = f"{shim_dir}{os.pathsep}{os.environ.get('PATH', DEFAULT_PATH)}"
        extra["UVICORN_ACCESS_LOG"] = "false"
    return python_child_env(**extra)


def wait_for_workers(process: ManagedProcess, workers: int) -> float | None:
    """Seconds until uvicorn logged the startup of every worker (both servers run uvicorn), or
    None when it did not within the startup timeout (then the load goes on, and says so)."""
    started = time.monotonic()
    while time.monotonic() - started < STARTUP_TIMEOUT_S:
        if process.log_tail(10**9).count(STARTUP_LINE) >= workers:
            return time.monotonic() - started
        if process.poll() is not None:
            raise BenchmarkError(f"{process.name} exited; log tail:\n{process.log_tail(20)}")
        time.sleep(0.1)
    logger.warning("%s: not every worker logged %r", process.name, STARTUP_LINE)
    return None


def worker_pids(log: str) -> list[int]:
    """The pids of the workers uvicorn started, in the order they logged it."""
    return list(dict.fromkeys(int(pid) for pid in WORKER_STARTED.findall(log)))


def pid_cpu_seconds(pid: int) -> float:
    """CPU-seconds (user and system) process ``pid`` used so far; 0 once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()
    except OSError:
        return 0.0
    # After "(comm)": state ppid ... utime(12) stime(13), 1-based from state.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def access_log_lines(log: str, server: str) -> int:
    return log.count(f'"POST {PREDICT_PATH[server]} HTTP/1.1"')


def _fail_on_errors(
    result: WrkResult, what: str, process: ManagedProcess, need_requests: bool = True
) -> None:
    if result.failures:
        raise BenchmarkError(
            f"{what}: {result.failures} failed requests of {result.requests} "
            f"({', '.join(f'{k} {v}' for k, v in result.errors.items() if v)}); the figures "
            f"would mean nothing. Server log tail ({process.log_path}):\n{process.log_tail(20)}"
        )
    if need_requests and result.requests == 0:
        raise BenchmarkError(
            f"{what}: no request completed. Server log tail ({process.log_path}):\n"
            f"{process.log_tail(20)}"
        )


def measure_server(
    server: str,
    workers: int,
    repeat: int,
    plan: LoadPlan,
    model_dir: Path,
    folder: Path,
    first_run: int,
    measured: Callable[[Measurement], None],
    attempt: int = 0,
) -> tuple[list[Measurement], dict[str, Any]]:
    """Start ``server`` with ``workers``, check and warm it up, run wrk at each concurrency
    (``measured`` is called with each measurement); (the measurements, the start's record).
    ``attempt``: how many starts of this configuration were redone before this one."""
    port = free_port()
    base = f"http://{LOCALHOST}:{port}"
    url = base + PREDICT_PATH[server]
    process = ManagedProcess(
        server_argv(server, model_dir, port, workers),
        name=f"{LABELS[server]} ({workers} worker{'s' if workers > 1 else ''})",
        log_path=folder / f"{server}-w{workers}-r{repeat}-a{attempt}.log",
        ready=base + READY_PATH[server],
        env=server_env(server, folder / "shim"),
        cwd=folder,
        startup_timeout_s=STARTUP_TIMEOUT_S,
        stop_grace_s=10.0,
    )
    measurements: list[Measurement] = []
    started = time.monotonic()
    with process:
        start_s = time.monotonic() - started
        # Ready means one worker answers; the others may still be loading the model.
        all_started = wait_for_workers(process, workers)
        pids = worker_pids(process.log_tail(10**9))
        check_predictions(server, url, *plan.check)
        record: dict[str, Any] = {
            "repeat": repeat,
            "server": server,
            "workers": workers,
            "start_s": round(start_s, 2),
            "all_workers_started_s": None if all_started is None else round(all_started, 2),
            "worker_pids": pids,
        }
        if plan.warmup_s > 0:
            result, _ = run_wrk(plan.wrk, url, plan.script, plan.bodies[server],
                                max(plan.concurrency), plan.warmup_s, plan.cpu)  # fmt: skip
            _fail_on_errors(result, f"{process.name}, warm-up", process, need_requests=False)
            record["warmup_requests_per_s"] = round(result.requests_per_s, 2)
        for concurrency in plan.concurrency:
            started = time.monotonic()
            cpu_before = process_tree_cpu_seconds(process.pid)
            workers_before = [pid_cpu_seconds(pid) for pid in pids]
            result, client_s = run_wrk(plan.wrk, url, plan.script, plan.bodies[server],
                                       concurrency, plan.duration_s, plan.cpu)  # fmt: skip
            time.sleep(SETTLE_S)  # the requests in flight when wrk stopped finish on this clock
            cpu_after = process_tree_cpu_seconds(process.pid)
            workers_after = [pid_cpu_seconds(pid) for pid in pids]
            wall_s = time.monotonic() - started
            if process.poll() is not None:
                raise BenchmarkError(
                    f"{process.name} exited during the load; log tail:\n{process.log_tail(20)}"
                )
            _fail_on_errors(result, f"{process.name}, concurrency {concurrency}", process)
            measurement = Measurement(
                first_run + len(measurements), repeat, server, workers, concurrency, result,
                server_cpu_s=cpu_after - cpu_before, client_cpu_s=client_s,
                worker_cpu_s=tuple(max(0.0, after - before) for before, after
                                   in zip(workers_before, workers_after, strict=True)),
                wall_s=wall_s,
            )  # fmt: skip
            measurements.append(measurement)
            measured(measurement)
        # Lines a server wrote per request (an access log costs it time): 0 for both.
        record["access_log_lines"] = access_log_lines(process.log_tail(10**9), server)
    return measurements, record
