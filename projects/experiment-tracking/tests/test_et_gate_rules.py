from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from experiment_tracking.data import LABELS, ReviewData
from experiment_tracking.registry import macro_f1_gain
from experiment_tracking.settings import ProjectSettings
from roadmap_lab.behaviour import (
    MINIMUM_FUNCTIONALITY,
    directional,
    invariance,
    minimum_functionality,
    run_behaviour_suites,
)
from roadmap_lab.gate import GateThresholds, decide
from roadmap_lab.stats import Interval, macro_f1_difference

POSITIVE = {
    "best",
    "love",
    "delicious",
    "excellent",
    "perfect",
    "tasty",
    "amazing",
    "great",
    "fresh",
    "wonderful",
}
NEGATIVE = {
    "terrible",
    "stale",
    "awful",
    "worst",
    "bland",
    "horrible",
    "broken",
    "poor",
    "waste",
    "disappointed",
}


def keyword_scorer(texts: list[str]) -> np.ndarray:
    """A transparent sentiment model: the share of positive among the sentiment words."""
    scores = []
    for text in texts:
        words = [w.strip(".,!?").lower() for w in text.split()]
        pos, neg = sum(w in POSITIVE for w in words), sum(w in NEGATIVE for w in words)
        scores.append(0.5 if pos == neg else pos / (pos + neg))
    return np.array(scores)


def whitespace_sensitive_scorer(texts: list[str]) -> np.ndarray:
    """A broken model: its output depends on the number of spaces."""
    return np.array([1.0 if text.count(" ") % 2 else 0.0 for text in texts])


REVIEWS = [
    "The coffee was great and fresh.",
    "Stale chips and a broken bag.",
    "Perfect tea, I love it.",
    "Bland sauce, a waste of money.",
] * 5


def test_keyword_model_passes_every_suite() -> None:
    report = run_behaviour_suites(keyword_scorer, REVIEWS)
    assert report.minimum_functionality.rate == 1.0
    assert report.invariance.rate == 0.0
    assert report.directional.rate == 0.0


def test_invariance_catches_a_whitespace_sensitive_model() -> None:
    result = invariance(whitespace_sensitive_scorer, REVIEWS)
    assert result.failures > 0 and result.examples


def test_directional_catches_a_model_that_inverts_sentiment() -> None:
    inverted = lambda texts: 1 - keyword_scorer(texts)  # noqa: E731
    result = directional(inverted, REVIEWS)
    assert result.rate >= 0.5  # every review fails one of its two edits


def test_minimum_functionality_of_a_constant_model() -> None:
    result = minimum_functionality(lambda texts: np.ones(len(texts)))
    expected_great = sum(label == "great" for _, label in MINIMUM_FUNCTIONALITY)
    assert result.rate == pytest.approx(expected_great / len(MINIMUM_FUNCTIONALITY))


def good_behaviour():
    return run_behaviour_suites(keyword_scorer, REVIEWS)


def rows_with(
    fixed: int, broken: int, rows: int = 1000, seed: int = 0
) -> tuple[list[str], list[str], list[str]]:
    """(truth, champion, challenger) labels on the same test rows: the champion is wrong on 200
    rows; the challenger fixes ``fixed`` of those and breaks ``broken`` of the others."""
    rng = np.random.default_rng(seed)
    truth = np.where(rng.random(rows) < 0.66, "great", "other")
    flipped = np.where(truth == "great", "other", "great")
    order = rng.permutation(rows)
    wrong, right = order[:200], order[200:]
    champion = truth.copy()
    champion[wrong] = flipped[wrong]
    challenger = champion.copy()
    challenger[wrong[:fixed]] = truth[wrong[:fixed]]
    challenger[right[:broken]] = flipped[right[:broken]]
    return truth.tolist(), champion.tolist(), challenger.tolist()


def gain_of(fixed: int, broken: int) -> Interval:
    """Challenger minus champion macro-F1 with its 95% paired bootstrap interval."""
    return macro_f1_difference(*rows_with(fixed, broken), labels=LABELS)


def test_promotes_a_gain_whose_lower_bound_reaches_the_margin() -> None:
    gain = gain_of(fixed=80, broken=10)
    promoted, reason, checks = decide(0.85, gain, good_behaviour(), GateThresholds(margin=0.0))
    assert gain.low > 0
    assert promoted and all(checks.values())
    assert reason.startswith("promoted") and f"gain {gain.estimate:+.4f}" in reason
    assert f"its lower bound {gain.low:+.4f} >= margin +0.0000" in reason


def test_rejects_a_gain_within_sampling_noise() -> None:
    # About +0.01 macro-F1 on 1,000 rows: the old rule (estimate >= margin 0.01) promoted this.
    gain = gain_of(fixed=30, broken=20)
    assert gain.estimate > 0.005 and gain.low < 0 < gain.high
    promoted, reason, checks = decide(0.81, gain, good_behaviour(), GateThresholds(margin=0.0))
    assert not promoted and not checks["quality"]
    assert reason.startswith("rejected (quality failed)")
    assert f"95% interval [{gain.low:+.4f}, {gain.high:+.4f}]" in reason


def test_the_thresholds_choose_the_bound_and_the_confidence() -> None:
    truth, champion, challenger = rows_with(fixed=30, broken=20)
    test = pd.DataFrame({"text": ["a review"] * len(truth), "label": truth})
    data = ReviewData(train=test, validation=test, test=test, source="rows", sha256="rows")
    at_95 = macro_f1_gain(data, champion, challenger, GateThresholds())
    at_99 = macro_f1_gain(data, champion, challenger, GateThresholds(confidence=0.99))
    assert at_99.confidence == 0.99 and at_99.low < at_95.low and at_99.high > at_95.high
    assert not decide(0.81, at_95, good_behaviour(), GateThresholds())[0]
    assert decide(0.81, at_95, good_behaviour(), GateThresholds(bound="estimate"))[0]


def test_identical_predictions_give_a_zero_interval_that_margin_zero_promotes() -> None:
    truth, champion, _ = rows_with(fixed=0, broken=0)
    gain = macro_f1_difference(truth, champion, champion, labels=LABELS)
    assert (gain.estimate, gain.low, gain.high) == (0.0, 0.0, 0.0)
    assert decide(0.8, gain, good_behaviour(), GateThresholds(margin=0.0))[0]
    assert not decide(0.8, gain, good_behaviour(), GateThresholds(margin=0.01))[0]


def test_rejects_a_better_challenger_that_fails_behaviour() -> None:
    bad = run_behaviour_suites(whitespace_sensitive_scorer, REVIEWS)
    promoted, reason, checks = decide(0.95, gain_of(fixed=120, broken=0), bad, GateThresholds())
    assert checks["quality"] and not promoted
    assert "invariance" in reason.split(":")[0]


def test_first_model_is_judged_against_the_floor() -> None:
    assert decide(0.60, None, good_behaviour(), GateThresholds(min_macro_f1=0.5))[0]
    promoted, reason, _ = decide(0.40, None, good_behaviour(), GateThresholds(min_macro_f1=0.5))
    assert not promoted and "no champion yet" in reason


def test_gate_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPERIMENT_TRACKING_GATE_BOUND", "estimate")
    monkeypatch.setenv("EXPERIMENT_TRACKING_GATE_CONFIDENCE", "0.9")
    monkeypatch.setenv("EXPERIMENT_TRACKING_GATE_MARGIN", "0.005")
    thresholds = ProjectSettings().thresholds()
    assert (thresholds.bound, thresholds.confidence, thresholds.margin) == ("estimate", 0.9, 0.005)
