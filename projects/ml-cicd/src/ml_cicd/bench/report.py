"""What the benchmark shows: the tables the CLI prints and the plot saved beside the results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table
from roadmap_lab.results import Headline, ResultsWriter

from ml_cicd.bench.requests import LABELS, MLFLOW, OURS, SERVERS
from ml_cicd.bench.servers import Measurement

PLOT = "throughput_latency"


def measurement_line(m: Measurement) -> str:
    """One line per wrk run, in run order."""
    row = m.as_dict()
    return (
        f"r{m.repeat} {m.server:<7} w{m.workers} c{m.concurrency:<3} "
        f"{row['requests_per_s']:8.1f} req/s {row['requests_per_cpu_s']:7.1f} req/CPU-s "
        f"p50 {row['p50_ms']:6.1f} p99 {row['p99_ms']:6.1f} ms "
        f"cpu server {row['server_cpu_cores']:.2f} wrk {row['client_cpu_cores']:.2f} cores, "
        f"least busy worker {row['least_busy_worker_share']:.0%}"
    )


# The figures each server's best worker count is chosen for (summary.BEST), as the table shows.
SHORT = {"requests_per_cpu_s": "req/CPU-s", "p99_ms": "p99", "requests_per_s": "req/s"}


def best_for(summary: dict[str, Any], server: str, count: int, level: int) -> str:
    """The figures for which ``count`` workers is ``server``'s best at ``level``."""
    best = summary["best_workers"]
    return ", ".join(SHORT[figure] for figure in best if best[figure][level][server] == count)


def tables(summary: dict[str, Any], headline: list[Headline]) -> tuple[Table, Table]:
    """Every configuration's medians (with the figures it is the server's best count for), and
    the headline."""
    runs = Table(title="ml-cicd benchmark: wrk on loopback (medians over repeats)")
    for column in ("server", "workers", "concurrency", "req/s", "req/CPU-s", "server CPU-s",
                   "least busy worker", "p50 ms", "p99 ms", "best for"):  # fmt: skip
        runs.add_column(column, justify="left" if column in ("server", "best for") else "right")
    for c in summary["configurations"]:
        runs.add_row(
            LABELS[c["server"]], str(c["workers"]), str(c["concurrency"]),
            f"{c['requests_per_s']:.1f}", f"{c['requests_per_cpu_s']:.1f}",
            f"{c['server_cpu_s']:.2f}", f"{c['least_busy_worker_share']:.0%}",
            f"{c['p50_ms']:.2f}", f"{c['p99_ms']:.2f}",
            best_for(summary, c["server"], c["workers"], c["concurrency"]),
        )  # fmt: skip
    heads = Table(title="headline (each server at its best worker count for the figure)")
    for column in ("figure", "value [interval]", "baseline", "target", "verdict",
                   "workers ours / mlflow"):  # fmt: skip
        heads.add_column(column)
    for item in headline:
        interval = item.get("interval")
        value = f"{item['value']} {item['unit']}"
        if interval:
            value += f" [{interval['low']}, {interval['high']}]"
        unit = item.get("baseline_unit", item["unit"])
        baseline = "" if item["baseline"] is None else f"{item['baseline']} {unit}"
        counts = item.get("workers")
        workers = f"{counts[OURS]} / {counts[MLFLOW]}" if counts else ""
        heads.add_row(item["name"], value, baseline, item["target"] or "",
                      item.get("verdict") or "", workers)  # fmt: skip
    return runs, heads


def save_figure(
    writer: ResultsWriter,
    measurements: list[Measurement],
    summary: dict[str, Any],
    concurrency: Sequence[int],
) -> str:
    """Requests per CPU-second, requests/s and p99 against concurrency, every server and worker
    count (lines: medians; dots: every repeat)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {SERVERS[0]: "tab:blue", SERVERS[1]: "tab:orange"}
    panels = (("requests_per_cpu_s", "requests per server CPU-second"),
              ("requests_per_s", "requests/s"), ("p99_ms", "p99 latency (ms)"))  # fmt: skip
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 4))
    levels = sorted(concurrency)
    for server in SERVERS:
        for count in sorted({m.workers for m in measurements if m.server == server}):
            best = count == summary["compared_workers"]["requests_per_cpu_s"][levels[-1]][server]
            label = f"{LABELS[server]}, {count} worker{'s' if count > 1 else ''}"
            configs = sorted((c for c in summary["configurations"]
                              if c["server"] == server and c["workers"] == count),
                             key=lambda c: c["concurrency"])  # fmt: skip
            points = [m for m in measurements if m.server == server and m.workers == count]
            for axis, (key, _) in zip(axes, panels, strict=True):
                axis.plot([c["concurrency"] for c in configs], [c[key] for c in configs],
                          "-" if best else ":", marker="o", color=colors[server],
                          alpha=1.0 if best else 0.6,
                          label=label + (" (best per CPU-second)" if best else ""))  # fmt: skip
                axis.scatter([m.concurrency for m in points], [m.as_dict()[key] for m in points],
                             s=10, color=colors[server], alpha=0.4)  # fmt: skip
    for axis, (_, title) in zip(axes, panels, strict=True):
        if len(levels) > 1:
            axis.set_xscale("log", base=2)
        axis.set_xticks(levels, [str(level) for level in levels])
        axis.set_xlabel("concurrent connections (wrk -c)")
        axis.set_ylabel(title)
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
    top = summary["comparison"][-1]
    axes[0].set_title(f"ours {top['requests_per_cpu_s_ratio']:.2f}x mlflow per CPU-second "
                      f"at c={top['concurrency']}")  # fmt: skip
    axes[1].set_title(f"ours {top['requests_per_s_ratio']:.2f}x mlflow requests/s")
    axes[2].set_title("p99 latency")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    try:
        return writer.save_figure(fig, PLOT)
    finally:
        plt.close(fig)
