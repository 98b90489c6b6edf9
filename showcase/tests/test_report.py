import re
from datetime import UTC, datetime
from pathlib import Path

from roadmap_showcase.registry import Project
from roadmap_showcase.report import baseline_unit, render_report
from roadmap_showcase.runner import ProjectOutcome, ShowcaseRun

MACHINE = {"cpu_model": "Test CPU", "cores": 2}


def _outcome(headline: list[dict]) -> ProjectOutcome:
    project = Project("serving", "Serving", "p:cli", (), 60.0, Path("r.json"), None)
    return ProjectOutcome(project, "ok", results={"project": "serving", "headline": headline})


def _page(headline: list[dict]) -> str:
    now = datetime.now(UTC)
    return render_report(ShowcaseRun(now, now, [_outcome(headline)], None), MACHINE)


MEASURED = {
    "name": "vLLM / HF sequential",
    "value": 31.2,
    "unit": "x",
    "baseline": 20.73,
    "baseline_unit": "tok/s",
    "target": ">= 30",
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
