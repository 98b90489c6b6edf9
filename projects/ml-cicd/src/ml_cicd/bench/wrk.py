"""wrk, the load generator: its Lua script (cycles through the request bodies; ``done()`` prints
the summary as JSON), one run at a given concurrency pinned to one CPU, and its summary.

Closed loop: ``-c C`` connections each send the next request as soon as the previous answer
arrives. The connections open one at a time, ``CONNECT_STAGGER_S`` apart (one wrk thread per
connection; each thread's ``init`` waits before wrk starts the next), as clients arrive in
practice: opened all at once, they queue on the listening socket and the first uvicorn worker to
wake accepts every one of them while the others sit idle for the whole run. The stagger happens
before wrk's timed run starts, so wrk's requests/s can include up to ``C`` x the stagger of early
requests (at most ~2% at c=32, the same for both servers); the per-CPU-second figures count the
same requests against the CPU of the whole wrk run and are not affected. Any non-2xx answer or
socket error (connect, read, write, timeout) is counted, and the benchmark refuses the figures of
a run that had any.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ml_cicd.errors import BenchmarkError

WRK_PACKAGE = "wrk"
CONNECT_STAGGER_S = 0.01  # between connections opening (module docstring)
WRK_TIMEOUT_S = 10  # a request slower than this counts as a socket error (timeout)
JSON_MARKER = "WRK_JSON "

# wrk's Lua: the bodies file comes after "--" on wrk's command line, one JSON body a line.
WRK_SCRIPT = """\
-- Written by ml_cicd.bench.wrk. Cycles through the request bodies of the file given after "--"
-- (one JSON body a line) in the same order on every connection; done() prints the summary as JSON.
-- init() runs once per thread, before wrk starts that thread: its wait staggers the connections.
local prepared = {}
local position = 0

function init(args)
  os.execute("sleep " .. args[2])
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
    argv = [wrk, "-t", str(concurrency), "-c", str(concurrency)]  # one connection a thread
    argv += ["-d", f"{duration_s}s", "--timeout", f"{WRK_TIMEOUT_S}s", "--latency"]
    argv += ["-s", str(script), url, "--", str(bodies), str(CONNECT_STAGGER_S)]
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
