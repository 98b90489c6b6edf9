"""The benchmark: wrk's summary parser, the image size, the summary's arithmetic (best worker
count, ratios), and a tiny real run of both servers under wrk (slow)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from ml_cicd.benchmark import (
    MLFLOW,
    OURS,
    WRK_PACKAGE,
    BenchmarkError,
    Measurement,
    WrkResult,
    headlines,
    image_size,
    parse_wrk_output,
    request_batches,
    request_body,
    summarise,
)

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


def test_the_image_size_is_read_as_buildah_prints_it_or_from_a_file(tmp_path: Path) -> None:
    assert image_size("412 MB")["megabytes"] == 412.0
    assert image_size("2.33 GB")["megabytes"] == 2330.0
    assert image_size("1 GiB")["megabytes"] == pytest.approx(1073.7, abs=0.1)
    assert image_size("431234567")["megabytes"] == 431.2
    file = tmp_path / "size.txt"
    file.write_text("1.5GB\n")
    assert image_size(str(file)) == {"megabytes": 1500.0, "as_given": "1.5GB", "source": str(file)}
    with pytest.raises(BenchmarkError, match="image size"):
        image_size("large")


def test_both_servers_get_the_same_texts_in_their_own_shape() -> None:
    texts = [f"review {i}" for i in range(20)]
    batches = request_batches(texts, 8)
    assert batches == [texts[0:8], texts[8:16]]  # consecutive, in order; the rest is left out
    assert request_body(OURS, batches[0]) == {"texts": texts[0:8]}
    assert request_body(MLFLOW, batches[0]) == {
        "dataframe_split": {"columns": ["text"], "data": [[t] for t in texts[0:8]]}
    }
    with pytest.raises(BenchmarkError):
        request_batches(texts[:3], 8)


def _measurement(run: int, repeat: int, server: str, workers: int, concurrency: int,
                 rps: float, p99_ms: float) -> Measurement:  # fmt: skip
    result = WrkResult(
        requests=int(rps * 10),
        duration_s=10.0,
        bytes_read=int(rps * 10) * 600,
        errors={"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0},
        latency_ms={"p50": p99_ms / 3, "p90": p99_ms / 2, "p99": p99_ms, "max": p99_ms * 2,
                    "mean": p99_ms / 3, "stdev": 1.0},
    )  # fmt: skip
    return Measurement(run, repeat, server, workers, concurrency, result, 12.0, 0.5)


def test_each_server_is_compared_at_its_best_worker_count() -> None:
    # At c=8 ours is best with 2 workers, MLflow with 1 (its 2 workers lose at c=8).
    figures = {
        (OURS, 1): {1: (100, 5.0), 8: (300, 40.0)},
        (OURS, 2): {1: (90, 6.0), 8: (500, 30.0)},
        (MLFLOW, 1): {1: (60, 9.0), 8: (200, 80.0)},
        (MLFLOW, 2): {1: (50, 12.0), 8: (150, 120.0)},
    }
    measurements: list[Measurement] = []
    for repeat, scale in ((1, 1.0), (2, 1.1)):
        for (server, workers), levels in figures.items():
            for level, (rps, p99) in levels.items():
                measurements.append(_measurement(len(measurements) + 1, repeat, server, workers,
                                                 level, rps * scale, p99))  # fmt: skip
    summary = summarise(measurements, (1, 8), (1, 2))
    assert summary["best_workers"] == {OURS: 2, MLFLOW: 1}
    top = summary["comparison"][-1]
    assert top["concurrency"] == 8
    assert top["ours_requests_per_s"] == pytest.approx(525.0)  # median of 500 and 550
    assert top["mlflow_requests_per_s"] == pytest.approx(210.0)
    assert top["throughput_ratio"] == pytest.approx(2.5)
    assert summary["throughput_ratio_per_repeat"] == [2.5, 2.5]
    throughput, latency = headlines(summary, (1, 8))
    assert throughput["name"] == "throughput vs mlflow models serve (c=8)"
    assert (throughput["value"], throughput["unit"], throughput["target"]) == (2.5, "x", ">= 2")
    assert (throughput["baseline"], throughput["baseline_unit"]) == (210.0, "req/s")
    # Both repeats gave exactly 2.5: the paired interval is [2.5, 2.5], which clears 2.
    assert throughput["interval"]["n"] == 2 and throughput["verdict"] == "met"
    assert latency["name"] == "p99 latency, ours / mlflow (c=8)"
    assert (latency["value"], latency["baseline"], latency["verdict"]) == (0.375, 80.0, "met")
    assert latency["target"] == "<= 1"  # no worse than MLflow's p99 in the same repeats


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
    from ml_cicd.benchmark import run_benchmark

    results_file = run_benchmark(
        tmp_path / "dist",
        "python -m ml_cicd benchmark --concurrency 2 --duration 1 --workers 1 --repeats 1",
        concurrency=(2,),
        duration_s=1,
        batch=4,
        workers=(1,),
        repeats=1,
        warmup_s=0,
        progress=False,
        data_dir=_data_dir(tmp_path / "data"),
        image_size_of="412 MB",
    )
    assert results_file == tmp_path / "dist" / "ml-cicd" / "benchmark" / "results.json"
    results = json.loads(results_file.read_text())
    names = [item["name"] for item in results["headline"]]
    assert names == [
        "throughput vs mlflow models serve (c=2)",
        "p99 latency, ours / mlflow (c=2)",
        "retrain wall time (validate, train, evaluate, gate, register)",
        "container image size",
    ]
    for item in results["headline"]:
        assert {"name", "value", "unit", "baseline", "target"} <= item.keys()
    throughput = results["headline"][0]
    assert throughput["value"] > 0 and throughput["baseline"] > 0
    assert throughput["target"] == ">= 2" and throughput["baseline_unit"] == "req/s"
    assert throughput["verdict"] == "unverified"  # one repeat: no interval
    assert results["conditions"]["cpu_seconds"]
    assert results["headline"][2]["value"] > 0
    assert results["headline"][3]["value"] == 412.0

    measured = {m["server"]: m for m in results["measurements"]}
    assert set(measured) == {OURS, MLFLOW}
    for measurement in results["measurements"]:
        assert measurement["requests"] > 0
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
