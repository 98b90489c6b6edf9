"""The benchmark end to end on tiny sizes (the real run is the lead's, on a quiet machine): every
part runs, the targeted figures of benchmarks/targets.toml are written with intervals and the
verdicts the shared rule computes, and drift decisions agree with evidently on stable windows."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from model_monitoring.benchmark import BenchmarkSizes, run_benchmark
from model_monitoring.errors import ModelMonitoringError
from model_monitoring.project_files import project_file
from model_monitoring.settings import ProjectSettings
from roadmap_lab.results import verdict

pytestmark = pytest.mark.slow
TINY = BenchmarkSizes(
    repeats=2, requests=10, drift_repeats=2, drift_window_rows=500, agreement_windows=2,
    traffic=(20.0, 40.0, 80.0), held_out_hours=0.02, held_out_rows_per_second=20.0,
    control_minutes=0.5, scenarios=("scaled_feature",),
)  # fmt: skip


def test_the_benchmark_writes_every_targeted_figure_with_its_verdict(
    bundle_dir: Path, tmp_path: Path
) -> None:
    settings = ProjectSettings(run_dir=tmp_path / "run", dist_dir=tmp_path / "dist",
                               bundle_dir=bundle_dir)  # fmt: skip
    path = run_benchmark(settings, TINY, publish=False)
    results = json.loads(path.read_text())
    headline = {item["name"]: item for item in results["headline"]}
    targets = tomllib.loads(project_file("benchmarks/targets.toml").read_text())["figure"]
    for figure in targets:
        item = headline[figure["name"]]
        assert item["target"] == figure["target"]
        assert item["interval"] is not None, figure["name"]
        assert item["verdict"] == verdict(item["target"], item["interval"], item["unit"])
    speedup = headline["drift computation speed-up vs evidently (equal work, from raw rows)"]
    assert speedup["interval"]["n"] == 2 and speedup["baseline"] > 0
    stable = headline["PSI decisions agreeing with evidently, stable windows"]
    assert stable["value"] >= 90, results["agreement"]["disagreements"]
    assert "KS / chi-square decisions agreeing with evidently, drifted windows" in headline
    in_order = headline["false alerts per production hour, held-out time in order"]
    assert in_order["target"] == "< 1" and in_order["interval"]["high"] > 1
    false_alerts = headline[
        "false alerts per production hour, held-out rows incl. resampled passes + control"
    ]
    assert false_alerts["target"] is None
    # The drift job's run time is not scaled by the clock: on a loaded test machine its staleness
    # alert can fire at x60 (see test_mm_integration.py); no model alert may.
    model_alerts = [name for name, _ in false_alerts["alerts"] if "DriftJobStale" not in name]
    assert model_alerts == [], false_alerts["alerts"]
    assert false_alerts["held_out_resample_passes"] == 0  # 0.02 h x 20 rows/s < 20,000 rows
    assert false_alerts["interval"]["high"] > 1  # 0.03 production hours bound nothing
    delays = [name for name in headline if name.startswith("detection delay at")]
    assert len(delays) == 3
    assert "| scaled_feature (ModelFeatureDrift{feature=car_value}) |" in (
        results["replay"]["detection_delay_table"]
    )
    assert results["conditions"]["cpu_seconds"]["service, instrumentation on"] > 0
    # The in-process request path ran with its metrics in memory-mapped files, as served.
    assert results["request_path"]["instrumentation_us"] > 0
    assert list((tmp_path / "run" / "benchmark" / "in-process" / "multiproc").glob("*.db"))
    assert results["sizes"]["traffic"] == [20.0, 40.0, 80.0]


def test_fewer_than_three_traffic_levels_are_refused(tmp_path: Path) -> None:
    settings = ProjectSettings(run_dir=tmp_path)
    with pytest.raises(ModelMonitoringError, match="three --traffic levels"):
        run_benchmark(settings, BenchmarkSizes(traffic=(5.0, 20.0)), publish=False)
