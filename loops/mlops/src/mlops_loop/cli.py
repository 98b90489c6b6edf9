"""Command line: the alert receiver, its Alertmanager configuration, the demo, the benchmark.

python -m mlops_loop receiver        # needs MLOPS_LOOP_WEBHOOK_TOKEN_FILE, _AIRFLOW_PASSWORD
python -m mlops_loop alertmanager-config --output runs/mlops-loop/alertmanager.yml
python -m mlops_loop demo            # the whole loop once, <= 5 min (needs the projects' PEXes)
python -m mlops_loop benchmark --repeats 3
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from roadmap_lab.cli import (
    DistDirOption,
    PublishOption,
    RunDirOption,
    cli_errors,
    given,
    headline_table,
    lab_app,
)
from roadmap_lab.results import atomic_write_text

from mlops_loop import PROJECT
from mlops_loop.settings import LoopSettings

app = lab_app(
    "The MLOps loop: model-monitoring's drift and accuracy alerts trigger data-pipelines' "
    "retraining DAG through Airflow's REST API.",
    PROJECT,
    quiet_loggers=("uvicorn.access", "roadmap_lab.services"),
)
console = Console()

TokenFile = Annotated[
    Path | None,
    typer.Option(help="File with the webhook's bearer token (MLOPS_LOOP_WEBHOOK_TOKEN_FILE)."),
]


@app.command()
def receiver(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.", min=1, max=65535)] = None,
    webhook_token_file: TokenFile = None,
    airflow_url: Annotated[str | None, typer.Option(help="Airflow's api-server.")] = None,
    dag_id: Annotated[str | None, typer.Option(help="The DAG to trigger.")] = None,
) -> None:
    """The Alertmanager webhook receiver (POST /alerts): drift and accuracy alerts trigger one
    DAG run per alert group, with de-duplication and a cooldown."""
    with cli_errors():
        import uvicorn

        from mlops_loop.receiver import create_app

        flags = given(
            host=host,
            port=port,
            webhook_token_file=webhook_token_file,
            airflow_url=airflow_url,
            dag_id=dag_id,
        )
        settings = LoopSettings(**flags)
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, access_log=False)


@app.command("alertmanager-config")
def alertmanager_config(
    output: Annotated[Path, typer.Option(help="File to write.")] = Path(
        "runs/mlops-loop/alertmanager.yml"
    ),
    clock: Annotated[float | None, typer.Option(help="Clock factor (30: 30x faster).")] = None,
    receiver_url: Annotated[str | None, typer.Option(help="The receiver's base URL.")] = None,
    webhook_token_file: TokenFile = None,
) -> None:
    """Write the loop's Alertmanager configuration for this run (timings from the settings
    divided by the clock, the receiver's URL, the token file)."""
    with cli_errors():
        from mlops_loop.alert_routing import alertmanager_config as render

        settings = LoopSettings(
            **given(clock=clock, receiver_url=receiver_url, webhook_token_file=webhook_token_file)
        )
        output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(output, yaml.safe_dump(render(settings), sort_keys=False))
        typer.echo(f"wrote {output}")


StartWeek = Annotated[
    str | None, typer.Option(help="The history's first week (YYYY-MM-DD, a Sunday).")
]
Clock = Annotated[float, typer.Option(help="Clock factor of the stack (60: 60x faster).", min=1)]
RowsPerSecond = Annotated[
    float | None, typer.Option(help="Labelled traffic, production rows per second.", min=0.1)
]


@app.command()
def demo(
    dist_dir: DistDirOption = None,
    run_dir: RunDirOption = None,
    clock: Clock = 60.0,
    rows_per_second: RowsPerSecond = None,
    start_week: StartWeek = None,
) -> None:
    """The whole loop once (<= 5 min on 2 cores): the stack, the first champion, traffic, a
    drift, the alert, the retrain, the gate, the switch, the alert resolved; writes
    dist/mlops-loop/results.json, the timeline and its plot. Needs the two projects' PEXes."""
    with cli_errors():
        import json

        from roadmap_lab.results import invocation

        from mlops_loop.demo import run_demo

        settings = LoopSettings(
            **given(dist_dir=dist_dir, run_dir=run_dir, clock=clock,
                    rows_per_second=rows_per_second, start_week=start_week)
        )  # fmt: skip
        path = run_demo(settings, invocation("mlops_loop"))
        results = json.loads(path.read_text())
        console.print(headline_table(f"{PROJECT} demo", results["headline"]))
        console.print(f"results -> {path}")


@app.command()
def benchmark(
    dist_dir: DistDirOption = None,
    run_dir: RunDirOption = None,
    repeats: Annotated[
        int, typer.Option(help="Full loops, each on a fresh stack (>= 3 for the target).", min=1)
    ] = 3,
    clock: Clock = 60.0,
    rows_per_second: RowsPerSecond = None,
    start_week: Annotated[
        list[str] | None,
        typer.Option(help="A repeat's first week (repeatable, cycled; default: three chosen "
                     "weeks)."),
    ] = None,
    publish: PublishOption = False,
) -> None:
    """``repeats`` full loops on fresh stacks: times from the drift onset to the alert, from the
    alert to the new champion serving and to the alert resolved (production time), accuracy
    before, during and after the switch and a week later, whether each loop closed by itself."""
    with cli_errors():
        from roadmap_lab.results import ensure_quiet_machine, invocation, publish_benchmark

        from mlops_loop.benchmark import run_benchmark

        settings = LoopSettings(
            **given(dist_dir=dist_dir, run_dir=run_dir, clock=clock,
                    rows_per_second=rows_per_second,
                    benchmark_start_weeks=tuple(start_week) if start_week else None)
        )  # fmt: skip
        if publish:
            ensure_quiet_machine()
        path, results = run_benchmark(settings, invocation("mlops_loop"), repeats)
        console.print(headline_table(f"{PROJECT} benchmark", results["headline"]))
        console.print(f"results -> {path}")
        if publish:
            console.print(f"published -> {publish_benchmark(path)}")


def main() -> None:
    app()
