"""The benchmark (the CLI's ``benchmark``, its one entry point): this service against
``mlflow models serve`` of the same model folder, under the same load, in one run; plus the
retrain wall time and, when given, the container image size.

Load: wrk (the Debian package ``wrk``) on loopback, closed loop: ``-c C`` connections each send
the next request as soon as the previous answer arrives, for ``duration_s`` seconds per
concurrency level. Every request carries ``batch`` held-out reviews; one Lua script cycles through
the same request bodies (consecutive batches of the held-out set) in the same order for both
servers, each in its server's own JSON shape (``{"texts": [...]}`` for ours, MLflow's
``{"dataframe_split": ...}``). Its ``done()`` prints wrk's summary as JSON: requests, duration,
latency percentiles, and the error counters. Any non-2xx answer or socket error (connect, read,
write, timeout) fails the run: the figures of a failing server mean nothing.

Fairness, on a machine as small as 2 cores where the client competes with the servers:

- The client is lean and the same for both: one wrk thread (an event loop in C), pinned to one
  core of its own choosing (``taskset -c <last allowed CPU>``), the same connections, duration,
  timeout and request bodies for both servers.
- The servers are not pinned: each may use every core, the client's included, and the scheduler
  shares that core between wrk and the server the same way for both. Pinning the servers away
  from the client would leave them one core on 2 and make their worker counts moot. The CPU time
  each side used is recorded for every measurement (the server's process group from /proc, wrk's
  from its rusage), so a reader can see whether the client starved a server.
- Each server runs in every worker count of ``workers`` and is compared at its best one: the
  highest median requests/s at the highest concurrency. The service may call the model's native
  flavour behind the pyfunc; MLflow's scoring server calls the pyfunc, as it ships.
- Same model folder, interpreter and libraries. MLflow's server is ``python -m mlflow models
  serve --env-manager local -w N`` as it ships, with one change in its favour: its uvicorn's
  per-request access log is turned off (``UVICORN_ACCESS_LOG=false``). Each start records the
  access-log lines it wrote (``access_log_lines``), so a server that logs every request shows.
  Its ``uvicorn`` command is this interpreter's (a shim on PATH; Pants and PEX environments put
  no console scripts there).
- Both run uvicorn, so both inherit its multi-worker flaw (Kludex/uvicorn#3149, open): with
  ``--workers`` above 1 the shared listening socket leaves Nagle's algorithm on, and each answer
  on a keep-alive connection can wait for the client's delayed ACK (~40 ms). The service sets
  TCP_NODELAY on its connections; MLflow's server is measured as it ships; the best-worker rule
  picks whichever count serves each better. Both use the same uvicorn with uvloop and httptools
  (installed in the environment, so uvicorn picks them for either server).
- Every start waits until each worker has logged its startup, is checked (one request whose
  predictions must equal the model's in-process ones) and, with ``warmup_s``, warmed up at the
  highest concurrency before it is measured.
- Repeats are interleaved, the server order rotating each repeat, so drift hits both; every
  measurement is kept in run order.

Latency is wrk's: per request, from send to the end of the answer, in a closed loop (a slow
answer delays the next request on its connection, so percentiles are those of the requests that
were sent, at that concurrency; not wrk2's constant-rate figures).

Results go to ``<dist>/ml-cicd/benchmark/`` with a plot; ``publish`` copies them to the committed
``projects/ml-cicd/benchmarks/``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from roadmap_lab.machine import describe_machine, package_versions
from roadmap_lab.results import (
    BenchmarkConditions,
    Headline,
    ResultsWriter,
    ensure_quiet_machine,
    headline_figure,
    publish_benchmark,
)
from roadmap_lab.services import (
    DEFAULT_PATH,
    LOCALHOST,
    ManagedProcess,
    ServiceError,
    free_port,
    python_child_env,
)
from roadmap_lab.stats import paired_ratio

from ml_cicd import PROJECT
from ml_cicd.errors import MlCicdError
from ml_cicd.settings import DEFAULT_DATA_DIR, ProjectSettings, ServiceSettings, ValidationRules

logger = logging.getLogger(__name__)
console = Console()

OURS, MLFLOW = "ml-cicd", "mlflow"
SERVERS = (OURS, MLFLOW)
LABELS = {OURS: "ml-cicd service", MLFLOW: "mlflow models serve"}
PREDICT_PATH = {OURS: "/predict", MLFLOW: "/invocations"}
READY_PATH = {OURS: "/health/ready", MLFLOW: "/health"}
MEASURED_PACKAGES = (
    "mlflow",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
    "scikit-learn",
    "numpy",
    "pandas",
)
WRK_PACKAGE = "wrk"
WRK_THREADS = 1  # one event loop on one core: the client stays lean
WRK_TIMEOUT_S = 10  # a request slower than this counts as a socket error (timeout)
REQUEST_BODIES = 64  # distinct bodies cycled through (consecutive batches of the held-out set)
# The service's default limit of texts per request.
MAX_BATCH: int = ServiceSettings.model_fields["max_batch"].default
STARTUP_TIMEOUT_S = 120.0
THROUGHPUT_TARGET = 2.0  # ours / MLflow's requests/s, ">= 2"
PREDICTION_TOLERANCE = 1e-6
JSON_MARKER = "WRK_JSON "
STARTUP_LINE = "Application startup complete."  # uvicorn's, once per worker

# wrk's Lua: the bodies file comes after "--" on wrk's command line, one JSON body a line.
WRK_SCRIPT = """\
-- Written by ml_cicd.benchmark. Cycles through the request bodies of the file given after "--"
-- (one JSON body a line) in the same order on every run; done() prints the summary as JSON.
local prepared = {}
local position = 0

function init(args)
  local headers = {["Content-Type"] = "application/json"}
  for line in io.lines(args[1]) do
    if #line > 0 then
      prepared[#prepared + 1] = wrk.format("POST", nil, headers, line)
    end
  end
  if #prepared == 0 then
    error("no request bodies in " .. args[1])
  end
end

function request()
  position = position % #prepared + 1
  return prepared[position]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests": %.0f, "duration_us": %.0f, "bytes": %.0f, '
    .. '"errors": {"connect": %.0f, "read": %.0f, "write": %.0f, "status": %.0f, "timeout": %.0f}, '
    .. '"latency_us": {"p50": %.0f, "p90": %.0f, "p99": %.0f, "max": %.0f, "mean": %.1f, '
    .. '"stdev": %.1f}}\\n',
    "MARKER", summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, latency.stdev))
end
""".replace("MARKER", JSON_MARKER)


class BenchmarkError(MlCicdError):
    """The benchmark cannot run, a server failed under load, or the results cannot be written;
    the message says why."""


# --- wrk ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    """One wrk run, from the JSON its ``done()`` prints."""

    requests: int
    duration_s: float
    bytes_read: int
    # connect, read, write, timeout: socket errors; status: answers with a status above 399.
    errors: dict[str, int]
    latency_ms: dict[str, float]  # p50, p90, p99, max, mean, stdev

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def failures(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "requests_per_s": round(self.requests_per_s, 2)}


def parse_wrk_output(output: str) -> WrkResult:
    """The summary that the benchmark's wrk script prints (a ``WRK_JSON {...}`` line)."""
    for line in output.splitlines():
        if line.startswith(JSON_MARKER):
            try:
                raw = json.loads(line[len(JSON_MARKER) :])
                return WrkResult(
                    requests=int(raw["requests"]),
                    duration_s=raw["duration_us"] / 1e6,
                    bytes_read=int(raw["bytes"]),
                    errors={key: int(value) for key, value in raw["errors"].items()},
                    latency_ms={
                        key: round(value / 1000, 3) for key, value in raw["latency_us"].items()
                    },
                )
            except (ValueError, KeyError, TypeError) as error:
                raise BenchmarkError(f"cannot read wrk's summary line {line!r}: {error}") from None
    tail = "\n".join(output.splitlines()[-15:])
    raise BenchmarkError(f"wrk printed no {JSON_MARKER.strip()} summary; its output:\n{tail}")


def find_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchmarkError(
            f"wrk not found on PATH: install the Debian package {WRK_PACKAGE} "
            f"(apt-get install {WRK_PACKAGE}, or bash build-support/install-system-packages.sh "
            "ml-cicd)"
        )
    return wrk


def wrk_version(wrk: str) -> str | None:
    done = subprocess.run([wrk, "--version"], capture_output=True, text=True, timeout=30)
    match = re.search(r"wrk (\S+)", done.stdout + done.stderr)
    return match.group(1) if match else None


def client_cpu() -> int | None:
    """The CPU wrk is pinned to: the last one this process may use (None: no taskset)."""
    if shutil.which("taskset") is None or not hasattr(os, "sched_getaffinity"):
        return None
    return max(os.sched_getaffinity(0))


def run_wrk(
    wrk: str,
    url: str,
    script: Path,
    bodies: Path,
    concurrency: int,
    duration_s: int,
    cpu: int | None,
) -> tuple[WrkResult, float]:
    """(wrk's summary, CPU seconds wrk used) of one run at ``concurrency`` connections."""
    argv = [wrk, "-t", str(min(WRK_THREADS, concurrency)), "-c", str(concurrency)]
    argv += ["-d", f"{duration_s}s", "--timeout", f"{WRK_TIMEOUT_S}s", "--latency"]
    argv += ["-s", str(script), url, "--", str(bodies)]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=duration_s + WRK_TIMEOUT_S + 60
        )
    except subprocess.TimeoutExpired as error:
        raise BenchmarkError(f"wrk did not finish: {' '.join(argv)}") from error
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise BenchmarkError(
            f"wrk exited with code {done.returncode}: {(done.stderr or done.stdout).strip()}"
        )
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return parse_wrk_output(done.stdout), used


def group_cpu_seconds(pgid: int) -> float | None:
    """User + system CPU seconds of the live processes of group ``pgid`` (Linux /proc)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    ticks = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # After "pid (comm) ": state ppid pgrp ... utime (14th field) stime (15th).
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


# --- The request mix ----------------------------------------------------------------------------


def request_batches(
    texts: Sequence[str], batch: int, count: int = REQUEST_BODIES
) -> list[list[str]]:
    """Up to ``count`` consecutive batches of ``batch`` texts, in order."""
    batches = [list(texts[i : i + batch]) for i in range(0, len(texts) - batch + 1, batch)]
    if not batches:
        raise BenchmarkError(f"a batch of {batch} needs at least {batch} texts, got {len(texts)}")
    return batches[:count]


def request_body(server: str, texts: Sequence[str]) -> dict[str, Any]:
    """One request in the server's own JSON shape."""
    if server == OURS:
        return {"texts": list(texts)}
    return {"dataframe_split": {"columns": ["text"], "data": [[text] for text in texts]}}


def write_bodies(server: str, batches: list[list[str]], path: Path) -> Path:
    lines = [json.dumps(request_body(server, texts), ensure_ascii=False) for texts in batches]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- Servers ------------------------------------------------------------------------------------


def server_argv(server: str, model_dir: Path, port: int, workers: int) -> list[str]:
    if server == OURS:
        return [
            sys.executable,
            "-m",
            "ml_cicd",
            "serve",
            "--host",
            LOCALHOST,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--model-uri",
            str(model_dir),
        ]
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


def post_json(url: str, body: dict[str, Any], timeout_s: float = 30.0) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            answer: dict[str, Any] = json.loads(reply.read())
            return answer
    except urllib.error.HTTPError as error:
        detail = error.read()[:500].decode(errors="replace")
        raise BenchmarkError(f"POST {url} answered {error.code}: {detail}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise BenchmarkError(f"POST {url} failed: {error}") from None


def check_predictions(
    server: str, url: str, texts: list[str], expected: list[tuple[str, float]]
) -> None:
    """One request; its labels and p(great) must be the model's (same model, both servers)."""
    answer = post_json(url, request_body(server, texts))
    try:
        got = [(str(p["label"]), float(p["p_great"])) for p in answer["predictions"]]
    except (KeyError, TypeError, ValueError):
        raise BenchmarkError(f"{LABELS[server]} answered {str(answer)[:300]}") from None
    wrong = [
        i
        for i, ((label, p), (want_label, want_p)) in enumerate(zip(got, expected, strict=False))
        if label != want_label or abs(p - want_p) > PREDICTION_TOLERANCE
    ]
    if len(got) != len(expected) or wrong:
        raise BenchmarkError(
            f"{LABELS[server]} does not predict what the model does: {len(got)} predictions for "
            f"{len(expected)} texts, {len(wrong)} differ (first {wrong[:3]})"
        )


# --- Measurements -------------------------------------------------------------------------------


@dataclass
class Measurement:
    """One wrk run at one concurrency against one server start."""

    run: int  # 1-based, in run order
    repeat: int
    server: str
    workers: int
    concurrency: int
    result: WrkResult
    server_cpu_s: float | None
    client_cpu_s: float

    @property
    def requests_per_s(self) -> float:
        return self.result.requests_per_s

    def as_dict(self) -> dict[str, Any]:
        seconds = self.result.duration_s or 1.0
        requests = self.result.requests or 1
        return {
            "run": self.run,
            "repeat": self.repeat,
            "server": self.server,
            "workers": self.workers,
            "concurrency": self.concurrency,
            "requests_per_s": round(self.requests_per_s, 2),
            "p50_ms": self.result.latency_ms["p50"],
            "p90_ms": self.result.latency_ms["p90"],
            "p99_ms": self.result.latency_ms["p99"],
            "max_ms": self.result.latency_ms["max"],
            "mean_ms": self.result.latency_ms["mean"],
            "requests": self.result.requests,
            "duration_s": round(self.result.duration_s, 3),
            "errors": self.result.errors,
            "bytes_per_response": round(self.result.bytes_read / requests, 1),
            "server_cpu_cores": None
            if self.server_cpu_s is None
            else round(self.server_cpu_s / seconds, 3),
            "server_cpu_ms_per_request": None
            if self.server_cpu_s is None
            else round(self.server_cpu_s * 1000 / requests, 3),
            "client_cpu_cores": round(self.client_cpu_s / seconds, 3),
        }


@dataclass(frozen=True)
class LoadPlan:
    concurrency: tuple[int, ...]
    duration_s: int
    warmup_s: int
    cpu: int | None
    wrk: str
    script: Path
    bodies: dict[str, Path]


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
    check: tuple[list[str], list[tuple[str, float]]],
    first_run: int,
    progress: Progress,
    task: Any,
) -> tuple[list[Measurement], dict[str, Any]]:
    """Start ``server`` with ``workers``, check and warm it up, run wrk at each concurrency."""
    port = free_port()
    base = f"http://{LOCALHOST}:{port}"
    url = base + PREDICT_PATH[server]
    process = ManagedProcess(
        server_argv(server, model_dir, port, workers),
        name=f"{LABELS[server]} ({workers} worker{'s' if workers > 1 else ''})",
        log_path=folder / f"{server}-w{workers}-r{repeat}.log",
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
        check_predictions(server, url, *check)
        warmup: dict[str, Any] = {
            "repeat": repeat,
            "server": server,
            "workers": workers,
            "start_s": round(start_s, 2),
            "all_workers_started_s": None if all_started is None else round(all_started, 2),
        }
        if plan.warmup_s > 0:
            result, _ = run_wrk(plan.wrk, url, plan.script, plan.bodies[server],
                                max(plan.concurrency), plan.warmup_s, plan.cpu)  # fmt: skip
            _fail_on_errors(result, f"{process.name}, warm-up", process, need_requests=False)
            warmup["requests_per_s"] = round(result.requests_per_s, 2)
        for concurrency in plan.concurrency:
            progress.update(task, description=f"{LABELS[server]} w={workers} c={concurrency}")
            cpu_before = group_cpu_seconds(process.pid)
            result, client_s = run_wrk(plan.wrk, url, plan.script, plan.bodies[server],
                                       concurrency, plan.duration_s, plan.cpu)  # fmt: skip
            cpu_after = group_cpu_seconds(process.pid)
            if process.poll() is not None:
                raise BenchmarkError(
                    f"{process.name} exited during the load; log tail:\n{process.log_tail(20)}"
                )
            _fail_on_errors(result, f"{process.name}, concurrency {concurrency}", process)
            server_s = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
            measurement = Measurement(first_run + len(measurements), repeat, server, workers,
                                      concurrency, result, server_s, client_s)  # fmt: skip
            measurements.append(measurement)
            row = measurement.as_dict()
            progress.console.print(
                f"  r{repeat} {server:<7} w{workers} c{concurrency:<3} "
                f"{row['requests_per_s']:8.1f} req/s p50 {row['p50_ms']:6.1f} "
                f"p99 {row['p99_ms']:6.1f} ms cpu {row['server_cpu_cores']}",
                highlight=False,
            )
            progress.advance(task)
        # Lines a server wrote per request (an access log costs it time): 0 for MLflow's.
        warmup["access_log_lines"] = access_log_lines(process.log_tail(10**9), server)
    return measurements, warmup


# --- Summary ------------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def summarise(
    measurements: list[Measurement], concurrency: Sequence[int], workers: Sequence[int]
) -> dict[str, Any]:
    """Every configuration's medians over repeats, each server's best worker count (highest
    median requests/s at the highest concurrency), and the comparison at those counts."""
    top = max(concurrency)

    def runs(server: str, count: int, level: int) -> list[Measurement]:
        return [m for m in measurements
                if (m.server, m.workers, m.concurrency) == (server, count, level)]  # fmt: skip

    configurations = []
    for server in SERVERS:
        for count in workers:
            for level in concurrency:
                group = runs(server, count, level)
                if not group:
                    continue
                rps = [m.requests_per_s for m in group]
                configurations.append({
                    "server": server,
                    "workers": count,
                    "concurrency": level,
                    "repeats": len(group),
                    "requests_per_s": round(_median(rps), 2),
                    "requests_per_s_per_repeat": [round(v, 2) for v in rps],
                    "p50_ms": round(_median([m.result.latency_ms["p50"] for m in group]), 3),
                    "p99_ms": round(_median([m.result.latency_ms["p99"] for m in group]), 3),
                    "p99_ms_per_repeat": [m.result.latency_ms["p99"] for m in group],
                })  # fmt: skip

    def config(server: str, count: int, level: int) -> dict[str, Any]:
        key = (server, count, level)
        return next(c for c in configurations
                    if (c["server"], c["workers"], c["concurrency"]) == key)  # fmt: skip

    best = {
        server: max(workers, key=lambda count: config(server, count, top)["requests_per_s"])
        for server in SERVERS
    }
    comparison = []
    for level in concurrency:
        ours, theirs = config(OURS, best[OURS], level), config(MLFLOW, best[MLFLOW], level)
        comparison.append({
            "concurrency": level,
            "ours_requests_per_s": ours["requests_per_s"],
            "mlflow_requests_per_s": theirs["requests_per_s"],
            "throughput_ratio": round(ours["requests_per_s"] / theirs["requests_per_s"], 3),
            "ours_p50_ms": ours["p50_ms"],
            "mlflow_p50_ms": theirs["p50_ms"],
            "ours_p99_ms": ours["p99_ms"],
            "mlflow_p99_ms": theirs["p99_ms"],
        })  # fmt: skip
    ours_top, theirs_top = runs(OURS, best[OURS], top), runs(MLFLOW, best[MLFLOW], top)
    per_repeat = [
        round(a.requests_per_s / b.requests_per_s, 3)
        for a, b in zip(sorted(ours_top, key=lambda m: m.repeat),
                        sorted(theirs_top, key=lambda m: m.repeat), strict=True)
    ]  # fmt: skip
    return {
        "configurations": configurations,
        "best_workers": best,
        "comparison": comparison,
        "throughput_ratio_per_repeat": per_repeat,
    }


def _at(summary: dict[str, Any], server: str, level: int) -> dict[str, Any]:
    """The configuration of ``server`` at its best worker count and concurrency ``level``."""
    key = (server, summary["best_workers"][server], level)
    return next(c for c in summary["configurations"]
                if (c["server"], c["workers"], c["concurrency"]) == key)  # fmt: skip


def headlines(summary: dict[str, Any], concurrency: Sequence[int]) -> list[Headline]:
    """Throughput and p99 of ours against MLflow's at the top concurrency, each server at its best
    worker count, as paired ratios over the interleaved repeats (repeat i of both servers ran
    back to back)."""
    top = max(concurrency)
    ours, theirs = _at(summary, OURS, top), _at(summary, MLFLOW, top)
    figures = {}
    for key in ("requests_per_s", "p99_ms"):
        a, b = ours[f"{key}_per_repeat"], theirs[f"{key}_per_repeat"]
        # One repeat gives a figure without an interval: unverified.
        interval = paired_ratio(a, b) if len(a) > 1 else None
        figures[key] = (round(_median(a) / _median(b), 3), interval)
    (throughput_value, throughput), (p99_value, p99) = figures["requests_per_s"], figures["p99_ms"]
    return [
        headline_figure(
            f"throughput vs mlflow models serve (c={top})", throughput_value, "x",
            baseline=round(_median(theirs["requests_per_s_per_repeat"]), 1),
            target=f">= {THROUGHPUT_TARGET:g}", interval=throughput, digits=3,
            baseline_unit="req/s", workers=summary["best_workers"],
            per_repeat=summary["throughput_ratio_per_repeat"],
        ),
        headline_figure(
            f"p99 latency, ours / mlflow (c={top})", p99_value, "x",
            baseline=round(_median(theirs["p99_ms_per_repeat"]), 2), target="<= 1",
            interval=p99, digits=3, baseline_unit="ms", workers=summary["best_workers"],
        ),
    ]  # fmt: skip


# --- Retrain, image size ------------------------------------------------------------------------


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


_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKMGT]?i?B|bytes)?\s*")
_UNITS = {
    None: 1, "B": 1, "bytes": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
    "KiB": 2**10, "kiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
}  # fmt: skip


def image_size(value: str) -> dict[str, Any]:
    """The image size from ``value``: a size as buildah/docker print it ("412 MB", "1.2GB",
    "431234567" bytes) or a file holding one."""
    from_file = Path(value).is_file()
    text = Path(value).read_text(encoding="utf-8").strip() if from_file else value
    match = _SIZE.fullmatch(text)
    if match is None or match.group(2) not in _UNITS:
        raise BenchmarkError(f"cannot read an image size from {text!r} (e.g. '412 MB')")
    size_bytes = float(match.group(1)) * _UNITS[match.group(2)]
    return {"megabytes": round(size_bytes / 1e6, 1), "as_given": text.strip(),
            "source": value if from_file else "option"}  # fmt: skip


# --- Output -------------------------------------------------------------------------------------


def _tables(summary: dict[str, Any], headline: list[Headline]) -> tuple[Table, Table]:
    best = summary["best_workers"]
    runs = Table(title="ml-cicd benchmark: wrk on loopback (medians over repeats)")
    for column in ("server", "workers", "concurrency", "req/s", "req/s per repeat", "p50 ms",
                   "p99 ms"):  # fmt: skip
        runs.add_column(column, justify="left" if column == "server" else "right")
    for c in summary["configurations"]:
        mark = " *" if c["workers"] == best[c["server"]] else ""
        runs.add_row(
            LABELS[c["server"]], f"{c['workers']}{mark}", str(c["concurrency"]),
            f"{c['requests_per_s']:.1f}",
            ", ".join(f"{v:.0f}" for v in c["requests_per_s_per_repeat"]),
            f"{c['p50_ms']:.2f}", f"{c['p99_ms']:.2f}",
        )  # fmt: skip
    heads = Table(title="headline (* = each server's best worker count)")
    for column in ("figure", "value", "baseline", "target", "verdict"):
        heads.add_column(column)
    for item in headline:
        unit = item.get("baseline_unit", item["unit"])
        baseline = "" if item["baseline"] is None else f"{item['baseline']} {unit}"
        heads.add_row(item["name"], f"{item['value']} {item['unit']}", baseline,
                      item["target"] or "", item.get("verdict", ""))  # fmt: skip
    return runs, heads


def save_figure(
    writer: ResultsWriter,
    measurements: list[Measurement],
    summary: dict[str, Any],
    concurrency: Sequence[int],
) -> str:
    """Requests/s and p99 against concurrency, every server and worker count; saved by
    ``writer`` as throughput_latency.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {OURS: "tab:blue", MLFLOW: "tab:orange"}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    levels = sorted(concurrency)
    for server in SERVERS:
        worker_counts = sorted({m.workers for m in measurements if m.server == server})
        for count in worker_counts:
            best = count == summary["best_workers"][server]
            style = "-" if best else ":"
            label = f"{LABELS[server]}, {count} worker{'s' if count > 1 else ''}"
            label += " (best)" if best else ""
            configs = [c for c in summary["configurations"]
                       if c["server"] == server and c["workers"] == count]  # fmt: skip
            configs.sort(key=lambda c: c["concurrency"])
            xs = [c["concurrency"] for c in configs]
            for axis, key in ((left, "requests_per_s"), (right, "p99_ms")):
                axis.plot(xs, [c[key] for c in configs], style, marker="o", color=colors[server],
                          alpha=1.0 if best else 0.6, label=label)  # fmt: skip
            points = [m for m in measurements if m.server == server and m.workers == count]
            left.scatter([m.concurrency for m in points], [m.requests_per_s for m in points],
                         s=10, color=colors[server], alpha=0.4)  # fmt: skip
            right.scatter([m.concurrency for m in points],
                          [m.result.latency_ms["p99"] for m in points],
                          s=10, color=colors[server], alpha=0.4)  # fmt: skip
    for axis in (left, right):
        if len(levels) > 1:
            axis.set_xscale("log", base=2)
        axis.set_xticks(levels, [str(level) for level in levels])
        axis.set_xlabel("concurrent connections (wrk -c)")
        axis.grid(alpha=0.3)
    left.set_ylabel("requests/s")
    left.set_ylim(bottom=0)
    right.set_ylabel("p99 latency (ms)")
    right.set_ylim(bottom=0)
    top = next(c for c in summary["comparison"] if c["concurrency"] == max(levels))
    left.set_title(f"requests/s: ml-cicd {top['throughput_ratio']:.2f}x mlflow at c={max(levels)}")
    right.set_title("p99 latency (lines: medians; dots: every repeat)")
    left.legend(fontsize=8)
    fig.tight_layout()
    try:
        return writer.save_figure(fig, "throughput_latency")
    finally:
        plt.close(fig)


# --- Entry point --------------------------------------------------------------------------------


def _validate(concurrency: Sequence[int], duration_s: int, batch: int, workers: Sequence[int],
              repeats: int, warmup_s: int) -> None:  # fmt: skip
    problems = []
    if not concurrency or any(c < 1 for c in concurrency):
        problems.append(f"concurrency levels must be >= 1, got {list(concurrency)}")
    if not workers or any(w < 1 for w in workers):
        problems.append(f"worker counts must be >= 1, got {list(workers)}")
    if duration_s < 1:
        problems.append(f"duration must be at least 1 s, got {duration_s}")
    if warmup_s < 0:
        problems.append(f"warm-up cannot be negative, got {warmup_s}")
    if repeats < 1:
        problems.append(f"repeats must be at least 1, got {repeats}")
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
    check: tuple[list[str], list[tuple[str, float]]],
    progress: bool,
) -> tuple[list[Measurement], list[dict[str, Any]]]:
    """Every server start in run order: repeats interleaved, the server order rotating each
    repeat; (every measurement, every start's check and warm-up)."""
    measurements: list[Measurement] = []
    warmups: list[dict[str, Any]] = []
    total = repeats * len(SERVERS) * len(workers) * len(plan.concurrency)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=True, disable=not progress,
    ) as bar:  # fmt: skip
        task = bar.add_task("load", total=total)
        for repeat in range(1, repeats + 1):
            shift = (repeat - 1) % len(SERVERS)
            for server in SERVERS[shift:] + SERVERS[:shift]:
                for count in workers:
                    try:
                        done, warmup = measure_server(server, count, repeat, plan, model_dir,
                                                      folder, check, len(measurements) + 1,
                                                      bar, task)  # fmt: skip
                    except ServiceError as error:
                        raise BenchmarkError(f"{LABELS[server]}: {error}") from None
                    measurements.extend(done)
                    warmups.append(warmup)
    return measurements, warmups


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
            OURS: f"python -m ml_cicd serve --workers N --model-uri <folder> "
            f"(POST {PREDICT_PATH[OURS]})",
            MLFLOW: "python -m mlflow models serve -m <folder> --env-manager local -w N "
            f"(POST {PREDICT_PATH[MLFLOW]}, dataframe_split; uvicorn access log off)",
        },
        "texts": "consecutive batches of the held-out reviews (reviews test split), cycled in "
        "the same order for both servers",
        "mean_review_chars": round(statistics.fmean(len(t) for b in batches for t in b), 1),
        "body_bytes": body_bytes,
    }


def run_benchmark(
    dist_dir: Path,
    command: str,
    concurrency: Sequence[int] = (1, 8, 32),
    duration_s: int = 10,
    batch: int = 8,
    workers: Sequence[int] = (1, 2),
    repeats: int = 2,
    warmup_s: int = 2,
    publish: bool = False,
    progress: bool = True,
    data_dir: Path = DEFAULT_DATA_DIR,
    image_size_of: str | None = None,
) -> Path:
    """Measure, write ``<dist_dir>/ml-cicd/benchmark/results.json`` and its plot; with
    ``publish`` also copy them to the committed ``projects/ml-cicd/benchmarks/``. Returns the
    results file. ``image_size_of``: the image's size ("412 MB") or a file holding it."""
    from ml_cicd.model import load_pyfunc, p_great_function, predict_labels
    from ml_cicd.training import held_out_set, train_default_model

    concurrency = tuple(sorted(dict.fromkeys(concurrency)))
    workers = tuple(dict.fromkeys(workers))
    _validate(concurrency, duration_s, batch, workers, repeats, warmup_s)
    wrk = find_wrk()
    image = image_size(image_size_of) if image_size_of else None
    if publish:
        ensure_quiet_machine()
    conditions = BenchmarkConditions()
    started = time.monotonic()
    cpu = client_cpu()

    with tempfile.TemporaryDirectory(prefix="ml-cicd-benchmark-") as scratch:
        folder = Path(scratch)
        model_dir = folder / "model"
        console.print("[bold]1/3[/] the default model (TF-IDF + logistic regression)")
        begun = time.perf_counter()
        trained = train_default_model(model_dir)
        train_s = time.perf_counter() - begun

        console.print(f"[bold]2/3[/] retrain wall time on {data_dir}")
        retrain_figures = measure_retrain(data_dir, folder)
        console.print(f"  retrain: {retrain_figures['status']} in {retrain_figures['seconds']} s")

        batches = request_batches(held_out_set()["text"].astype(str).tolist(), batch)
        p_great = p_great_function(load_pyfunc(str(model_dir)))(batches[0])
        expected = list(zip(predict_labels(p_great), (float(p) for p in p_great), strict=True))
        script = folder / "benchmark.lua"
        script.write_text(WRK_SCRIPT, encoding="utf-8")
        bodies = {s: write_bodies(s, batches, folder / f"bodies-{s}.jsonl") for s in SERVERS}
        uvicorn_shim(folder / "shim")
        plan = LoadPlan(concurrency, duration_s, warmup_s, cpu, wrk, script, bodies)
        console.print(
            f"[bold]3/3[/] load: {repeats} interleaved repeat(s) x {len(SERVERS)} servers x "
            f"workers {list(workers)} x concurrency {list(concurrency)}, {duration_s} s each "
            f"(wrk on CPU {cpu}, servers unpinned)"
        )
        measurements, warmups = measure_load(
            plan, workers, repeats, model_dir, folder, (batches[0], expected), progress
        )
        setup = _setup(cpu, batches, bodies)

    summary = summarise(measurements, concurrency, workers)
    headline = headlines(summary, concurrency)
    headline.append(headline_figure(
        "retrain wall time (validate, train, evaluate, gate, register)",
        retrain_figures["seconds"], "s",
    ))  # fmt: skip
    if image is not None:
        headline.append(headline_figure("container image size", image["megabytes"], "MB"))
    for table in _tables(summary, headline):
        console.print(table)

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
            "request_bodies": len(batches),
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
        **({"image": image} if image is not None else {}),
        "best_workers": summary["best_workers"],
        "comparison": summary["comparison"],
        "throughput_ratio_per_repeat": summary["throughput_ratio_per_repeat"],
        "configurations": summary["configurations"],
        "measurements": [m.as_dict() for m in measurements],  # in run order
        "warmups": warmups,
        "wall_seconds": round(time.monotonic() - started, 1),
        "conditions": conditions.finish(),
    })  # fmt: skip
    console.print(f"results -> {results_file}")
    if publish:
        try:
            published = publish_benchmark(results_file)
        except (ValueError, OSError) as error:
            raise BenchmarkError(f"cannot publish {results_file}: {error}") from error
        console.print(f"published -> {published}")
    return results_file
