"""Command line: run, backfill, release, serve, demo, benchmark.

python -m data_pipelines run --date 2021-01-03             # one logical date, dag.test() on sqlite
python -m data_pipelines backfill --start 2021-01-03 --end 2021-01-31
python -m data_pipelines release 2021-01-17                # a quarantined slice, then rerun it
python -m data_pipelines serve --port 8765 --fault 2021-01-10=503:2   # the source on its own
python -m data_pipelines demo                              # the showcase's run, ~1-2 min
python -m data_pipelines benchmark --publish               # DAG run vs a plain Python loop

Without DATA_PIPELINES_SOURCE_URL the embedded source serves the data on 127.0.0.1 for the run.
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

OutputRoot = Annotated[Path | None, typer.Option(help="Artefact root (default: settings).")]
SourceUrl = Annotated[
    str | None, typer.Option(help="HTTP(S) source of slices (default: the embedded one).")
]
RetryDelay = Annotated[float | None, typer.Option(help="Base retry delay in seconds.")]
Fault = Annotated[
    list[str] | None,
    typer.Option(help="Embedded source fault, DATE=KIND[:COUNT] (503, reset, truncate, slow, "
                 "404, corrupt); repeatable."),
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


def _run_dates(dates: list[datetime], settings: ProjectSettings, faults: dict[str, Any]) -> None:
    from data_pipelines.local import local_pipeline
    from data_pipelines.names import PIPELINE_DAG_ID
    from data_pipelines.runner import run_dag

    outcomes = []
    with local_pipeline(settings, faults) as (settings, _server):
        for logical_date in dates:
            with console.status(f"housing_pipeline {logical_date.date()}"):
                outcomes.append(run_dag(PIPELINE_DAG_ID, logical_date))
    _print_outcomes(outcomes)
    console.print(f"artefacts under {settings.output_root.resolve()}")
    if not all(o.succeeded for o in outcomes):
        raise typer.Exit(1)


@app.command()
def run(
    date: Annotated[str, typer.Option(help="Logical date (a Sunday: the slice's week end).")],
    output_root: OutputRoot = None,
    source_url: SourceUrl = None,
    retry_delay_s: RetryDelay = None,
    fault: Fault = None,
) -> None:
    """Run housing_pipeline for one logical date; exit 1 when the run fails."""
    with cli_errors():
        settings = ProjectSettings(
            **given(output_root=output_root, source_url=source_url, retry_delay_s=retry_delay_s)
        )
        _run_dates([_date(date)], settings, _faults(fault))


@app.command()
def backfill(
    start: Annotated[str, typer.Option(help="First logical date (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option(help="Last logical date, inclusive.")],
    output_root: OutputRoot = None,
    source_url: SourceUrl = None,
    retry_delay_s: RetryDelay = None,
    fault: Fault = None,
) -> None:
    """Run every weekly logical date from start to end, in order (a model trains on the slices
    before it); rerunning a date rewrites nothing that is already the same."""
    from data_pipelines.settings import SLICE_PERIOD

    with cli_errors():
        first, last = _date(start), _date(end)
        if last < first:
            raise DataPipelinesError("--end is before --start")
        dates = []
        while first <= last:
            dates.append(first)
            first += SLICE_PERIOD
        settings = ProjectSettings(
            **given(output_root=output_root, source_url=source_url, retry_delay_s=retry_delay_s)
        )
        _run_dates(dates, settings, _faults(fault))


@app.command()
def release(
    date: Annotated[str, typer.Argument(help="Logical date of the quarantined slice.")],
    output_root: OutputRoot = None,
    source_url: SourceUrl = None,
    rerun: Annotated[bool, typer.Option(help="Run the date again after releasing.")] = True,
) -> None:
    """Release a quarantined slice once its source is fixed (archived under released/), then run
    its logical date again."""
    from data_pipelines.steps import release as release_slice

    with cli_errors():
        settings = ProjectSettings(**given(output_root=output_root, source_url=source_url))
        archive = release_slice(settings, _date(date).strftime("%Y-%m-%d"))
        console.print(f"released {date}: quarantined slice and report archived in {archive}")
        if rerun:
            _run_dates([_date(date)], settings, {})


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
def benchmark(publish: PublishOption = False, dist_dir: DistDirOption = None) -> None:
    """End-to-end wall time per logical date and Airflow's overhead vs a plain Python loop."""
    from roadmap_lab.results import ensure_quiet_machine, invocation, publish_benchmark

    from data_pipelines.benchmark import run_benchmark

    with cli_errors():
        if publish:
            ensure_quiet_machine()
        settings = ProjectSettings(**given(dist_dir=dist_dir))
        path, results = run_benchmark(settings, invocation("data_pipelines"))
        table = Table("logical date", "dag.test() s", "plain loop s")
        for key, dag_s, plain_s in zip(
            results["logical_dates"], results["dag_wall_s"], results["plain_wall_s"], strict=True
        ):
            table.add_row(key, f"{dag_s:.2f}", f"{plain_s:.3f}")
        console.print(table)
        console.print(headline_table(f"{PROJECT} benchmark", results["headline"]))
        console.print(f"artefacts identical (DAG vs plain loop): {results['artefacts_identical']}")
        console.print(f"results -> {path}")
        if publish:
            console.print(f"published -> {publish_benchmark(path)}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
