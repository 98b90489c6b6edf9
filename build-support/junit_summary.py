"""Prints "tests: N passed, N failed, N skipped" from the JUnit XML reports Pants writes.

Exits 1 when no test ran or any failed, so a run that tested nothing is never green.
"""

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def count(report_dir: Path) -> dict[str, int]:
    totals = {"tests": 0, "failed": 0, "skipped": 0}
    for report in sorted(report_dir.rglob("*.xml")):
        root = ET.parse(report).getroot()
        suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
        for suite in suites:
            totals["tests"] += int(suite.get("tests", 0))
            totals["failed"] += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            totals["skipped"] += int(suite.get("skipped", 0))
    return totals


def main() -> int:
    report_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "dist/test/reports")
    totals = count(report_dir) if report_dir.is_dir() else {"tests": 0, "failed": 0, "skipped": 0}
    passed = totals["tests"] - totals["failed"] - totals["skipped"]
    print(f"tests: {passed} passed, {totals['failed']} failed, {totals['skipped']} skipped")
    if totals["tests"] == 0:
        print("no test ran", file=sys.stderr)
        return 1
    return 1 if totals["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
