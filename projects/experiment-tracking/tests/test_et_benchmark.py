from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from experiment_tracking.benchmark import SeedResult, seed_quality_headlines
from roadmap_lab.services import python_child_env
from roadmap_lab.stats import Interval


def test_seed_quality_is_a_paired_gain_with_a_t_interval_over_seeds() -> None:
    seeds = [
        SeedResult(
            seed=seed,
            split_sha256="x",
            minilm={"macro_f1": minilm, "accuracy": 0.8},
            baseline={"macro_f1": base, "accuracy": 0.78},
            gain=Interval(minilm - base, 0.0, 0.1, 0.95, "paired bootstrap", 1000),
            fine_tune={},
            run_ids={},
        )
        for seed, (minilm, base) in enumerate([(0.81, 0.78), (0.80, 0.785), (0.815, 0.79)])
    ]
    gain, f1, accuracy = seed_quality_headlines(seeds)
    assert gain["value"] == pytest.approx(0.0233, abs=1e-4) and gain["target"] == "> 0"
    assert gain["interval"]["method"] == "t" and gain["interval"]["n"] == 3
    assert gain["verdict"] == "met"  # every seed gains 0.015-0.03: the interval clears 0
    assert f1["target"] is None and f1["verdict"] is None and accuracy["baseline"] == 0.78


@pytest.mark.slow
def test_benchmark_end_to_end_on_a_tiny_configuration(tmp_path: Path, tiny_bert_dir: Path) -> None:
    # Not published: publishing needs a quiet machine (tested in the shared library).
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    arguments = [
        "benchmark",
        "--model-dir",
        str(tiny_bert_dir),
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
    gain, f1, accuracy, ratio, overhead = results["headline"]
    assert gain["value"] == pytest.approx(
        sum(s["minilm"]["macro_f1"] - s["baseline"]["macro_f1"] for s in per_seed) / 2, abs=1e-4
    )
    assert gain["interval"]["n"] == 2 and gain["verdict"] in ("met", "within noise", "missed")
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
    assert min(overheads) - 0.01 <= overhead["value"] <= max(overheads) + 0.01  # geometric mean
    assert overhead["interval"]["method"] == "paired ratio (t on log ratios)"
    for item in (ratio, overhead):
        assert item["baseline_unit"] == "samples/s" and isinstance(item["baseline"], float)
        assert item["interval"]["low"] <= item["value"] <= item["interval"]["high"]
        assert item["verdict"] in ("met", "within noise", "missed")

    conditions = results["conditions"]
    assert conditions["cores"] >= 1 and len(conditions["load_average_before"]) == 3
    assert conditions["cpu_seconds"]["benchmark process (with reaped children)"] > 0
    assert set(results["plots"]) == {
        "quality_by_seed.png",
        "throughput_repeats.png",
        "tracking_overhead.png",
    }
    for plot in results["plots"]:
        assert (results_file.parent / plot).is_file()
