"""Figures for the showcase: DPO reward curves and win-rates with their intervals."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

CURVES = ("rewards/chosen", "rewards/rejected", "rewards/margins")


def reward_curves(history: list[dict[str, float]], title: str = "DPO rewards") -> Figure:
    """rewards/chosen, rewards/rejected and margins per step; accuracies on a second axis."""
    fig, axis = plt.subplots(figsize=(7, 4))
    rows = [h for h in history if "rewards/chosen" in h]
    steps = [h["step"] for h in rows]
    for key in CURVES:
        axis.plot(steps, [h[key] for h in rows], label=key, marker=".")
    axis.set_xlabel("step")
    axis.set_ylabel("implicit reward (beta x log-ratio)")
    accuracy_axis = axis.twinx()
    accuracy_axis.plot(
        steps, [h["rewards/accuracies"] for h in rows], color="grey", ls="--", label="accuracy"
    )
    accuracy_axis.set_ylim(0, 1.05)
    accuracy_axis.set_ylabel("rewards/accuracies")
    lines = axis.get_legend_handles_labels()
    extra = accuracy_axis.get_legend_handles_labels()
    axis.legend(lines[0] + extra[0], lines[1] + extra[1], loc="upper left", fontsize=8)
    axis.set_title(title)
    fig.tight_layout()
    return fig


def mean_reward_curve(history: list[dict[str, float]], title: str = "GRPO mean reward") -> Figure:
    fig, axis = plt.subplots(figsize=(6, 3.5))
    rows = [h for h in history if "reward" in h]
    axis.plot([h["step"] for h in rows], [h["reward"] for h in rows], marker=".")
    axis.set_xlabel("step")
    axis.set_ylabel("mean verifier reward")
    axis.set_ylim(0, 1)
    axis.set_title(title)
    fig.tight_layout()
    return fig


def win_rates(reports: dict[str, dict[str, Any]], target: float = 0.65) -> Figure:
    """Overall and per-rule win-rates of each policy against the base, with 95% intervals."""
    names = list(reports)
    rules = ["overall", *sorted({rule for r in reports.values() for rule in r["per_rule"]})]
    fig, axis = plt.subplots(figsize=(max(6, 1.1 * len(rules) * len(names)), 4))
    width = 0.8 / len(names)
    for index, name in enumerate(names):
        report = reports[name]
        figures = [report, *[report["per_rule"].get(rule) for rule in rules[1:]]]
        xs, values, lows, highs = [], [], [], []
        for position, figure in enumerate(figures):
            if figure is None:
                continue
            xs.append(position + index * width)
            values.append(figure["win_rate"])
            lows.append(figure["win_rate"] - figure["ci_low"])
            highs.append(figure["ci_high"] - figure["win_rate"])
        axis.bar(xs, values, width, yerr=[lows, highs], capsize=3, label=name)
    axis.axhline(0.5, color="black", lw=0.8)
    axis.axhline(target, color="green", lw=0.8, ls="--", label=f"target {target:.0%}")
    axis.set_xticks(
        [p + width * (len(names) - 1) / 2 for p in range(len(rules))], rules, rotation=30
    )
    axis.set_ylim(0, 1)
    axis.set_ylabel("win-rate vs base (ties half), 95% CI")
    axis.legend(fontsize=8)
    fig.tight_layout()
    return fig
