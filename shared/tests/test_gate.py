from __future__ import annotations

from roadmap_lab.behaviour import BehaviourReport, SuiteResult
from roadmap_lab.gate import GateThresholds, decide
from roadmap_lab.stats import Interval


def behaviour(functionality: float = 1.0, flips: float = 0.0) -> BehaviourReport:
    return BehaviourReport(
        SuiteResult("minimum_functionality", 12, 0, functionality),
        SuiteResult("invariance", 100, 0, flips),
        SuiteResult("directional", 100, 0, 0.0),
    )


def gain(low: float, estimate: float = 0.02) -> Interval:
    return Interval(estimate, low, estimate + 0.02, 0.95, "paired bootstrap", 1000)


def test_gain_decided_on_the_lower_bound() -> None:
    assert decide(0.8, gain(low=0.001), behaviour(), GateThresholds())[0]
    promoted, reason, checks = decide(0.8, gain(low=-0.001), behaviour(), GateThresholds())
    assert not promoted and checks["quality"] is False and "lower bound" in reason
    assert decide(0.8, gain(low=-0.001), behaviour(), GateThresholds(bound="estimate"))[0]


def test_first_champion_meets_the_floor() -> None:
    assert decide(0.7, None, behaviour(), GateThresholds(min_macro_f1=0.6))[0]
    promoted, reason, _ = decide(0.5, None, behaviour(), GateThresholds(min_macro_f1=0.6))
    assert not promoted and "no champion yet" in reason


def test_behaviour_fails_a_better_model() -> None:
    promoted, reason, checks = decide(0.9, gain(low=0.05), behaviour(0.5), GateThresholds())
    assert not promoted and checks == {
        "quality": True,
        "minimum_functionality": False,
        "invariance": True,
        "directional": True,
    }
    assert reason.startswith("rejected (minimum_functionality failed)")
    assert not decide(0.9, gain(low=0.05), behaviour(flips=0.2), GateThresholds())[0]


def test_a_model_without_behavioural_suites_is_decided_on_quality_alone() -> None:
    promoted, reason, checks = decide(0.8, gain(low=0.001), None, GateThresholds())
    assert promoted and checks == {"quality": True} and reason.endswith("no behavioural suites")
    promoted, reason, checks = decide(0.8, gain(low=-0.001), None, GateThresholds())
    assert not promoted and checks == {"quality": False}
    assert reason.startswith("rejected (quality failed)")
    assert not decide(0.5, None, None, GateThresholds(min_macro_f1=0.6))[0]
