"""Our PSI drift decisions agree with an independent implementation, evidently's PSI test at the
same threshold, on the same windows (reference samples, synthetic shifts, the analysis period in
time order). KS equals scipy's on the same windows (test_mm_drift.py); the benchmark reports both
agreement rates with evidently over more windows."""

from __future__ import annotations

from pathlib import Path

import pytest
from model_monitoring.benchmark import agreement_windows, measure_agreement
from model_monitoring.datasets import housing_periods
from roadmap_lab.data import HOUSING_FEATURES

pytestmark = pytest.mark.slow


def test_psi_and_ks_decisions_agree_with_evidently(bundle_dir: Path) -> None:
    reference, analysis = housing_periods()
    windows = agreement_windows(reference, analysis.iloc[:3000], 3, (1.1, 1.5))
    result = measure_agreement(
        reference, analysis, HOUSING_FEATURES, bundle_dir, windows, with_ks=False
    )
    assert result["decisions"] == len(windows) * len(HOUSING_FEATURES) == 64
    assert result["psi_agreement"] >= 0.9, result["psi_disagreements"]
