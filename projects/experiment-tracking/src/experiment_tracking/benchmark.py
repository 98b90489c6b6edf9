"""The benchmark (the CLI's ``benchmark``, its one entry point): fine-tuned MiniLM vs the TF-IDF
baseline over several seeds, training throughput of our loop vs the Hugging Face Trainer (same
model, data, epochs, optimizer and schedule), and the overhead of tracking.

Quality: each seed draws its own train/validation split and initialisation; TF-IDF is fit on the
same rows (it is deterministic given them). The headline is the mean over seeds, with the spread;
each seed also gets a paired bootstrap interval of MiniLM minus TF-IDF macro-F1 on the test rows.

Throughput: our loop untracked, HF Trainer and our loop tracked run back to back in rotating
order, repeated; each repeat gives one paired figure, and the headline is their mean with a t
interval. Untracked loops are timed over the training loop only (Trainer's from on_train_begin to
on_train_end). A tracked run costs everything tracking adds: opening the runs, the loop with
per-step logging, and ``finish()``, which drains MLflow's asynchronous queue.

Results go to ``<dist>/experiment-tracking/benchmark/`` with plots; ``--publish`` copies them to
the committed ``projects/experiment-tracking/benchmarks/``.
"""

from __future__ import annotations

import logging
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from roadmap_lab.machine import package_versions
from roadmap_lab.results import (
    BenchmarkConditions,
    Headline,
    ResultsWriter,
    ensure_quiet_machine,
    headline_figure,
    publish_benchmark,
)
from roadmap_lab.stats import Interval, paired_ratio, t_interval

from experiment_tracking import PROJECT
from experiment_tracking.baseline import train_baseline
from experiment_tracking.data import ReviewData, fingerprint, load_data
from experiment_tracking.errors import ExperimentTrackingError
from experiment_tracking.pipeline import resolve_model_dir, run_training
from experiment_tracking.plots import comparison_figure, repeats_figure
from experiment_tracking.reporting import (
    ACCURACY_HEADLINE,
    CONFIDENCE,
    F1_HEADLINE,
    GAIN_HEADLINE,
    OVERHEAD_HEADLINE,
    THROUGHPUT_HEADLINE,
    test_set_gain,
)
from experiment_tracking.settings import BenchmarkSizes, ProjectSettings, TrainConfig
from experiment_tracking.tracking import Tracker, open_tracker, standard_tags
from experiment_tracking.training import (
    EncodedReviews,
    fit,
    load_classifier,
    make_accelerator,
    resolve_mixed_precision,
)

logger = logging.getLogger(__name__)
console = Console()

MEASURED_PACKAGES = (
    "torch",
    "transformers",
    "tokenizers",
    "accelerate",
    "mlflow",
    "wandb",
    "scikit-learn",
    "numpy",
)
UNTRACKED, TRAINER, TRACKED = "ours_tracking_off", "hf_trainer", "ours_tracking_on"
CONFIGURATIONS = (UNTRACKED, TRAINER, TRACKED)
THROUGHPUT_TARGET = 1.0  # our loop / Trainer ">= 1.0"
OVERHEAD_TARGET = 5.0  # percent, "< 5"


class BenchmarkError(ExperimentTrackingError):
    """The benchmark cannot write or publish its results; the message says why."""


@dataclass
class ThroughputRun:
    """One timed training run; ``open_seconds`` and ``finish_seconds`` only when tracked."""

    repeat: int
    configuration: str
    samples: int
    loop_seconds: float
    open_seconds: float = 0.0
    finish_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        return self.open_seconds + self.loop_seconds + self.finish_seconds

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "seconds": self.seconds,
            "samples_per_second": self.samples_per_second,
        }


@dataclass
class SeedResult:
    """The quality comparison on one seed's split."""

    seed: int
    split_sha256: str  # of this seed's train/validation split
    minilm: dict[str, Any]
    baseline: dict[str, Any]
    gain: Interval  # MiniLM minus TF-IDF macro-F1 on the test rows
    fine_tune: dict[str, Any]
    run_ids: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "gain": self.gain.as_dict()}


def trainer_run(
    config: TrainConfig, data: ReviewData, model_dir: Path, repeat: int
) -> ThroughputRun:
    """HF Trainer on the same data, model, optimizer (fused AdamW), schedule and clipping."""
    import torch
    from accelerate.utils import set_seed
    from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    set_seed(config.seed)
    tokenizer, model = load_classifier(model_dir)
    dataset = EncodedReviews(data.train, tokenizer, config.max_length)
    steps = math.ceil(len(dataset) / config.batch_size) * config.epochs
    precision = resolve_mixed_precision(config.mixed_precision)
    times: dict[str, float] = {}

    class Timer(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            times["begin"] = time.perf_counter()

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            times["end"] = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="hf-trainer-") as output_dir:
        args = TrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=config.batch_size,
            num_train_epochs=config.epochs,
            learning_rate=config.learning_rate,
            weight_decay=config.weight_decay,
            warmup_steps=math.ceil(config.warmup_ratio * steps),
            lr_scheduler_type="linear",
            max_grad_norm=config.max_grad_norm,
            optim="adamw_torch_fused",
            logging_steps=config.log_every_steps,
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            seed=config.seed,
            disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(),
            bf16=precision == "bf16",
            fp16=precision == "fp16",
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=dataset,
            data_collator=DataCollatorWithPadding(tokenizer),
            callbacks=[Timer()],
        )
        trainer.remove_callback(PrinterCallback)  # it prints each log line (disable_tqdm=True)
        trainer.train()
    return ThroughputRun(
        repeat, TRAINER, len(dataset) * config.epochs, times["end"] - times["begin"]
    )


def our_run(
    config: TrainConfig,
    data: ReviewData,
    model_dir: Path,
    repeat: int,
    tracked_by: ProjectSettings | None,
) -> ThroughputRun:
    """Our loop, untracked, or tracked with ``tracked_by``'s trackers (opening and finishing the
    runs timed apart from the loop)."""
    tracker = Tracker()
    open_seconds = finish_seconds = 0.0
    with tempfile.TemporaryDirectory(prefix="our-loop-") as output_dir:
        if tracked_by is not None:
            started = time.perf_counter()
            tracker = open_tracker(
                tracked_by, "benchmark-tracking-on", standard_tags(data.sha256, "benchmark")
            )
            tracker.log_params(config.model_dump())
            open_seconds = time.perf_counter() - started
        try:
            result = fit(
                config,
                data,
                model_dir,
                Path(output_dir),
                accelerator=make_accelerator(config),
                tracker=tracker,
                evaluate=False,
                checkpoint=False,
                progress=False,
            )
        except BaseException:
            tracker.finish("FAILED")
            raise
        if tracked_by is not None:
            started = time.perf_counter()
            tracker.finish()  # drains MLflow's asynchronous queue: part of tracking's cost
            finish_seconds = time.perf_counter() - started
    return ThroughputRun(
        repeat,
        TRACKED if tracked_by is not None else UNTRACKED,
        result.samples_seen,
        result.train_seconds,
        open_seconds,
        finish_seconds,
    )


def measure_quality(
    settings: ProjectSettings, sizes: BenchmarkSizes, model_dir: Path, progress: bool
) -> list[SeedResult]:
    """MiniLM and TF-IDF on the split of each seed, from ``settings.seed`` on."""
    results = []
    for seed in range(settings.seed, settings.seed + sizes.seeds):
        config = TrainConfig(epochs=sizes.quality_epochs, seed=seed)
        data = load_data(
            validation_fraction=config.validation_fraction,
            seed=seed,
            train_subset=sizes.quality_rows,
        )
        console.print(f"  seed {seed}: TF-IDF and MiniLM on {len(data.train)} rows")
        baseline = train_baseline(data, seed)
        report = run_training(
            settings,
            config,
            f"benchmark-quality-seed-{seed}",
            model_dir=model_dir,
            data=data,
            progress=progress,
        )
        gain = test_set_gain(
            data.test["label"].tolist(),
            baseline.pipeline.predict(data.test["text"]).tolist(),
            report.test_predictions,
            seed=seed,
        )
        console.print(
            f"  seed {seed}: MiniLM macro-F1 {report.test_metrics['macro_f1']:.4f}, "
            f"TF-IDF {baseline.test_metrics['macro_f1']:.4f}, difference {gain}"
        )
        results.append(
            SeedResult(
                seed=seed,
                split_sha256=fingerprint(data.train, data.validation),
                minilm=report.test_metrics,
                baseline=baseline.test_metrics,
                gain=gain,
                fine_tune={k: v for k, v in report.fit.as_dict().items() if k not in ("history",)},
                run_ids=report.run_ids,
            )
        )
    return results


def measure_throughput(
    settings: ProjectSettings, sizes: BenchmarkSizes, model_dir: Path
) -> tuple[TrainConfig, int, list[ThroughputRun]]:
    """(config, rows, every run in run order): the three configurations in rotating order."""
    data = load_data(seed=settings.seed, train_subset=sizes.throughput_rows)
    # Tracking "on" logs every step: the worst case of per-step metrics.
    config = TrainConfig(epochs=sizes.throughput_epochs, seed=settings.seed, log_every_steps=1)
    runs: list[ThroughputRun] = []
    measure: dict[str, Callable[[int], ThroughputRun]] = {
        UNTRACKED: lambda repeat: our_run(config, data, model_dir, repeat, None),
        TRAINER: lambda repeat: trainer_run(config, data, model_dir, repeat),
        TRACKED: lambda repeat: our_run(config, data, model_dir, repeat, settings),
    }
    for repeat in range(1, sizes.repeats + 1):
        shift = (repeat - 1) % len(CONFIGURATIONS)
        for name in CONFIGURATIONS[shift:] + CONFIGURATIONS[:shift]:
            run = measure[name](repeat)
            runs.append(run)
            console.print(
                f"  repeat {repeat}: {name:<18} {run.samples_per_second:7.2f} samples/s "
                f"({run.seconds:.1f} s)"
            )
    return config, len(data.train), runs


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation, min and max."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values),
        "min": min(values),
        "max": max(values),
    }


def seed_quality_headlines(seeds: list[SeedResult]) -> list[Headline]:
    """MiniLM must beat TF-IDF on macro-F1: the mean over seeds of the paired gain (each seed's
    split scored by both), with a t interval over the seeds (one seed: its bootstrap interval on
    the test rows). MiniLM's macro-F1 and accuracy means are reported beside it."""
    gains = [s.minilm["macro_f1"] - s.baseline["macro_f1"] for s in seeds]
    gain = t_interval(gains, CONFIDENCE) if len(seeds) > 1 else seeds[0].gain
    f1 = spread([s.minilm["macro_f1"] for s in seeds])
    base_f1 = spread([s.baseline["macro_f1"] for s in seeds])
    accuracy = spread([s.minilm["accuracy"] for s in seeds])
    base_accuracy = spread([s.baseline["accuracy"] for s in seeds])
    label = f", {len(seeds)} seeds"
    return [
        headline_figure(
            GAIN_HEADLINE + label, None, "", baseline=round(base_f1["mean"], 4), target="> 0",
            interval=gain, per_seed=[round(g, 4) for g in gains], seeds=[s.seed for s in seeds],
        ),
        headline_figure(
            F1_HEADLINE + label, round(f1["mean"], 4), "", baseline=round(base_f1["mean"], 4),
            spread={k: round(v, 4) for k, v in f1.items()},
        ),
        headline_figure(
            ACCURACY_HEADLINE + label, round(accuracy["mean"], 4), "",
            baseline=round(base_accuracy["mean"], 4),
            spread={k: round(v, 4) for k, v in accuracy.items()},
        ),
    ]  # fmt: skip


def run_benchmark(
    settings: ProjectSettings,
    sizes: BenchmarkSizes,
    command: str,
    model_dir: Path | None = None,
    publish: bool = False,
    progress: bool = True,
) -> tuple[Path, Path | None]:
    """Measure, write ``<dist>/experiment-tracking/benchmark/results.json`` and its plots; with
    ``publish`` also copy them to the committed folder. Returns (results file, published file)."""
    if not settings.trackers:
        raise BenchmarkError("the tracking overhead needs a tracker: drop --tracker none")
    if publish:
        ensure_quiet_machine()
    conditions = BenchmarkConditions()
    started = time.monotonic()
    model_dir = resolve_model_dir(settings, model_dir)

    console.print(f"[bold]1/2 quality[/]: TF-IDF and MiniLM on {sizes.seeds} seeds")
    seeds = measure_quality(settings, sizes, model_dir, progress)
    console.print(
        f"[bold]2/2 throughput[/]: {sizes.repeats} interleaved repeats on "
        f"{sizes.throughput_rows} rows, {sizes.throughput_epochs} epoch(s)"
    )
    speed_config, rows, runs = measure_throughput(settings, sizes, model_dir)

    by_configuration = {
        name: [run for run in runs if run.configuration == name] for name in CONFIGURATIONS
    }
    pairs = list(
        zip(
            by_configuration[UNTRACKED],
            by_configuration[TRAINER],
            by_configuration[TRACKED],
            strict=True,
        )
    )
    ratios = [off.samples_per_second / hf.samples_per_second for off, hf, _ in pairs]
    overheads = [(on.seconds / off.seconds - 1) * 100 for off, _, on in pairs]
    loop_overheads = [(on.loop_seconds / off.loop_seconds - 1) * 100 for off, _, on in pairs]
    ratio = paired_ratio(
        [off.samples_per_second for off, _, _ in pairs],
        [hf.samples_per_second for _, hf, _ in pairs],
        CONFIDENCE,
    )
    overhead = paired_ratio(
        [on.seconds for _, _, on in pairs], [off.seconds for off, _, _ in pairs], CONFIDENCE
    ).map(lambda time_ratio: 100 * (time_ratio - 1))
    mean_speed = {
        name: statistics.fmean(run.samples_per_second for run in group)
        for name, group in by_configuration.items()
    }
    headlines = [
        *seed_quality_headlines(seeds),
        headline_figure(
            THROUGHPUT_HEADLINE,
            None,
            "x",
            baseline=round(mean_speed[TRAINER], 2),
            target=f">= {THROUGHPUT_TARGET}",
            interval=ratio,
            digits=3,
            baseline_unit="samples/s",
        ),
        headline_figure(
            OVERHEAD_HEADLINE,
            None,
            "%",
            baseline=round(mean_speed[UNTRACKED], 2),
            target=f"< {OVERHEAD_TARGET:g}",
            interval=overhead,
            digits=2,
            baseline_unit="samples/s",
        ),
    ]

    writer = ResultsWriter(PROJECT, settings.dist_dir, command, kind="benchmark")
    writer.save_figure(
        comparison_figure(
            {
                "TF-IDF + LR": {f"seed {s.seed}": s.baseline["macro_f1"] for s in seeds},
                "MiniLM (fine-tuned)": {f"seed {s.seed}": s.minilm["macro_f1"] for s in seeds},
            },
            "test macro-F1 by seed (1,000 reviews)",
        ),
        "quality_by_seed",
    )
    writer.save_figure(
        repeats_figure(
            {
                name: [run.samples_per_second for run in group]
                for name, group in by_configuration.items()
            },
            "samples/s (tracked: start-up and flush included)",
            "training throughput per repeat",
        ),
        "throughput_repeats",
    )
    writer.save_figure(
        repeats_figure(
            {"tracking overhead": overheads, "in the loop only": loop_overheads},
            "overhead (%)",
            f"tracking overhead per repeat (target < {OVERHEAD_TARGET:g} %)",
            reference=OVERHEAD_TARGET,
        ),
        "tracking_overhead",
    )
    results = {
        "headline": headlines,
        "sizes": sizes.model_dump(),
        "versions": package_versions(*MEASURED_PACKAGES),
        "quality": {
            "epochs": sizes.quality_epochs,
            "train_config": TrainConfig(epochs=sizes.quality_epochs).model_dump(exclude={"seed"}),
            "per_seed": [s.as_dict() for s in seeds],
            "minilm_macro_f1": spread([s.minilm["macro_f1"] for s in seeds]),
            "baseline_macro_f1": spread([s.baseline["macro_f1"] for s in seeds]),
            "minilm_minus_baseline_over_seeds": t_interval(
                [s.minilm["macro_f1"] - s.baseline["macro_f1"] for s in seeds], CONFIDENCE
            ).as_dict(),
        },
        "throughput": {
            "train_config": speed_config.model_dump(),
            "rows": rows,
            "repeats": sizes.repeats,
            "trackers": settings.trackers,
            "runs": [run.as_dict() for run in runs],  # in run order
            "samples_per_second": {
                name: [run.samples_per_second for run in group]
                for name, group in by_configuration.items()
            },
            "mean_samples_per_second": mean_speed,
            "our_loop_vs_trainer_per_repeat": ratios,
            "our_loop_vs_trainer": ratio.as_dict(),
            "tracking_overhead_percent_per_repeat": overheads,
            "tracking_overhead_percent": overhead.as_dict(),
            "loop_only_overhead_percent_per_repeat": loop_overheads,
            "tracker_open_seconds": [run.open_seconds for run in by_configuration[TRACKED]],
            "tracker_finish_seconds": [run.finish_seconds for run in by_configuration[TRACKED]],
            "note": "untracked loops are timed over the training loop; a tracked run over "
            "opening the runs, the loop (metrics logged every step: MLflow asynchronously "
            "into the local store, W&B offline) and finish(), which drains MLflow's queue",
        },
        "wall_seconds": round(time.monotonic() - started, 1),
        "conditions": conditions.finish(),
    }
    results_file = writer.write(results)
    published = None
    if publish:
        try:
            published = publish_benchmark(results_file)
        except (ValueError, OSError) as error:
            raise BenchmarkError(f"cannot publish {results_file}: {error}") from error
    return results_file, published
