from __future__ import annotations

import numpy as np
import pytest
from roadmap_lab.stats import (
    Interval,
    bootstrap_mean,
    cluster_bootstrap_mean,
    hierarchical_bootstrap_mean,
    macro_f1_difference,
    mean_difference,
    paired_proportion_difference,
    paired_ratio,
    poisson_rate,
    t_interval,
    weighted_macro_f1,
    wilson_interval,
)


def test_wilson_matches_published_values() -> None:
    # 8 of 10 at 95 %: (0.4902, 0.9433), as statsmodels' proportion_confint(method="wilson").
    interval = wilson_interval(8, 10)
    assert interval.estimate == 0.8
    assert interval.low == pytest.approx(0.4902, abs=1e-4)
    assert interval.high == pytest.approx(0.9433, abs=1e-4)
    assert (interval.method, interval.n, interval.confidence) == ("wilson", 10, 0.95)


def test_wilson_stays_inside_0_1_and_accepts_half_wins() -> None:
    none, every = wilson_interval(0, 20), wilson_interval(20, 20)
    assert none.low == pytest.approx(0.0, abs=1e-12) and 0 < none.high < 0.2
    assert every.high == pytest.approx(1.0, abs=1e-12) and 0.8 < every.low < 1
    ties = wilson_interval(10.5, 20)
    assert ties.estimate == 0.525 and ties.low < 0.525 < ties.high


@pytest.mark.parametrize(
    ("successes", "n", "confidence", "message"),
    [
        (1, 0, 0.95, "at least one trial"),
        (11, 10, 0.95, "between 0 and n"),
        (1, 2, 1.0, "confidence"),
    ],
)
def test_wilson_rejects_bad_input(
    successes: float, n: int, confidence: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        wilson_interval(successes, n, confidence)


def test_bootstrap_mean_is_seeded_and_covers_the_mean() -> None:
    scores = np.random.default_rng(1).normal(0.6, 0.2, size=400)
    first, second = bootstrap_mean(scores, seed=3), bootstrap_mean(scores, seed=3)
    assert first == second
    assert first.estimate == pytest.approx(scores.mean())
    assert first.low < scores.mean() < first.high
    # About 1.96 standard errors each side.
    standard_error = scores.std(ddof=1) / np.sqrt(scores.size)
    assert first.high - first.low == pytest.approx(2 * 1.96 * standard_error, rel=0.15)


def test_mean_difference_is_paired() -> None:
    rng = np.random.default_rng(0)
    difficulty = rng.uniform(0, 1, size=300)  # varies a lot between examples...
    baseline = difficulty
    candidate = difficulty + 0.02  # ...but the candidate is better on every one
    interval = mean_difference(baseline, candidate)
    assert interval.estimate == pytest.approx(0.02)
    assert interval.low == pytest.approx(0.02) and interval.high == pytest.approx(0.02)
    with pytest.raises(ValueError, match="same examples"):
        mean_difference([1, 0], [1, 0, 1])


def verdicts(both: int, fixed: int, broken: int, neither: int) -> tuple[list[bool], list[bool]]:
    """Baseline and candidate verdicts of a paired 2x2 table."""
    baseline = [True] * both + [False] * fixed + [True] * broken + [False] * neither
    candidate = [True] * both + [True] * fixed + [False] * broken + [False] * neither
    return baseline, candidate


def test_paired_proportion_difference_matches_a_published_value() -> None:
    # Fagerland, Lydersen & Laake, "Statistical analysis of contingency tables", ch. 8 (Cavo et
    # al., 2012; the contingencytables R package's test): -0.0621 (-0.1186 to -0.0046).
    interval = paired_proportion_difference(*verdicts(59, 6, 16, 80))
    assert interval.estimate == pytest.approx(-10 / 161)
    assert (interval.low, interval.high) == pytest.approx((-0.1186, -0.0046), abs=5e-5)
    assert (interval.method, interval.n) == ("newcombe paired score", 161)


def test_paired_proportion_difference_is_not_fooled_by_few_flips() -> None:
    # 4 fixed, none broken, of 32: exact McNemar p = 0.125, so the interval must reach below 0
    # (the paired bootstrap's does not).
    baseline, candidate = verdicts(0, 4, 0, 28)
    assert paired_proportion_difference(baseline, candidate).low < 0
    assert mean_difference([float(b) for b in baseline], [float(c) for c in candidate]).low > 0
    # Many flips the same way do clear 0, and the estimate is the difference of pass rates.
    many = paired_proportion_difference(*verdicts(4, 12, 1, 15))
    assert many.estimate == pytest.approx(11 / 32) and many.low > 0
    with pytest.raises(ValueError, match="same examples"):
        paired_proportion_difference([True], [True, False])


def test_weighted_macro_f1_matches_a_hand_count() -> None:
    y_true = np.array([0, 0, 1, 1, 1])
    y_pred = np.array([0, 1, 1, 1, 0])
    # class 0: tp 1, fp 1, fn 1 -> F1 0.5; class 1: tp 2, fp 1, fn 1 -> F1 2/3.
    ones = np.ones((1, 5))
    assert weighted_macro_f1(y_true, y_pred, 2, ones)[0] == pytest.approx((0.5 + 2 / 3) / 2)
    # Weight 2 on the last row counts it twice.
    doubled = np.array([[1, 1, 1, 1, 2]])
    # class 0: tp 1, fp 2, fn 1 -> 0.4; class 1: tp 2, fp 1, fn 2 -> 4/7.
    assert weighted_macro_f1(y_true, y_pred, 2, doubled)[0] == pytest.approx((0.4 + 4 / 7) / 2)


def _noisy_copy(truth: np.ndarray, error_rate: float, rng: np.random.Generator) -> np.ndarray:
    flip = rng.uniform(size=truth.size) < error_rate
    return np.where(flip, 1 - truth, truth)


def test_macro_f1_difference_tells_noise_from_a_real_gain() -> None:
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 2, size=1000)
    champion = _noisy_copy(truth, 0.20, rng)
    labels = ["other", "great"]
    names = np.array(labels)

    same = macro_f1_difference(names[truth], names[champion], names[_noisy_copy(truth, 0.20, rng)])
    assert same.low < 0 < same.high  # two equally good models: the interval straddles 0
    # On 1,000 rows the interval is a few points wide: a 0.01 margin is inside the noise.
    assert 0.03 < same.high - same.low < 0.08

    better = macro_f1_difference(
        names[truth], names[champion], names[_noisy_copy(truth, 0.10, rng)], labels=labels
    )
    assert better.estimate > 0.05 and better.low > 0


def test_macro_f1_difference_rejects_unknown_labels_and_ragged_input() -> None:
    with pytest.raises(ValueError, match="not among"):
        macro_f1_difference(["a", "b"], ["a", "b"], ["a", "c"], labels=["a", "b"])
    with pytest.raises(ValueError, match="same, non-zero number of rows"):
        macro_f1_difference(["a", "b"], ["a"], ["a", "b"])


def test_interval_serialises_and_prints() -> None:
    interval = Interval(0.01, -0.005, 0.025, 0.95, "paired bootstrap", 1000)
    assert interval.as_dict()["low"] == -0.005
    assert str(interval) == "0.0100 [-0.0050, 0.0250] (95% paired bootstrap, n=1000)"


def test_the_t_interval_uses_students_quantiles() -> None:
    # n = 5: t(0.975, 4) = 2.7764.
    repeats = [1.0, 2.5, 0.7, 3.1, 1.9]
    interval = t_interval(repeats)
    half = 2.7764 * np.std(repeats, ddof=1) / np.sqrt(5)
    assert interval.low == pytest.approx(np.mean(repeats) - half, abs=1e-3)
    assert (interval.method, interval.n) == ("t", 5)
    with pytest.raises(ValueError, match="at least two"):
        t_interval([1.0])


def test_paired_ratio_is_the_geometric_mean_with_a_log_t_interval() -> None:
    ratio = paired_ratio([2.0, 8.0], [1.0, 2.0])  # ratios 2 and 4
    assert ratio.estimate == pytest.approx(np.sqrt(8))
    assert ratio.low < 2 and ratio.high > 4
    steady = paired_ratio([200, 210, 190, 205, 198], [100, 104, 96, 101, 99])
    assert steady.low > 1.95 and steady.high < 2.06 and steady.n == 5
    percent = steady.map(lambda r: 100 * (r - 1))
    assert percent.estimate == pytest.approx(100 * (steady.estimate - 1))
    with pytest.raises(ValueError, match="same count"):
        paired_ratio([1, 2], [1])
    with pytest.raises(ValueError, match="positive"):
        paired_ratio([1, 0], [1, 1])


def test_poisson_rate_matches_the_exact_interval() -> None:
    # Garwood 95 %: 0 events -> [0, 3.689]; 3 events -> [0.619, 8.767].
    none = poisson_rate(0, 1.0)
    assert none.estimate == 0 and none.low == 0 and none.high == pytest.approx(3.689, abs=1e-3)
    three = poisson_rate(3, 2.0, unit="per hour")
    assert three.estimate == 1.5
    assert three.low == pytest.approx(0.3094, abs=1e-3)
    assert three.high == pytest.approx(4.3837, abs=1e-3)
    assert three.method == "exact poisson, per hour"
    with pytest.raises(ValueError, match="whole number"):
        poisson_rate(-1, 1.0)


def test_cluster_bootstrap_is_wider_than_treating_clustered_examples_as_independent() -> None:
    rng = np.random.default_rng(0)
    # 12 templates of 10 prompts each: a template's prompts share most of their outcome.
    template_effect = rng.normal(0, 0.3, size=12)
    scores = np.concatenate(
        [np.clip(0.5 + effect + rng.normal(0, 0.05, 10), 0, 1) for effect in template_effect]
    )
    clusters = np.repeat(np.arange(12), 10)
    clustered = cluster_bootstrap_mean(scores, clusters, seed=1)
    naive = bootstrap_mean(scores, seed=1)
    assert clustered.estimate == pytest.approx(scores.mean())
    assert clustered.n == 12
    assert (clustered.high - clustered.low) > 2 * (naive.high - naive.low)
    with pytest.raises(ValueError, match="at least two clusters"):
        cluster_bootstrap_mean([1.0, 0.0], ["a", "a"])


def test_hierarchical_bootstrap_reduces_to_the_bootstrap_of_the_top_units() -> None:
    """Known case: when all variation is between seeds (templates and prompts within a seed
    agree), resampling seeds, then templates, then prompts is the plain bootstrap of the seed
    means; with no levels it is the plain bootstrap of the examples."""
    rng = np.random.default_rng(0)
    seed_values = rng.normal(0.6, 0.1, size=15)
    scores = np.repeat(seed_values, 24)  # 15 seeds x 6 templates x 4 prompts
    seeds = np.repeat(np.arange(15), 24)
    templates = np.tile(np.repeat(np.arange(6), 4), 15)
    nested = hierarchical_bootstrap_mean(scores, [seeds, templates], resamples=4000, seed=1)
    plain = bootstrap_mean(seed_values, resamples=4000, seed=2)
    assert nested.estimate == pytest.approx(seed_values.mean())
    assert nested.n == 15 and "2 levels" in nested.method
    assert nested.low == pytest.approx(plain.low, abs=0.008)
    assert nested.high == pytest.approx(plain.high, abs=0.008)

    flat = rng.normal(0, 1, size=200)
    no_levels = hierarchical_bootstrap_mean(flat, [], resamples=4000, seed=3)
    reference = bootstrap_mean(flat, resamples=4000, seed=4)
    assert no_levels.n == 200
    assert no_levels.low == pytest.approx(reference.low, abs=0.03)
    assert no_levels.high == pytest.approx(reference.high, abs=0.03)


def test_hierarchical_bootstrap_counts_every_level() -> None:
    # Identical scores give no spread; three seeds that disagree give more spread than the
    # templates alone (one seed's worth of clusters) would.
    constant = hierarchical_bootstrap_mean(np.full(30, 0.5), [np.repeat([0, 1, 2], 10)])
    assert (constant.low, constant.estimate, constant.high) == (0.5, 0.5, 0.5)
    rng = np.random.default_rng(5)
    seeds = np.repeat([0, 1, 2], 40)
    templates = np.tile(np.repeat(np.arange(10), 4), 3)
    scores = rng.normal(0.5, 0.05, 120) + np.array([-0.2, 0.0, 0.2])[seeds]
    nested = hierarchical_bootstrap_mean(scores, [seeds, templates], seed=6)
    within = cluster_bootstrap_mean(
        scores, [f"{s}/{t}" for s, t in zip(seeds, templates, strict=True)], seed=6
    )
    assert nested.high - nested.low > 2 * (within.high - within.low)
    assert nested == hierarchical_bootstrap_mean(scores, [seeds, templates], seed=6)
    with pytest.raises(ValueError, match="one label per score"):
        hierarchical_bootstrap_mean([1.0, 0.0], [["a"]])
