"""The CLI: bad input is one line and exit 2; backfill, release and demo run for real in child
processes (each configures its own Airflow home, as a user's shell would). The backfill on a
server's scheduler is tested in test_dp_celery.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from data_pipelines.cli import app
from roadmap_lab.services import python_child_env
from typer.testing import CliRunner


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--date", "2021-02-30"], "is not a date"),
        (["backfill", "--start", "2021-02-21", "--end", "2021-02-14"], "before --start"),
        (["run", "--date", "2021-02-14", "--fault", "2021-02-14=teapot"], "KIND one of"),
        (["run", "--date", "2021-02-14", "--source-url", "ftp://x"], "http(s) URL"),
        (["run", "--date", "2021-02-14", "--start-date", "someday"], "start_date"),
        (["benchmark", "--executors", "kubernetes"], "executors among local, celery"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_release_of_a_slice_that_is_not_quarantined(
    tmp_path: Path, airflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATA_PIPELINES_AIRFLOW_HOME", str(airflow_home))  # this process's Airflow
    result = CliRunner().invoke(app, ["release", "2021-02-14", "--output-root", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not quarantined" in result.output


def test_a_server_backfill_needs_the_api_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_PIPELINES_AIRFLOW_API_URL", "http://127.0.0.1:9")
    args = ["backfill", "--start", "2021-02-14", "--end", "2021-02-21"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "DATA_PIPELINES_AIRFLOW_PASSWORD is not set" in result.output


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = python_child_env(
        DATA_PIPELINES_OUTPUT_ROOT=str(tmp_path / "runs" / "output"),
        DATA_PIPELINES_AIRFLOW_HOME=str(tmp_path / "runs" / "airflow"),
        DATA_PIPELINES_SCRATCH_DIR=str(tmp_path / "runs" / "scratch"),
        DATA_PIPELINES_RUN_DIR=str(tmp_path / "runs"),
        DATA_PIPELINES_DIST_DIR=str(tmp_path / "dist"),
        COLUMNS="200",
    )
    return subprocess.run(
        [sys.executable, "-m", "data_pipelines", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=400,
    )


@pytest.mark.slow
def test_backfill_quarantines_then_release_reruns(tmp_path: Path) -> None:
    backfill = cli(
        tmp_path, "backfill", "--start", "2021-02-14", "--end", "2021-02-21",
        "--start-date", "2021-02-14", "--fault", "2021-02-21=corrupt", "--retry-delay-s", "1",
    )  # fmt: skip
    assert backfill.returncode == 1, backfill.stdout[-3000:] + backfill.stderr[-3000:]
    output = tmp_path / "runs" / "output"
    assert (output / "models" / "2021-02-14" / "CURRENT").is_file()
    assert (output / "quarantine" / "2021-02-21" / "report.json").is_file()

    released = cli(tmp_path, "release", "2021-02-21", "--start-date", "2021-02-14")
    assert released.returncode == 0, released.stdout[-3000:] + released.stderr[-3000:]
    assert not (output / "quarantine" / "2021-02-21").exists()
    assert (output / "models" / "2021-02-21" / "CURRENT").is_file()
    assert len(list((output / "released" / "2021-02-21").iterdir())) == 1


@pytest.mark.slow
def test_demo_writes_results_and_timeline(tmp_path: Path) -> None:
    demo = cli(tmp_path, "demo")
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    folder = tmp_path / "dist" / "data-pipelines"
    results = json.loads((folder / "results.json").read_text())
    assert results["project"] == "data-pipelines" and results["status"] == "ok"
    assert results["rerun_identical"] is True
    assert all((folder / plot).is_file() for plot in results["plots"])
    # The corrupt week, the week after it before the release, the changed past week.
    assert results["failed_runs"] == ["2021-02-28", "2021-03-07", "2021-02-21"]
    assert "MedInc:in_range(0.0, 20.0)" in results["quarantine_report"]["rules"]
