"""Drift statistics of one feature, current window vs reference: the Population Stability Index
over the reference's quantile bins, and the two-sample Kolmogorov-Smirnov test (scipy).

PSI = sum over bins of (cur - ref) * ln(cur / ref), proportions floored at ``PSI_FLOOR``. Rule of
thumb: < 0.1 stable, 0.1-0.2 moderate, > 0.2 a significant shift (``PSI_DRIFT_THRESHOLD``, the
alert rule's threshold too). Missing values are left out of both (they have their own metric).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

PSI_BINS = 10
PSI_FLOOR = 1e-4
PSI_DRIFT_THRESHOLD = 0.2
KS_P_VALUE_THRESHOLD = 0.01
# Reference values kept for the KS test: enough for a precise test, small enough for bundle.json.
KS_SAMPLE_SIZE = 5000


@dataclass(frozen=True)
class ReferenceFeature:
    """What the drift job needs of one feature's reference distribution."""

    edges: list[float]  # inner bin edges; the outer bins are open-ended
    proportions: list[float]
    sample: list[float]
    mean: float
    std: float
    missing_rate: float
    rows: int


@dataclass(frozen=True)
class FeatureDrift:
    psi: float
    ks_statistic: float
    ks_p_value: float
    rows: int
    mean: float
    missing_rate: float

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


def _bin_proportions(present: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # side="right": a value equal to an edge falls in the bin above it, as np.quantile bins do.
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=edges.size + 1)
    return counts / max(present.size, 1)


def psi(reference: ReferenceFeature, values: np.ndarray) -> float:
    present = values[~np.isnan(values)]
    if present.size == 0:
        return float("nan")
    current = np.maximum(_bin_proportions(present, np.asarray(reference.edges)), PSI_FLOOR)
    expected = np.maximum(np.asarray(reference.proportions), PSI_FLOOR)
    return float(np.sum((current - expected) * np.log(current / expected)))


def feature_drift(reference: ReferenceFeature, values: np.ndarray) -> FeatureDrift:
    """PSI and KS of one feature's current values (NaN = missing) against its reference."""
    values = np.asarray(values, dtype=float)
    present = values[~np.isnan(values)]
    if present.size == 0:
        nan = float("nan")
        return FeatureDrift(nan, nan, nan, int(values.size), nan, 1.0)
    ks = stats.ks_2samp(np.asarray(reference.sample), present, method="asymp")
    return FeatureDrift(
        psi=psi(reference, values),
        ks_statistic=float(ks.statistic),
        ks_p_value=float(ks.pvalue),
        rows=int(values.size),
        mean=float(present.mean()),
        missing_rate=float(1 - present.size / values.size),
    )


def window_drift(
    reference: dict[str, ReferenceFeature], columns: dict[str, np.ndarray]
) -> dict[str, FeatureDrift]:
    """Drift of every reference feature present in ``columns`` (feature -> values)."""
    return {
        name: feature_drift(ref, columns[name])
        for name, ref in reference.items()
        if name in columns
    }
