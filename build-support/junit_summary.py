"""Summarises the JUnit XML reports Pants writes: test time per project, recorded figures, totals.

Prints, per project (projects/<name>, shared, showcase, tests, ...), the number of test files,
tests, failures and skips and the pytest time of its files summed (files run two at a time, so the
sum is the CPU-slot time the project costs, not wall time); then every `figure.*` property a test
recorded (pytest's `record_testsuite_property`: image sizes, build times); and last the line
"tests: N passed, N failed, N skipped". Exits 1 when no test ran or any failed, so a run that
tested nothing is never green.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

FIGURE_PREFIX = "figure."


@dataclass
class Totals:
    files: int = 0
    tests: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0

    @property
    def passed(self) -> int:
        return self.tests - self.failed - self.skipped


def component(classname: str) -> str:
    """The folder a test belongs to, from its JUnit classname ("projects.foo.tests.test_x",
    "loops.mlops.tests.test_x")."""
    parts = classname.split(".")
    if parts[0] in ("projects", "loops") and len(parts) > 1:
        return f"{parts[0]}/{parts[1]}"
    return parts[0] or "?"


def read_reports(report_dir: Path) -> tuple[dict[str, Totals], list[tuple[str, str]]]:
    """Totals per component, and (figure, value) for every recorded figure."""
    by_component: dict[str, Totals] = defaultdict(Totals)
    figures: list[tuple[str, str]] = []
    for report in sorted(report_dir.rglob("*.xml")):
        root = ET.parse(report).getroot()
        suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
        for suite in suites:
            cases = list(suite.iter("testcase"))
            name = component(cases[0].get("classname", "")) if cases else report.stem
            totals = by_component[name]
            totals.files += 1
            totals.tests += int(suite.get("tests", 0))
            totals.failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            totals.skipped += int(suite.get("skipped", 0))
            totals.seconds += float(suite.get("time", 0.0))
            for prop in suite.iter("property"):
                name = prop.get("name", "")
                if name.startswith(FIGURE_PREFIX):
                    figures.append((name[len(FIGURE_PREFIX) :], prop.get("value", "")))
    return dict(by_component), figures


def render(by_component: dict[str, Totals], figures: list[tuple[str, str]]) -> list[str]:
    lines = [
        "test time by project (pytest time of each file, summed):",
        f"  {'project':<32} {'files':>5} {'tests':>6} {'failed':>6} {'skipped':>7} {'time':>9}",
    ]
    overall = Totals()
    for name, totals in sorted(by_component.items(), key=lambda item: -item[1].seconds):
        lines.append(
            f"  {name:<32} {totals.files:>5} {totals.tests:>6} {totals.failed:>6} "
            f"{totals.skipped:>7} {totals.seconds:>8.1f}s"
        )
        for field in ("files", "tests", "failed", "skipped", "seconds"):
            setattr(overall, field, getattr(overall, field) + getattr(totals, field))
    lines.append(
        f"  {'all':<32} {overall.files:>5} {overall.tests:>6} {overall.failed:>6} "
        f"{overall.skipped:>7} {overall.seconds:>8.1f}s"
    )
    if figures:
        lines.append("figures recorded by tests:")
        lines += [f"  {name} = {value}" for name, value in figures]
    lines.append(
        f"tests: {overall.passed} passed, {overall.failed} failed, {overall.skipped} skipped"
    )
    return lines


def main() -> int:
    report_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "dist/test/reports")
    by_component, figures = read_reports(report_dir) if report_dir.is_dir() else ({}, [])
    print("\n".join(render(by_component, figures)))
    tests = sum(totals.tests for totals in by_component.values())
    if tests == 0:
        print("no test ran", file=sys.stderr)
        return 1
    return 1 if any(totals.failed for totals in by_component.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
