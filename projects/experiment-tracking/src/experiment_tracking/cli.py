"""Command line: train, baseline, sweep, evaluate, promote, demo, benchmark.

python -m experiment_tracking demo
python -m experiment_tracking train --epochs 3 --register
torchrun --nproc_per_node 2 -m experiment_tracking train --run-name ddp     # several processes
accelerate launch -m experiment_tracking train --mixed-precision bf16        # GPU(s)
python -m experiment_tracking sweep --trials 8 --train-subset 1000
python -m experiment_tracking promote --margin 0.0 --confidence 0.95
python -m experiment_tracking evaluate --model-uri models:/review-classifier@champion
python -m experiment_tracking benchmark --publish      # ~30 min on 2 CPU cores
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from roadmap_lab.cli import (
    DistDirOption,
    ModelDirOption,
    PublishOption,
    RunDirOption,
    cli_errors,
    given,
    headline_table,
    lab_app,
)

from experiment_tracking import PROJECT
from experiment_tracking.errors import ConfigError
from experiment_tracking.settings import BenchmarkSizes, ProjectSettings, TrainConfig

app = lab_app(
    "Tracked fine-tuning of a review classifier with MLflow + W&B, sweeps, registry and gate.",
    PROJECT,
    quiet_loggers=("optuna", "wandb", "accelerate"),
    environment={"WANDB_MODE": "offline", "HF_HUB_DISABLE_PROGRESS_BARS": "1"},
)
console = Console()
# Our pyfunc model takes a DataFrame on purpose; MLflow nags about type hints on every load.
warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method.*")
warnings.filterwarnings("ignore", category=FutureWarning, module="mlflow")

# --- options of this project --------------------------------------------------------------------
TrackerOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--tracker", help="mlflow and/or wandb (repeat the flag); 'none' disables tracking."
    ),
]
TrainFile = Annotated[
    Path | None, typer.Option(help="Training data (.csv/.jsonl/.parquet: text, label).")
]
TestFile = Annotated[Path | None, typer.Option(help="Held-out test data (same columns).")]
ConfigFile = Annotated[
    Path | None, typer.Option("--config", help="YAML/JSON file of training settings.")
]
Epochs = Annotated[int | None, typer.Option(help="Epochs.")]
MaxSteps = Annotated[int | None, typer.Option(help="Stop after this many optimizer steps.")]
TrainSubset = Annotated[int | None, typer.Option(help="Train on a seeded subset of N rows.")]
BatchSize = Annotated[int | None, typer.Option(help="Per-process batch size.")]
LearningRate = Annotated[float | None, typer.Option(help="AdamW learning rate.")]
MaxLength = Annotated[int | None, typer.Option(help="Tokens per review (truncation).")]
Patience = Annotated[
    int | None, typer.Option(help="Evaluations without improvement before stopping.")
]
EvalEvery = Annotated[
    int | None, typer.Option(help="Evaluate every N steps (default: each epoch).")
]
CheckpointEvery = Annotated[
    int | None, typer.Option(help="Checkpoint every N steps (default: at each evaluation).")
]
LogEvery = Annotated[int | None, typer.Option(help="Log training metrics every N steps.")]
MixedPrecisionOpt = Annotated[
    str | None, typer.Option("--mixed-precision", help="auto, no, fp16 or bf16.")
]
Seed = Annotated[int | None, typer.Option(help="Random seed.")]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")]
BENCHMARK_DEFAULTS = BenchmarkSizes()


def _trackers(flags: list[str] | None) -> list[str] | None:
    """The ``--tracker`` flags as the settings' list: None when not given, [] for 'none'."""
    if flags is None:
        return None
    return [] if flags in (["none"], []) else flags


def _train_config(settings: ProjectSettings, config_file: Path | None, **flags: Any) -> TrainConfig:
    """Training settings: the flags given, over the config file, over the settings' seed."""
    values: dict[str, Any] = {"seed": settings.seed}
    if config_file is not None:
        import yaml

        if not config_file.is_file():
            raise ConfigError(f"config file {config_file} does not exist")
        try:
            loaded = yaml.safe_load(config_file.read_text()) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ConfigError(f"cannot read config file {config_file}: {reason}") from error
        if not isinstance(loaded, dict):
            raise ConfigError(f"{config_file} must hold a mapping of training settings")
        values.update(loaded)
    values.update({k: v for k, v in flags.items() if v is not None})
    return TrainConfig(**values)


def _metrics_table(title: str, rows: dict[str, dict[str, Any]]) -> Table:
    """macro-F1 and accuracy of each model."""
    table = Table(title=title)
    table.add_column("model")
    table.add_column("macro-F1", justify="right")
    table.add_column("accuracy", justify="right")
    for name, metrics in rows.items():
        table.add_row(name, f"{metrics['macro_f1']:.4f}", f"{metrics['accuracy']:.4f}")
    return table


# --- commands -----------------------------------------------------------------------------------


@app.command()
def train(
    run_name: Annotated[
        str, typer.Option(help="Name of the run (and of its checkpoint folder).")
    ] = "fine-tune",
    model_dir: ModelDirOption = None,
    train_file: TrainFile = None,
    test_file: TestFile = None,
    config_file: ConfigFile = None,
    epochs: Epochs = None,
    max_steps: MaxSteps = None,
    train_subset: TrainSubset = None,
    batch_size: BatchSize = None,
    learning_rate: LearningRate = None,
    max_length: MaxLength = None,
    patience: Patience = None,
    eval_every: EvalEvery = None,
    checkpoint_every: CheckpointEvery = None,
    log_every: LogEvery = None,
    mixed_precision: MixedPrecisionOpt = None,
    seed: Seed = None,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Continue from the latest checkpoint.")
    ] = False,
    register: Annotated[
        bool, typer.Option("--register/--no-register", help="Register the model as challenger.")
    ] = False,
    baseline: Annotated[
        bool, typer.Option("--baseline/--no-baseline", help="Also run the TF-IDF baseline.")
    ] = False,
    run_dir: RunDirOption = None,
    tracker: TrackerOpt = None,
    progress: Progress = True,
) -> None:
    """Fine-tune the encoder with a classification head; track, evaluate, optionally register."""
    with cli_errors():
        from experiment_tracking.data import load_data
        from experiment_tracking.pipeline import run_baseline, run_training

        settings = ProjectSettings(**given(run_dir=run_dir, trackers=_trackers(tracker)))
        config = _train_config(
            settings,
            config_file,
            epochs=epochs,
            max_steps=max_steps,
            train_subset=train_subset,
            batch_size=batch_size,
            learning_rate=learning_rate,
            max_length=max_length,
            patience=patience,
            eval_every_steps=eval_every,
            checkpoint_every_steps=checkpoint_every,
            log_every_steps=log_every,
            mixed_precision=mixed_precision,
            seed=seed,
        )
        data = load_data(
            train_file, test_file, config.validation_fraction, config.seed, config.train_subset
        )
        report = run_training(
            settings,
            config,
            run_name,
            model_dir=model_dir,
            data=data,
            resume=resume,
            register=register,
            progress=progress,
        )
        if not report.is_main_process:
            return
        rows = {run_name: report.test_metrics}
        if baseline:
            rows["tfidf-baseline"] = run_baseline(settings, data, config.seed).result.test_metrics
        console.print(_metrics_table("test set", rows))
        fit = report.fit
        console.print(
            f"steps {fit.global_step} ({fit.epochs_completed:.2f} epochs), "
            f"{fit.samples_per_second:.1f} samples/s, "
            f"world size {fit.world_size} ({fit.distributed_type}), "
            f"mixed precision {fit.mixed_precision}"
            + (
                f", resumed from step {fit.resumed_from_step}"
                if fit.resumed_from_step is not None
                else ""
            )
            + (", stopped early" if fit.stopped_early else "")
        )
        console.print(
            f"runs: {json.dumps(report.run_ids)}; model: {report.model_uri}; "
            f"summary: {report.summary_file}"
        )
        if report.registered_version:
            console.print(
                f"registered {settings.registered_model} version {report.registered_version} "
                "as challenger"
            )


@app.command("baseline")
def baseline_command(
    train_file: TrainFile = None,
    test_file: TestFile = None,
    seed: Seed = None,
    run_dir: RunDirOption = None,
    tracker: TrackerOpt = None,
) -> None:
    """Train and evaluate the TF-IDF + logistic regression baseline (tracked)."""
    with cli_errors():
        from experiment_tracking.data import load_data
        from experiment_tracking.pipeline import run_baseline

        settings = ProjectSettings(**given(run_dir=run_dir, trackers=_trackers(tracker), seed=seed))
        data = load_data(train_file, test_file, seed=settings.seed)
        report = run_baseline(settings, data, settings.seed)
        console.print(_metrics_table("test set", {"tfidf-baseline": report.result.test_metrics}))
        console.print(f"runs: {json.dumps(report.run_ids)}")


@app.command()
def sweep(
    trials: Annotated[int, typer.Option(help="Optuna trials.")] = 4,
    run_name: Annotated[str, typer.Option(help="Name of the parent run.")] = "sweep",
    model_dir: ModelDirOption = None,
    train_file: TrainFile = None,
    test_file: TestFile = None,
    config_file: ConfigFile = None,
    epochs: Epochs = None,
    max_steps: MaxSteps = None,
    train_subset: TrainSubset = None,
    max_length: MaxLength = None,
    eval_every: EvalEvery = None,
    seed: Seed = None,
    register: Annotated[
        bool, typer.Option("--register/--no-register", help="Register the best model.")
    ] = True,
    run_dir: RunDirOption = None,
    tracker: TrackerOpt = None,
    progress: Progress = True,
) -> None:
    """Optuna sweep; each trial is a nested MLflow run; the best model is registered."""
    with cli_errors():
        from experiment_tracking.data import load_data
        from experiment_tracking.sweep import run_sweep

        settings = ProjectSettings(**given(run_dir=run_dir, trackers=_trackers(tracker)))
        config = _train_config(
            settings,
            config_file,
            epochs=epochs,
            max_steps=max_steps,
            train_subset=train_subset,
            max_length=max_length,
            eval_every_steps=eval_every,
            seed=seed,
        )
        data = load_data(
            train_file, test_file, config.validation_fraction, config.seed, config.train_subset
        )
        report = run_sweep(
            settings,
            config,
            data,
            trials,
            run_name,
            model_dir=model_dir,
            register=register,
            progress=progress,
        )
        table = Table(title=f"sweep {run_name}: {trials} trials")
        for column in (
            "trial",
            "state",
            "validation macro-F1",
            "learning rate",
            "batch",
            "warmup",
            "weight decay",
        ):
            table.add_column(column)
        for trial in report.trials:
            params = trial["params"]
            table.add_row(
                str(trial["number"]),
                trial["state"],
                "" if trial["value"] is None else f"{trial['value']:.4f}",
                f"{params.get('learning_rate', 0):.2e}",
                str(params.get("batch_size", "")),
                f"{params.get('warmup_ratio', 0):.2f}",
                f"{params.get('weight_decay', 0):.3f}",
            )
        console.print(table)
        console.print(
            f"best trial {report.best_trial} (validation macro-F1 {report.best_value:.4f}); "
            "test macro-F1 "
            f"{report.test_metrics['macro_f1']:.4f}; model {report.model_uri}"
            + (
                f"; registered version {report.registered_version} as challenger"
                if report.registered_version
                else ""
            )
        )


@app.command()
def evaluate(
    model_uri: Annotated[
        str | None, typer.Option(help="Model to evaluate (default: models:/<name>@champion).")
    ] = None,
    train_file: TrainFile = None,
    test_file: TestFile = None,
    output_json: Annotated[Path | None, typer.Option(help="Also write the results here.")] = None,
    run_dir: RunDirOption = None,
) -> None:
    """Evaluate a logged or registered model on the test set, with the behavioural suites."""
    with cli_errors():
        from roadmap_lab.results import atomic_write_json

        from experiment_tracking.data import load_data
        from experiment_tracking.registry import CHAMPION, evaluate_model
        from experiment_tracking.tracking import configure_mlflow

        settings = ProjectSettings(**given(run_dir=run_dir))
        configure_mlflow(settings)
        uri = model_uri or f"models:/{settings.registered_model}@{CHAMPION}"
        data = load_data(train_file, test_file)
        evaluation = evaluate_model(uri, data, seed=settings.seed)
        behaviour = evaluation.behaviour
        assert behaviour is not None  # evaluated with the suites
        console.print(
            _metrics_table(f"test set ({len(data.test)} rows)", {uri: evaluation.metrics})
        )
        for name, suite in behaviour.suites().items():
            console.print(f"{name}: {suite.failures}/{suite.cases} failed (rate {suite.rate:.3f})")
        if output_json is not None:
            atomic_write_json(
                output_json,
                {"model_uri": uri, "metrics": evaluation.metrics, "behaviour": behaviour.as_dict()},
            )


@app.command()
def promote(
    challenger_version: Annotated[
        str | None, typer.Option(help="Version to judge (default: @challenger).")
    ] = None,
    margin: Annotated[
        float | None,
        typer.Option(help="What the bound of the challenger's macro-F1 gain must reach."),
    ] = None,
    bound: Annotated[
        str | None,
        typer.Option(help="Decide on the gain's interval 'low' (lower bound) or 'estimate'."),
    ] = None,
    confidence: Annotated[
        float | None, typer.Option(help="Confidence of the gain's paired bootstrap interval.")
    ] = None,
    min_macro_f1: Annotated[
        float | None, typer.Option(help="Floor when there is no champion yet.")
    ] = None,
    train_file: TrainFile = None,
    test_file: TestFile = None,
    fail_on_reject: Annotated[
        bool, typer.Option(help="Exit with status 3 when the challenger is rejected.")
    ] = False,
    run_dir: RunDirOption = None,
) -> None:
    """The promotion gate: the challenger becomes champion only if better and well-behaved."""
    with cli_errors():
        from experiment_tracking.data import load_data
        from experiment_tracking.registry import promote as run_gate

        settings = ProjectSettings(
            **given(
                run_dir=run_dir,
                gate_margin=margin,
                gate_bound=bound,
                gate_confidence=confidence,
                gate_min_macro_f1=min_macro_f1,
            )
        )
        data = load_data(train_file, test_file)
        decision = run_gate(settings, data, challenger_version)
        colour = "green" if decision.promoted else "yellow"
        console.print(
            f"[{colour}]{settings.registered_model} v{decision.challenger_version}: "
            f"{decision.reason}[/]"
        )
        console.print(f"aliases: {decision.aliases}")
    if fail_on_reject and not decision.promoted:
        raise typer.Exit(3)


@app.command()
def demo(
    run_dir: RunDirOption = None,
    dist_dir: DistDirOption = None,
    train_subset: Annotated[int, typer.Option(help="Rows of the short fine-tune.")] = 2048,
    max_length: MaxLength = None,
    model_dir: ModelDirOption = None,
    tracker: TrackerOpt = None,
    progress: Progress = True,
) -> None:
    """Baseline, a short fine-tune, registration and the gate on the embedded defaults (< 5 min).

    The demo's run folder (default <run_dir>/demo) is emptied first.
    """
    with cli_errors():
        from roadmap_lab.results import invocation

        from experiment_tracking.demo import run_demo

        settings = ProjectSettings(
            **given(run_dir=run_dir, trackers=_trackers(tracker), dist_dir=dist_dir)
        )
        if run_dir is None:
            settings = settings.model_copy(update={"run_dir": settings.run_dir / "demo"})
        results_file = run_demo(
            settings,
            invocation("experiment_tracking"),
            train_subset=train_subset,
            max_length=max_length,
            model_dir=model_dir,
            progress=progress,
        )
        console.print(f"results: {results_file}")


@app.command()
def benchmark(
    quality_epochs: Annotated[
        int, typer.Option(help="Epochs of each quality fine-tune.")
    ] = BENCHMARK_DEFAULTS.quality_epochs,
    quality_rows: Annotated[
        int | None, typer.Option(help="Training rows of each quality fine-tune (default: all).")
    ] = BENCHMARK_DEFAULTS.quality_rows,
    seeds: Annotated[
        int,
        typer.Option(help="Seeds of the quality comparison (split and initialisation)."),
    ] = BENCHMARK_DEFAULTS.seeds,
    throughput_rows: Annotated[
        int, typer.Option(help="Training rows of each throughput run.")
    ] = BENCHMARK_DEFAULTS.throughput_rows,
    throughput_epochs: Annotated[
        int, typer.Option(help="Epochs of each throughput run.")
    ] = BENCHMARK_DEFAULTS.throughput_epochs,
    repeats: Annotated[
        int, typer.Option(help="Interleaved repeats of each throughput configuration.")
    ] = BENCHMARK_DEFAULTS.repeats,
    seed: Annotated[
        int | None, typer.Option(help="First seed (default: the settings' seed, 0).")
    ] = None,
    publish: PublishOption = False,
    model_dir: ModelDirOption = None,
    dist_dir: DistDirOption = None,
    run_dir: RunDirOption = None,
    tracker: TrackerOpt = None,
    progress: Progress = True,
) -> None:
    """MiniLM vs TF-IDF over seeds, our loop vs HF Trainer throughput, tracking overhead.

    The benchmark's run folder defaults to <run_dir>/benchmark.
    """
    with cli_errors():
        from roadmap_lab.results import invocation

        from experiment_tracking.benchmark import run_benchmark

        sizes = BenchmarkSizes(
            quality_epochs=quality_epochs,
            quality_rows=quality_rows,
            seeds=seeds,
            throughput_rows=throughput_rows,
            throughput_epochs=throughput_epochs,
            repeats=repeats,
        )
        settings = ProjectSettings(
            **given(run_dir=run_dir, trackers=_trackers(tracker), dist_dir=dist_dir, seed=seed)
        )
        if run_dir is None:
            settings = settings.model_copy(update={"run_dir": settings.run_dir / "benchmark"})
        results_file, published = run_benchmark(
            settings,
            sizes,
            invocation("experiment_tracking"),
            model_dir=model_dir,
            publish=publish,
            progress=progress,
        )
        headline = json.loads(results_file.read_text())["headline"]
        console.print(headline_table(f"{PROJECT} benchmark", headline))
        console.print(f"results: {results_file}")
        if published is not None:
            console.print(f"published: {published}")


def main() -> None:
    app()  # standalone: exits with the command's status


if __name__ == "__main__":
    main()
