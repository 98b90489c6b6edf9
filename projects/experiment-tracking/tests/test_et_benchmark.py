from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from experiment_tracking.benchmark import verdict
from roadmap_lab.services import python_child_env
from roadmap_lab.stats import Interval, student_t_quantile, t_interval


def interval(low: float, high: float) -> Interval:
    return Interval((low + high) / 2, low, high, 0.95, "t", 5)


@pytest.mark.parametrize(
    ("low", "high", "below", "expected"),
    [
        (1.0, 4.0, True, "met"),
        (3.0, 6.0, True, "within noise"),
        (5.0, 8.0, True, "missed"),
        (1.01, 1.05, False, "met"),
        (0.98, 1.04, False, "within noise"),
        (0.90, 0.99, False, "missed"),
    ],
)
def test_a_target_is_met_only_when_the_whole_interval_meets_it(
    low: float, high: float, below: bool, expected: str
) -> None:
    target = 5.0 if below else 1.0
    assert verdict(interval(low, high), target, below=below) == expected


def test_the_t_interval_uses_students_quantiles() -> None:
    # Published two-sided 95 % quantiles; with df -> infinity the normal's 1.96.
    for df, quantile in ((1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (30, 2.0423)):
        assert student_t_quantile(0.975, df) == pytest.approx(quantile, abs=1e-4)
    assert student_t_quantile(0.975, 1e6) == pytest.approx(1.95996, abs=1e-4)
    repeats = t_interval([1.0, 2.5, 0.7, 3.1, 1.9])
    # mean 1.84, sample sd 1.0040: half width 2.7764 * 1.0040 / sqrt(5) = 1.2466
    assert repeats.estimate == pytest.approx(1.84)
    assert (repeats.low, repeats.high) == pytest.approx((0.5934, 3.0866), abs=1e-4)
    assert (repeats.method, repeats.n) == ("t", 5)


@pytest.mark.slow
def test_benchmark_end_to_end_on_a_tiny_configuration(tmp_path: Path, tiny_model_dir: Path) -> None:
    # A checkout to publish into: the benchmark looks for pants.toml above the working directory.
    checkout = tmp_path / "checkout"
    (checkout / "projects" / "experiment-tracking").mkdir(parents=True)
    (checkout / "pants.toml").write_text("")
    arguments = [
        "benchmark",
        "--model-dir",
        str(tiny_model_dir),
        "--quality-rows",
        "64",
        "--quality-epochs",
        "1",
        "--seeds",
        "2",
        "--throughput-rows",
        "32",
        "--repeats",
        "2",
        "--publish",
        "--no-progress",
    ]
    completed = subprocess.run(
        [sys.executable, "-m", "experiment_tracking", *arguments],
        cwd=checkout,
        # The run and results folders come from the environment: no flag overrides them.
        env=python_child_env(
            # Absolute: the child runs in another folder than the (Pants sandbox) working one.
            PYTHONPATH=os.pathsep.join(str(Path(entry).resolve()) for entry in sys.path if entry),
            EXPERIMENT_TRACKING_RUN_DIR=str(tmp_path / "runs"),
            EXPERIMENT_TRACKING_DIST_DIR=str(tmp_path / "dist"),
            EXPERIMENT_TRACKING_TRACKERS="mlflow",
        ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    results_file = tmp_path / "dist" / "experiment-tracking" / "benchmark" / "results.json"
    results = json.loads(results_file.read_text())
    assert (tmp_path / "runs" / "benchmark" / "mlflow.db").is_file()
    assert results["command"] == " ".join(["python -m experiment_tracking", *arguments])
    assert results["sizes"] == {
        "quality_epochs": 1,
        "quality_rows": 64,
        "seeds": 2,
        "throughput_rows": 32,
        "throughput_epochs": 1,
        "repeats": 2,
    }
    assert results["versions"]["torch"] and results["versions"]["mlflow"]
    assert "cpu_flags" in results["machine"]

    # Quality: each seed has its own split; the headline is the mean over the seeds.
    per_seed = results["quality"]["per_seed"]
    assert [s["seed"] for s in per_seed] == [0, 1]
    assert per_seed[0]["split_sha256"] != per_seed[1]["split_sha256"]
    f1, accuracy, ratio, overhead = results["headline"]
    assert f1["value"] == pytest.approx(
        sum(s["minilm"]["macro_f1"] for s in per_seed) / 2, abs=1e-4
    )
    assert f1["baseline"] == pytest.approx(
        sum(s["baseline"]["macro_f1"] for s in per_seed) / 2, abs=1e-4
    )
    assert f1["spread"]["min"] <= f1["value"] <= f1["spread"]["max"]

    # Throughput: every run in run order (rotating), the tracked ones paying start-up and flush.
    runs = results["throughput"]["runs"]
    assert [(r["repeat"], r["configuration"]) for r in runs] == [
        (1, "ours_tracking_off"),
        (1, "hf_trainer"),
        (1, "ours_tracking_on"),
        (2, "hf_trainer"),
        (2, "ours_tracking_on"),
        (2, "ours_tracking_off"),
    ]
    for run in runs:
        parts = run["open_seconds"] + run["loop_seconds"] + run["finish_seconds"]
        assert run["seconds"] == pytest.approx(parts)
        assert (run["open_seconds"] > 0) == (run["configuration"] == "ours_tracking_on")
        assert (run["finish_seconds"] > 0) == (run["configuration"] == "ours_tracking_on")
    overheads = results["throughput"]["tracking_overhead_percent_per_repeat"]
    assert overhead["value"] == pytest.approx(sum(overheads) / 2, abs=0.01)
    for item in (ratio, overhead):
        assert item["baseline_unit"] == "samples/s" and isinstance(item["baseline"], float)
        assert item["interval"]["low"] <= item["value"] <= item["interval"]["high"]
        assert item["verdict"] in ("met", "within noise", "missed")

    # --publish copies the results and their plots into the checkout's committed folder.
    committed = checkout / "projects" / "experiment-tracking" / "benchmarks"
    assert (committed / "results.json").read_bytes() == results_file.read_bytes()
    assert set(results["plots"]) == {
        "quality_by_seed.png",
        "throughput_repeats.png",
        "tracking_overhead.png",
    }
    for plot in results["plots"]:
        assert (committed / plot).read_bytes() == (results_file.parent / plot).read_bytes()
