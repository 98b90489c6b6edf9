"""The demo: baseline, a short fine-tune, registration and the promotion gate, in a fresh local
store.

It registers two challengers of ``review-classifier-demo``: the short fine-tune (the first
champion, judged against the quality floor) and a deliberately under-trained one, which the gate
must refuse. Results and plots go to ``<dist>/experiment-tracking/``. The committed benchmark's
figures are shown beside the demo's own, marked as references (not measured by this run).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from roadmap_lab.results import (
    ResultsWriter,
    committed_results,
    headline_figure,
    reference_headline,
)

from experiment_tracking import PROJECT
from experiment_tracking.data import LABELS, load_data
from experiment_tracking.pipeline import run_baseline, run_training
from experiment_tracking.plots import (
    comparison_figure,
    confusion_matrix_figure,
    learning_curve_figure,
)
from experiment_tracking.registry import CHAMPION, load_scorer, promote, version_for_alias
from experiment_tracking.reporting import quality_headlines, test_set_gain
from experiment_tracking.settings import ProjectSettings, TrainConfig

logger = logging.getLogger(__name__)

DEMO_MODEL = "review-classifier-demo"
UNDERTRAINED_STEPS = 4
EXAMPLES = [
    "Delicious and fresh, my kids love these snacks. Will buy again!",
    "The coffee tasted burnt and the bag arrived torn open.",
    "It is okay, nothing special, a bit pricey for what you get.",
]


def run_demo(
    settings: ProjectSettings,
    command: str,
    train_subset: int = 2048,
    max_length: int | None = None,
    model_dir: Path | None = None,
    progress: bool = True,
    fresh: bool = True,
) -> Path:
    """Run the demo; returns the results.json path. ``command``: what started it."""
    started = time.monotonic()
    timings: dict[str, float] = {}
    settings = settings.model_copy(update={"registered_model": DEMO_MODEL})
    if fresh and settings.uses_local_store() and settings.run_dir.exists():
        shutil.rmtree(settings.run_dir)
    config = TrainConfig(
        epochs=1, train_subset=train_subset, max_length=max_length or 64, seed=settings.seed
    )

    def lap(name: str, since: float) -> float:
        timings[name] = round(time.monotonic() - since, 1)
        return time.monotonic()

    mark = time.monotonic()
    full = load_data(validation_fraction=config.validation_fraction, seed=config.seed)
    short = load_data(
        validation_fraction=config.validation_fraction, seed=config.seed, train_subset=train_subset
    )
    mark = lap("load_data", mark)
    baseline = run_baseline(settings, short, config.seed)
    mark = lap("baseline", mark)
    logger.info("baseline macro-F1 %.4f", baseline.result.test_metrics["macro_f1"])

    fine_tune = run_training(
        settings,
        config,
        "demo-fine-tune",
        model_dir=model_dir,
        data=short,
        register=True,
        progress=progress,
    )
    mark = lap("fine_tune", mark)
    first_gate = promote(settings, full, fine_tune.registered_version)
    mark = lap("gate_first_challenger", mark)

    weak_config = config.model_copy(update={"max_steps": UNDERTRAINED_STEPS})
    weak = run_training(
        settings,
        weak_config,
        "demo-undertrained",
        model_dir=model_dir,
        data=short,
        register=True,
        progress=progress,
    )
    mark = lap("undertrained_fine_tune", mark)
    second_gate = promote(settings, full, weak.registered_version)
    mark = lap("gate_second_challenger", mark)

    champion_uri = f"models:/{DEMO_MODEL}@{CHAMPION}"
    champion_version = version_for_alias(DEMO_MODEL, CHAMPION)
    examples = []
    if champion_version is not None:
        _, score = load_scorer(champion_uri)
        examples = [
            {"text": text, "p_great": round(float(p), 4)}
            for text, p in zip(EXAMPLES, score(EXAMPLES), strict=True)
        ]
    lap("load_champion", mark)

    minilm = fine_tune.test_metrics
    gain = test_set_gain(
        short.test["label"].tolist(),
        baseline.result.pipeline.predict(short.test["text"]).tolist(),
        fine_tune.test_predictions,
        seed=config.seed,
    )
    writer = ResultsWriter(PROJECT, settings.dist_dir, command)
    writer.save_figure(
        comparison_figure(
            {
                "TF-IDF + LR": {
                    k: baseline.result.test_metrics[k] for k in ("macro_f1", "accuracy")
                },
                "MiniLM (demo fine-tune)": {k: minilm[k] for k in ("macro_f1", "accuracy")},
            },
            "test set (1,000 reviews)",
        ),
        "baseline_vs_minilm",
    )
    writer.save_figure(
        confusion_matrix_figure(minilm["confusion_matrix"], LABELS, "MiniLM demo fine-tune"),
        "confusion_matrix",
    )
    writer.save_figure(
        learning_curve_figure(
            fine_tune.fit.history, fine_tune.fit.evaluations, "MiniLM demo fine-tune"
        ),
        "learning_curve",
    )
    decisions = [first_gate, second_gate]
    gate_summary = ", ".join(
        f"v{d.challenger_version} {'promoted' if d.promoted else 'rejected'}" for d in decisions
    )
    total = round(time.monotonic() - started, 1)
    timings["total"] = total
    committed = committed_results(PROJECT)
    results: dict[str, Any] = {
        "headline": [
            *quality_headlines(minilm, baseline.result.test_metrics, gain),
            headline_figure(
                "Promotion gate decisions (first model, then an under-trained one)",
                gate_summary,
                "",
            ),
            headline_figure("Demo wall time (budget 300 s)", total, "s"),
            *(reference_headline(committed) if committed else []),
        ],
        "note": (
            f"Short fine-tune for the demo: {len(short.train)} of the training rows, 1 epoch, "
            f"max_length {config.max_length}, batch {config.batch_size}, "
            f"AdamW {config.learning_rate}; "
            "the TF-IDF baseline is fit on the same rows. Figures marked as references come from "
            "the committed benchmark (benchmarks/results.json: all rows, 2 epochs, several "
            "seeds), not from this run."
        ),
        "data": full.summary(),
        "train_config": config.model_dump(),
        "baseline": {"test": baseline.result.test_metrics, "run_ids": baseline.run_ids},
        "fine_tune": {
            "test": minilm,
            "run_ids": fine_tune.run_ids,
            "model_uri": fine_tune.model_uri,
            "registered_version": fine_tune.registered_version,
            "samples_per_second": round(fine_tune.fit.samples_per_second, 2),
            "steps": fine_tune.fit.global_step,
            "world_size": fine_tune.fit.world_size,
        },
        "gate": [d.as_dict() for d in decisions],
        "champion": {"uri": champion_uri, "version": champion_version, "examples": examples},
        "tracking": {
            "mlflow_tracking_uri": settings.resolved_tracking_uri(),
            "registered_model": DEMO_MODEL,
            "wandb_mode": settings.resolved_wandb_mode() if "wandb" in settings.trackers else "off",
            "run_dir": str(settings.run_dir),
        },
        "timings_s": timings,
    }
    return writer.write(results)
