"""A tracked training run end to end: data, fit, test evaluation, plots, logged model, registration;
and the tracked TF-IDF baseline run."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roadmap_lab.results import atomic_write_json

from experiment_tracking.baseline import BASELINE_PARAMS, BaselineResult, train_baseline
from experiment_tracking.data import LABELS, ReviewData, load_data
from experiment_tracking.metrics import classification_metrics, scalar_metrics
from experiment_tracking.plots import confusion_matrix_figure, learning_curve_figure
from experiment_tracking.settings import ProjectSettings, TrainConfig
from experiment_tracking.tracking import (
    Tracker,
    model_pip_requirements,
    open_tracker,
    standard_tags,
)
from experiment_tracking.training import (
    FitResult,
    TrainingInterrupted,
    fit,
    latest_checkpoint,
    make_accelerator,
    read_checkpoint_state,
)

logger = logging.getLogger(__name__)


@dataclass
class TrainingReport:
    run_name: str
    fit: FitResult
    is_main_process: bool
    test_metrics: dict[str, Any] = field(default_factory=dict)
    test_predictions: list[str] = field(default_factory=list)  # one label per test row
    run_ids: dict[str, str] = field(default_factory=dict)
    model_uri: str | None = None
    registered_version: str | None = None
    summary_file: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_name": self.run_name,
            "fit": self.fit.as_dict(),
            "test_metrics": self.test_metrics,
            "run_ids": self.run_ids,
            "model_uri": self.model_uri,
            "registered_version": self.registered_version,
        }


def resolve_model_dir(settings: ProjectSettings, model_dir: Path | None) -> Path:
    if model_dir is not None:
        return Path(model_dir)
    if settings.model_dir is not None:
        return settings.model_dir
    from roadmap_lab.models import minilm_dir

    return minilm_dir()


def run_params(config: TrainConfig, model_dir: Path, data: ReviewData) -> dict[str, Any]:
    return {
        **config.model_dump(),
        "model": Path(model_dir).name,
        "dataset_sha256": data.sha256,
        "dataset_source": data.source,
        "train_rows": len(data.train),
        "validation_rows": len(data.validation),
        "test_rows": len(data.test),
    }


def test_evaluation(model_dir: Path, data: ReviewData) -> tuple[dict[str, Any], list[str]]:
    """Evaluate the saved HF folder on the test rows with the same code the logged model runs:
    (metrics, the predicted label of each test row)."""
    import numpy as np

    from experiment_tracking.pyfunc_model import HFTextClassifier

    p_great = HFTextClassifier(model_dir).p_great(data.test["text"].tolist())
    predictions = np.where(p_great >= 0.5, "great", "other").tolist()
    return classification_metrics(data.test["label"], predictions), predictions


def log_evaluation_artifacts(
    tracker: Tracker, fit_result: FitResult, test_metrics: dict[str, Any], title: str
) -> None:
    from experiment_tracking.metrics import scalar_metrics as scalars

    tracker.log_metrics(scalars(test_metrics, "test"), fit_result.global_step)
    tracker.log_dict(test_metrics, "evaluation/test_metrics.json")
    tracker.log_figure(
        confusion_matrix_figure(test_metrics["confusion_matrix"], LABELS, f"{title}: test set"),
        "plots/confusion_matrix.png",
    )
    tracker.log_figure(
        learning_curve_figure(fit_result.history, fit_result.evaluations, title),
        "plots/learning_curve.png",
    )
    tracker.log_dict(fit_result.as_dict(), "training/fit_summary.json")


def run_training(
    settings: ProjectSettings,
    config: TrainConfig,
    run_name: str,
    *,
    model_dir: Path | None = None,
    train_file: Path | None = None,
    test_file: Path | None = None,
    data: ReviewData | None = None,
    resume: bool = False,
    register: bool = False,
    progress: bool = True,
) -> TrainingReport:
    """Fine-tune, evaluate on the test set, log everything, optionally register the model.

    Under several processes every process trains; only the main one tracks, evaluates and writes.
    """
    accelerator = make_accelerator(config)
    model_dir = resolve_model_dir(settings, model_dir)
    if data is None:
        data = load_data(
            train_file, test_file, config.validation_fraction, config.seed, config.train_subset
        )
    output_dir = settings.run_dir / "training" / run_name

    resume_ids: dict[str, str] = {}
    if resume and (checkpoint := latest_checkpoint(output_dir)) is not None:
        resume_ids = read_checkpoint_state(checkpoint).get("tracking_ids", {})

    tracker = Tracker()
    if accelerator.is_main_process:
        tracker = open_tracker(
            settings, run_name, standard_tags(data.sha256, "fine-tune"), resume_ids
        )
        tracker.log_params(
            {
                **run_params(config, model_dir, data),
                "world_size": accelerator.num_processes,
                "distributed_type": accelerator.distributed_type.value,
                "mixed_precision": accelerator.mixed_precision,
            }
        )
        if not resume_ids:
            for name, frame, context in (
                ("reviews-train", data.train, "training"),
                ("reviews-validation", data.validation, "validation"),
                ("reviews-test", data.test, "test"),
            ):
                tracker.log_dataset(frame, name, context, data.sha256)
    try:
        fit_result = fit(
            config,
            data,
            model_dir,
            output_dir,
            accelerator=accelerator,
            tracker=tracker,
            tracking_ids=tracker.run_ids,
            resume=resume,
            progress=progress,
        )
    except TrainingInterrupted:
        tracker.finish("KILLED")
        raise
    except BaseException:
        tracker.finish("FAILED")
        raise

    report = TrainingReport(
        run_name, fit_result, accelerator.is_main_process, run_ids=tracker.run_ids
    )
    if not accelerator.is_main_process:
        return report
    try:
        report.test_metrics, report.test_predictions = test_evaluation(fit_result.model_dir, data)
        log_evaluation_artifacts(tracker, fit_result, report.test_metrics, run_name)
        tracker.set_tags(
            {"world_size": fit_result.world_size, "stopped_early": fit_result.stopped_early}
        )
        model_info = tracker.log_model(fit_result.model_dir, data.test["text"].head(3).tolist())
        if model_info is not None:
            report.model_uri = model_info.model_uri
            if register:
                from experiment_tracking.registry import register_challenger

                report.registered_version = register_challenger(
                    settings.registered_model,
                    model_info.model_uri,
                    report.run_ids.get("mlflow"),
                    {
                        "macro_f1_test": f"{report.test_metrics['macro_f1']:.4f}",
                        "run_name": run_name,
                        "dataset_sha256": data.sha256,
                    },
                )
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish("FINISHED")
    report.summary_file = atomic_write_json(output_dir / "summary.json", report.as_dict())
    return report


@dataclass
class BaselineReport:
    result: BaselineResult
    run_ids: dict[str, str]


def run_baseline(
    settings: ProjectSettings, data: ReviewData, seed: int = 0, run_name: str = "tfidf-baseline"
) -> BaselineReport:
    """Fit and evaluate the TF-IDF baseline; tracked like a fine-tune (metrics, plot, model)."""
    result = train_baseline(data, seed)
    tracker = open_tracker(settings, run_name, standard_tags(data.sha256, "baseline"))
    try:
        tracker.log_params(
            {
                **BASELINE_PARAMS,
                "dataset_sha256": data.sha256,
                "train_rows": len(data.train),
                "test_rows": len(data.test),
                "seed": seed,
            }
        )
        tracker.log_metrics(
            {
                **scalar_metrics(result.test_metrics, "test"),
                **scalar_metrics(result.validation_metrics, "validation"),
                "train/fit_seconds": result.fit_seconds,
            },
            step=0,
        )
        tracker.log_dict(result.test_metrics, "evaluation/test_metrics.json")
        tracker.log_figure(
            confusion_matrix_figure(
                result.test_metrics["confusion_matrix"], LABELS, "TF-IDF baseline: test set"
            ),
            "plots/confusion_matrix.png",
        )
        if tracker.mlflow is not None:
            import mlflow.sklearn

            mlflow.sklearn.log_model(
                result.pipeline,
                name="model",
                input_example=data.test["text"].head(3).tolist(),
                pip_requirements=[
                    r
                    for r in model_pip_requirements()
                    if r.startswith(("mlflow", "pandas", "numpy"))
                ]
                + [_pinned("scikit-learn")],
            )
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish("FINISHED")
    return BaselineReport(result, tracker.run_ids)


def _pinned(dist: str) -> str:
    from importlib.metadata import version

    return f"{dist}=={version(dist)}"
