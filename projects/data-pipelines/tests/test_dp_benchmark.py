"""The benchmark end to end on a tiny size: two timed dates after the warm-up, under dag.test()
and the real scheduler with the LocalExecutor on PostgreSQL (the CeleryExecutor path is the same
code on the stack that test_dp_celery.py runs); the results file carries the targeted figures
with intervals, the slowest date, every date of every path, the conditions (PostgreSQL's CPU and
the deployment's non-default settings), no report run, and byte-identical artefacts."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from data_pipelines import benchmark
from data_pipelines.benchmark import wall_time_name
from data_pipelines.cli import app
from data_pipelines.errors import DataPipelinesError
from roadmap_lab.services import python_child_env
from typer.testing import CliRunner

TARGETS = Path(__file__).resolve().parents[1] / "benchmarks" / "targets.toml"


def test_every_targeted_figure_has_a_name_the_benchmark_writes() -> None:
    targets = {f["name"]: f["target"] for f in tomllib.loads(TARGETS.read_text())["figure"]}
    assert targets == {wall_time_name("local"): "< 60", wall_time_name("celery"): "< 60"}


@pytest.mark.slow
def test_the_benchmark_runs_end_to_end_on_a_tiny_size(tmp_path: Path) -> None:
    # A child process: the benchmark configures its own Airflow (dag.test on sqlite).
    env = python_child_env(
        DATA_PIPELINES_RUN_DIR=str(tmp_path / "runs"),
        DATA_PIPELINES_DIST_DIR=str(tmp_path / "dist"),
        DATA_PIPELINES_START_DATE="2021-02-14",
        COLUMNS="200",
    )
    args = ["benchmark", "--dates", "2", "--executors", "local"]
    done = subprocess.run([sys.executable, "-m", "data_pipelines", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(
        (tmp_path / "dist" / "data-pipelines" / "benchmark" / "results.json").read_text()
    )
    by_name = {item["name"]: item for item in results["headline"]}
    wall = by_name[wall_time_name("local")]
    assert wall["target"] == "< 60" and wall["interval"]["n"] == 2
    assert wall["verdict"] in ("met", "within noise", "missed")
    assert results["logical_dates"] == ["2021-02-21", "2021-02-28"]
    for path_results in results["paths"].values():
        assert len(path_results["wall_s"]) == len(path_results["plain_wall_s"]) == 2
        assert all(w > 0 for w in path_results["wall_s"] + path_results["plain_wall_s"])
    assert set(results["paths"]) == {"dag.test", "local"}
    assert results["artefacts_identical"] is True
    slowest = by_name["slowest logical date, trigger to success (LocalExecutor on PostgreSQL)"]
    assert slowest["value"] == max(results["paths"]["local"]["wall_s"])
    assert slowest["target"] is None
    conditions = results["conditions"]
    cpu = conditions["cpu_seconds"]
    assert cpu["local: scheduler"] > 0 and cpu["local: PostgreSQL"] > 0
    assert "local: api-server" in cpu
    assert "fsync=off" in conditions["deployment"]["postgresql"]
    assert "HEARTBEAT_SEC=1" in conditions["deployment"]["scheduler"]
    assert "paused" in conditions["deployment"]["report_dag"]


def test_different_artefacts_or_a_retried_date_are_errors(tmp_path: Path) -> None:
    same, other = tmp_path / "same", tmp_path / "other"
    for store, body in ((tmp_path / "first", b"a"), (same, b"a"), (other, b"b")):
        (store / "models").mkdir(parents=True)
        (store / "models" / "CURRENT").write_bytes(body)
    (same / "staging").mkdir()
    (same / "staging" / "work").write_bytes(b"in progress")  # work in progress does not count
    benchmark._check_identical([tmp_path / "first", same])
    with pytest.raises(DataPipelinesError, match=f"artefacts differ .* in {other}"):
        benchmark._check_identical([tmp_path / "first", same, other])
    benchmark._check_one_try("2021-02-21", 1)
    with pytest.raises(DataPipelinesError, match="2021-02-21 needed a retry"):
        benchmark._check_one_try("2021-02-21", 2)


def test_the_cli_refuses_a_single_date() -> None:
    result = CliRunner().invoke(app, ["benchmark", "--dates", "1"])
    assert result.exit_code == 2
