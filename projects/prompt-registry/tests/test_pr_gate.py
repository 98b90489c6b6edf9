"""The gate on a known improvement and a known regression, and its PR table."""

from __future__ import annotations

import pytest
from pr_testing import report
from prompt_registry.gate import decide, markdown_report

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
    candidate = [True] * 6 + [False] * 14  # 30%
    result = decide(report(candidate, "v3"), report(PRODUCTION, "v1"), 0.05, 0.5)
    assert not result.passed
    assert result.difference is not None and result.difference.high < 0
    assert all(f["change"] == "broken" for f in result.flipped) and len(result.flipped) == 6
    assert "exceeds the allowed 0.05" in result.reason


def test_a_drop_within_the_threshold_passes_and_a_larger_one_fails() -> None:
    one_worse = [True] * 11 + [False] * 9  # -0.05
    assert decide(report(one_worse), report(PRODUCTION), 0.05, 0.5).passed
    assert not decide(report(one_worse), report(PRODUCTION), 0.0, 0.5).passed


def test_without_production_the_floor_decides() -> None:
    assert decide(report(PRODUCTION), None, 0.05, 0.5).passed
    assert not decide(report(PRODUCTION), None, 0.05, 0.7).passed


def test_different_examples_cannot_be_compared() -> None:
    with pytest.raises(ValueError, match="same examples"):
        decide(report([True] * 3), report([True] * 4), 0.05, 0.5)


def test_markdown_table_lists_each_prompt_and_its_flips() -> None:
    good = decide(report([True] * 18 + [False] * 2, "v2"), report(PRODUCTION, "v1"), 0.05, 0.5)
    bad = decide(report([True] * 6 + [False] * 14, "v3"), report(PRODUCTION, "v1"), 0.05, 0.5)
    text = markdown_report([good, bad], 0.05)
    assert "**FAILED**: 1 of 2 changed prompts pass" in text
    rows = [line for line in text.splitlines() if line.startswith("| p |")]
    assert len(rows) == 2
    assert "| 60.0% (v1) | 90.0% of 20 | +0.300 [" in rows[0] and rows[0].endswith(
        "| 6 | 0 | pass |"
    )
    assert rows[1].endswith("| 0 | 6 | **fail** |")
    assert "| e12 | fixed | v1 output 12 | v2 output 12 |" in text
    assert "… 1 more" in text  # six flips, five shown
    assert "No prompt changed" in markdown_report([], 0.05)
