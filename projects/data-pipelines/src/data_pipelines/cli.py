"""Command line: run, backfill, release, serve, deploy, demo, benchmark.

python -m data_pipelines backfill --start 2020-10-11 --end 2020-11-08   # the history's first weeks
python -m data_pipelines run --date 2020-11-15             # one logical date, dag.test() on sqlite
python -m data_pipelines release 2020-11-15                # a quarantined slice, then rerun it
python -m data_pipelines serve --port 8765 --fault 2021-01-10=503:2   # the source on its own
python -m data_pipelines deploy --folder runs/dp  # source + PostgreSQL + MLflow + Airflow, held
python -m data_pipelines demo                              # the showcase's run, ~1-2 min
python -m data_pipelines benchmark --publish               # DAG run vs a plain Python loop

Without DATA_PIPELINES_SOURCE_URL the embedded source serves the data on 127.0.0.1 for the run;
with DATA_PIPELINES_AIRFLOW_API_URL (and _PASSWORD), backfill runs on that Airflow's scheduler.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from roadmap_lab.cli import DistDirOption, PublishOption, cli_errors, given, headline_table, lab_app

from data_pipelines import PROJECT
from data_pipelines.errors import DataPipelinesError
from data_pipelines.settings import ProjectSettings

app = lab_app(
    "Airflow 3 pipeline: fetch, validate, preprocess, train, evaluate and publish weekly "
    "slices of California-housing data, run with Airflow's own test runner.",
    PROJECT,
    quiet_loggers=("airflow", "sqlalchemy"),
    # Airflow's own logs are verbose; task failures still show at WARNING.
    environment={"AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"},
)
console = Console()

OutputRoot = Annotated[
    str | None, typer.Option(help="Artefact store: a folder or an fsspec URL (default: settings).")
]
SourceUrl = Annotated[
    str | None, typer.Option(help="HTTP(S) source of slices (default: the embedded one).")
]
RetryDelay = Annotated[float | None, typer.Option(help="Base retry delay in seconds.")]
StartDate = Annotated[
    str | None,
    typer.Option(help="First week of the model history (default: settings, 2020-10-11)."),
]
Fault = Annotated[
    list[str] | None,
    typer.Option(help="Embedded source fault, DATE=KIND[:COUNT] (503, reset, truncate, slow, "
                 "404, corrupt, changed, inverted, mislabelled); repeatable."),
]  # fmt: skip


def _date(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise DataPipelinesError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _faults(specs: list[str] | None) -> dict[str, Any]:
    from data_pipelines.source import FaultSpec

    try:
        return dict(FaultSpec.parse(spec) for spec in specs or [])
    except ValueError as error:
        raise DataPipelinesError(str(error)) from None


def _print_outcomes(outcomes: list[Any]) -> None:
    table = Table("logical date", "state", "wall s", "tasks (tries)")
    for outcome in outcomes:
        tasks = ", ".join(
            f"{task}:{state}({outcome.tries(task)})"
            for task, state in outcome.task_states().items()
        )
        colour = "green" if outcome.succeeded else "red"
        table.add_row(
            outcome.logical_date[:10],
            f"[{colour}]{outcome.state}[/]",
            f"{outcome.wall_s:.1f}",
            tasks,
        )
    console.print(table)


def _run_dates(
    dates: list[datetime],
    settings: ProjectSettings,
    faults: dict[str, Any],
    release_key: str | None = None,
) -> None:
    """Run ``dates`` with Airflow's test runner here (after releasing ``release_key``)."""
    from data_pipelines.local import local_pipeline
    from data_pipelines.names import PIPELINE_DAG_ID
    from data_pipelines.runner import run_dag
    from data_pipelines.steps import release

    outcomes = []
    with local_pipeline(settings, faults) as (settings, _server):
        if release_key is not None:
            archive = release(settings, release_key)
            console.print(f"released {release_key}: slice and report archived in {archive}")
        for logical_date in dates:
            with console.status(f"housing_pipeline {logical_date.date()}"):
                outcomes.append(run_dag(PIPELINE_DAG_ID, logical_date))
    _print_outcomes(outcomes)
    console.print(f"artefacts under {settings.output_url}")
    if not all(o.succeeded for o in outcomes):
        raise typer.Exit(1)


@app.command()
def run(
    date: Annotated[str, typer.Option(help="Logical date (a Sunday: the slice's week end).")],
    output_root: OutputRoot = None,
    source_url: SourceUrl = None,
    retry_delay_s: RetryDelay = None,
    start_date: StartDate = None,
    fault: Fault = None,
) -> None:
    """Run housing_pipeline for one logical date; exit 1 when the run fails (also when the
    week before it has no model yet: backfill from the start date first)."""
    with cli_errors():
        settings = ProjectSettings(
            **given(output_root=output_root, source_url=source_url, retry_delay_s=retry_delay_s,
                    start_date=start_date)
        )  # fmt: skip
        _run_dates([_date(date)], settings, _faults(fault))


@app.command()
def backfill(
    start: Annotated[str, typer.Option(help="First logical date (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option(help="Last logical date, inclusive.")],
    output_root: OutputRoot = None,
    source_url: SourceUrl = None,
    retry_delay_s: RetryDelay = None,
    start_date: StartDate = None,
    fault: Fault = None,
) -> None:
    """Run every weekly logical date from start to end, oldest first (week t needs week t-1's
    model). With DATA_PIPELINES_AIRFLOW_API_URL set, Airflow's own backfill on that server's
    scheduler runs them; without, Airflow's test runner here, one date after another."""
    from data_pipelines.settings import SLICE_PERIOD

    with cli_errors():
        first, last = _date(start), _date(end)
        if last < first:
            raise DataPipelinesError("--end is before --start")
        settings = ProjectSettings(
            **given(output_root=output_root, source_url=source_url, retry_delay_s=retry_delay_s,
                    start_date=start_date)
        )  # fmt: skip
        if settings.airflow_api_url:
            local = given(output_root=output_root, source_url=source_url, fault=fault,
                          retry_delay_s=retry_delay_s, start_date=start_date)  # fmt: skip
            if local:
                raise DataPipelinesError(
                    f"{', '.join('--' + n.replace('_', '-') for n in local)}: a server backfill "
                    "runs with the server's own settings"
                )
            _server_backfill(settings, first, last)
            return
        dates = []
        while first <= last:
            dates.append(first)
            first += SLICE_PERIOD
        _run_dates(dates, settings, _faults(fault))


def _server_backfill(settings: ProjectSettings, first: datetime, last: datetime) -> None:
    """Airflow's backfill on a running server (REST API): created, awaited, its runs listed."""
    from data_pipelines.airflow_api import AirflowApi
    from data_pipelines.names import PIPELINE_DAG_ID

    if settings.airflow_password is None:
        raise DataPipelinesError("DATA_PIPELINES_AIRFLOW_PASSWORD is not set (the API's user)")
    api = AirflowApi(
        str(settings.airflow_api_url),
        settings.airflow_username,
        settings.airflow_password.get_secret_value(),
        timeout_s=settings.api_timeout_s,
    )
    created = api.create_backfill(PIPELINE_DAG_ID, first, last)
    console.print(f"backfill {created['id']} of {PIPELINE_DAG_ID} created on {api.base_url}")
    with console.status(f"backfill {created['id']}: waiting for the scheduler"):
        api.wait_for_backfill(created["id"], settings.backfill_timeout_s)
    runs = [
        run
        for run in api.dag_runs(PIPELINE_DAG_ID, order_by="logical_date")
        if run["run_type"] == "backfill"
        and first <= datetime.fromisoformat(run["logical_date"]) <= last
    ]
    table = Table("logical date", "state", "run id")
    for run in runs:
        colour = "green" if run["state"] == "success" else "red"
        table.add_row(run["logical_date"][:10], f"[{colour}]{run['state']}[/]", run["dag_run_id"])
    console.print(table)
    if not runs or any(run["state"] != "success" for run in runs):
        raise typer.Exit(1)


@app.command()
def release(
    date: Annotated[str, typer.Argument(help="Logical date of the quarantined slice.")],
    output_root: OutputRoot = None,
    source_url: SourceUrl = None,
    start_date: StartDate = None,
) -> None:
    """Release a quarantined slice once its source is fixed (archived under released/), then run
    its logical date again."""
    with cli_errors():
        settings = ProjectSettings(
            **given(output_root=output_root, source_url=source_url, start_date=start_date)
        )
        _run_dates([_date(date)], settings, {}, release_key=_date(date).strftime("%Y-%m-%d"))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.", min=1, max=65535)] = 8765,
    fault: Fault = None,
) -> None:
    """Serve the embedded weekly slices over HTTP until Ctrl-C (for a real Airflow to read)."""
    import time

    from data_pipelines.source import SourceServer

    with cli_errors(), SourceServer(faults=_faults(fault), host=host, port=port) as server:
        console.print(f"serving slices on {server.url}/slices (Ctrl-C stops)")
        while True:
            time.sleep(3600)


@app.command()
def deploy(
    folder: Annotated[
        Path, typer.Option(help="Working folder; endpoints.json appears there once ready.")
    ] = Path("runs/data-pipelines/deploy"),
    start_date: StartDate = None,
    window_slices: Annotated[
        int | None, typer.Option(help="Trailing weeks a model trains on.", min=1)
    ] = None,
    fault: Fault = None,
) -> None:
    """Deploy the pipeline on 127.0.0.1 until SIGTERM or Ctrl-C: the embedded source, PostgreSQL,
    an MLflow registry and Airflow running housing_pipeline unscheduled (runs come through the
    REST API; a run without a logical date trains the next week of the history). Writes
    <folder>/endpoints.json (URLs, the file with Airflow's admin password) once all is ready."""
    from data_pipelines.deployment import ENDPOINTS_FILE, deployment, hold_until_stopped

    with cli_errors():
        settings = ProjectSettings(**given(start_date=start_date, window_slices=window_slices))
        with deployment(settings, folder, _faults(fault)) as endpoints:
            console.print(
                f"deployed: Airflow {endpoints['airflow_url']}, MLflow "
                f"{endpoints['tracking_uri']}, source {endpoints['source_url']}; "
                f"{folder / ENDPOINTS_FILE} (SIGTERM or Ctrl-C stops)"
            )
            hold_until_stopped()


@app.command()
def demo(dist_dir: DistDirOption = None) -> None:
    """The showcase's run (~1-2 min): four dates, transient faults, a corrupt slice quarantined
    and released, a byte-identical rerun, the downstream report; results + timeline plot."""
    import json

    from roadmap_lab.results import invocation

    from data_pipelines.demo import run_demo

    with cli_errors():
        settings = ProjectSettings(**given(dist_dir=dist_dir))
        path = run_demo(settings, invocation("data_pipelines"))
        results = json.loads(path.read_text())
        console.print(headline_table(f"{PROJECT} demo", results["headline"]))
        console.print(f"results -> {path}")
        if results["status"] != "ok":
            raise typer.Exit(1)


@app.command()
def benchmark(
    publish: PublishOption = False,
    dist_dir: DistDirOption = None,
    dates: Annotated[
        int, typer.Option(help="Timed logical dates (after a warm-up one).", min=2)
    ] = 10,
    executors: Annotated[
        str, typer.Option(help="Scheduler paths, comma-separated: local, celery.")
    ] = "local,celery",
) -> None:
    """Wall time per logical date under the real scheduler (LocalExecutor, CeleryExecutor with
    two workers) and under dag.test(), each against a plain Python loop on the same dates."""
    from roadmap_lab.results import ensure_quiet_machine, invocation, publish_benchmark

    from data_pipelines.benchmark import run_benchmark

    with cli_errors():
        if publish:
            ensure_quiet_machine()
        settings = ProjectSettings(**given(dist_dir=dist_dir))
        chosen = [name.strip() for name in executors.split(",") if name.strip()]
        path, results = run_benchmark(
            settings, invocation("data_pipelines"), dates=dates, executors=chosen
        )
        table = Table("logical date", *(f"{p} s" for p in results["paths"]),
                      *(f"plain ({p}) s" for p in results["paths"]))  # fmt: skip
        for index, key in enumerate(results["logical_dates"]):
            runs = results["paths"].values()
            table.add_row(key, *(f"{r['wall_s'][index]:.2f}" for r in runs),
                          *(f"{r['plain_wall_s'][index]:.3f}" for r in runs))  # fmt: skip
        console.print(table)
        console.print(headline_table(f"{PROJECT} benchmark", results["headline"]))
        console.print(f"artefacts identical across paths: {results['artefacts_identical']}")
        console.print(f"results -> {path}")
        if publish:
            console.print(f"published -> {publish_benchmark(path)}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
