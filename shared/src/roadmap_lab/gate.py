"""The promotion gate's rule (champion vs challenger), shared by every project that promotes a
classifier (experiment-tracking and ml-cicd: review classifiers; data-pipelines: the tabular
housing classifier), so all decide alike.

A challenger is promoted only when (1) the paired bootstrap interval of its macro-F1 gain over the
champion on the same held-out rows clears the margin at its lower bound (``bound="low"``, so a
gain within sampling noise is not enough), or, with no champion yet, its macro-F1 reaches the
floor; and (2) it passes every behavioural suite (``roadmap_lab.behaviour``), for a review
classifier: a model with no behavioural suites (``behaviour=None``, a tabular model) is decided
on (1) alone. ``decide`` is a pure function; registries and reports live in the projects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from roadmap_lab.behaviour import BehaviourReport
from roadmap_lab.settings import TrackedSettings
from roadmap_lab.stats import Interval

# What of the challenger-minus-champion macro-F1 interval the gate compares with the margin.
GateBound = Literal["low", "estimate"]
BOUND_WORDS = {"low": "its lower bound", "estimate": "the estimate"}


@dataclass(frozen=True)
class GateThresholds:
    margin: float = 0.0
    bound: GateBound = "low"
    confidence: float = 0.95
    resamples: int = 2000
    min_macro_f1: float = 0.5
    min_functionality_pass_rate: float = 0.8
    max_invariance_failure_rate: float = 0.1
    max_directional_failure_rate: float = 0.1


class GatedSettings(TrackedSettings):
    """Tracked settings of a project that promotes a review classifier through the gate:
    ``<PREFIX>GATE_*`` variables, mapped to ``GateThresholds`` in one place (``thresholds``)."""

    gate_margin: float = Field(
        default=GateThresholds.margin,
        ge=-1,
        le=1,
        description="the gain's bound must reach this (negative: a non-inferiority margin)",
    )
    gate_bound: GateBound = Field(
        default=GateThresholds.bound,
        description="low: the interval's lower bound (gains within noise fail)",
    )
    gate_confidence: float = Field(
        default=GateThresholds.confidence, gt=0, lt=1, description="of the gain's interval"
    )
    gate_resamples: int = Field(
        default=GateThresholds.resamples, ge=100, description="paired bootstrap resamples"
    )
    gate_min_macro_f1: float = Field(
        default=GateThresholds.min_macro_f1, ge=0, le=1, description="floor with no champion"
    )
    gate_min_functionality_pass_rate: float = Field(
        default=GateThresholds.min_functionality_pass_rate, ge=0, le=1
    )
    gate_max_invariance_failure_rate: float = Field(
        default=GateThresholds.max_invariance_failure_rate, ge=0, le=1
    )
    gate_max_directional_failure_rate: float = Field(
        default=GateThresholds.max_directional_failure_rate, ge=0, le=1
    )

    def thresholds(self) -> GateThresholds:
        return GateThresholds(
            margin=self.gate_margin,
            bound=self.gate_bound,
            confidence=self.gate_confidence,
            resamples=self.gate_resamples,
            min_macro_f1=self.gate_min_macro_f1,
            min_functionality_pass_rate=self.gate_min_functionality_pass_rate,
            max_invariance_failure_rate=self.gate_max_invariance_failure_rate,
            max_directional_failure_rate=self.gate_max_directional_failure_rate,
        )


def decide(
    challenger_macro_f1: float,
    gain: Interval | None,
    behaviour: BehaviourReport | None,
    thresholds: GateThresholds,
) -> tuple[bool, str, dict[str, bool]]:
    """The gate's rule, as a pure function: (promoted, reason, checks). ``gain``: the
    challenger-minus-champion macro-F1 interval, None when there is no champion yet.
    ``behaviour``: the review classifier's suites; None for a model without any (tabular)."""
    checks: dict[str, bool] = {}
    if gain is None:
        checks["quality"] = challenger_macro_f1 >= thresholds.min_macro_f1
        quality_text = (
            f"no champion yet; macro-F1 {challenger_macro_f1:.4f} "
            f"{'>=' if checks['quality'] else '<'} floor {thresholds.min_macro_f1:.4f}"
        )
    else:
        decided_on = gain.low if thresholds.bound == "low" else gain.estimate
        checks["quality"] = decided_on >= thresholds.margin
        quality_text = (
            f"macro-F1 {challenger_macro_f1:.4f} vs champion "
            f"{challenger_macro_f1 - gain.estimate:.4f}: gain {gain.estimate:+.4f}, "
            f"{gain.confidence:.0%} interval [{gain.low:+.4f}, {gain.high:+.4f}] "
            f"({gain.method}, {gain.n} rows); {BOUND_WORDS[thresholds.bound]} "
            f"{decided_on:+.4f} {'>=' if checks['quality'] else '<'} margin "
            f"{thresholds.margin:+.4f}"
        )
    behaviour_text = (
        "no behavioural suites" if behaviour is None else _behaviour(behaviour, thresholds, checks)
    )
    promoted = all(checks.values())
    failed = [name for name, ok in checks.items() if not ok]
    verdict = "promoted" if promoted else f"rejected ({', '.join(failed)} failed)"
    return promoted, f"{verdict}: {quality_text}; {behaviour_text}", checks


def _behaviour(
    behaviour: BehaviourReport, thresholds: GateThresholds, checks: dict[str, bool]
) -> str:
    """Adds the behavioural checks to ``checks``; their text."""
    suites = behaviour.suites()
    checks["minimum_functionality"] = (
        suites["minimum_functionality"].rate >= thresholds.min_functionality_pass_rate
    )
    checks["invariance"] = suites["invariance"].rate <= thresholds.max_invariance_failure_rate
    checks["directional"] = suites["directional"].rate <= thresholds.max_directional_failure_rate
    return (
        f"minimum functionality {suites['minimum_functionality'].rate:.0%} passed "
        f"(needs >= {thresholds.min_functionality_pass_rate:.0%}), invariance "
        f"{suites['invariance'].rate:.1%} flipped "
        f"(max {thresholds.max_invariance_failure_rate:.0%}), "
        f"directional {suites['directional'].rate:.1%} failed (max "
        f"{thresholds.max_directional_failure_rate:.0%})"
    )
