"""From measurements to figures: each configuration's medians over the repeats, each server's
best worker count, the comparison per concurrency, and the headline.

The headline compares the two servers at their best worker count (the highest median requests/s
at the highest concurrency: what one would deploy) at the highest concurrency, as paired ratios
over the interleaved repeats (repeat i of both servers ran back to back):

- requests per server CPU-second, ours / MLflow's (target >= 2): the work each server does per
  request, whatever share of the two cores it got. Raw requests/s would reward a server for
  taking more CPU (in the earlier figure one of MLflow's two workers sat idle);
- p99 latency, ours / MLflow's (target <= 1);
- requests per second, ours / MLflow's (no target: what a client sees on this machine).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

from roadmap_lab.results import Headline, headline_figure
from roadmap_lab.stats import paired_ratio

from ml_cicd.bench.requests import MLFLOW, OURS, SERVERS
from ml_cicd.bench.servers import Measurement

CPU_TARGET = ">= 2"
P99_TARGET = "<= 1"
Key = Callable[[Measurement], float]
FIGURES: dict[str, Key] = {
    "requests_per_s": lambda m: m.requests_per_s,
    "requests_per_cpu_s": lambda m: m.requests_per_cpu_s,
    "p50_ms": lambda m: m.result.latency_ms["p50"],
    "p99_ms": lambda m: m.result.latency_ms["p99"],
    "server_cpu_s": lambda m: m.server_cpu_s,
    "client_cpu_s": lambda m: m.client_cpu_s,
}


def cpu_figure_name(top: int) -> str:
    return f"requests per server CPU-second, ours / mlflow (c={top})"


def p99_figure_name(top: int) -> str:
    return f"p99 latency, ours / mlflow (c={top})"


def throughput_figure_name(top: int) -> str:
    return f"requests per second, ours / mlflow (c={top})"


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _configuration(group: list[Measurement]) -> dict[str, Any]:
    first = group[0]
    group = sorted(group, key=lambda m: m.repeat)
    summary: dict[str, Any] = {
        "server": first.server,
        "workers": first.workers,
        "concurrency": first.concurrency,
        "repeats": [m.repeat for m in group],
    }
    for name, key in FIGURES.items():
        values = [key(m) for m in group]
        summary[name] = round(_median(values), 3)
        summary[f"{name}_per_repeat"] = [round(v, 3) for v in values]
    return summary


def summarise(
    measurements: list[Measurement], concurrency: Sequence[int], workers: Sequence[int]
) -> dict[str, Any]:
    """Every configuration's medians and per-repeat values, each server's best worker count,
    the comparison at those counts per concurrency, and the CPU-seconds per repeat."""
    top = max(concurrency)
    configurations = []
    for server in SERVERS:
        for count in workers:
            for level in concurrency:
                key = (server, count, level)
                group = [m for m in measurements if (m.server, m.workers, m.concurrency) == key]
                if group:
                    configurations.append(_configuration(group))

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
        row: dict[str, Any] = {"concurrency": level}
        for name in ("requests_per_s", "requests_per_cpu_s", "p50_ms", "p99_ms"):
            row[f"ours_{name}"], row[f"mlflow_{name}"] = ours[name], theirs[name]
        row["requests_per_s_ratio"] = round(ours["requests_per_s"] / theirs["requests_per_s"], 3)
        row["requests_per_cpu_s_ratio"] = round(
            ours["requests_per_cpu_s"] / theirs["requests_per_cpu_s"], 3
        )
        comparison.append(row)
    # Every CPU-second each server start used under load (all concurrency levels), per repeat.
    cpu_per_repeat: dict[str, dict[int, float]] = {}
    for m in measurements:
        totals = cpu_per_repeat.setdefault(f"{m.server} w{m.workers}", {})
        totals[m.repeat] = round(totals.get(m.repeat, 0.0) + m.server_cpu_s, 3)
    return {
        "configurations": configurations,
        "best_workers": best,
        "comparison": comparison,
        "server_cpu_s_per_repeat": cpu_per_repeat,
    }


def _at(summary: dict[str, Any], server: str, level: int) -> dict[str, Any]:
    """The configuration of ``server`` at its best worker count and concurrency ``level``."""
    key = (server, summary["best_workers"][server], level)
    return next(c for c in summary["configurations"]
                if (c["server"], c["workers"], c["concurrency"]) == key)  # fmt: skip


def _paired(ours: dict[str, Any], theirs: dict[str, Any], name: str) -> dict[str, Any]:
    """The ratio of ``name``, ours / MLflow's, over the repeats both ran: the paired interval
    with two or more, the one ratio (no interval) with one."""
    repeats = sorted(set(ours["repeats"]) & set(theirs["repeats"]))
    a = [ours[f"{name}_per_repeat"][ours["repeats"].index(r)] for r in repeats]
    b = [theirs[f"{name}_per_repeat"][theirs["repeats"].index(r)] for r in repeats]
    ratios = [round(x / y, 3) for x, y in zip(a, b, strict=True)]
    if len(repeats) > 1:
        return {"value": None, "interval": paired_ratio(a, b), "per_repeat": ratios}
    return {"value": ratios[0], "interval": None, "per_repeat": ratios}


def headlines(summary: dict[str, Any], concurrency: Sequence[int]) -> list[Headline]:
    top = max(concurrency)
    ours, theirs = _at(summary, OURS, top), _at(summary, MLFLOW, top)
    workers = summary["best_workers"]
    cpu = _paired(ours, theirs, "requests_per_cpu_s")
    p99 = _paired(ours, theirs, "p99_ms")
    rps = _paired(ours, theirs, "requests_per_s")
    return [
        headline_figure(
            cpu_figure_name(top), cpu["value"], "x", baseline=theirs["requests_per_cpu_s"],
            baseline_unit="requests per CPU-second", target=CPU_TARGET, interval=cpu["interval"],
            digits=3, workers=workers, per_repeat=cpu["per_repeat"],
            ours=ours["requests_per_cpu_s"],
        ),
        headline_figure(
            p99_figure_name(top), p99["value"], "x", baseline=theirs["p99_ms"],
            baseline_unit="ms", target=P99_TARGET, interval=p99["interval"], digits=3,
            workers=workers, per_repeat=p99["per_repeat"], ours=ours["p99_ms"],
        ),
        headline_figure(
            throughput_figure_name(top), rps["value"], "x", baseline=theirs["requests_per_s"],
            baseline_unit="req/s", interval=rps["interval"], digits=3, workers=workers,
            per_repeat=rps["per_repeat"], ours=ours["requests_per_s"],
        ),
    ]  # fmt: skip
