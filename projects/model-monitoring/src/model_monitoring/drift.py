"""Drift statistics of one feature, current window vs reference.

Numeric features: the Population Stability Index over the reference's quantile bins, and the
two-sample Kolmogorov-Smirnov test (scipy). Categorical features: PSI over the category
frequencies, and a chi-square goodness-of-fit test of the window's category counts against the
reference frequencies.

PSI = sum over bins of (cur - ref) * ln(cur / ref), proportions floored at ``PSI_FLOOR``. Rule of
thumb: < 0.1 stable, 0.1-0.2 moderate, > 0.2 a significant shift (``PSI_DRIFT_THRESHOLD``, the
alert rule's threshold too). Missing values and categories the reference never saw are left out
of both the PSI and the test: each has its own counter and alert.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

PSI_BINS = 10
PSI_FLOOR = 1e-4
PSI_DRIFT_THRESHOLD = 0.2
P_VALUE_THRESHOLD = 0.01
# Reference values kept for the KS test: enough for a precise test, small enough for bundle.json.
KS_SAMPLE_SIZE = 5000


@dataclass(frozen=True)
class ReferenceFeature:
    """What the drift job needs of one numeric feature's reference distribution."""

    edges: list[float]  # inner bin edges; the outer bins are open-ended
    proportions: list[float]
    sample: list[float]
    mean: float
    std: float
    missing_rate: float
    rows: int


@dataclass(frozen=True)
class CategoryReference:
    """One categorical feature's reference: its categories and their frequencies."""

    categories: list[str]
    proportions: list[float]  # per category, in the order of ``categories``
    missing_rate: float
    rows: int


Reference = ReferenceFeature | CategoryReference


@dataclass(frozen=True)
class FeatureDrift:
    psi: float
    test: str  # "ks" (numeric) or "chi2" (categorical)
    statistic: float
    p_value: float
    rows: int
    missing_rate: float
    mean: float | None = None  # numeric features
    unknown_rate: float = 0.0  # categorical features: values the reference never saw

    @property
    def drifted(self) -> bool:
        return self.psi > PSI_DRIFT_THRESHOLD


def reference_feature(values: np.ndarray, seed: int = 0) -> ReferenceFeature:
    present = values[~np.isnan(values)]
    if present.size == 0:
        raise ValueError("a reference feature needs at least one value")
    quantiles = np.quantile(present, np.linspace(0, 1, PSI_BINS + 1)[1:-1])
    edges = np.unique(quantiles)  # ties (discrete features) merge bins
    proportions = _bin_proportions(present, edges)
    rng = np.random.default_rng(seed)
    sample = present if present.size <= KS_SAMPLE_SIZE else rng.choice(present, KS_SAMPLE_SIZE)
    return ReferenceFeature(
        edges=edges.tolist(),
        proportions=proportions.tolist(),
        sample=np.sort(sample).tolist(),
        mean=float(present.mean()),
        std=float(present.std()),
        missing_rate=float(1 - present.size / values.size),
        rows=int(values.size),
    )


def category_reference(values: np.ndarray, categories: list[str]) -> CategoryReference:
    """Frequencies of ``categories`` among the present values (None = missing)."""
    codes = category_codes(values, categories)
    present = codes[codes >= 0]
    if present.size == 0:
        raise ValueError("a reference feature needs at least one value")
    counts = np.bincount(present, minlength=len(categories))
    return CategoryReference(
        categories=list(categories),
        proportions=(counts / present.size).tolist(),
        missing_rate=float(np.mean(codes == MISSING_CODE)),
        rows=int(codes.size),
    )


MISSING_CODE = -1
UNKNOWN_CODE = -2


def category_codes(values: np.ndarray, categories: list[str]) -> np.ndarray:
    """Index of each value in ``categories``; ``MISSING_CODE`` for None/NaN, ``UNKNOWN_CODE`` for
    a value the reference never saw."""
    codes = pd.Categorical(values, categories=categories).codes.astype(np.int64)
    missing = np.asarray(pd.isna(values))
    codes[(codes < 0) & ~missing] = UNKNOWN_CODE
    codes[missing] = MISSING_CODE
    return codes


def _bin_proportions(present: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # side="right": a value equal to an edge falls in the bin above it, as np.quantile bins do.
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=edges.size + 1)
    return counts / max(present.size, 1)


def _psi(current: np.ndarray, expected: np.ndarray) -> float:
    current = np.maximum(current, PSI_FLOOR)
    expected = np.maximum(expected, PSI_FLOOR)
    return float(np.sum((current - expected) * np.log(current / expected)))


def psi(reference: ReferenceFeature, values: np.ndarray) -> float:
    present = values[~np.isnan(values)]
    if present.size == 0:
        return float("nan")
    current = _bin_proportions(present, np.asarray(reference.edges))
    return _psi(current, np.asarray(reference.proportions))


def feature_drift(reference: ReferenceFeature, values: np.ndarray) -> FeatureDrift:
    """PSI and KS of one numeric feature's current values (NaN = missing) against its reference."""
    values = np.asarray(values, dtype=float)
    present = values[~np.isnan(values)]
    if present.size == 0:
        nan = float("nan")
        return FeatureDrift(nan, "ks", nan, nan, int(values.size), 1.0)
    ks = stats.ks_2samp(np.asarray(reference.sample), present, method="asymp")
    return FeatureDrift(
        psi=psi(reference, values),
        test="ks",
        statistic=float(ks.statistic),
        p_value=float(ks.pvalue),
        rows=int(values.size),
        missing_rate=float(1 - present.size / values.size),
        mean=float(present.mean()),
    )


def category_drift(reference: CategoryReference, values: np.ndarray) -> FeatureDrift:
    """PSI over the known categories' frequencies and the chi-square test of their counts against
    the reference frequencies; missing and unknown values are left out (and reported apart)."""
    codes = category_codes(values, reference.categories)
    known = codes[codes >= 0]
    rows = int(codes.size)
    missing_rate = float(np.mean(codes == MISSING_CODE)) if rows else float("nan")
    unknown_rate = float(np.mean(codes == UNKNOWN_CODE)) if rows else 0.0
    if known.size == 0:
        nan = float("nan")
        return FeatureDrift(nan, "chi2", nan, nan, rows, missing_rate, unknown_rate=unknown_rate)
    counts = np.bincount(known, minlength=len(reference.categories))
    expected = np.asarray(reference.proportions)
    seen = expected > 0  # a category with no reference rows cannot be expected
    chi2 = stats.chisquare(counts[seen], expected[seen] / expected[seen].sum() * counts[seen].sum())
    return FeatureDrift(
        psi=_psi(counts / known.size, expected),
        test="chi2",
        statistic=float(chi2.statistic),
        p_value=float(chi2.pvalue),
        rows=rows,
        missing_rate=missing_rate,
        unknown_rate=unknown_rate,
    )


def drift_of(reference: Reference, values: np.ndarray) -> FeatureDrift:
    if isinstance(reference, CategoryReference):
        return category_drift(reference, values)
    return feature_drift(reference, values)


def window_drift(
    reference: dict[str, Reference], columns: dict[str, np.ndarray]
) -> dict[str, FeatureDrift]:
    """Drift of every reference feature present in ``columns`` (feature -> values)."""
    return {
        name: drift_of(ref, columns[name]) for name, ref in reference.items() if name in columns
    }
