from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from repo_checks import repo_root, subprocess_env

SCRIPT = Path("build-support") / "junit_summary.py"


def _report(folder: Path, name: str, classname: str, time: float, **counts: int) -> None:
    cases = "".join(
        f'<testcase classname="{classname}" name="test_{i}" time="0.1"/>'
        for i in range(counts.get("tests", 1))
    )
    attributes = " ".join(f'{key}="{value}"' for key, value in counts.items())
    (folder / f"{name}.xml").write_text(
        f'<testsuites><testsuite name="pytest" time="{time}" {attributes}>{cases}'
        "</testsuite></testsuites>"
    )


def _summarise(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(repo_root() / SCRIPT), str(folder)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=False,
    )


def test_time_and_counts_per_project_and_the_totals(tmp_path: Path) -> None:
    _report(tmp_path, "a", "projects.llm-serving.tests.test_ls_vllm", 120.5, tests=3)
    _report(tmp_path, "b", "projects.llm-serving.tests.test_ls_units", 9.5, tests=2, skipped=1)
    _report(tmp_path, "c", "shared.tests.test_results", 4.0, tests=2)
    _report(tmp_path, "d", "loops.mlops.tests.test_receiver", 2.0, tests=1)
    result = _summarise(tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    serving = next(line for line in lines if "projects/llm-serving" in line)
    assert serving.split() == ["projects/llm-serving", "2", "5", "0", "1", "130.0s"]
    assert next(line for line in lines if line.strip().startswith("shared")).split()[-1] == "4.0s"
    assert next(line for line in lines if "loops/mlops" in line).split()[-1] == "2.0s"
    assert next(line for line in lines if line.strip().startswith("all")).split() == [
        "all", "4", "8", "0", "1", "136.0s"
    ]  # fmt: skip
    assert lines[-1] == "tests: 7 passed, 0 failed, 1 skipped"


def test_recorded_figures_are_listed(tmp_path: Path) -> None:
    (tmp_path / "img.xml").write_text(
        '<testsuites><testsuite name="pytest" time="300" tests="1">'
        '<properties><property name="figure.llm-serving.image_size" value="4.61 GB"/>'
        '<property name="other" value="x"/></properties>'
        '<testcase classname="tests.test_image_llm_serving" name="test_image_builds"/>'
        "</testsuite></testsuites>"
    )
    result = _summarise(tmp_path)
    assert "  llm-serving.image_size = 4.61 GB" in result.stdout
    assert "other" not in result.stdout


def test_a_failure_or_no_test_at_all_fails(tmp_path: Path) -> None:
    _report(tmp_path, "a", "tests.test_layout", 1.0, tests=2, failures=1)
    failed = _summarise(tmp_path)
    assert failed.returncode == 1 and "tests: 1 passed, 1 failed, 0 skipped" in failed.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = _summarise(empty)
    assert nothing.returncode == 1 and "no test ran" in nothing.stderr
