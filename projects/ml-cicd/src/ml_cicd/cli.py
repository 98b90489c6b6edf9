"""Command line: train, serve, validate, retrain, rollback, rollout, demo, benchmark.

python -m ml_cicd train                                   # the embedded default model, ~5 s
python -m ml_cicd serve --port 8000                       # that model (trained if missing)
ML_CICD_MODEL_URI=models:/ml-cicd-review-classifier@champion MLFLOW_TRACKING_URI=http://... \\
    python -m ml_cicd serve --workers 2                   # the registry's champion
python -m ml_cicd validate --data-dir projects/ml-cicd/data
python -m ml_cicd retrain --dry-run --report report.md   # a pull request: nothing registered
python -m ml_cicd retrain                                 # after a merge: register, gate, promote
python -m ml_cicd rollback                                # @champion back to the previous one
python -m ml_cicd rollout --replicas "http://a:8000 http://b:8000" --expect-version 7
python -m ml_cicd demo                                    # the showcase's run, ~1-2 min
python -m ml_cicd benchmark --publish                     # wrk: this service vs mlflow models serve
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from roadmap_lab.cli import (
    DistDirOption,
    PublishOption,
    RunDirOption,
    TrackingUriOption,
    cli_errors,
    given,
    headline_table,
    lab_app,
)

from ml_cicd import PROJECT
from ml_cicd.settings import ProjectSettings, ServiceSettings, ValidationRules

app = lab_app(
    "Review-classification service, its retrain pipeline (validate, train, gate, register) "
    "and rollback.",
    PROJECT,
    quiet_loggers=("uvicorn.access",),
)
console = Console()
# MLflow warns about our pyfunc's missing type hints and its own deprecations: nothing a user
# of this CLI can act on.
warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method.*")
warnings.filterwarnings("ignore", category=FutureWarning, module="mlflow")
warnings.filterwarnings("ignore", category=UserWarning, module="mlflow")

# The demo wipes its run folder: never the one the other commands use.
DEMO_RUN_DIR = Path("runs/ml-cicd-demo")

DataDir = Annotated[
    Path | None,
    typer.Option(help="Data folder with slices/*.csv (default: projects/ml-cicd/data)."),
]
ModelName = Annotated[str | None, typer.Option(help="Registered model name.")]
TestFile = Annotated[
    Path | None,
    typer.Option(help="Fixed held-out set, CSV text,label (default: reviews test split)."),
]


@app.command()
def train(
    output: Annotated[
        Path | None, typer.Option(help="Model folder to write (default: <run-dir>/model).")
    ] = None,
    run_dir: RunDirOption = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
) -> None:
    """Train the embedded default model (TF-IDF + logistic regression on the bundled reviews)
    and write it as an MLflow model folder."""
    with cli_errors():
        from ml_cicd.training import train_default_model

        settings = ProjectSettings(**given(run_dir=run_dir, seed=seed))
        target = output or settings.default_model_dir()
        with console.status("training the default model"):
            trained = train_default_model(target, settings.seed)
        console.print(
            f"model -> {target}: macro-F1 {trained.metrics['macro_f1']:.4f}, accuracy "
            f"{trained.metrics['accuracy']:.4f} on {trained.metrics['rows']} held-out reviews "
            f"(data version {trained.data.short})"
        )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes.", min=1)] = 1,
    model_uri: Annotated[
        str | None,
        typer.Option(
            help="models:/<name>@<alias>, runs:/... or a model folder (default: the "
            "embedded model, trained on first start)."
        ),
    ] = None,
    run_dir: RunDirOption = None,
) -> None:
    """Serve the model over HTTP (predict, model info, health, metrics, admin reload)."""
    with cli_errors():
        from ml_cicd.service import run_server

        settings = ServiceSettings(**given(model_uri=model_uri, run_dir=run_dir))
        run_server(settings, host=host, port=port, workers=workers)


@app.command()
def validate(
    data_dir: DataDir = None,
    run_dir: RunDirOption = None,
    tracking_uri: TrackingUriOption = None,
    model_name: ModelName = None,
    test_file: TestFile = None,
) -> None:
    """Validate the slices the champion was not trained on (schema, held-out leakage, drift);
    exit 1 when any rule fails."""
    with cli_errors():
        from ml_cicd.registry import CHAMPION, client, registry_errors, version_for_alias
        from ml_cicd.slices import DataVersion, read_slices
        from ml_cicd.training import held_out_set
        from ml_cicd.validation import validate_new_data

        settings = ProjectSettings(
            **given(
                data_dir=data_dir,
                run_dir=run_dir,
                tracking_uri=tracking_uri,
                registered_model=model_name,
                test_file=test_file,
            )
        )
        with registry_errors(settings, "reading the champion"):
            champion = version_for_alias(client(settings), settings.registered_model, CHAMPION)
        previous = DataVersion.from_tags(champion.tags) if champion else None
        held_out = held_out_set(settings.test_file)["text"].astype(str).tolist()
        report = validate_new_data(
            read_slices(settings.data_dir), previous, ValidationRules(), held_out
        )
        for result in report.results:
            mark = "[green]pass[/]" if result.passed else "[red]FAIL[/]"
            rows = f" rows {', '.join(map(str, result.rows))}" if result.rows else ""
            console.print(
                f"{mark} {result.rule} {result.slice}: {result.detail}{rows}", highlight=False
            )
        if not report.passed:
            raise typer.Exit(1)


@app.command()
def retrain(
    data_dir: DataDir = None,
    run_dir: RunDirOption = None,
    tracking_uri: TrackingUriOption = None,
    model_name: ModelName = None,
    test_file: TestFile = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Validate, train, evaluate, compare; register nothing."),
    ] = False,
    report: Annotated[
        Path | None, typer.Option(help="Write the markdown report here (for a PR comment).")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the outcome as JSON here.")
    ] = None,
    margin: Annotated[float | None, typer.Option(help="Gate margin on the macro-F1 gain.")] = None,
) -> None:
    """Validate new data, train, evaluate, compare with @champion and promote only when the gate
    passes. Exit 1 when the data is invalid; a data version already trained is a no-op."""
    with cli_errors():
        from roadmap_lab.results import atomic_write_json

        from ml_cicd.retrain import retrain as run_retrain

        settings = ProjectSettings(
            **given(
                data_dir=data_dir,
                run_dir=run_dir,
                tracking_uri=tracking_uri,
                registered_model=model_name,
                test_file=test_file,
                gate_margin=margin,
            )
        )
        with console.status("retrain: validate, train, evaluate, compare"):
            outcome = run_retrain(settings, ValidationRules(), dry_run=dry_run, report_path=report)
        if json_out is not None:
            atomic_write_json(json_out, outcome.as_dict())
        style = {"promoted": "green", "rejected": "yellow", "invalid": "red"}.get(
            outcome.status, "cyan"
        )
        console.print(f"[{style}]{outcome.status}[/]: {outcome.reason}", highlight=False)
        if outcome.registered_version:
            console.print(
                f"registered {outcome.model_name} version {outcome.registered_version}; "
                f"aliases {json.dumps(outcome.aliases)}"
            )
        if report is not None:
            console.print(f"report -> {report}")
        if outcome.exit_code:
            raise typer.Exit(outcome.exit_code)


@app.command()
def rollback(
    run_dir: RunDirOption = None,
    tracking_uri: TrackingUriOption = None,
    model_name: ModelName = None,
) -> None:
    """Move @champion back to the version the current champion replaced."""
    with cli_errors():
        from ml_cicd.registry import rollback as run_rollback

        settings = ProjectSettings(
            **given(run_dir=run_dir, tracking_uri=tracking_uri, registered_model=model_name)
        )
        moved = run_rollback(settings)
        console.print(f"{moved['model']}: @champion v{moved['from']} -> v{moved['to']}")


@app.command()
def rollout(
    replicas: Annotated[
        str, typer.Option(help="The replicas' base URLs, separated by spaces or commas.")
    ],
    expect_version: Annotated[
        str | None, typer.Option(help="The registry version every worker must serve after it.")
    ] = None,
) -> None:
    """Reload each replica onto the registry's champion, one at a time (the API key from
    ML_CICD_API_KEY); stop at the first replica that fails."""
    from ml_cicd.rollout import RolloutError, replica_urls, roll_out

    with cli_errors(RolloutError):
        key = ServiceSettings().api_key
        rolled = roll_out(
            replica_urls(replicas), key.get_secret_value() if key else "", expect_version
        )
        for replica in rolled:
            console.print(f"{replica.url}: {replica.workers} worker(s) serve version "
                          f"{replica.version}")  # fmt: skip


@app.command()
def demo(
    data_dir: DataDir = None,
    run_dir: Annotated[
        Path | None, typer.Option(help="Run folder of the demo (default: runs/ml-cicd-demo).")
    ] = None,
    dist_dir: DistDirOption = None,
    load_seconds: Annotated[float, typer.Option(help="Seconds of each load phase.", min=1)] = 8.0,
) -> None:
    """The showcase's run: retrain on committed data, serve, commit a new slice in a temporary
    clone, retrain and gate, reload the service under load, refuse a bad slice."""
    with cli_errors():
        from roadmap_lab.results import invocation

        from ml_cicd.demo import run_demo

        settings = ProjectSettings(
            **given(data_dir=data_dir, run_dir=run_dir or DEMO_RUN_DIR, dist_dir=dist_dir)
        )
        if settings.tracking_uri:
            settings = settings.model_copy(update={"tracking_uri": None})  # always a fresh store
        path = run_demo(settings, invocation("ml_cicd"), load_seconds=load_seconds)
        results = json.loads(path.read_text())
        measured = [item for item in results["headline"] if not item.get("reference")]
        console.print(headline_table("ml-cicd demo", measured))
        during = results["load_during_reload"]
        console.print(
            f"reload under load: {during['requests']} requests, {during['failed']} failed, "
            f"p99 {during['p99_ms']} ms; results -> {path}"
        )


@app.command()
def benchmark(
    concurrency: Annotated[
        list[int] | None, typer.Option(help="wrk connections (repeat the flag; default 1 8 32).")
    ] = None,
    duration: Annotated[
        int | None, typer.Option(help="Seconds per measurement (default 8).", min=1)
    ] = None,
    batch: Annotated[
        int | None, typer.Option(help="Reviews per request (default 8).", min=1)
    ] = None,
    workers: Annotated[
        list[int] | None,
        typer.Option(help="uvicorn workers to try per server (repeat; default 1 2 3 4)."),
    ] = None,
    repeats: Annotated[
        int | None,
        typer.Option(help="Interleaved repeats (default 6; to publish 6 or more, even).", min=1),
    ] = None,
    warmup: Annotated[
        int | None, typer.Option(help="Warm-up seconds per start (0: none; default 2).", min=0)
    ] = None,
    data_dir: DataDir = None,
    image: Annotated[
        str | None,
        typer.Option(
            help="An image tag built before (docker/build-image.sh): its size is measured with "
            "docker/build-image.sh --size. Without it the size is left out."
        ),
    ] = None,
    dist_dir: DistDirOption = None,
    publish: PublishOption = False,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="A line per measurement.")
    ] = True,
) -> None:
    """wrk on loopback: this service vs `mlflow models serve` of the same model, each at its best
    worker count per figure: requests per server CPU-second, requests/s and p50/p99 per
    concurrency; the retrain wall time; the image size when --image is given. --publish needs
    the default sizes (~29 min on 2 cores)."""
    with cli_errors():
        from roadmap_lab.results import invocation

        from ml_cicd.bench.report import tables
        from ml_cicd.benchmark import run_benchmark

        settings = ProjectSettings(**given(data_dir=data_dir, dist_dir=dist_dir))
        run = run_benchmark(
            settings.dist_dir,
            invocation("ml_cicd"),
            publish=publish,
            data_dir=settings.data_dir,
            image=image,
            progress=(lambda line: console.print(line, highlight=False)) if progress else None,
            **given(
                concurrency=tuple(concurrency) if concurrency else None,
                duration_s=duration,
                batch=batch,
                workers=tuple(workers) if workers else None,
                repeats=repeats,
                warmup_s=warmup,
            ),
        )
        for table in tables(run.summary, run.headline):
            console.print(table)
        console.print(f"results -> {run.results_file}")
        if run.published is not None:
            console.print(f"published -> {run.published}")


def main() -> None:
    app()  # standalone: exits with the command's status
