"""From measurements to figures: each configuration's medians over the repeats, each server's
best worker count per figure, the comparison per concurrency, and the headline.

Each figure compares our service at the worker count declared before measuring
(``OURS_WORKERS``, the deployment's setting: one per core here) with MLflow's server at the count
that does best on that figure at that concurrency (``BEST``: the highest median requests per
CPU-second, the lowest median p99, the highest median requests/s). Choosing a count on the same
repeats that the interval is computed from lifts the chosen side by the luck of its best of four
medians; that choice is MLflow's alone, so the lift can only favour the baseline. The same ratio
with both servers at their best count is reported beside the headline, without a target. The
ratios are paired over the interleaved repeats (repeat i of both servers ran in the same repeat):

- requests per server CPU-second, ours / MLflow's: the work each server does per request,
  whatever share of the two cores it got (raw requests/s would reward a server for taking more
  CPU). Target >= 2 at the highest concurrency; the lower concurrencies are reported beside it
  without a target, so the highest one is not read as the general case;
- p99 latency, ours / MLflow's at the highest concurrency (target <= 1);
- requests per second, ours / MLflow's at the highest concurrency (no target: what a client sees
  on this machine).

Every name carries the batch size (texts per request): the ratio depends on it.
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
    "least_busy_worker_share": lambda m: m.least_busy_worker_share,
}
# The figures compared, each with MLflow's server at its best worker count for it: True when
# higher is better.
BEST = {"requests_per_cpu_s": True, "p99_ms": False, "requests_per_s": True}
# Our service's worker count in every comparison, declared before measuring (module docstring);
# runs without it (tests, trials) compare at their first count.
OURS_WORKERS = 2


def ours_count(workers: Sequence[int]) -> int:
    return OURS_WORKERS if OURS_WORKERS in workers else workers[0]


def cpu_figure_name(level: int, batch: int) -> str:
    return f"requests per server CPU-second, ours / mlflow (c={level}, {batch} texts/request)"


def p99_figure_name(level: int, batch: int) -> str:
    return f"p99 latency, ours / mlflow (c={level}, {batch} texts/request)"


def throughput_figure_name(level: int, batch: int) -> str:
    return f"requests per second, ours / mlflow (c={level}, {batch} texts/request)"


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


def _find(configurations: list[dict[str, Any]], server: str, count: int,
          level: int) -> dict[str, Any]:  # fmt: skip
    key = (server, count, level)
    return next(c for c in configurations
                if (c["server"], c["workers"], c["concurrency"]) == key)  # fmt: skip


def _best_count(configurations: list[dict[str, Any]], figure: str, server: str, level: int,
                workers: Sequence[int]) -> int:  # fmt: skip
    """The worker count of ``server`` that does best on ``figure`` at ``level`` (``BEST``)."""
    medians = {count: _find(configurations, server, count, level)[figure] for count in workers}
    return sorted(workers, key=medians.__getitem__, reverse=BEST[figure])[0]


def summarise(
    measurements: list[Measurement], concurrency: Sequence[int], workers: Sequence[int]
) -> dict[str, Any]:
    """Every configuration's medians and per-repeat values; per figure and concurrency, each
    server's best worker count (``best_workers[figure][concurrency][server]``), the counts
    compared (``compared_workers``: ours declared, MLflow's best) and the comparison at those
    counts; the CPU-seconds per repeat."""
    configurations = []
    for server in SERVERS:
        for count in workers:
            for level in concurrency:
                key = (server, count, level)
                group = [m for m in measurements if (m.server, m.workers, m.concurrency) == key]
                if group:
                    configurations.append(_configuration(group))
    best = {
        figure: {
            level: {server: _best_count(configurations, figure, server, level, workers)
                    for server in SERVERS}  # fmt: skip
            for level in concurrency
        }
        for figure in BEST
    }
    compared = {
        figure: {level: {OURS: ours_count(workers), MLFLOW: best[figure][level][MLFLOW]}
                 for level in concurrency}  # fmt: skip
        for figure in BEST
    }
    comparison = []
    for level in concurrency:
        row: dict[str, Any] = {"concurrency": level}
        for figure in BEST:
            counts = compared[figure][level]
            ours = _find(configurations, OURS, counts[OURS], level)[figure]
            theirs = _find(configurations, MLFLOW, counts[MLFLOW], level)[figure]
            row[f"{figure}_workers"] = counts
            row[f"ours_{figure}"], row[f"mlflow_{figure}"] = ours, theirs
            row[f"{figure}_ratio"] = round(ours / theirs, 3)
        comparison.append(row)
    # Every CPU-second each server start used under load (all concurrency levels), per repeat.
    cpu_per_repeat: dict[str, dict[int, float]] = {}
    for m in measurements:
        totals = cpu_per_repeat.setdefault(f"{m.server} w{m.workers}", {})
        totals[m.repeat] = round(totals.get(m.repeat, 0.0) + m.server_cpu_s, 3)
    return {
        "configurations": configurations,
        "best_workers": best,
        "compared_workers": compared,
        "comparison": comparison,
        "server_cpu_s_per_repeat": cpu_per_repeat,
    }


def _paired(summary: dict[str, Any], figure: str, level: int,
            counts_from: str = "compared_workers") -> dict[str, Any]:  # fmt: skip
    """The ratio of ``figure``, ours / MLflow's at ``level``, at the counts ``counts_from``
    names, over the repeats both ran: the paired interval with two or more, the one ratio (no
    interval) with one; with both sides' medians and the counts."""
    counts = summary[counts_from][figure][level]
    ours = _find(summary["configurations"], OURS, counts[OURS], level)
    theirs = _find(summary["configurations"], MLFLOW, counts[MLFLOW], level)
    repeats = sorted(set(ours["repeats"]) & set(theirs["repeats"]))
    a = [ours[f"{figure}_per_repeat"][ours["repeats"].index(r)] for r in repeats]
    b = [theirs[f"{figure}_per_repeat"][theirs["repeats"].index(r)] for r in repeats]
    ratios = [round(x / y, 3) for x, y in zip(a, b, strict=True)]
    several = len(repeats) > 1
    return {
        "value": None if several else ratios[0],
        "interval": paired_ratio(a, b) if several else None,
        "per_repeat": ratios,
        "ours": ours[figure],
        "baseline": theirs[figure],
        "workers": counts,
    }


def _figure(name: str, paired: dict[str, Any], baseline_unit: str,
            target: str | None = None) -> Headline:  # fmt: skip
    return headline_figure(
        name, paired["value"], "x", baseline=paired["baseline"], baseline_unit=baseline_unit,
        target=target, interval=paired["interval"], digits=3, workers=paired["workers"],
        per_repeat=paired["per_repeat"], ours=paired["ours"],
    )  # fmt: skip


def headlines(summary: dict[str, Any], concurrency: Sequence[int], batch: int) -> list[Headline]:
    """Per CPU-second, p99 and requests/s at the highest concurrency, then per CPU-second at
    each lower one and with both servers at their best count (no target)."""
    top = max(concurrency)
    per_cpu = "requests per CPU-second"
    both_best = _paired(summary, "requests_per_cpu_s", top, counts_from="best_workers")
    return [
        _figure(cpu_figure_name(top, batch), _paired(summary, "requests_per_cpu_s", top),
                per_cpu, CPU_TARGET),
        _figure(p99_figure_name(top, batch), _paired(summary, "p99_ms", top), "ms", P99_TARGET),
        _figure(throughput_figure_name(top, batch), _paired(summary, "requests_per_s", top),
                "req/s"),
        *(_figure(cpu_figure_name(level, batch), _paired(summary, "requests_per_cpu_s", level),
                  per_cpu) for level in sorted(concurrency) if level != top),
        _figure(f"{cpu_figure_name(top, batch)}, both at their best worker count", both_best,
                per_cpu),
    ]  # fmt: skip
