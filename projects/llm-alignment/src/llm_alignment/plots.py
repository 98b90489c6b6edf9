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
    """Each policy's win-rate against the base with its 95% cluster interval: on held-out rules
    and held-out templates, raw and length-controlled."""
    names = list(reports)
    bars = [
        (group, kind)
        for group in ("heldout_rule", "heldout_template")
        for kind in ("raw", "length_controlled")
    ]
    labels = [
        f"{'held-out rules' if g == 'heldout_rule' else 'held-out templates'}"
        f"{' (length-controlled)' if k != 'raw' else ''}"
        for g, k in bars
    ]
    fig, axis = plt.subplots(figsize=(max(6, 1.6 * len(bars) * len(names)), 4))
    width = 0.8 / len(names)
    for index, name in enumerate(names):
        xs, values, lows, highs = [], [], [], []
        for position, (group, kind) in enumerate(bars):
            summary = reports[name]["groups"].get(group)
            figure = None if summary is None else summary if kind == "raw" else summary[kind]
            if figure is None or figure["win_rate"] is None or figure["ci_low"] is None:
                continue
            xs.append(position + index * width)
            values.append(figure["win_rate"])
            lows.append(figure["win_rate"] - figure["ci_low"])
            highs.append(figure["ci_high"] - figure["win_rate"])
        axis.bar(xs, values, width, yerr=[lows, highs], capsize=3, label=name)
    axis.axhline(0.5, color="black", lw=0.8)
    axis.axhline(target, color="green", lw=0.8, ls="--", label=f"target {target:.0%}")
    axis.set_xticks(
        [p + width * (len(names) - 1) / 2 for p in range(len(bars))], labels, rotation=15
    )
    axis.set_ylim(0, 1)
    axis.set_ylabel("win-rate vs base (pass/fail, ties half), 95% CI")
    axis.legend(fontsize=8)
    fig.tight_layout()
    return fig
