import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from roadmap_showcase.registry import Project
from roadmap_showcase.report import baseline_unit, format_number, format_quantity, render_report
from roadmap_showcase.runner import ProjectOutcome, ShowcaseRun

MACHINE = {"cpu_model": "Test CPU", "cores": 2}


def _outcome(headline: list[dict]) -> ProjectOutcome:
    project = Project("serving", "Serving", "p:cli", (), 60.0, Path("r.json"), None)
    return ProjectOutcome(project, "ok", results={"project": "serving", "headline": headline})


def _page(headline: list[dict]) -> str:
    now = datetime.now(UTC)
    return render_report(ShowcaseRun(now, now, [_outcome(headline)], None), MACHINE)


MEASURED: dict[str, Any] = {
    "name": "vLLM / HF sequential",
    "value": 31.2,
    "unit": "x",
    "baseline": 20.73,
    "baseline_unit": "tok/s",
    "target": ">= 30",
    "interval": {"low": 30.5, "high": 32.0, "confidence": 0.95, "method": "t", "n": 5},
    "verdict": "met",
}
CARRIED = {
    **MEASURED,
    "name": "vLLM / HF sequential (full run)",
    "value": 12.0,
    "reference": True,
    "measured_at": "2026-11-26T10:36:38+00:00",
}


def test_reference_figures_are_shown_with_their_date_but_not_counted() -> None:
    html = _page([MEASURED, CARRIED])
    # The overview counts the one figure this run measured, and names the carried one.
    assert "1/1 met" in html and "(+1 reference)" in html
    rows = re.findall(r"<tr><td>(.*?)</tr>", html, re.S)
    carried_row = next(row for row in rows if "full run" in row)
    assert "reference, measured 2026-11-26" in carried_row
    assert "missed" not in carried_row  # 12.0 is below the target, but it is not judged here


def test_a_run_with_only_reference_figures_measured_none() -> None:
    html = _page([CARRIED])
    assert "none measured" in html and "met</span>" not in html.split("<h2>Overview")[1][:600]


def test_a_ratio_shows_its_baseline_in_the_baseline_unit() -> None:
    html = _page([MEASURED])
    assert "31.2x" in html and "20.73 tok/s" in html and "20.73x" not in html
    assert baseline_unit({"unit": "x", "baseline": 20.73}) is None  # never "20.73x"
    assert baseline_unit({"unit": "%", "baseline": 3.1}) is None
    assert baseline_unit({"unit": "tok/s", "baseline": 23.5}) == "tok/s"
    assert baseline_unit({"unit": "x", "baseline_unit": "samples/s"}) == "samples/s"


def _row(html: str, name: str) -> str:
    rows = re.findall(r"<tr><td>(.*?)</tr>", html, re.S)
    return next(row for row in rows if row.startswith(name))


def test_verdicts_come_from_the_interval_not_from_the_file() -> None:
    straddles = {**MEASURED, "name": "straddles", "interval": {**MEASURED["interval"], "low": 29}}
    below_interval = {**MEASURED["interval"], "low": 28, "high": 29.5}
    below = {**MEASURED, "name": "below", "interval": below_interval}
    # A file that claims "met" without an interval is shown as unverified.
    claimed = {**MEASURED, "name": "claimed", "interval": None, "verdict": "met"}
    no_target = {**MEASURED, "name": "no target", "target": None}
    html = _page([MEASURED, straddles, below, claimed, no_target])
    assert "✓ met" in _row(html, "vLLM")
    assert "within noise" in _row(html, "straddles")
    assert "✗ missed" in _row(html, "below")
    assert "? unverified" in _row(html, "claimed")
    assert "met" not in _row(html, "no target")
    # Only "met" counts as met; the others are named.
    assert "1/4 met" in html and "1 missed, 1 unverified, 1 within noise" in html
    assert "[30.5, 32] (95% t, n=5)" in _row(html, "vLLM")


def test_a_target_that_is_no_comparison_is_flagged() -> None:
    html = _page([{**MEASURED, "target": "detected"}])
    assert "invalid" in _row(html, "vLLM")


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (780.4, "tok/s", "780.4 tok/s"),
        (1234567, None, "1,234,567"),
        (0.0123456, "", "0.01235"),
        (12.0, "s", "12 s"),
        (95.5, "%", "95.5%"),
        (1.62, "x", "1.62x"),
        (None, "s", "—"),
        ("n/a", "s", "n/a"),
        ("0.5", "s", "0.5 s"),
    ],
)
def test_quantities_are_formatted_for_reading(value: object, unit: str, text: str) -> None:
    assert format_quantity(value, unit) == text


def test_large_floats_are_grouped() -> None:
    assert format_number(123456.7) == "123,457"


def test_a_demo_claim_is_shown_above_its_headline_escaped() -> None:
    project = Project("serving", "Serving", "p:cli", (), 60.0, Path("r.json"), None)
    results = {"project": "serving", "headline": [MEASURED], "claim": "wins > 0.5 <on held-out>"}
    now = datetime.now(UTC)
    outcome = ProjectOutcome(project, "ok", results=results)
    html = render_report(ShowcaseRun(now, now, [outcome], None), MACHINE)
    claim = html.index("wins &gt; 0.5 &lt;on held-out&gt;")
    assert claim < html.index("vLLM / HF sequential")
