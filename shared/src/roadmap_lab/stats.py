"""Intervals for measured figures: every headline figure with a target carries one, and its
verdict comes from the interval (``roadmap_lab.results.verdict``), never from the point estimate.

* ``wilson_interval``: a proportion (pass rate, win rate with ties as half).
* ``bootstrap_mean``: a mean of per-example scores, percentile bootstrap.
* ``cluster_bootstrap_mean``: the same when examples come in groups that are not independent
  (prompts made from one template): whole clusters are resampled, so ``n`` is the cluster count.
* ``hierarchical_bootstrap_mean``: the same with nested groups (seeds, then templates within a
  seed, then the prompts of a template): each level is resampled within the units drawn above it.
* ``t_interval``: a mean of a few repeated measurements (benchmark repeats, seeds), Student's t.
* ``paired_ratio``: ours / baseline over interleaved repeats (repeat i of each side ran back to
  back, so drift of the machine cancels): a t interval on the log ratios, back-transformed, which
  gives the geometric mean ratio. ``Interval.map`` turns it into a percentage change.
* ``poisson_rate``: an event count over an exposure (false alerts per hour), with the exact
  (Garwood) interval, so seeing nothing in a short window still leaves a stated upper bound.
* Paired differences of two systems scored on the same examples, by paired bootstrap (rows are
  resampled once and both systems are scored on the same resample, so example difficulty cancels):
  ``mean_difference`` for per-example scores and ``macro_f1_difference`` for macro-F1.
* ``paired_proportion_difference``: the same for pass/fail verdicts, with Newcombe's hybrid
  score interval for paired proportions: the bootstrap is too narrow when few examples flip
  (4 fixed and none broken of 32 clear 0 by bootstrap; exact McNemar gives p = 0.125).

A gate that decides on the interval's lower bound instead of the point estimate does not promote
a model whose gain is within sampling noise (on 1,000 test rows the standard error of a macro-F1
difference is about 0.01).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from scipy.stats import chi2
from scipy.stats import t as student_t

DEFAULT_RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """A point estimate and its two-sided interval at ``confidence``."""

    estimate: float
    low: float
    high: float
    confidence: float
    method: str
    n: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def map(self, function: Callable[[float], float], method: str | None = None) -> Interval:
        """The interval of ``function(figure)`` for an increasing ``function`` (a ratio as a
        percentage change: ``ratio.map(lambda r: 100 * (r - 1))``)."""
        return Interval(
            function(self.estimate),
            function(self.low),
            function(self.high),
            self.confidence,
            method or self.method,
            self.n,
        )

    def __str__(self) -> str:
        return (
            f"{self.estimate:.4f} [{self.low:.4f}, {self.high:.4f}] "
            f"({self.confidence:.0%} {self.method}, n={self.n})"
        )


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval of the proportion ``successes / n``; ``successes`` may be fractional
    (ties counted as half a win)."""
    _check_confidence(confidence)
    if n <= 0:
        raise ValueError("a proportion needs at least one trial")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n={n}, got {successes}")
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), confidence, "wilson", n)


def t_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Interval:
    """The mean of repeated measurements with Student's t interval (needs at least two)."""
    _check_confidence(confidence)
    array = _as_vector(values, "values")
    if array.size < 2:
        raise ValueError("a t interval needs at least two values")
    mean = float(array.mean())
    half = float(student_t.ppf(1 - (1 - confidence) / 2, array.size - 1)) * float(
        array.std(ddof=1) / math.sqrt(array.size)
    )
    return Interval(mean, mean - half, mean + half, confidence, "t", int(array.size))


def paired_ratio(
    ours: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
) -> Interval:
    """ours / baseline over paired repeats (``ours[i]`` and ``baseline[i]`` measured back to
    back): the geometric mean of the per-repeat ratios with a t interval on their logarithms.
    Both sides must be positive (throughputs, times); at least two pairs."""
    a, b = _as_vector(ours, "ours"), _as_vector(baseline, "baseline")
    if a.shape != b.shape:
        raise ValueError(f"paired repeats need the same count: {a.size} vs {b.size}")
    if (a <= 0).any() or (b <= 0).any():
        raise ValueError("a ratio of repeats needs positive values on both sides")
    logs = t_interval(np.log(a / b), confidence)
    return Interval(
        math.exp(logs.estimate),
        math.exp(logs.low),
        math.exp(logs.high),
        confidence,
        "paired ratio (t on log ratios)",
        logs.n,
    )


def poisson_rate(
    count: int, exposure: float, confidence: float = 0.95, unit: str = "per unit"
) -> Interval:
    """``count`` events seen over ``exposure`` (hours, requests, ...): the rate with its exact
    two-sided Poisson (Garwood) interval. With no events the low end is 0 and the high end is
    the bound a reader must accept: about 3.7 / exposure at 95 %."""
    _check_confidence(confidence)
    if count < 0 or int(count) != count:
        raise ValueError(f"an event count must be a whole number >= 0, got {count}")
    if exposure <= 0:
        raise ValueError(f"exposure must be positive, got {exposure}")
    alpha = 1 - confidence
    low = 0.0 if count == 0 else float(chi2.ppf(alpha / 2, 2 * count)) / 2
    high = float(chi2.ppf(1 - alpha / 2, 2 * count + 2)) / 2
    rate = count / exposure
    method = f"exact poisson, {unit}"
    return Interval(rate, low / exposure, high / exposure, confidence, method, int(count))


def bootstrap_weights(n: int, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> np.ndarray:
    """``resamples`` x ``n`` counts: how often each example is drawn in each bootstrap resample."""
    if n <= 0:
        raise ValueError("bootstrap needs at least one example")
    if resamples < 1:
        raise ValueError("bootstrap needs at least one resample")
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples)


def bootstrap_interval(
    statistic: Callable[[np.ndarray], np.ndarray],
    n: int,
    method: str,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of ``statistic``, which maps an (R, n) matrix of example
    weights to R values; the estimate is the statistic on the full sample (all weights 1)."""
    _check_confidence(confidence)
    estimate = float(statistic(np.ones((1, n)))[0])
    values = statistic(bootstrap_weights(n, resamples, seed))
    alpha = 1 - confidence
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return Interval(estimate, float(low), float(high), confidence, method, n)


def _as_vector(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{what} must be a non-empty list of numbers")
    return array


def bootstrap_mean(
    scores: Sequence[float] | np.ndarray,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """The mean of per-example scores with a percentile bootstrap interval."""
    values = _as_vector(scores, "scores")
    return bootstrap_interval(
        lambda w: (w @ values) / w.sum(axis=1),
        values.size,
        "bootstrap",
        resamples,
        confidence,
        seed,
    )


def cluster_bootstrap_mean(
    scores: Sequence[float] | np.ndarray,
    clusters: Sequence[Any] | np.ndarray,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """The mean of per-example scores with a cluster bootstrap interval: each resample draws
    whole clusters (e.g. every prompt made from one template) with replacement, so examples that
    share a cluster are not counted as independent. ``n`` is the number of clusters."""
    values = _as_vector(scores, "scores")
    labels = list(clusters)
    if len(labels) != values.size:
        raise ValueError(f"one cluster per score: {values.size} scores, {len(labels)} clusters")
    names = sorted(set(labels), key=str)
    if len(names) < 2:
        raise ValueError("a cluster bootstrap needs at least two clusters")
    index = {name: position for position, name in enumerate(names)}
    membership = np.zeros((len(names), values.size))
    membership[[index[label] for label in labels], np.arange(values.size)] = 1.0
    sums, sizes = membership @ values, membership.sum(axis=1)
    return bootstrap_interval(
        lambda w: (w @ sums) / (w @ sizes),
        len(names),
        f"cluster bootstrap ({len(names)} clusters, {values.size} examples)",
        resamples,
        confidence,
        seed,
    )


def hierarchical_bootstrap_mean(
    scores: Sequence[float] | np.ndarray,
    levels: Sequence[Sequence[Any] | np.ndarray],
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """The mean of per-example scores with a multi-level (nested) bootstrap interval.

    ``levels`` holds one label per example for each level, outermost first (e.g. ``[seeds,
    templates]``); a label names a unit within its parent unit. Each resample draws the outermost
    units with replacement, then, independently for every draw of a unit, its sub-units, down to
    the examples. ``n`` is the number of outermost units. With no levels it is the plain
    bootstrap."""
    _check_confidence(confidence)
    values = _as_vector(scores, "scores")
    if resamples < 1:
        raise ValueError("bootstrap needs at least one resample")
    coded = []
    for labels in levels:
        labels = list(labels)
        if len(labels) != values.size:
            raise ValueError(f"one label per score: {values.size} scores, {len(labels)} labels")
        codes = {label: code for code, label in enumerate(dict.fromkeys(labels))}
        coded.append(np.array([codes[label] for label in labels]))
    rng = np.random.default_rng(seed)
    weights = np.zeros((resamples, values.size))

    def descend(members: np.ndarray, draws: np.ndarray, depth: int) -> None:
        # A unit drawn d times contributes d independent resamples of its children; their
        # summed counts are one multinomial of d x (number of children).
        if depth == len(coded):
            uniform = np.full(members.size, 1.0 / members.size)
            weights[:, members] = rng.multinomial(draws * members.size, uniform)
            return
        labels = coded[depth][members]
        units = np.unique(labels)
        counts = rng.multinomial(draws * units.size, np.full(units.size, 1.0 / units.size))
        for column, unit in enumerate(units):
            descend(members[labels == unit], counts[:, column], depth + 1)

    descend(np.arange(values.size), np.ones(resamples, dtype=np.int64), 0)
    means = (weights @ values) / weights.sum(axis=1)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    top = int(np.unique(coded[0]).size) if coded else values.size
    return Interval(
        float(values.mean()),
        float(low),
        float(high),
        confidence,
        f"hierarchical bootstrap ({len(coded)} levels, {top} top units, {values.size} examples)",
        top,
    )


def mean_difference(
    baseline: Sequence[float] | np.ndarray,
    candidate: Sequence[float] | np.ndarray,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """mean(candidate) - mean(baseline) of per-example scores on the same examples, with a paired
    bootstrap interval."""
    a, b = _as_vector(baseline, "baseline"), _as_vector(candidate, "candidate")
    if a.shape != b.shape:
        raise ValueError(f"paired scores need the same examples: {a.size} vs {b.size}")
    difference = b - a
    return bootstrap_interval(
        lambda w: (w @ difference) / w.sum(axis=1),
        difference.size,
        "paired bootstrap",
        resamples,
        confidence,
        seed,
    )


def paired_proportion_difference(
    baseline: Sequence[bool], candidate: Sequence[bool], confidence: float = 0.95
) -> Interval:
    """Pass rate of ``candidate`` minus that of ``baseline`` on the same examples, with Newcombe's
    (1998) square-and-add interval for paired proportions (method 10: the two Wilson intervals,
    combined with the continuity-corrected correlation of the paired verdicts)."""
    if len(baseline) != len(candidate) or not baseline:
        raise ValueError(f"paired verdicts need the same examples: {len(baseline)} vs "
                         f"{len(candidate)}")  # fmt: skip
    n = len(baseline)
    both = sum(b and c for b, c in zip(baseline, candidate, strict=True))
    fixed = sum(c and not b for b, c in zip(baseline, candidate, strict=True))
    broken = sum(b and not c for b, c in zip(baseline, candidate, strict=True))
    neither = n - both - fixed - broken
    p1, p2 = (both + fixed) / n, (both + broken) / n
    w1 = wilson_interval(both + fixed, n, confidence)
    w2 = wilson_interval(both + broken, n, confidence)
    margins = (both + fixed) * (broken + neither) * (both + broken) * (fixed + neither)
    cross = both * neither - fixed * broken
    phi = 0.0
    if margins and (cross > n / 2 or cross < 0):
        phi = (cross - n / 2 if cross > 0 else cross) / math.sqrt(margins)
    low_side = (p1 - w1.low, w2.high - p2)
    high_side = (p2 - w2.low, w1.high - p1)

    def spread(x: float, y: float) -> float:
        return math.sqrt(max(x * x + y * y - 2 * phi * x * y, 0.0))

    estimate = (fixed - broken) / n  # p1 - p2 without its rounding: -1/20 is exactly -0.05
    return Interval(estimate, max(-1.0, estimate - spread(*low_side)),
                    min(1.0, estimate + spread(*high_side)), confidence,
                    "newcombe paired score", n)  # fmt: skip


Labels = Sequence[Any] | np.ndarray


def _label_codes(
    y_true: Labels, predictions: Sequence[Labels], labels: Sequence[Any] | None
) -> tuple[np.ndarray, list[np.ndarray], int]:
    """Integer codes of the true labels and of each prediction, and the number of classes."""
    columns = [list(y_true), *(list(p) for p in predictions)]
    if len({len(column) for column in columns}) != 1 or not columns[0]:
        raise ValueError("y_true and every prediction need the same, non-zero number of rows")
    seen = {value for column in columns for value in column}
    known = list(labels) if labels is not None else sorted(seen, key=str)
    unknown = seen - set(known)
    if unknown:
        raise ValueError(f"labels {sorted(map(str, unknown))} are not among {known}")
    index = {label: code for code, label in enumerate(known)}
    codes = [np.array([index[value] for value in column], dtype=np.int64) for column in columns]
    return codes[0], codes[1:], len(known)


def weighted_macro_f1(
    y_true: np.ndarray, y_pred: np.ndarray, classes: int, weights: np.ndarray
) -> np.ndarray:
    """Macro-F1 of integer-coded labels under each row of example ``weights`` (R x n): one value
    per row. A class never true nor predicted scores 0, as in scikit-learn."""
    cells = y_true * classes + y_pred
    one_hot = np.zeros((y_true.size, classes * classes))
    one_hot[np.arange(y_true.size), cells] = 1.0
    confusion = (weights @ one_hot).reshape(-1, classes, classes)  # [resample, true, predicted]
    true_positive = np.diagonal(confusion, axis1=1, axis2=2)
    predicted = confusion.sum(axis=1)
    actual = confusion.sum(axis=2)
    denominator = predicted + actual
    f1 = np.divide(
        2 * true_positive, denominator, out=np.zeros_like(true_positive), where=denominator > 0
    )
    return f1.mean(axis=1)


def macro_f1_difference(
    y_true: Labels,
    baseline_pred: Labels,
    candidate_pred: Labels,
    labels: Sequence[Any] | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """macro-F1(candidate) - macro-F1(baseline) on the same rows, with a paired bootstrap
    interval. ``labels``: the classes to average over (default: every label seen)."""
    truth, (a, b), classes = _label_codes(y_true, [baseline_pred, candidate_pred], labels)
    return bootstrap_interval(
        lambda w: weighted_macro_f1(truth, b, classes, w) - weighted_macro_f1(truth, a, classes, w),
        truth.size,
        "paired bootstrap",
        resamples,
        confidence,
        seed,
    )
