from __future__ import annotations

import numpy as np
import pytest
from experiment_tracking.behaviour import (
    MINIMUM_FUNCTIONALITY,
    directional,
    invariance,
    minimum_functionality,
    run_behaviour_suites,
)
from experiment_tracking.registry import GateThresholds, decide

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


def test_promotes_a_challenger_that_beats_the_champion_by_the_margin() -> None:
    promoted, reason, checks = decide(0.83, 0.80, good_behaviour(), GateThresholds(margin=0.02))
    assert promoted and all(checks.values())
    assert reason.startswith("promoted") and "0.8300 vs champion 0.8000" in reason


def test_rejects_a_challenger_within_the_margin() -> None:
    promoted, reason, checks = decide(0.81, 0.80, good_behaviour(), GateThresholds(margin=0.02))
    assert not promoted and not checks["quality"]
    assert reason.startswith("rejected (quality failed)") and "misses the required 0.8200" in reason


def test_rejects_a_better_challenger_that_fails_behaviour() -> None:
    bad = run_behaviour_suites(whitespace_sensitive_scorer, REVIEWS)
    promoted, reason, checks = decide(0.95, 0.80, bad, GateThresholds())
    assert checks["quality"] and not promoted
    assert "invariance" in reason.split(":")[0]


def test_first_model_is_judged_against_the_floor() -> None:
    assert decide(0.60, None, good_behaviour(), GateThresholds(min_macro_f1=0.5))[0]
    promoted, reason, _ = decide(0.40, None, good_behaviour(), GateThresholds(min_macro_f1=0.5))
    assert not promoted and "no champion yet" in reason
