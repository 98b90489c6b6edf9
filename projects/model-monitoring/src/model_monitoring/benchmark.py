"""The benchmark, in one run; every part measures its baseline in the same run:

1. instrumentation overhead over HTTP: the same service with MODEL_MONITORING_INSTRUMENTATION on
   and off (the default housing bundle: the cheapest predict, so the least flattering share;
   metrics in multi-process mode, as deployed), two servers called with the same 20-row batches,
   ``repeats`` times: one request at a time for the p50 latency, several in flight for the
   throughput at saturation; the per-repeat figures give paired ratios with t intervals. Plus the
   request path's own instrumentation cost per 20-row batch, in-process in a child process with
   multi-process metrics as served (no interval: a diagnostic);
2. drift computation vs evidently on equal work: both start from the raw reference rows and the
   raw window (ours: reference statistics, then PSI and KS / chi-square per feature; evidently:
   a DataDriftPreset PSI report), imports and a warm-up run outside the timed region, the same
   number of interleaved repeats; the speed-up is a paired ratio with its interval;
3. agreement of drift decisions with evidently (its PSI at the same 0.2 threshold, its KS /
   chi-square tests at the same p-value) reported apart on stable windows (held-out reference
   time) and on drifted windows (the data set's shifts, and the late analysis period's real drift);
4. the replay through the full stack (real Prometheus and Alertmanager, production settings on an
   accelerated clock): a long replay of held-out reference time plus the control gives false
   alerts per production hour with the exact Poisson interval; every scenario at each traffic level
   gives the detection delay in production minutes as a function of traffic.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from roadmap_lab.machine import package_versions
from roadmap_lab.results import (
    BenchmarkConditions,
    Headline,
    ResultsWriter,
    ensure_quiet_machine,
    headline_figure,
    invocation,
    process_tree_cpu_seconds,
    publish_benchmark,
)
from roadmap_lab.services import ManagedProcess, free_port, python_child_env
from roadmap_lab.stats import Interval, paired_ratio, wilson_interval

from model_monitoring import PROJECT
from model_monitoring.bundle import Bundle, load_bundle, reference_statistics
from model_monitoring.datasets import REPLAY_DATASET, housing_periods
from model_monitoring.demo import (
    ReplayData,
    chosen_scenarios,
    ensure_bundle,
    false_alert_figure,
    in_order_false_alert_figure,
    phase_summary,
    replay_data,
)
from model_monitoring.drift import P_VALUE_THRESHOLD, PSI_DRIFT_THRESHOLD, window_drift
from model_monitoring.errors import ModelMonitoringError
from model_monitoring.metrics import MULTIPROC_ENV
from model_monitoring.replay import (
    CONTROL,
    PhaseResult,
    Replay,
    ReplayPlan,
    Scenario,
    ScenarioRows,
    attribute_alerts,
    fired_alerts,
    verify_detections,
)
from model_monitoring.settings import ENV_PREFIX, ProjectSettings
from model_monitoring.stack import monitoring_stack

console = Console()
BATCH_ROWS = 20
# Requests in flight for the throughput: enough to keep one uvicorn worker busy.
CLIENT_THREADS = 4
AGREEMENT_WINDOW_ROWS = 2000  # the production drift window
# Shifts whose windows count as drifted for the agreement (see comparable_shift).
AGREEMENT_SHIFTS = ("scale", "subpopulation", "prior", "category")
# Milder versions of the first scale shift, near the PSI threshold, where the two disagree most.
MILD_FACTORS = (1.05, 1.1, 1.2)
OVERHEAD_TARGET = "< 5"
SPEEDUP_TARGET = ">= 5"
# The targeted false-alert figure counts only held-out time in order; every no-drift hour
# (resampled passes and the control included) is reported beside it without a target.
IN_ORDER_FALSE_ALERTS = "false alerts per production hour, held-out time in order"
ALL_FALSE_ALERTS = (
    "false alerts per production hour, held-out rows incl. resampled passes + control"
)


@dataclass(frozen=True)
class BenchmarkSizes:
    repeats: int = 10  # overhead: paired repeats
    requests: int = 300  # overhead: requests per server per repeat
    drift_repeats: int = 10
    drift_window_rows: int = 10_000
    agreement_windows: int = 10  # stable windows, and as many drifted ones
    traffic: tuple[float, ...] = (2.0, 5.0, 20.0)  # production rows per second
    held_out_hours: float = 6.0  # production hours of held-out reference time
    # The highest traffic level: the most drift windows per hour, so the least flattering rate.
    held_out_rows_per_second: float = 20.0
    control_minutes: float = 30.0
    clock: float = 60.0
    scenarios: tuple[str, ...] | None = None  # None: all of the data set's
    dataset: str = REPLAY_DATASET


# --- 1. instrumentation overhead ----------------------------------------------------------------


@contextlib.contextmanager
def service_process(
    bundle_dir: Path, folder: Path, *, instrumentation: bool
) -> Iterator[tuple[str, ManagedProcess]]:
    """One uvicorn worker serving the bundle; yields its URL and process (for its CPU time). It
    keeps its metrics in multi-process mode, as `serve --workers N` and the image do: each update
    writes to a memory-mapped file, which costs more than the single-process default."""
    port = free_port()
    multiproc = folder / "multiproc"
    shutil.rmtree(multiproc, ignore_errors=True)
    multiproc.mkdir(parents=True)
    env = python_child_env(**{
        MULTIPROC_ENV: str(multiproc.resolve()),
        f"{ENV_PREFIX}BUNDLE_DIR": str(bundle_dir.resolve()),
        f"{ENV_PREFIX}LOG_DIR": str((folder / "predictions").resolve()),
        f"{ENV_PREFIX}INSTRUMENTATION": str(instrumentation).lower(),
    })  # fmt: skip
    argv = [sys.executable, "-m", "uvicorn", "model_monitoring.service:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with ManagedProcess(argv, name="benchmark service", log_path=folder / "service.log",
                        ready=f"{url}/health/ready", env=env, cwd=folder) as process:  # fmt: skip
        yield url, process


def measure_overhead(
    bundle_dir: Path,
    folder: Path,
    payloads: list[dict[str, Any]],
    repeats: int,
    conditions: BenchmarkConditions,
) -> dict[str, Any]:
    """Both servers side by side. Each repeat measures latency (one request at a time, the two
    servers called alternately, the order flipping every request: both see the same load from the
    rest of the machine), then throughput at saturation (``CLIENT_THREADS`` requests in flight,
    one server after the other, the order flipping every repeat)."""
    latencies: dict[str, list[list[float]]] = {"on": [], "off": []}
    throughput: dict[str, list[float]] = {"on": [], "off": []}
    with contextlib.ExitStack() as stack:
        servers = {
            mode: stack.enter_context(
                service_process(bundle_dir, folder / mode, instrumentation=mode == "on")
            )
            for mode in ("on", "off")
        }
        clients = {mode: stack.enter_context(httpx.Client(base_url=url, timeout=30))
                   for mode, (url, _) in servers.items()}  # fmt: skip
        for body in payloads[:50]:  # warm-up
            for client in clients.values():
                client.post("/predict", json=body).raise_for_status()
        cpu = {mode: process_tree_cpu_seconds(server.pid) for mode, (_, server) in servers.items()}
        for repeat in range(repeats):
            run: dict[str, list[float]] = {"on": [], "off": []}
            for index, body in enumerate(payloads):
                for mode in ("on", "off") if (index + repeat) % 2 else ("off", "on"):
                    sent = time.perf_counter()
                    reply = clients[mode].post("/predict", json=body)
                    run[mode].append(time.perf_counter() - sent)
                    reply.raise_for_status()
            for mode in run:
                latencies[mode].append(run[mode])
            for mode in ("on", "off") if repeat % 2 else ("off", "on"):
                throughput[mode].append(saturated_rows_per_s(clients[mode], payloads))
        for mode, (_, process) in servers.items():
            used = process_tree_cpu_seconds(process.pid) - cpu[mode]
            conditions.add_cpu(f"service, instrumentation {mode}", used)
    p50 = {mode: [statistics.median(run) * 1000 for run in runs]
           for mode, runs in latencies.items()}  # fmt: skip
    return {
        "latency": paired_ratio(p50["on"], p50["off"]).map(lambda r: 100 * (r - 1)),
        # off / on throughput: 1 - 1/that is the share of throughput the instrumentation costs.
        "throughput": paired_ratio(throughput["off"], throughput["on"]).map(
            lambda r: 100 * (1 - 1 / r)
        ),
        "p50_ms": p50,
        "rows_per_s": throughput,
        "p99_ms": {mode: [float(np.percentile(run, 99)) * 1000 for run in runs]
                   for mode, runs in latencies.items()},  # fmt: skip
    }


def saturated_rows_per_s(client: httpx.Client, payloads: list[dict[str, Any]]) -> float:
    """Rows per second with ``CLIENT_THREADS`` requests in flight until every payload is served."""

    def post(body: dict[str, Any]) -> None:
        client.post("/predict", json=body).raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        list(pool.map(post, payloads))
    return len(payloads) * BATCH_ROWS / (time.perf_counter() - started)


def measure_request_path(bundle_dir: Path, folder: Path) -> dict[str, float]:
    """The request path's own costs per 20-row batch, in-process, in a child process whose metrics
    are in multi-process mode as served (prometheus-client picks the mode when it is imported):
    see ``request_path_costs``. A diagnostic, without an interval."""
    multiproc = folder / "in-process" / "multiproc"
    shutil.rmtree(multiproc, ignore_errors=True)
    multiproc.mkdir(parents=True)
    code = (
        "import json, sys; from model_monitoring.benchmark import request_path_costs; "
        "print(json.dumps(request_path_costs(*sys.argv[1:])))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(bundle_dir.resolve()), str(folder.resolve())],
        env=python_child_env(**{MULTIPROC_ENV: str(multiproc.resolve())}),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        raise ModelMonitoringError(f"the in-process request path run failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def request_path_costs(bundle_dir: str, folder: str, batches: int = 500) -> dict[str, float]:
    """Medians per 20-row batch: predict_proba, and the instrumentation of one predict request
    (the monitor's per-batch metrics and log line, the middleware's request count and latency)."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    from model_monitoring.metrics import ServiceMetrics
    from model_monitoring.middleware import RequestRecorder
    from model_monitoring.monitor import Monitor

    bundle = load_bundle(Path(bundle_dir))
    settings = ProjectSettings(run_dir=Path(folder) / "in-process")
    metrics = ServiceMetrics(bundle.feature_names, bundle.classes)
    monitor = Monitor(bundle, settings, metrics)
    recorder = RequestRecorder(metrics)
    reference, _ = housing_periods()
    x = reference[bundle.feature_names].to_numpy(dtype=float)
    batches = min(batches, len(x) // BATCH_ROWS)
    predict_s, instrument_s = [], []
    with threadpool_limits(1):
        for index in range(batches):
            rows = x[index * BATCH_ROWS : (index + 1) * BATCH_ROWS]
            ids = [f"b{index}-{i}" for i in range(len(rows))]  # the route's work, on or off
            started = time.perf_counter()
            proba = bundle.pipeline.predict_proba(rows)[:, 1]
            predicted = (proba >= 0.5).astype(np.int64)
            confidence = np.where(predicted == 1, proba, 1 - proba)
            middle = time.perf_counter()
            monitor.observe_batch(bundle.version, ids, rows, [], predicted, confidence)
            recorder.record("/predict", 200, middle - started)
            instrument_s.append(time.perf_counter() - middle)
            predict_s.append(middle - started)
    monitor.close()
    return {
        "predict_us": statistics.median(predict_s) * 1e6,
        "instrumentation_us": statistics.median(instrument_s) * 1e6,
    }


# --- 2. and 3. drift computation vs evidently -----------------------------------------------------


def evidently_scores(
    reference: pd.DataFrame, current: pd.DataFrame, bundle: Bundle, method: str
) -> dict[str, float]:
    """Per-column drift values of evidently's DataDriftPreset: PSI (``method="psi"``) or the
    p-values of KS (numeric) and chi-square (categorical) (``method="tests"``)."""
    from evidently import DataDefinition, Dataset, Report  # type: ignore[import-untyped]
    from evidently.presets import DataDriftPreset  # type: ignore[import-untyped]

    numeric = [spec.name for spec in bundle.numeric]
    categorical = [spec.name for spec in bundle.categorical]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    if method == "psi":
        preset = DataDriftPreset(method="psi", threshold=PSI_DRIFT_THRESHOLD)
    else:
        preset = DataDriftPreset(
            num_method="ks", cat_method="chisquare",
            num_threshold=P_VALUE_THRESHOLD, cat_threshold=P_VALUE_THRESHOLD,
        )  # fmt: skip
    columns = numeric + categorical
    snapshot = Report([preset]).run(
        current_data=Dataset.from_pandas(current[columns], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    return {
        metric["config"]["column"]: float(metric["value"])
        for metric in snapshot.dict()["metrics"]
        if metric["config"].get("type", "").endswith("ValueDrift")
    }


def window_columns(window: pd.DataFrame, bundle: Bundle) -> dict[str, np.ndarray]:
    return {
        spec.name: window[spec.name].to_numpy(dtype=object if spec.categorical else float)
        for spec in bundle.features
    }


def our_drift_from_raw(reference: pd.DataFrame, window: pd.DataFrame, bundle: Bundle) -> Any:
    """Everything from the raw rows: the reference statistics, then the window's drift."""
    return window_drift(reference_statistics(reference, bundle.features),
                        window_columns(window, bundle))  # fmt: skip


def measure_drift_speed(
    reference: pd.DataFrame, window: pd.DataFrame, bundle: Bundle, repeats: int,
    conditions: BenchmarkConditions,
) -> dict[str, Any]:  # fmt: skip
    sides: dict[str, Callable[[], Any]] = {
        "ours": lambda: our_drift_from_raw(reference, window, bundle),
        "evidently": lambda: evidently_scores(reference, window, bundle, "psi"),
    }
    for run in sides.values():  # imports and first-call caches stay out of the timed region
        run()
    seconds: dict[str, list[float]] = {"ours": [], "evidently": []}
    cpu: dict[str, float] = {"ours": 0.0, "evidently": 0.0}
    for repeat in range(repeats):
        for side in ("ours", "evidently") if repeat % 2 == 0 else ("evidently", "ours"):
            cpu_started, started = time.process_time(), time.perf_counter()
            sides[side]()
            seconds[side].append(time.perf_counter() - started)
            cpu[side] += time.process_time() - cpu_started
    for side, used in cpu.items():
        conditions.add_cpu(f"drift computation, {side} (in the benchmark process)", used)
    return {
        "speedup": paired_ratio(seconds["evidently"], seconds["ours"]),
        "seconds": seconds,
        "reference_rows": len(reference),
        "window_rows": len(window),
        "features": len(bundle.features),
    }


def agreement_windows(
    held_out: pd.DataFrame, analysis: pd.DataFrame, scenarios: list[Scenario], bundle: Bundle,
    count: int, seed: int = 7,
) -> list[tuple[str, str, pd.DataFrame]]:  # fmt: skip
    """(group, name, window): ``count`` stable windows of held-out reference time, in time order,
    and ``count`` drifted ones: the data set's shifts, milder versions of its first scale shift,
    then the analysis period's last windows (real drift)."""
    rows = AGREEMENT_WINDOW_ROWS
    windows = [
        ("stable", f"held-out {start}", held_out.iloc[start : start + rows])
        for start in range(0, len(held_out) - rows + 1, rows)
    ][:count]
    sampler = ScenarioRows(held_out, bundle, seed)
    shifts = [s for s in scenarios if comparable_shift(s, bundle)]
    scaled = next((s for s in shifts if s.shift == "scale"), None)
    if scaled is not None:
        shifts += [replace(scaled, name=f"{scaled.name} x{factor}",
                           params={**scaled.params, "factor": factor})
                   for factor in MILD_FACTORS]  # fmt: skip
    drifted = [("drifted", s.name, sampler.draw(rows, s, shifted=rows)) for s in shifts]
    late = range(len(analysis) - rows, -1, -rows)  # from the end of the analysis period
    drifted += [("drifted", f"analysis {start}", analysis.iloc[start : start + rows])
                for start in late]  # fmt: skip
    return windows + drifted[:count]


def comparable_shift(scenario: Scenario, bundle: Bundle) -> bool:
    """A shift both sides score alike: not missing values, not a category the reference never
    saw (our PSI leaves both out by design, evidently's does not)."""
    if scenario.shift not in AGREEMENT_SHIFTS:
        return False
    if scenario.shift != "category":
        return True
    spec = next(spec for spec in bundle.features if spec.name == scenario.params["feature"])
    return scenario.params["category"] in (spec.categories or ())


def measure_agreement(
    reference: pd.DataFrame, windows: list[tuple[str, str, pd.DataFrame]], bundle: Bundle
) -> dict[str, Any]:
    """Per group: the share of (window, feature) decisions on which we and evidently agree, for
    PSI > 0.2 and for the test (KS or chi-square) at p < 0.01, each with a Wilson interval. Most
    features of a drifted window are not shifted, and "no drift" from both is an easy agreement:
    the decisions that at least one side flagged, and how many of those agree, are counted apart."""
    statistics_ = reference_statistics(reference, bundle.features)
    counts: dict[str, dict[str, int]] = {}
    disagreements = []
    for group, name, window in windows:
        ours = window_drift(statistics_, window_columns(window, bundle))
        psi = evidently_scores(reference, window, bundle, "psi")
        tests = evidently_scores(reference, window, bundle, "tests")
        tally = counts.setdefault(group, dict.fromkeys(
            ("decisions", "psi", "test", "psi_flagged", "psi_flagged_agree", "test_flagged",
             "test_flagged_agree"), 0))  # fmt: skip
        for feature, result in ours.items():
            tally["decisions"] += 1
            decisions = {
                "psi": (result.drifted, psi[feature] >= PSI_DRIFT_THRESHOLD),
                "test": (result.p_value < P_VALUE_THRESHOLD, tests[feature] < P_VALUE_THRESHOLD),
            }
            for kind, (our_flag, their_flag) in decisions.items():
                tally[kind] += our_flag == their_flag
                if our_flag or their_flag:
                    tally[f"{kind}_flagged"] += 1
                    tally[f"{kind}_flagged_agree"] += our_flag == their_flag
            if any(a != b for a, b in decisions.values()):
                disagreements.append({
                    "group": group, "window": name, "feature": feature,
                    "ours_psi": round(result.psi, 4), "evidently_psi": round(psi[feature], 4),
                    "ours_p": result.p_value, "evidently_p": tests[feature], "test": result.test,
                })  # fmt: skip
    return {
        "groups": {
            group: {
                "windows": sum(1 for g, _, _ in windows if g == group),
                "decisions": tally["decisions"],
                "psi": wilson_interval(tally["psi"], tally["decisions"]),
                "test": wilson_interval(tally["test"], tally["decisions"]),
                **{key: tally[key] for key in tally if "flagged" in key},
            }
            for group, tally in counts.items()
        },
        "disagreements": disagreements,
    }


# --- 4. the replay: false alerts on held-out time, detection delay vs traffic ----------------


@dataclass
class ReplayFigures:
    no_drift: list[PhaseResult]  # held-out time and the control
    by_rate: dict[float, list[PhaseResult]]  # the scenarios at each traffic level


def measure_replay(
    data: ReplayData, scenarios: list[Scenario], sizes: BenchmarkSizes, folder: Path, seed: int
) -> ReplayFigures:
    """One stack: the long held-out replay and the control, then every scenario at each traffic
    level (each scenario ends after a whole clean drift window and once Prometheus holds no model
    alert, so the next starts clean)."""
    plan = ReplayPlan(
        rows_per_second=sizes.held_out_rows_per_second,
        held_out_hours=sizes.held_out_hours,
        control_minutes=sizes.control_minutes,
    )
    with monitoring_stack(folder / "stack", data.bundle_dir, clock=sizes.clock) as stack:
        replay = Replay(stack, data.bundle, data.held_out, [], plan, seed=seed)
        no_drift = [replay.held_out_phase(), replay.scenario_phase(CONTROL, plan.control_minutes)]
        replay.close()
        by_rate: dict[float, list[PhaseResult]] = {}
        for rate in sizes.traffic:
            replay = Replay(stack, data.bundle, data.held_out, scenarios,
                            ReplayPlan(rows_per_second=rate), seed=seed)  # fmt: skip
            by_rate[rate] = [replay.scenario_phase(s, replay.plan.timeout_minutes)
                             for s in scenarios]  # fmt: skip
            replay.close()
        notifications = stack.receiver.snapshot()
    every_phase = no_drift + [p for phases in by_rate.values() for p in phases]
    attribute_alerts(every_phase, fired_alerts(notifications))
    verify_detections(every_phase, sizes.clock)
    return ReplayFigures(no_drift, by_rate)


def delay_table(by_rate: dict[float, list[PhaseResult]], clock: float) -> str:
    """Markdown: production minutes from shift to the named alert, per scenario and traffic."""
    rates = sorted(by_rate)
    header = "| scenario (named alert) | " + " | ".join(f"{r:g} rows/s" for r in rates) + " |"
    lines = [header, "|---|" + "---|" * len(rates)]
    for index, phase in enumerate(by_rate[rates[0]]):
        cells = [f"{_minutes(by_rate[r][index], clock):.1f}" for r in rates]
        lines.append(f"| {phase.name} ({phase.expected}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _minutes(phase: PhaseResult, clock: float) -> float:
    return (phase.detection_delay_s or float("nan")) * clock / 60


# --- the run ------------------------------------------------------------------------------------


def run_benchmark(settings: ProjectSettings, sizes: BenchmarkSizes, *, publish: bool) -> Path:
    if len(set(sizes.traffic)) < 3:
        raise ModelMonitoringError("the detection delay needs at least three --traffic levels")
    if publish:
        ensure_quiet_machine()
    os.environ.setdefault("DO_NOT_TRACK", "1")  # evidently's usage telemetry
    conditions = BenchmarkConditions()
    folder = settings.run_dir / "benchmark"
    housing_dir = ensure_bundle(settings)
    housing = load_bundle(housing_dir)
    reference, _ = housing_periods()
    rows = reference[housing.feature_names].sample(sizes.requests * BATCH_ROWS, replace=True,
                                                   random_state=1)  # fmt: skip
    records = rows.to_dict(orient="records")
    payloads = [{"rows": records[i : i + BATCH_ROWS]} for i in range(0, len(records), BATCH_ROWS)]
    with console.status("instrumentation overhead: on vs off"):
        overhead = measure_overhead(housing_dir, folder, payloads, sizes.repeats, conditions)
        request_path = measure_request_path(housing_dir, folder)
    with console.status("training the replay's bundle"):
        data = replay_data(sizes.dataset, folder / "replay" / "bundle", settings.seed)
    scenarios = chosen_scenarios(sizes.dataset, data.bundle, sizes.scenarios)
    window = data.held_out.sample(min(sizes.drift_window_rows, len(data.held_out)), random_state=0)
    with console.status("drift computation: ours vs evidently, both from raw rows"):
        speed = measure_drift_speed(data.fit, window, data.bundle, sizes.drift_repeats, conditions)
    with console.status("drift decisions: agreement with evidently"):
        windows = agreement_windows(data.held_out, data.analysis, scenarios, data.bundle,
                                    sizes.agreement_windows)  # fmt: skip
        agreement = measure_agreement(data.fit, windows, data.bundle)
    with console.status("replay: held-out time, control, scenarios at each traffic level"):
        replay = measure_replay(data, scenarios, sizes, folder / "replay", settings.seed)
    headline = _headline(overhead, request_path, speed, agreement, replay, sizes)
    table = delay_table(replay.by_rate, sizes.clock)
    _print_tables(headline, table)
    writer = ResultsWriter(PROJECT, settings.dist_dir, invocation("model_monitoring"), "benchmark")
    path = writer.write({
        "headline": headline,
        "sizes": asdict(sizes),
        "versions": package_versions("evidently", "scikit-learn", "prometheus-client", "uvicorn"),
        "overhead": {key: overhead[key] for key in ("p50_ms", "p99_ms", "rows_per_s")},
        "request_path": request_path,
        "drift_speed": {key: value for key, value in speed.items() if key != "speedup"},
        "agreement": {
            "windows": [[group, name] for group, name, _ in windows],
            "disagreements": agreement["disagreements"],
        },
        "replay": {
            "clock": sizes.clock,
            "no_drift_phases": [phase_summary(p, sizes.clock) for p in replay.no_drift],
            "by_rate": {f"{rate:g}": [phase_summary(p, sizes.clock) for p in phases]
                        for rate, phases in replay.by_rate.items()},  # fmt: skip
            "detection_delay_table": table,
        },
        "conditions": conditions.finish(),
    })  # fmt: skip
    console.print(f"results -> {path}")
    if publish:
        console.print(f"published -> {publish_benchmark(path)}")
    return path


def _headline(
    overhead: dict[str, Any], request_path: dict[str, float], speed: dict[str, Any],
    agreement: dict[str, Any], replay: ReplayFigures, sizes: BenchmarkSizes,
) -> list[Headline]:  # fmt: skip
    off_p50 = statistics.median(overhead["p50_ms"]["off"])
    off_rows = statistics.median(overhead["rows_per_s"]["off"])
    evidently_ms = statistics.median(speed["seconds"]["evidently"]) * 1000
    headline = [
        _percent("instrumentation overhead, predict latency (paired p50)", overhead["latency"],
                 round(off_p50, 3), "ms p50 without instrumentation", OVERHEAD_TARGET),
        _percent("instrumentation overhead, throughput", overhead["throughput"],
                 round(off_rows), "rows/s without instrumentation", OVERHEAD_TARGET),
        headline_figure(
            "instrumentation cost per batch vs predict_proba (in-process)",
            round(100 * request_path["instrumentation_us"] / request_path["predict_us"], 1), "%",
            baseline=round(request_path["predict_us"]),
            baseline_unit="us predict_proba per 20-row batch",
        ),
        headline_figure(
            "drift computation speed-up vs evidently (equal work, from raw rows)", None, "x",
            baseline=round(evidently_ms, 1), target=SPEEDUP_TARGET, interval=speed["speedup"],
            digits=2, baseline_unit="ms per evidently report",
            repeats=len(speed["seconds"]["ours"]),
        ),
    ]  # fmt: skip
    for group, found in agreement["groups"].items():
        for test, label in (("psi", "PSI"), ("test", "KS / chi-square")):
            headline.append(headline_figure(
                f"{label} decisions agreeing with evidently, {group} windows", None, "%",
                interval=found[test].map(lambda share: 100 * share), digits=1,
                decisions=found["decisions"], windows=found["windows"],
                flagged_by_either=found[f"{test}_flagged"],
                flagged_and_agreeing=found[f"{test}_flagged_agree"],
            ))  # fmt: skip
    headline.append(in_order_false_alert_figure(
        IN_ORDER_FALSE_ALERTS, replay.no_drift, sizes.clock, sizes.held_out_rows_per_second,
    ))  # fmt: skip
    headline.append(false_alert_figure(
        ALL_FALSE_ALERTS, replay.no_drift, sizes.clock, sizes.held_out_rows_per_second,
        target=None,
    ))  # fmt: skip
    for rate, phases in sorted(replay.by_rate.items()):
        minutes = [_minutes(p, sizes.clock) for p in phases]
        headline.append(headline_figure(
            f"detection delay at {rate:g} production rows/s (median of {len(phases)} scenarios)",
            round(statistics.median(minutes), 1), "production min",
            slowest=round(max(minutes), 1),
        ))  # fmt: skip
    return headline


def _percent(
    name: str, interval: Interval, baseline: float, baseline_unit: str, target: str
) -> Headline:
    return headline_figure(name, None, "%", baseline=baseline, target=target, interval=interval,
                           digits=2, baseline_unit=baseline_unit)  # fmt: skip


def _print_tables(headline: list[Headline], delay_markdown: str) -> None:
    table = Table(title="model-monitoring benchmark")
    for column in ("figure", "value [interval]", "baseline", "target", "verdict"):
        table.add_column(column)
    for item in headline:
        interval = item.get("interval")
        bounds = f" [{interval['low']:g}, {interval['high']:g}]" if interval else ""
        table.add_row(item["name"], f"{item['value']}{bounds} {item['unit']}",
                      f"{item.get('baseline') or ''} {item.get('baseline_unit', '')}",
                      item.get("target") or "", item.get("verdict") or "")  # fmt: skip
    console.print(table)
    console.print("Detection delay (production minutes) by traffic, for the README:")
    console.print(delay_markdown, markup=False)
