"""The benchmark: wrk's summary parser, the image size, the request mix, the summary's arithmetic
(best worker count, per-CPU-second and latency ratios with their paired intervals), and a tiny
real run of both servers under wrk (slow)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from ml_cicd.bench.image import measure_image_size, parse_size
from ml_cicd.bench.requests import MLFLOW, OURS, request_batches, request_body
from ml_cicd.bench.servers import Measurement
from ml_cicd.bench.summary import headlines, summarise
from ml_cicd.bench.wrk import WRK_PACKAGE, WrkResult, parse_wrk_output
from ml_cicd.cli import app
from ml_cicd.errors import BenchmarkError
from typer.testing import CliRunner

# wrk 4.1.0's output with the benchmark's script (captured against `mlflow models serve`).
WRK_SAMPLE = """\
Running 3s test @ http://127.0.0.1:5123/invocations
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    19.85ms   20.53ms 180.05ms   95.52%
    Req/Sec   239.20     63.86   350.00     73.33%
  Latency Distribution
     50%   15.50ms
     75%   19.54ms
     90%   25.24ms
     99%  143.01ms
  715 requests in 3.00s, 386.13KB read
Requests/sec:    238.08
Transfer/sec:    128.57KB
WRK_JSON {"requests": 715, "duration_us": 3003198, "bytes": 395395, "errors": {"connect": 0, \
"read": 0, "write": 0, "status": 0, "timeout": 0}, "latency_us": {"p50": 15497, "p90": 25235, \
"p99": 143008, "max": 180052, "mean": 19852.3, "stdev": 20528.8}}
"""


def test_the_wrk_summary_line_gives_throughput_latency_and_errors() -> None:
    result = parse_wrk_output(WRK_SAMPLE)
    assert result.requests == 715
    assert result.duration_s == pytest.approx(3.003198)
    assert result.requests_per_s == pytest.approx(238.08, abs=0.01)  # wrk's own figure
    assert result.latency_ms["p50"] == pytest.approx(15.497)
    assert result.latency_ms["p99"] == pytest.approx(143.008)
    assert result.failures == 0
    failing = WRK_SAMPLE.replace('"status": 0', '"status": 12')
    failing = failing.replace('"timeout": 0', '"timeout": 3')
    assert parse_wrk_output(failing).failures == 15
    assert parse_wrk_output(failing).errors["status"] == 12


def test_wrk_output_without_the_summary_line_is_an_error() -> None:
    with pytest.raises(BenchmarkError, match="no WRK_JSON summary"):
        parse_wrk_output(WRK_SAMPLE.split("WRK_JSON")[0])
    with pytest.raises(BenchmarkError, match="cannot read"):
        parse_wrk_output('WRK_JSON {"requests": 1}\n')


def test_the_image_size_is_read_as_buildah_prints_it() -> None:
    assert parse_size("412 MB") == 412.0
    assert parse_size("2.33 GB") == 2330.0
    assert parse_size("1 GiB") == pytest.approx(1073.7, abs=0.1)
    assert parse_size("431234567") == 431.2
    with pytest.raises(BenchmarkError, match="image size"):
        parse_size("large")


def test_the_image_size_comes_from_the_build_scripts_size_command(tmp_path: Path) -> None:
    # A stand-in for docker/build-image.sh (which needs buildah and a built image; the repo's
    # image test runs the real one): it answers --size as the real one does.
    script = tmp_path / "build-image.sh"
    script.write_text('[ "$1" = --size ] && [ "$2" = demo/tag ] && echo "1.11 GB" || exit 3\n')
    assert measure_image_size("demo/tag", script) == {
        "tag": "demo/tag",
        "megabytes": 1110.0,
        "as_printed": "1.11 GB",
        "measured_by": "docker/build-image.sh --size (buildah images)",
    }
    with pytest.raises(BenchmarkError, match="cannot measure image other/tag"):
        measure_image_size("other/tag", script)
    with pytest.raises(BenchmarkError, match="no image build script"):
        measure_image_size("demo/tag", tmp_path / "missing.sh")


def test_both_servers_get_every_text_in_their_own_shape() -> None:
    texts = [f"review {i}" for i in range(20)]
    batches = request_batches(texts, 8)
    # Consecutive, in order, every text; the last batch wraps around to the first ones.
    assert batches == [texts[0:8], texts[8:16], texts[16:20] + texts[0:4]]
    assert request_body(OURS, batches[0]) == {"texts": texts[0:8]}
    assert request_body(MLFLOW, batches[0]) == {
        "dataframe_split": {"columns": ["text"], "data": [[t] for t in texts[0:8]]}
    }
    assert request_batches(texts[:3], 8) == [texts[:3] * 2 + texts[:2]]
    with pytest.raises(BenchmarkError):
        request_batches([], 8)


def _measurement(run: int, repeat: int, server: str, workers: int, concurrency: int,
                 rps: float, p99_ms: float, cpu_cores: float) -> Measurement:  # fmt: skip
    result = WrkResult(
        requests=int(rps * 10),
        duration_s=10.0,
        bytes_read=int(rps * 10) * 600,
        errors={"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0},
        latency_ms={"p50": p99_ms / 3, "p90": p99_ms / 2, "p99": p99_ms, "max": p99_ms * 2,
                    "mean": p99_ms / 3, "stdev": 1.0},
    )  # fmt: skip
    return Measurement(run, repeat, server, workers, concurrency, result, cpu_cores * 10, 0.5)


def test_each_server_is_compared_at_its_best_worker_count_per_cpu_second() -> None:
    # At c=8 ours is best with 2 workers, MLflow with 1 (its 2 workers lose at c=8). Figures:
    # (req/s, p99 ms, server CPU cores used).
    figures = {
        (OURS, 1): {1: (100, 5.0, 0.5), 8: (300, 40.0, 1.0)},
        (OURS, 2): {1: (90, 6.0, 0.5), 8: (500, 30.0, 2.0)},
        (MLFLOW, 1): {1: (60, 9.0, 0.6), 8: (200, 80.0, 1.0)},
        (MLFLOW, 2): {1: (50, 12.0, 0.6), 8: (150, 120.0, 1.5)},
    }
    measurements: list[Measurement] = []
    for repeat, scale in ((1, 1.0), (2, 1.1), (3, 0.9)):
        for (server, workers), levels in figures.items():
            for level, (rps, p99, cores) in levels.items():
                measurements.append(_measurement(len(measurements) + 1, repeat, server, workers,
                                                 level, rps * scale, p99, cores))  # fmt: skip
    summary = summarise(measurements, (1, 8), (1, 2))
    assert summary["best_workers"] == {OURS: 2, MLFLOW: 1}
    top = summary["comparison"][-1]
    assert top["concurrency"] == 8
    assert top["ours_requests_per_s"] == pytest.approx(500.0)  # median of 450, 500, 550
    assert top["mlflow_requests_per_s"] == pytest.approx(200.0)
    assert top["requests_per_s_ratio"] == pytest.approx(2.5)
    # Per CPU-second: ours 500 req/s on 2 cores = 250, MLflow's 200 on 1 core = 200.
    assert top["ours_requests_per_cpu_s"] == pytest.approx(250.0)
    assert top["requests_per_cpu_s_ratio"] == pytest.approx(1.25)
    assert summary["server_cpu_s_per_repeat"]["ml-cicd w2"] == {1: 25.0, 2: 25.0, 3: 25.0}

    cpu, latency, throughput = headlines(summary, (1, 8))
    assert cpu["name"] == "requests per server CPU-second, ours / mlflow (c=8)"
    assert (cpu["value"], cpu["unit"], cpu["target"]) == (1.25, "x", ">= 2")
    assert (cpu["baseline"], cpu["baseline_unit"]) == (200.0, "requests per CPU-second")
    # Every repeat gave exactly 1.25: the paired interval is [1.25, 1.25], all below 2.
    assert cpu["interval"]["n"] == 3 and cpu["verdict"] == "missed"
    assert cpu["per_repeat"] == [1.25, 1.25, 1.25]
    assert latency["name"] == "p99 latency, ours / mlflow (c=8)"
    assert (latency["value"], latency["baseline"], latency["verdict"]) == (0.375, 80.0, "met")
    assert throughput["name"] == "requests per second, ours / mlflow (c=8)"
    assert (throughput["value"], throughput["target"], throughput["verdict"]) == (2.5, None, None)


def test_publishing_needs_five_repeats(tmp_path: Path) -> None:
    done = CliRunner().invoke(
        app, ["benchmark", "--repeats", "3", "--publish", "--dist-dir", str(tmp_path)]
    )
    assert done.exit_code == 2
    assert "repeats must be at least 5 to publish, got 3" in done.output
    assert not list(tmp_path.iterdir())  # nothing measured or written


def _data_dir(folder: Path, rows: int = 400) -> Path:
    """A data folder with one slice of the bundled training reviews."""
    from ml_cicd.training import bundled_training_rows

    (folder / "slices").mkdir(parents=True)
    bundled_training_rows().head(rows).loc[:, ["text", "label"]].to_csv(
        folder / "slices" / "0001-reviews.csv", index=False
    )
    return folder


@pytest.mark.slow
def test_a_tiny_benchmark_measures_both_servers_under_wrk(tmp_path: Path) -> None:
    # conftest: no MLFLOW_TRACKING_URI or ML_CICD_* settings from outside (servers inherit it).
    assert shutil.which("wrk"), (
        f"wrk not found on PATH: install the Debian package {WRK_PACKAGE} "
        f"(apt-get install {WRK_PACKAGE}, or bash build-support/install-system-packages.sh ml-cicd)"
    )
    done = CliRunner().invoke(
        app,
        ["benchmark", "--concurrency", "2", "--duration", "1", "--batch", "4", "--workers", "1",
         "--repeats", "1", "--warmup", "0", "--data-dir", str(_data_dir(tmp_path / "data")),
         "--dist-dir", str(tmp_path / "dist")],
        env={"COLUMNS": "250"},  # rich wraps at 80 columns otherwise
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "requests per server CPU-second" in done.output  # the headline table
    lines = [line for line in done.output.splitlines() if re.match(r"r1 (ml-cicd|mlflow) ", line)]
    assert len(lines) == 2 and all("req/CPU-s" in line for line in lines)  # one per run
    results_file = tmp_path / "dist" / "ml-cicd" / "benchmark" / "results.json"
    results = json.loads(results_file.read_text())
    names = [item["name"] for item in results["headline"]]
    assert names == [  # no image given: no image size
        "requests per server CPU-second, ours / mlflow (c=2)",
        "p99 latency, ours / mlflow (c=2)",
        "requests per second, ours / mlflow (c=2)",
        "retrain wall time (validate, train, evaluate, gate, register)",
    ]
    for item in results["headline"]:
        assert {"name", "value", "unit", "baseline", "target"} <= item.keys()
    per_cpu = results["headline"][0]
    assert per_cpu["value"] > 0 and per_cpu["baseline"] > 0
    assert per_cpu["target"] == ">= 2" and per_cpu["baseline_unit"] == "requests per CPU-second"
    assert per_cpu["verdict"] == "unverified"  # one repeat: no interval
    assert results["headline"][3]["value"] > 0
    # Requests cover the whole held-out set.
    assert results["setup"]["distinct_texts"] == 1000
    assert results["setup"]["request_bodies"] == 250  # 1,000 texts in batches of 4
    cpu = results["conditions"]["cpu_seconds"]
    assert cpu["wrk"] > 0 and any(name.startswith("mlflow models serve") for name in cpu)

    measured = {m["server"]: m for m in results["measurements"]}
    assert set(measured) == {OURS, MLFLOW}
    for measurement in results["measurements"]:
        assert measurement["requests"] > 0
        assert measurement["server_cpu_s"] > 0 and measurement["client_cpu_s"] > 0
        assert measurement["requests_per_cpu_s"] == pytest.approx(
            measurement["requests"] / measurement["server_cpu_s"], rel=0.01
        )
        assert measurement["errors"] == {"connect": 0, "read": 0, "write": 0, "status": 0,
                                         "timeout": 0}  # fmt: skip
        assert measurement["p99_ms"] >= measurement["p50_ms"] > 0
    assert [m["run"] for m in results["measurements"]] == [1, 2]
    assert results["best_workers"] == {OURS: 1, MLFLOW: 1}
    assert results["retrain"]["status"] in ("promoted", "rejected")
    assert results["sizes"]["concurrency"] == [2] and results["sizes"]["repeats"] == 1
    assert results["versions"]["mlflow"] and results["versions"]["wrk"]
    assert results["machine"]["cores"] >= 1
    assert results["plots"] == ["throughput_latency.png"]
    assert (results_file.parent / "throughput_latency.png").stat().st_size > 0
