"""Figures for the demo and the benchmark (matplotlib, Agg)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(width: float = 6.5, height: float = 3.6) -> tuple[Figure, Any]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def pass_rates_figure(rows: list[dict[str, Any]], title: str) -> Figure:
    """Pass rate of each version with its Wilson 95% interval; colour: gate decision."""
    fig, ax = _figure()
    labels = [row["label"] for row in rows]
    rates = [row["pass_rate"] for row in rows]
    errors = [
        [r - row["pass_rate_interval"]["low"] for r, row in zip(rates, rows, strict=True)],
        [row["pass_rate_interval"]["high"] - r for r, row in zip(rates, rows, strict=True)],
    ]
    colours = [row.get("colour", "tab:blue") for row in rows]
    ax.bar(labels, rates, yerr=errors, capsize=6, color=colours)
    for index, rate in enumerate(rates):
        ax.text(index, rate + 0.02, f"{rate:.0%}", ha="center", va="bottom")
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("pass rate (95% CI)")
    ax.set_title(title)
    return fig


def throughput_figure(figures: dict[str, tuple[float, float]], title: str) -> Figure:
    """Examples/s of each comparison: (baseline, candidate) side by side, log scale."""
    fig, ax = _figure(7.0, 3.6)
    names = list(figures)
    positions = range(len(names))
    base = [figures[n][0] for n in names]
    cand = [figures[n][1] for n in names]
    ax.bar([p - 0.2 for p in positions], base, width=0.4, label="baseline", color="tab:gray")
    ax.bar([p + 0.2 for p in positions], cand, width=0.4, label="candidate", color="tab:green")
    ax.set_xticks(list(positions), names)
    ax.set_yscale("log")
    ax.set_ylabel("examples/s (log)")
    ax.set_title(title)
    ax.legend()
    return fig
