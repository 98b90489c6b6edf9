"""The benchmark: fine-tuned MiniLM vs the TF-IDF baseline, training throughput of our loop vs the
Hugging Face Trainer (same model, data, epochs, optimizer and schedule), and the overhead of
tracking.

Throughput runs are interleaved (rotating order) and repeated; medians are compared, so drift of a
shared machine hits all configurations alike. Times cover the training loop only (model loading,
evaluation and checkpoints excluded) in both loops: Trainer's is taken from on_train_begin to
on_train_end.
"""

from __future__ import annotations

import logging
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from roadmap_lab.machine import describe_machine
from roadmap_lab.results import atomic_write_json

from experiment_tracking import PROJECT
from experiment_tracking.baseline import train_baseline
from experiment_tracking.data import ReviewData, load_data
from experiment_tracking.pipeline import resolve_model_dir, run_training
from experiment_tracking.reporting import (
    OVERHEAD_HEADLINE,
    THROUGHPUT_HEADLINE,
    headline,
    quality_headlines,
)
from experiment_tracking.settings import ProjectSettings, TrainConfig
from experiment_tracking.tracking import open_tracker, standard_tags
from experiment_tracking.training import (
    EncodedReviews,
    fit,
    load_classifier,
    make_accelerator,
    resolve_mixed_precision,
)

logger = logging.getLogger(__name__)
console = Console()


def trainer_samples_per_second(config: TrainConfig, data: ReviewData, model_dir: Path) -> float:
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
        def on_train_begin(self, args, state, control, **kwargs):
            times["begin"] = time.perf_counter()

        def on_train_end(self, args, state, control, **kwargs):
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
    return len(dataset) * config.epochs / (times["end"] - times["begin"])


def our_samples_per_second(
    config: TrainConfig, data: ReviewData, model_dir: Path, settings: ProjectSettings | None
) -> tuple[float, float]:
    """(samples/s of the loop, seconds spent opening and closing the trackers)."""
    tracker = None
    fixed = 0.0
    with tempfile.TemporaryDirectory(prefix="our-loop-") as output_dir:
        if settings is not None:
            started = time.perf_counter()
            tracker = open_tracker(
                settings, "benchmark-tracking-on", standard_tags(data.sha256, "benchmark")
            )
            tracker.log_params(config.model_dump())
            fixed += time.perf_counter() - started
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
        if tracker is not None:
            started = time.perf_counter()
            tracker.finish()
            fixed += time.perf_counter() - started
    return result.samples_per_second, fixed


def run_benchmark(
    settings: ProjectSettings,
    output: Path,
    quality_epochs: int = 2,
    throughput_samples: int = 1024,
    repeats: int = 3,
    model_dir: Path | None = None,
    command: str = "python -m experiment_tracking benchmark",
) -> dict[str, Any]:
    started = time.monotonic()
    model_dir = resolve_model_dir(settings, model_dir)
    quality_config = TrainConfig(epochs=quality_epochs, seed=settings.seed)
    data = load_data(validation_fraction=quality_config.validation_fraction, seed=settings.seed)

    console.print(
        "[bold]1/2 quality[/]: TF-IDF baseline and the MiniLM fine-tune on the same split"
    )
    baseline = train_baseline(data, settings.seed)
    quality = run_training(
        settings, quality_config, "benchmark-quality", model_dir=model_dir, data=data
    )

    console.print(
        f"[bold]2/2 throughput[/]: {repeats} interleaved repeats on {throughput_samples} rows, "
        "1 epoch"
    )
    subset = load_data(
        validation_fraction=quality_config.validation_fraction,
        seed=settings.seed,
        train_subset=throughput_samples,
    )
    # Tracking "on" logs every step: the worst case of per-step metrics.
    speed_config = TrainConfig(epochs=1, seed=settings.seed, log_every_steps=1)
    runs: dict[str, list[float]] = {
        "ours_tracking_off": [],
        "hf_trainer": [],
        "ours_tracking_on": [],
    }
    tracker_fixed_seconds: list[float] = []
    order = list(runs)
    for repeat in range(repeats):
        for name in order[repeat % 3 :] + order[: repeat % 3]:
            if name == "hf_trainer":
                value = trainer_samples_per_second(speed_config, subset, model_dir)
            else:
                value, fixed = our_samples_per_second(
                    speed_config,
                    subset,
                    model_dir,
                    settings if name == "ours_tracking_on" else None,
                )
                if name == "ours_tracking_on":
                    tracker_fixed_seconds.append(fixed)
            runs[name].append(value)
            console.print(f"  repeat {repeat + 1}: {name:<18} {value:7.2f} samples/s")

    median = {name: statistics.median(values) for name, values in runs.items()}
    # Paired per repeat (the three runs of a repeat are back to back), then the median: robust to
    # load that drifts between repeats on a shared machine.
    ratios = [o / t for o, t in zip(runs["ours_tracking_off"], runs["hf_trainer"], strict=True)]
    overheads = [
        (off / on - 1) * 100
        for off, on in zip(runs["ours_tracking_off"], runs["ours_tracking_on"], strict=True)
    ]
    ratio = statistics.median(ratios)
    overhead = statistics.median(overheads)
    minilm, base = quality.test_metrics, baseline.test_metrics

    table = Table(title="experiment-tracking benchmark")
    for column in ("figure", "value", "baseline", "target"):
        table.add_column(column)
    table.add_row(
        "MiniLM macro-F1 vs TF-IDF",
        f"{minilm['macro_f1']:.4f}",
        f"{base['macro_f1']:.4f}",
        "MiniLM > baseline",
    )
    table.add_row(
        "MiniLM accuracy vs TF-IDF", f"{minilm['accuracy']:.4f}", f"{base['accuracy']:.4f}", ""
    )
    table.add_row(
        "our loop samples/s (median)",
        f"{median['ours_tracking_off']:.2f}",
        f"{median['hf_trainer']:.2f} (Trainer)",
        "",
    )
    table.add_row("our loop / Trainer (median of paired)", f"{ratio:.3f}x", "1.0", ">= 1.0")
    table.add_row(
        "tracking overhead",
        f"{overhead:.2f} %",
        f"{median['ours_tracking_on']:.2f} samples/s on",
        "< 5",
    )
    console.print(table)

    results = {
        "project": PROJECT,
        "command": command,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": describe_machine(),
        "headline": [
            *quality_headlines(minilm, base),
            # The baselines are speeds, not ratios: say so in words.
            headline(
                THROUGHPUT_HEADLINE,
                round(ratio, 3),
                "x",
                f"HF Trainer {median['hf_trainer']:.2f} samples/s",
                ">= 1.0",
            ),
            headline(
                OVERHEAD_HEADLINE,
                round(overhead, 2),
                "%",
                f"tracking off {median['ours_tracking_off']:.2f} samples/s",
                "< 5",
            ),
        ],
        "quality": {
            "train_config": quality_config.model_dump(),
            "data": data.summary(),
            "minilm_test": minilm,
            "baseline_test": base,
            "fine_tune": {k: v for k, v in quality.fit.as_dict().items() if k not in ("history",)},
        },
        "throughput": {
            "train_config": speed_config.model_dump(),
            "rows": len(subset.train),
            "repeats": repeats,
            "samples_per_second": runs,
            "median_samples_per_second": median,
            "our_loop_vs_trainer_per_repeat": ratios,
            "tracking_overhead_percent_per_repeat": overheads,
            "our_loop_vs_trainer": ratio,
            "tracking_overhead_percent": overhead,
            "trackers": settings.trackers,
            "tracker_open_close_seconds": tracker_fixed_seconds,
            "note": "times cover the training loop only; tracking 'on' logs train metrics "
            "every step "
            "(MLflow asynchronously to the local sqlite store, W&B offline)",
        },
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    atomic_write_json(output, results)
    console.print(f"wrote {output}")
    return results
