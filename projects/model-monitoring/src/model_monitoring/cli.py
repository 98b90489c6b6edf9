"""Command line: train, rebaseline, serve, receiver, scaled-config, replay, demo, benchmark.

python -m model_monitoring train                         # embedded default: California housing
python -m model_monitoring train --dataset car-loan      # a data set by its datasets/*.toml
python -m model_monitoring train --data my.csv --target churned --timestamp ts \\
    --categorical plan --start 2024-01-01 --end 2024-04-01 --output runs/my-bundle
python -m model_monitoring rebaseline --data recent.csv --timestamp ts --start 2024-06-01
python -m model_monitoring serve --workers 2             # PROMETHEUS_MULTIPROC_DIR set for you
python -m model_monitoring receiver --port 9095          # the Alertmanager webhook receiver
python -m model_monitoring scaled-config --clock 30 --output runs/scaled
python -m model_monitoring replay --dataset car-loan     # full stack + scenarios + HTML report
python -m model_monitoring demo                          # the showcase's run, <= 3 min
python -m model_monitoring benchmark --publish
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from roadmap_lab.cli import (
    DistDirOption,
    PublishOption,
    RunDirOption,
    cli_errors,
    given,
    lab_app,
)

from model_monitoring import PROJECT
from model_monitoring.settings import ENV_PREFIX, ProjectSettings

app = lab_app(
    "A monitored model service: train a bundle, serve it with Prometheus metrics and drift "
    "detection, replay drift scenarios through Prometheus and Alertmanager.",
    PROJECT,
    quiet_loggers=("uvicorn.access", "roadmap_lab.services"),
)
console = Console()

BundleDir = Annotated[Path | None, typer.Option(help="Bundle folder (default: <run-dir>/bundle).")]
DataCsv = Annotated[
    Path | None, typer.Option("--data", help="CSV file (default: the embedded housing data).")
]
DatasetName = Annotated[
    str | None,
    typer.Option("--dataset", help="A data set of datasets/<name>.toml: housing, car-loan."),
]
TimestampCol = Annotated[str | None, typer.Option("--timestamp", help="Timestamp column.")]
WindowStart = Annotated[str | None, typer.Option(help="Reference window start (inclusive).")]
WindowEnd = Annotated[str | None, typer.Option(help="Reference window end (exclusive).")]


@app.command()
def train(
    data: DataCsv = None,
    dataset: DatasetName = None,
    target: Annotated[str | None, typer.Option(help="Binary target column.")] = None,
    timestamp: TimestampCol = None,
    features: Annotated[
        list[str] | None,
        typer.Option("--feature", help="Feature column (repeat; default: all but id/target)."),
    ] = None,
    categorical: Annotated[
        list[str] | None,
        typer.Option(
            "--categorical",
            help="A numeric-coded column to treat as categorical (repeat; text and boolean "
            "columns are categorical anyway).",
        ),
    ] = None,
    start: WindowStart = None,
    end: WindowEnd = None,
    output: BundleDir = None,
    run_dir: RunDirOption = None,
) -> None:
    """Train a bundle (pipeline, feature schema, reference statistics) on a reference window.

    Without --data or --dataset: nannyml's California housing, reference period."""
    with cli_errors():
        from model_monitoring.bundle import read_csv, train_bundle
        from model_monitoring.datasets import DEFAULT_DATASET, dataset_config, load_periods
        from model_monitoring.errors import ModelMonitoringError

        settings = ProjectSettings(**given(run_dir=run_dir, bundle_dir=output))
        if data is not None and dataset is not None:
            raise ModelMonitoringError("give --data or --dataset, not both")
        if data is None:
            config = dataset_config(dataset or DEFAULT_DATASET)
            frame = load_periods(config.name)[0]
            target = target or config.target
            timestamp = timestamp or config.timestamp
            features = features or config.features
            categorical = categorical or config.categorical
        else:
            if target is None:
                raise ModelMonitoringError("--target is required with --data")
            frame = read_csv(data)
        assert target is not None
        folder = settings.resolved_bundle_dir()
        with console.status("training"):
            bundle = train_bundle(
                frame,
                target=target,
                output=folder,
                timestamp=timestamp,
                features=features,
                categorical=categorical,
                start=start,
                end=end,
                seed=settings.seed,
            )
        ref = bundle.prediction_reference
        console.print(
            f"bundle {bundle.version} -> {folder}: {len(bundle.features)} features "
            f"({len(bundle.categorical)} categorical), {bundle.reference_window['rows']} "
            f"reference rows; validation accuracy {ref.accuracy:.3f}, AUC {ref.auc:.3f}, "
            f"mean confidence {ref.confidence_mean:.3f}"
        )


@app.command()
def rebaseline(
    data: DataCsv = None,
    timestamp: TimestampCol = None,
    start: WindowStart = None,
    end: WindowEnd = None,
    bundle_dir: BundleDir = None,
    run_dir: RunDirOption = None,
) -> None:
    """Recompute the bundle's reference statistics from a new window (after a retrain, or when
    the reference period moves). A running service's drift job picks it up by itself."""
    with cli_errors():
        from model_monitoring.bundle import read_csv
        from model_monitoring.bundle import rebaseline as rebaseline_bundle
        from model_monitoring.datasets import default_training_frame

        settings = ProjectSettings(**given(run_dir=run_dir, bundle_dir=bundle_dir))
        if data is None:
            frame, defaults = default_training_frame()
            timestamp = timestamp or defaults["timestamp"]
        else:
            frame = read_csv(data)
        bundle = rebaseline_bundle(
            settings.resolved_bundle_dir(), frame, timestamp=timestamp, start=start, end=end
        )
        window = bundle.reference_window
        console.print(
            f"bundle {bundle.version}: reference now {window['rows']} rows "
            f"({window.get('start', '')} .. {window.get('end', '')})"
        )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes.", min=1)] = 1,
    bundle_dir: BundleDir = None,
    run_dir: RunDirOption = None,
    registered_model: Annotated[
        str | None,
        typer.Option(
            help="Serve models:/NAME@champion from the MLflow registry (MODEL_MONITORING_"
            "TRACKING_URI) and follow the alias, instead of the trained bundle."
        ),
    ] = None,
) -> None:
    """Serve the bundle (trained from the embedded data first when missing), or a registry
    model's alias, followed while serving."""
    with cli_errors():
        import uvicorn

        from model_monitoring.bundle import BUNDLE_FILE
        from model_monitoring.demo import ensure_bundle
        from model_monitoring.metrics import MULTIPROC_ENV
        from model_monitoring.registry import sync

        settings = ProjectSettings(
            **given(run_dir=run_dir, bundle_dir=bundle_dir, registered_model=registered_model)
        )
        folder = settings.resolved_bundle_dir()
        if settings.registered_model:
            # The alias must resolve now (the registry reached, the alias set) or nothing starts.
            sync(settings)
            os.environ[f"{ENV_PREFIX}REGISTERED_MODEL"] = settings.registered_model
        else:
            if not (folder / BUNDLE_FILE).is_file():
                console.print(f"no bundle at {folder}: training the embedded default")
            ensure_bundle(settings)
        os.environ[f"{ENV_PREFIX}BUNDLE_DIR"] = str(folder.resolve())
        os.environ[f"{ENV_PREFIX}LOG_DIR"] = str(settings.resolved_log_dir().resolve())
        if workers > 1 or os.environ.get(MULTIPROC_ENV):
            # Several workers share their metrics through files; stale files of a previous run
            # would be summed in (uvicorn has no child-exit hook), so start from an empty folder.
            multiproc = Path(os.environ.get(MULTIPROC_ENV) or settings.run_dir / "multiproc")
            shutil.rmtree(multiproc, ignore_errors=True)
            multiproc.mkdir(parents=True)
            os.environ[MULTIPROC_ENV] = str(multiproc.resolve())
        # SIGTERM: stop accepting, let in-flight requests finish (up to the grace), then exit.
        uvicorn.run(
            "model_monitoring.service:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=settings.access_log,
            timeout_graceful_shutdown=settings.graceful_shutdown_s,
        )


@app.command()
def receiver(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.", min=1, max=65535)] = 9095,
    record_file: Annotated[
        Path, typer.Option(help="JSON lines file that records every notification.")
    ] = Path("runs/model-monitoring/notifications.jsonl"),
) -> None:
    """The Alertmanager webhook receiver: records every notification (POST /<receiver>) and
    lists them (GET /notifications)."""
    with cli_errors():
        from model_monitoring.alerting import AlertReceiver

        with AlertReceiver(port=port, host=host, record_file=record_file) as running:
            console.print(f"receiving on {running.url}, recording to {record_file}")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)


@app.command("scaled-config")
def scaled_config(
    clock: Annotated[float, typer.Option(help="Clock factor (30: 30x faster).", min=1)] = 30.0,
    output: Annotated[Path, typer.Option(help="Folder to write into.")] = Path(
        "runs/model-monitoring/scaled"
    ),
    service: Annotated[str, typer.Option(help="Service host:port.")] = "127.0.0.1:8000",
    alertmanager_target: Annotated[
        str, typer.Option("--alertmanager", help="Alertmanager host:port.")
    ] = "127.0.0.1:9093",
    receiver_url: Annotated[str, typer.Option(help="Webhook receiver URL.")] = (
        "http://127.0.0.1:9095"
    ),
) -> None:
    """Write prometheus.yml, the rules and alertmanager.yml scaled to an accelerated clock."""
    with cli_errors():
        from roadmap_lab.results import atomic_write_text

        from model_monitoring.alerting import scaled_alertmanager_config, scaled_prometheus_config
        from model_monitoring.stack import write_scaled_configs, yaml_dump

        prom, rules_path, manager = write_scaled_configs(output, clock)
        prom_scaled = scaled_prometheus_config(prom, clock, [service], alertmanager_target)
        prom_scaled["rule_files"] = [rules_path.name]
        atomic_write_text(output / "prometheus.yml", yaml_dump(prom_scaled))
        atomic_write_text(
            output / "alertmanager.yml",
            yaml_dump(scaled_alertmanager_config(manager, clock, receiver_url)),
        )
        console.print(f"scaled configs (clock x{clock:g}) -> {output}")


@app.command()
def replay(
    dataset: DatasetName = None,
    clock: Annotated[float, typer.Option(help="Clock factor of the stack.", min=1)] = 60.0,
    rows_per_second: Annotated[
        float, typer.Option(help="Traffic in production rows per second.", min=0.1)
    ] = 20.0,
    held_out_hours: Annotated[
        float | None,
        typer.Option(
            help="Production hours of held-out reference time (default: each held-out row once; "
            "more resamples the held-out part).",
            min=0.01,
        ),
    ] = None,
    control_minutes: Annotated[
        float, typer.Option(help="Production minutes of the no-drift control.", min=0.1)
    ] = 10.0,
    workers: Annotated[int, typer.Option(help="Service workers.", min=1)] = 2,
    scenario: Annotated[
        list[str] | None, typer.Option(help="Scenario to run (repeat; default: all).")
    ] = None,
    analysis_rows: Annotated[
        int | None,
        typer.Option(help="Rows of the analysis period to stream last (default: all).", min=0),
    ] = None,
    output: Annotated[Path, typer.Option(help="Report folder.")] = Path(
        "runs/model-monitoring/replay"
    ),
    run_dir: RunDirOption = None,
) -> None:
    """Train a bundle on the first part of a data set's reference period, start the full stack
    (service, Prometheus, Alertmanager, receiver) on an accelerated clock, replay the held-out
    part, a no-drift control, the scenarios and the analysis period, and write an HTML report.
    Exits 2 when a scenario's named alert never fired."""
    with cli_errors():
        from model_monitoring.datasets import REPLAY_DATASET
        from model_monitoring.demo import run_monitoring_replay
        from model_monitoring.replay import ReplayPlan

        settings = ProjectSettings(**given(run_dir=run_dir))
        plan = ReplayPlan(
            rows_per_second=rows_per_second,
            held_out_hours=held_out_hours,
            control_minutes=control_minutes,
            scenario_names=tuple(scenario) if scenario else None,
            analysis_rows=analysis_rows,
        )
        outcome = run_monitoring_replay(
            settings, output, plan, dataset=dataset or REPLAY_DATASET, clock=clock,
            workers=workers,
        )  # fmt: skip
        console.print(f"report -> {outcome.report_path}")
        outcome.verify()


@app.command()
def demo(
    dist_dir: DistDirOption = None,
    run_dir: RunDirOption = None,
) -> None:
    """The showcase's run (<= 3 min on 2 cores): train, full stack, replay, report; writes
    dist/model-monitoring/results.json and its plots."""
    with cli_errors():
        from model_monitoring.demo import run_demo

        settings = ProjectSettings(**given(run_dir=run_dir, dist_dir=dist_dir))
        path = run_demo(settings)
        console.print(f"results -> {path}")


@app.command()
def benchmark(
    publish: PublishOption = False,
    dist_dir: DistDirOption = None,
    run_dir: RunDirOption = None,
    dataset: DatasetName = None,
    repeats: Annotated[int, typer.Option(help="Overhead: paired repeats.", min=2)] = 10,
    requests: Annotated[
        int, typer.Option(help="Overhead: predict requests per server and repeat.", min=10)
    ] = 300,
    drift_repeats: Annotated[
        int, typer.Option(help="Drift speed: repeats per side.", min=2)
    ] = 10,
    drift_window_rows: Annotated[
        int, typer.Option(help="Drift speed: rows of the window.", min=100)
    ] = 10_000,
    agreement_windows: Annotated[
        int, typer.Option(help="Agreement: stable windows, and as many drifted.", min=1)
    ] = 10,
    traffic: Annotated[
        list[float] | None,
        typer.Option(help="Production rows/s of a detection-delay level (repeat; default 2, 5, "
                     "20).", min=0.1),
    ] = None,
    held_out_hours: Annotated[
        float, typer.Option(help="Production hours of held-out reference time.", min=0.01)
    ] = 6.0,
    held_out_rows_per_second: Annotated[
        float, typer.Option(help="Production rows/s of the held-out replay.", min=0.1)
    ] = 20.0,
    control_minutes: Annotated[
        float, typer.Option(help="Production minutes of the no-drift control.", min=0.1)
    ] = 30.0,
    clock: Annotated[float, typer.Option(help="Clock factor of the replay's stack.", min=1)] = 60.0,
    scenario: Annotated[
        list[str] | None, typer.Option(help="Scenario of the delay levels (repeat; default all).")
    ] = None,
) -> None:
    """Instrumentation overhead (paired repeats), drift computation vs evidently on equal work,
    agreement with evidently on stable and drifted windows, and the replay: false alerts per
    production hour on held-out time, detection delay by traffic."""
    with cli_errors():
        from model_monitoring.benchmark import BenchmarkSizes, run_benchmark
        from model_monitoring.datasets import REPLAY_DATASET

        settings = ProjectSettings(**given(run_dir=run_dir, dist_dir=dist_dir))
        sizes = BenchmarkSizes(
            repeats=repeats,
            requests=requests,
            drift_repeats=drift_repeats,
            drift_window_rows=drift_window_rows,
            agreement_windows=agreement_windows,
            traffic=tuple(traffic) if traffic else BenchmarkSizes.traffic,
            held_out_hours=held_out_hours,
            held_out_rows_per_second=held_out_rows_per_second,
            control_minutes=control_minutes,
            clock=clock,
            scenarios=tuple(scenario) if scenario else None,
            dataset=dataset or REPLAY_DATASET,
        )
        run_benchmark(settings, sizes, publish=publish)


def main() -> None:
    app()  # standalone: exits with the command's status


if __name__ == "__main__":
    main()
