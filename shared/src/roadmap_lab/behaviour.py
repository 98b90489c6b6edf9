"""Behavioural tests of a review classifier (after CheckList): minimum functionality on clear-cut
reviews, invariance to harmless edits, and directional expectations when sentiment is added.

Each suite reports a rate; the promotion gate compares the rates with its thresholds.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

# p_great for each text: the probability of the label "great".
ScoreFunction = Callable[[list[str]], np.ndarray]

MINIMUM_FUNCTIONALITY = [
    ("This is the best coffee I have ever had. Delicious and fresh!", "great"),
    ("I love this tea, it is excellent and my favorite.", "great"),
    ("Perfect snack, tasty and great for the price. I recommend it.", "great"),
    ("Amazing sauce, wonderful taste. My family loved it.", "great"),
    ("My dog loves these treats, great product and fresh.", "great"),
    ("Excellent chips, the best I have had. Happy with my order.", "great"),
    ("Terrible taste, stale and bland. A waste of money.", "other"),
    ("The box arrived broken and the chips were stale. Awful.", "other"),
    ("Worst coffee ever, bitter and gross. I want a refund.", "other"),
    ("Disappointed. The tea was bland and the price is bad.", "other"),
    ("Horrible product, it made my cat sick. Never again.", "other"),
    ("Poor quality, the snack was stale and the bag was broken.", "other"),
]
# Harmless edits: the predicted label should not change.
NEUTRAL_PREFIXES = ["Review: ", "I ordered this last week. ", "Bought it for the office. "]
# Directional edits, prepended so that truncation cannot cut them off.
POSITIVE_PREFIX = "Absolutely delicious, I love it, the best! "
NEGATIVE_PREFIX = "Terrible, stale and awful, a waste of money. "


@dataclass
class SuiteResult:
    name: str
    cases: int
    failures: int
    rate: float  # pass rate for minimum functionality, failure rate for the others
    examples: list[dict[str, object]] = field(default_factory=list)


@dataclass
class BehaviourReport:
    minimum_functionality: SuiteResult
    invariance: SuiteResult
    directional: SuiteResult

    def as_dict(self) -> dict[str, object]:
        return {name: asdict(suite) for name, suite in self.suites().items()}

    def suites(self) -> dict[str, SuiteResult]:
        return {
            "minimum_functionality": self.minimum_functionality,
            "invariance": self.invariance,
            "directional": self.directional,
        }


def suite_vocabulary() -> set[str]:
    """Lower-cased words of the fixed texts (the tiny test tokenizer includes them)."""
    texts = [text for text, _ in MINIMUM_FUNCTIONALITY] + NEUTRAL_PREFIXES
    texts += [POSITIVE_PREFIX, NEGATIVE_PREFIX]
    return {word for text in texts for word in re.findall(r"[a-z']+", text.lower())}


def _label(p_great: float) -> str:
    return "great" if p_great >= 0.5 else "other"


def minimum_functionality(score: ScoreFunction) -> SuiteResult:
    texts = [text for text, _ in MINIMUM_FUNCTIONALITY]
    p_great = score(texts)
    failures = [
        {"text": text, "expected": expected, "p_great": round(float(p), 4)}
        for (text, expected), p in zip(MINIMUM_FUNCTIONALITY, p_great, strict=True)
        if _label(float(p)) != expected
    ]
    return SuiteResult(
        "minimum_functionality",
        len(texts),
        len(failures),
        1 - len(failures) / len(texts),
        failures[:5],
    )


def _harmless_edits(text: str, rng: random.Random) -> list[str]:
    return [
        rng.choice(NEUTRAL_PREFIXES) + text,
        re.sub(r"\s+", "  ", text),  # doubled whitespace
        text.rstrip(".!? ") + ".",  # final punctuation normalised
    ]


def invariance(
    score: ScoreFunction, texts: Sequence[str], seed: int = 0, base: np.ndarray | None = None
) -> SuiteResult:
    rng = random.Random(seed)
    originals = list(texts)
    edited = [_harmless_edits(text, rng) for text in originals]
    flat = [variant for variants in edited for variant in variants]
    base = score(originals) if base is None else base
    variants_scores = score(flat)
    failures = []
    position = 0
    for text, variants, p0 in zip(originals, edited, base, strict=True):
        for variant in variants:
            p1 = float(variants_scores[position])
            position += 1
            if _label(p1) != _label(float(p0)):
                failures.append(
                    {
                        "text": text[:200],
                        "edited": variant[:200],
                        "p_before": round(float(p0), 4),
                        "p_after": round(p1, 4),
                    }
                )
    return SuiteResult(
        "invariance", len(flat), len(failures), len(failures) / max(len(flat), 1), failures[:5]
    )


def directional(
    score: ScoreFunction,
    texts: Sequence[str],
    tolerance: float = 0.05,
    base: np.ndarray | None = None,
) -> SuiteResult:
    originals = list(texts)
    base = score(originals) if base is None else base
    up = score([POSITIVE_PREFIX + text for text in originals])
    down = score([NEGATIVE_PREFIX + text for text in originals])
    failures = []
    for text, p0, p_up, p_down in zip(originals, base, up, down, strict=True):
        if p_up < p0 - tolerance:
            failures.append(
                {
                    "text": text[:200],
                    "edit": "positive prefix",
                    "p_before": round(float(p0), 4),
                    "p_after": round(float(p_up), 4),
                }
            )
        if p_down > p0 + tolerance:
            failures.append(
                {
                    "text": text[:200],
                    "edit": "negative prefix",
                    "p_before": round(float(p0), 4),
                    "p_after": round(float(p_down), 4),
                }
            )
    cases = 2 * len(originals)
    return SuiteResult(
        "directional", cases, len(failures), len(failures) / max(cases, 1), failures[:5]
    )


def run_behaviour_suites(
    score: ScoreFunction, texts: Sequence[str], sample: int = 60, seed: int = 0
) -> BehaviourReport:
    """Run the three suites; invariance and directional use a seeded sample of ``texts``."""
    rng = random.Random(seed)
    chosen = list(texts) if len(texts) <= sample else rng.sample(list(texts), sample)
    base = score(chosen)
    return BehaviourReport(
        minimum_functionality=minimum_functionality(score),
        invariance=invariance(score, chosen, seed, base),
        directional=directional(score, chosen, base=base),
    )
