"""The benchmark, in one run:

1. predict latency (p50/p99) and throughput over HTTP with the instrumentation on vs off (the same
   service, MODEL_MONITORING_INSTRUMENTATION=false), two servers called alternately with the same
   batches; plus the request path's own cost per batch, measured in-process;
2. drift computation time for a 10,000-row window (8 features): ours (PSI + KS) vs evidently's
   DataDriftPreset report on the same data;
3. agreement of drift decisions with evidently (its PSI test at the same 0.2 threshold, its KS
   test at the same p-value) on the same windows: reference samples, synthetic shifts, and the
   analysis period's windows in time order.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from roadmap_lab.results import (
    BenchmarkConditions,
    Headline,
    ResultsWriter,
    ensure_quiet_machine,
    headline_figure,
    invocation,
    publish_benchmark,
)
from roadmap_lab.services import uvicorn_app

from model_monitoring import PROJECT
from model_monitoring.bundle import load_bundle
from model_monitoring.datasets import housing_periods
from model_monitoring.demo import ensure_bundle
from model_monitoring.drift import KS_P_VALUE_THRESHOLD, PSI_DRIFT_THRESHOLD, window_drift
from model_monitoring.settings import ENV_PREFIX, ProjectSettings

console = Console()
BATCH_ROWS = 20
DRIFT_WINDOW_ROWS = 10_000
AGREEMENT_WINDOW_ROWS = 1000


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def measure_http(
    bundle_dir: Path, folder: Path, payloads: list[dict[str, Any]]
) -> dict[str, dict[str, float]]:
    """Two servers side by side, instrumentation on and off, called alternately with the same
    batches (the order flips every request): both see the same load from the rest of the
    machine, which on a shared 2-core host moves latencies more than the instrumentation does."""
    urls = {}
    with contextlib.ExitStack() as stack:
        for mode in ("on", "off"):
            env = {
                f"{ENV_PREFIX}BUNDLE_DIR": str(bundle_dir.resolve()),
                f"{ENV_PREFIX}LOG_DIR": str((folder / "predictions").resolve()),
                f"{ENV_PREFIX}INSTRUMENTATION": str(mode == "on").lower(),
            }
            urls[mode] = stack.enter_context(
                uvicorn_app(
                    "model_monitoring.service:create_app", folder / mode, factory=True, env=env,
                    ready_path="/health/ready", extra_args=["--no-access-log"],
                )
            )  # fmt: skip
        clients = {mode: stack.enter_context(httpx.Client(base_url=url, timeout=30))
                   for mode, url in urls.items()}  # fmt: skip
        for body in payloads[:100]:  # warm-up
            for client in clients.values():
                client.post("/predict", json=body)
        latencies: dict[str, list[float]] = {"on": [], "off": []}
        for index, body in enumerate(payloads):
            for mode in ("on", "off") if index % 2 else ("off", "on"):
                sent = time.perf_counter()
                reply = clients[mode].post("/predict", json=body)
                latencies[mode].append(time.perf_counter() - sent)
                reply.raise_for_status()
    paired = [on - off for on, off in zip(latencies["on"], latencies["off"], strict=True)]
    return {
        "paired_median_difference_ms": {"value": statistics.median(paired) * 1000},
        **{
            mode: {
                "p50_ms": _percentile(values, 50) * 1000,
                "p99_ms": _percentile(values, 99) * 1000,
                # A sequential client: rows over the time spent waiting for this server.
                "rows_per_s": len(values) * BATCH_ROWS / sum(values),
                "requests": len(values),
            }
            for mode, values in latencies.items()
        },
    }


def measure_request_path(bundle_dir: Path, folder: Path, batches: int = 500) -> dict[str, float]:
    """In-process: predict_proba vs the per-batch instrumentation (metrics + prediction log)."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    from model_monitoring.metrics import ServiceMetrics
    from model_monitoring.service import Monitor

    bundle = load_bundle(bundle_dir)
    settings = ProjectSettings(bundle_dir=bundle_dir, run_dir=folder / "in-process")
    monitor = Monitor(bundle, settings, ServiceMetrics(bundle.feature_names, bundle.classes))
    reference, _ = housing_periods()
    x = reference[bundle.feature_names].to_numpy(dtype=float)
    batches = min(batches, len(x) // BATCH_ROWS)
    predict_s, instrument_s = [], []
    with threadpool_limits(1):
        for index in range(batches):
            rows = x[index * BATCH_ROWS : (index + 1) * BATCH_ROWS]
            started = time.perf_counter()
            proba = bundle.pipeline.predict_proba(rows)[:, 1]
            predicted = (proba >= 0.5).astype(np.int64)
            confidence = np.where(predicted == 1, proba, 1 - proba)
            middle = time.perf_counter()
            ids = [f"b{index}-{i}" for i in range(len(rows))]
            monitor.observe_batch(ids, rows, predicted, confidence)
            instrument_s.append(time.perf_counter() - middle)
            predict_s.append(middle - started)
    monitor.close()
    return {
        "predict_us": statistics.median(predict_s) * 1e6,
        "instrumentation_us": statistics.median(instrument_s) * 1e6,
    }


def measure_drift_time(reference: pd.DataFrame, analysis: pd.DataFrame, features: list[str],
                       bundle_dir: Path) -> dict[str, float]:  # fmt: skip
    bundle = load_bundle(bundle_dir)
    current = pd.concat([analysis, reference]).sample(
        DRIFT_WINDOW_ROWS, replace=False, random_state=0
    )[features]
    columns = {name: current[name].to_numpy(dtype=float) for name in features}
    ours = []
    for _ in range(20):
        started = time.perf_counter()
        window_drift(bundle.reference, columns)
        ours.append(time.perf_counter() - started)
    evidently_s = []
    for _ in range(3):
        started = time.perf_counter()
        _evidently_report(reference[features], current, "psi", PSI_DRIFT_THRESHOLD)
        evidently_s.append(time.perf_counter() - started)
    return {
        "ours_ms": statistics.median(ours) * 1000,
        "evidently_ms": statistics.median(evidently_s) * 1000,
        "rows": DRIFT_WINDOW_ROWS,
        "features": len(features),
    }


def _evidently_report(
    reference: pd.DataFrame, current: pd.DataFrame, method: str | None, threshold: float | None
) -> dict[str, float]:
    """Per-column drift scores of evidently's DataDriftPreset."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from evidently import Report  # type: ignore[import-untyped]
    from evidently.presets import DataDriftPreset  # type: ignore[import-untyped]

    preset = DataDriftPreset(method=method, threshold=threshold)
    snapshot = Report([preset]).run(current_data=current, reference_data=reference)
    scores = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            scores[config["column"]] = float(metric["value"])
    return scores


def agreement_windows(
    reference: pd.DataFrame,
    analysis: pd.DataFrame,
    reference_windows: int = 8,
    factors: tuple[float, ...] = (1.05, 1.1, 1.2, 1.3, 1.5),
) -> list[tuple[str, pd.DataFrame]]:
    rng = np.random.default_rng(7)
    windows = [
        (f"reference-{i}", reference.sample(AGREEMENT_WINDOW_ROWS, random_state=rng))
        for i in range(reference_windows)
    ]
    for factor in factors:
        rows = reference.sample(AGREEMENT_WINDOW_ROWS, random_state=rng)
        windows.append((f"MedInc x{factor}", rows.assign(MedInc=rows["MedInc"] * factor)))
    for start in range(0, len(analysis) - AGREEMENT_WINDOW_ROWS + 1, AGREEMENT_WINDOW_ROWS):
        windows.append((f"analysis-{start}", analysis.iloc[start : start + AGREEMENT_WINDOW_ROWS]))
    return windows


def measure_agreement(
    reference: pd.DataFrame,
    analysis: pd.DataFrame,
    features: list[str],
    bundle_dir: Path,
    windows: list[tuple[str, pd.DataFrame]] | None = None,
    with_ks: bool = True,
) -> dict[str, Any]:
    """Share of (window, feature) drift decisions on which we and evidently agree: PSI > 0.2,
    and (``with_ks``) KS p-value < 0.01."""
    bundle = load_bundle(bundle_dir)
    psi_agree = ks_agree = total = 0
    disagreements = []
    if windows is None:
        windows = agreement_windows(reference, analysis)
    for name, window in windows:
        ours = window_drift(
            bundle.reference, {f: window[f].to_numpy(dtype=float) for f in features}
        )
        theirs_psi = _evidently_report(reference[features], window[features], "psi", 0.2)
        theirs_ks = (
            _evidently_report(reference[features], window[features], "ks", KS_P_VALUE_THRESHOLD)
            if with_ks
            else {}
        )
        for feature in features:
            total += 1
            ours_psi = ours[feature].psi > PSI_DRIFT_THRESHOLD
            their_psi = theirs_psi[feature] >= PSI_DRIFT_THRESHOLD
            psi_agree += ours_psi == their_psi
            if with_ks:
                ours_ks = ours[feature].ks_p_value < KS_P_VALUE_THRESHOLD
                ks_agree += ours_ks == (theirs_ks[feature] < KS_P_VALUE_THRESHOLD)
            if ours_psi != their_psi:
                disagreements.append(
                    {
                        "window": name,
                        "feature": feature,
                        "ours_psi": round(ours[feature].psi, 4),
                        "evidently_psi": round(theirs_psi[feature], 4),
                    }  # fmt: skip
                )
    return {
        "windows": len(windows),
        "decisions": total,
        "psi_agreement": psi_agree / total,
        "ks_agreement": ks_agree / total if with_ks else None,
        "psi_disagreements": disagreements,
    }


def _headline(
    name: str,
    value: float,
    unit: str,
    baseline: float | None,
    baseline_unit: str | None,
    target: str | None,
) -> Headline:
    """A figure measured once, without an interval: a target makes it "unverified" until the
    benchmark repeats it (the model-monitoring issue)."""
    item = headline_figure(
        name, round(value, 2), unit, baseline=None if baseline is None else round(baseline, 3),
        target=target,
    )  # fmt: skip
    if baseline_unit:
        item["baseline_unit"] = baseline_unit
    return item


def run_benchmark(settings: ProjectSettings, *, requests: int, publish: bool) -> Path:
    if publish:
        ensure_quiet_machine()
    conditions = BenchmarkConditions()
    folder = settings.run_dir / "benchmark"
    bundle_dir = ensure_bundle(settings)
    reference, analysis = housing_periods()
    features = load_bundle(bundle_dir).feature_names
    rows = reference[features].sample(requests * BATCH_ROWS, replace=True, random_state=1)
    records = rows.to_dict(orient="records")
    payloads = [{"rows": records[i : i + BATCH_ROWS]} for i in range(0, len(records), BATCH_ROWS)]
    with console.status("predict latency, instrumentation on vs off"):
        merged = measure_http(bundle_dir, folder, payloads)
    overhead = {
        # Paired: the median of (on - off) over requests sent back to back, robust to load
        # that comes and goes on a shared machine.
        "paired_median": merged["paired_median_difference_ms"]["value"] / merged["off"]["p50_ms"],
        "p50": merged["on"]["p50_ms"] / merged["off"]["p50_ms"] - 1,
        "p99": merged["on"]["p99_ms"] / merged["off"]["p99_ms"] - 1,
        "throughput": 1 - merged["on"]["rows_per_s"] / merged["off"]["rows_per_s"],
    }
    request_path = measure_request_path(bundle_dir, folder)
    with console.status("drift computation: ours vs evidently"):
        drift_time = measure_drift_time(reference, analysis, features, bundle_dir)
    with console.status("drift decisions: agreement with evidently"):
        agreement = measure_agreement(reference, analysis, features, bundle_dir)
    speedup = drift_time["evidently_ms"] / drift_time["ours_ms"]
    table = Table(title="model-monitoring benchmark")
    for column in ("figure", "instrumented", "bare / evidently", "ratio"):
        table.add_column(column)
    on, off = merged["on"], merged["off"]
    instrumentation_share = request_path["instrumentation_us"] / request_path["predict_us"]
    rows = [
        ("predict p50 (ms)", f"{on['p50_ms']:.2f}", f"{off['p50_ms']:.2f}",
         f"{overhead['p50']:+.1%}"),
        ("paired median difference (ms)",
         f"{merged['paired_median_difference_ms']['value']:+.3f}", "",
         f"{overhead['paired_median']:+.1%}"),
        ("predict p99 (ms)", f"{on['p99_ms']:.2f}", f"{off['p99_ms']:.2f}",
         f"{overhead['p99']:+.1%}"),
        ("throughput (rows/s)", f"{on['rows_per_s']:.0f}", f"{off['rows_per_s']:.0f}",
         f"{-overhead['throughput']:+.1%}"),
        ("request path per batch (us)", f"{request_path['instrumentation_us']:.0f} (instr.)",
         f"{request_path['predict_us']:.0f} (predict)", f"{instrumentation_share:.1%}"),
        ("drift, 10k rows x 8 (ms)", f"{drift_time['ours_ms']:.1f}",
         f"{drift_time['evidently_ms']:.0f}", f"{speedup:.0f}x faster"),
        ("decision agreement PSI / KS", f"{agreement['psi_agreement']:.1%}",
         f"{agreement['ks_agreement']:.1%}", f"{agreement['decisions']} decisions"),
    ]  # fmt: skip
    for row in rows:
        table.add_row(*row)
    console.print(table)
    writer = ResultsWriter(PROJECT, settings.dist_dir, invocation("model_monitoring"), "benchmark")
    results = {
        "headline": [
            _headline(
                "instrumentation overhead, predict latency (paired median)",
                overhead["paired_median"] * 100,
                "%",
                off["p50_ms"],
                "ms p50 without instrumentation",
                "< 5",
            ),
            _headline(
                "instrumentation cost per batch vs predict_proba (in-process)",
                instrumentation_share * 100,
                "%",
                request_path["predict_us"],
                "us predict_proba per 20-row batch",
                None,
            ),
            _headline(
                "instrumentation overhead, throughput",
                overhead["throughput"] * 100,
                "%",
                off["rows_per_s"],
                "rows/s without instrumentation",
                "< 5",
            ),
            _headline(
                "drift computation speed-up vs evidently (10k rows)",
                speedup,
                "x",
                drift_time["evidently_ms"],
                "ms per evidently report",
                "> 1",
            ),
            _headline(
                "PSI drift decisions agreeing with evidently",
                agreement["psi_agreement"] * 100,
                "%",
                None,
                None,
                None,
            ),
        ],  # fmt: skip
        "batch_rows": BATCH_ROWS,
        "http": {"instrumented": merged["on"], "bare": merged["off"]},
        "overhead": overhead,
        "request_path": request_path,
        "drift_time": drift_time,
        "agreement": agreement,
        "conditions": conditions.finish(),
    }
    path = writer.write(results)
    console.print(f"results -> {path}")
    if publish:
        console.print(f"published -> {publish_benchmark(path)}")
    return path
