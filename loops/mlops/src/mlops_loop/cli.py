"""Command line: the alert receiver and its Alertmanager configuration.

python -m mlops_loop receiver        # needs MLOPS_LOOP_WEBHOOK_TOKEN_FILE, _AIRFLOW_PASSWORD
python -m mlops_loop alertmanager-config --output runs/mlops-loop/alertmanager.yml
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml
from roadmap_lab.cli import cli_errors, given, lab_app
from roadmap_lab.results import atomic_write_text

from mlops_loop import PROJECT
from mlops_loop.settings import LoopSettings

app = lab_app(
    "The MLOps loop: model-monitoring's drift and accuracy alerts trigger data-pipelines' "
    "retraining DAG through Airflow's REST API.",
    PROJECT,
    quiet_loggers=("uvicorn.access",),
)

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


def main() -> None:
    app()
