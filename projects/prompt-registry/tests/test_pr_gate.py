"""The gate's decisions on known reports: an improvement, a regression, the drop threshold, the
floor, the no-ratchet baseline (and moving it), a changed eval config, a scorer-code change, and
its PR report."""

from __future__ import annotations

import pytest
from pr_testing import report
from prompt_registry.evalconfig import ConfigChanges
from prompt_registry.gate import NewConfigRuns, ScorerCode, decide, markdown_report

PRODUCTION = [True] * 12 + [False] * 8  # 60%


def test_an_improvement_passes_with_its_fixed_examples() -> None:
    candidate = [True] * 18 + [False] * 2  # 90%: six fixed, none broken
    result = decide(report(candidate, "v2"), report(PRODUCTION, "v1"), 0.05, 0.5)
    assert result.passed
    assert result.difference is not None and result.difference.estimate == pytest.approx(0.3)
    assert result.difference.low > 0
    assert {f["change"] for f in result.flipped} == {"fixed"}
    assert [f["id"] for f in result.flipped] == [f"e{i}" for i in range(12, 18)]


def test_a_regression_fails() -> None:
    candidate = [True] * 11 + [False] * 9  # 55%: above the floor, one broken
    result = decide(report(candidate, "v3"), report(PRODUCTION, "v1"), 0.0, 0.5)
    assert not result.passed
    assert result.difference is not None and result.difference.estimate < 0
    assert [f["change"] for f in result.flipped] == ["broken"]
    assert result.reason.startswith("vs production v1: ") and "exceeds the allowed 0.00" in (
        result.reason
    )


def test_a_drop_within_the_threshold_passes_and_a_larger_one_fails() -> None:
    one_worse = [True] * 11 + [False] * 9  # -0.05
    assert decide(report(one_worse), report(PRODUCTION), 0.05, 0.5).passed
    assert not decide(report(one_worse), report(PRODUCTION), 0.0, 0.5).passed


def test_with_a_min_gain_the_candidate_must_win_beyond_noise() -> None:
    one_better = [True] * 13 + [False] * 7  # +0.05: holds production, but within noise
    assert decide(report(one_better), report(PRODUCTION), 0.05, 0.5).passed
    held = decide(report(one_better), report(PRODUCTION), 0.05, 0.5, min_gain=0.0)
    assert not held.passed and "does not clear the required +0.00" in held.reason
    clearly_better = [True] * 20  # +0.40, eight fixed and none broken
    won = decide(report(clearly_better), report(PRODUCTION), 0.05, 0.5, min_gain=0.0)
    assert won.passed and won.difference is not None and won.difference.low > 0
    # Four fixed and none broken of 32 (exact McNemar p = 0.125) is not a win either.
    few = decide(report([True] * 4 + [False] * 28), report([False] * 32), 0.05, 0.0, min_gain=0.0)
    assert not few.passed and few.difference is not None and few.difference.low < 0
    # The floor alone decides a first promotion: there is nothing to beat.
    assert decide(report(PRODUCTION), None, 0.05, 0.5, min_gain=0.0).passed


def test_the_floor_decides_without_production_and_holds_with_it() -> None:
    assert decide(report(PRODUCTION), None, 0.05, 0.5).passed
    assert not decide(report(PRODUCTION), None, 0.05, 0.7).passed
    # Within the drop of production but below the floor: refused.
    weak_production = [True] * 9 + [False] * 11
    weaker = [True] * 8 + [False] * 12
    result = decide(report(weaker), report(weak_production), 0.05, 0.45)
    assert not result.passed and result.reason.startswith("floor: pass rate 0.400 is below")


def test_no_ratchet_the_baseline_version_holds_every_change() -> None:
    baseline = report([True] * 16 + [False] * 4, "v1")  # 80%
    production = report([True] * 15 + [False] * 5, "v2")  # 75%: within 0.05 of v1
    candidate = report([True] * 14 + [False] * 6, "v3")  # 70%: within 0.05 of v2, not of v1
    assert decide(candidate, production, 0.05, 0.5).passed
    result = decide(candidate, production, 0.05, 0.5, baseline=baseline)
    assert not result.passed
    failed = [c.name for c in result.checks if not c.passed]
    assert failed == ["vs baseline v1 (no ratchet)"]


def test_the_baseline_may_move_only_to_a_version_that_is_no_worse() -> None:
    baseline = report([True] * 16 + [False] * 4, "v1")  # 80%
    production = report([True] * 15 + [False] * 5, "v2")  # 75%
    candidate = report([True] * 16 + [False] * 4, "file")
    # The candidate pins v2 (production, worse than v1): the bar would drop for later changes.
    lowered = decide(candidate, production, 0.05, 0.5, baseline=baseline, moved_baseline=production)
    failed = [c.name for c in lowered.checks if not c.passed]
    assert failed == ["baseline moved from v1 to v2 (no ratchet)"]
    better = report([True] * 17 + [False] * 3, "v3")
    assert decide(candidate, production, 0.05, 0.5, baseline=baseline, moved_baseline=better).passed
    refused = decide(candidate, production, 0.05, 0.5, baseline=baseline, refused_pin="never")
    assert [c.name for c in refused.checks if not c.passed] == ["baseline pin"]


def test_a_changed_eval_config_must_pass_on_both_configs() -> None:
    production, candidate = report(PRODUCTION, "v1"), report(PRODUCTION, "file")
    changes = ConfigChanges(["e20"], ["e19"], [], None, None, None)
    worse_on_new = NewConfigRuns(
        report([True] * 10 + [False] * 10, "file"), report(PRODUCTION, "v1"), 0.5, changes
    )
    result = decide(candidate, production, 0.05, 0.5, new_config=worse_on_new)
    assert not result.passed
    assert [c.name for c in result.checks if not c.passed] == [
        "on the candidate's eval config vs production"
    ]
    same_on_new = NewConfigRuns(report(PRODUCTION, "file"), report(PRODUCTION, "v1"), 0.5, changes)
    assert decide(candidate, production, 0.05, 0.5, new_config=same_on_new).passed


def test_a_scorer_code_change_is_refused_unless_accepted() -> None:
    same = [True] * 12 + [False] * 8
    changed = ScorerCode("a" * 64, "b" * 64)
    result = decide(report(same), report(PRODUCTION), 0.05, 0.5, scorer_code=changed)
    assert not result.passed and "--accept-scorer-code-change" in result.reason
    accepted = ScorerCode("a" * 64, "b" * 64, accepted=True)
    assert decide(report(same), report(PRODUCTION), 0.05, 0.5, scorer_code=accepted).passed
    unchanged = ScorerCode("a" * 64, "a" * 64)
    result = decide(report(same), report(PRODUCTION), 0.05, 0.5, scorer_code=unchanged)
    assert result.passed and "scorer code" not in [c.name for c in result.checks]


def test_different_examples_cannot_be_compared() -> None:
    with pytest.raises(ValueError, match="same examples"):
        decide(report([True] * 3), report([True] * 4), 0.05, 0.5)


def test_markdown_report_lists_each_prompt_its_checks_and_flips() -> None:
    good = decide(report([True] * 18 + [False] * 2, "v2"), report(PRODUCTION, "v1"), 0.05, 0.5)
    bad = decide(report([True] * 6 + [False] * 14, "v3"), report(PRODUCTION, "v1"), 0.05, 0.5)
    text = markdown_report([good, bad], 0.05)
    assert "**FAILED**: 1 of 2 changed prompts pass" in text
    rows = [line for line in text.splitlines() if line.startswith("| p |")]
    assert len(rows) == 2
    assert "| 60.0% (v1) | 90.0% of 20 | +0.300 [" in rows[0] and rows[0].endswith(
        "| 6 | 0 | 0 | pass |"
    )
    assert rows[1].endswith("| 0 | 6 | 0 | **fail** |")
    assert "- **fail**: floor: pass rate 0.300 is below the floor 0.50" in text
    assert "| e12 | fixed | v1 output 12 | v2 output 12 |" in text
    assert "… 1 more" in text  # six flips, five shown
    assert "No prompt changed" in markdown_report([], 0.05)


def test_markdown_report_shows_an_eval_config_change_as_its_own_section() -> None:
    changes = ConfigChanges(
        ["e20"], ["e3", "e4"], ["e5"], ([{"type": "label"}], [{"type": "contains"}]), None, None
    )
    runs = NewConfigRuns(report([True] * 20, "file"), report(PRODUCTION, "v1"), 0.5, changes)
    result = decide(
        report(PRODUCTION, "file"), report(PRODUCTION, "v1"), 0.05, 0.5, new_config=runs
    )
    text = markdown_report([result], 0.05)
    assert "### p: the eval config changes" in text
    assert "- added examples: e20" in text
    assert "- removed examples: e3, e4" in text
    assert "- changed examples: e5" in text
    assert "- scorers: `[{'type': 'label'}]` -> `[{'type': 'contains'}]`" in text
    assert "on the candidate's config: production 60.0%, candidate 100.0% of 20" in text
