"""Hyper-parameter sweep with Optuna (TPE, median pruning). The sweep is a parent MLflow run and
each
trial a nested run (W&B: one run per trial, grouped by the sweep name). Trials are judged on the
validation split; the best trial's model is evaluated on the test set, logged and registered."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiment_tracking.data import ReviewData
from experiment_tracking.pipeline import (
    log_evaluation_artifacts,
    resolve_model_dir,
    run_params,
    test_evaluation,
)
from experiment_tracking.plots import _figure
from experiment_tracking.settings import ProjectSettings, TrainConfig
from experiment_tracking.tracking import Tracker, open_tracker, standard_tags
from experiment_tracking.training import FitResult, TrainingError, fit

logger = logging.getLogger(__name__)


@dataclass
class SweepReport:
    best_trial: int
    best_value: float
    best_params: dict[str, Any]
    trials: list[dict[str, Any]]
    test_metrics: dict[str, Any]
    parent_run_ids: dict[str, str]
    best_run_ids: dict[str, str]
    model_uri: str | None = None
    registered_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def suggest(trial: Any, base: TrainConfig) -> TrainConfig:
    """The search space: learning rate, batch size, warmup and weight decay."""
    return base.model_copy(
        update={
            "learning_rate": trial.suggest_float("learning_rate", 2e-5, 3e-4, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [16, 32]),
            "warmup_ratio": trial.suggest_float("warmup_ratio", 0.0, 0.2),
            "weight_decay": trial.suggest_float("weight_decay", 0.0, 0.1),
        }
    )


def run_sweep(
    settings: ProjectSettings,
    base: TrainConfig,
    data: ReviewData,
    n_trials: int,
    run_name: str = "sweep",
    model_dir: Path | None = None,
    register: bool = True,
    progress: bool = True,
) -> SweepReport:
    import optuna

    model_dir = resolve_model_dir(settings, model_dir)
    sweep_dir = settings.run_dir / "sweeps" / run_name
    shutil.rmtree(sweep_dir, ignore_errors=True)
    mlflow_only = settings.model_copy(
        update={"trackers": [t for t in settings.trackers if t == "mlflow"]}
    )
    parent = open_tracker(mlflow_only, run_name, standard_tags(data.sha256, "sweep"))
    parent.log_params(
        {
            "n_trials": n_trials,
            "sampler": "TPE",
            "pruner": "median",
            **{f"base_{k}": v for k, v in run_params(base, model_dir, data).items()},
        }
    )
    results: dict[int, tuple[FitResult, dict[str, str]]] = {}

    def objective(trial: optuna.Trial) -> float:
        config = suggest(trial, base)
        tracker = open_tracker(
            settings,
            f"{run_name}-trial-{trial.number}",
            {**standard_tags(data.sha256, "sweep-trial"), "trial": str(trial.number)},
            nested=True,
            group=run_name,
        )
        tracker.log_params({**run_params(config, model_dir, data), "trial": trial.number})

        def report(step: int, metrics: dict[str, float]) -> None:
            trial.report(metrics["macro_f1"], step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step}")

        try:
            result = fit(
                config,
                data,
                model_dir,
                sweep_dir / f"trial-{trial.number}",
                tracker=tracker,
                checkpoint=False,
                on_evaluate=report,
                progress=progress,
            )
        except optuna.TrialPruned:
            tracker.set_tags({"pruned": "true"})
            tracker.finish("KILLED")
            raise
        except BaseException:
            tracker.finish("FAILED")
            raise
        tracker.log_metrics(
            {"best_validation_macro_f1": result.best_validation["macro_f1"]}, result.global_step
        )
        tracker.finish("FINISHED")
        results[trial.number] = (result, tracker.run_ids)
        return result.best_validation["macro_f1"]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=run_name,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=base.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2),
    )
    try:
        study.optimize(objective, n_trials=n_trials)
        if not results:
            raise TrainingError(f"every trial of the sweep {run_name!r} was pruned or failed")
        best = study.best_trial
        best_result, best_ids = results[best.number]
        trials = [
            {"number": t.number, "state": t.state.name, "value": t.value, "params": t.params}
            for t in study.trials
        ]
        parent.log_params(
            {f"best_{k}": v for k, v in best.params.items()} | {"best_trial": best.number}
        )
        parent.log_metrics({"best_validation_macro_f1": best.value}, step=0)
        parent.log_dict({"trials": trials}, "sweep/trials.json")
        figure, axes = _figure(6.0, 4.0)
        done = [t for t in trials if t["value"] is not None]
        axes.plot([t["number"] for t in done], [t["value"] for t in done], "o-")
        axes.set_xlabel("trial")
        axes.set_ylabel("validation macro-F1")
        axes.set_title(f"sweep {run_name}")
        parent.log_figure(figure, "plots/sweep_history.png")

        # The best trial's run gets the test evaluation, the plots and the logged model.
        test_metrics, _ = test_evaluation(best_result.model_dir, data)
        best_tracker = Tracker()
        if best_ids:
            best_tracker = open_tracker(
                settings,
                f"{run_name}-trial-{best.number}",
                {},
                resume_ids=best_ids,
                nested=True,
                group=run_name,
            )
        log_evaluation_artifacts(best_tracker, best_result, test_metrics, f"{run_name} best trial")
        best_tracker.set_tags({"best_trial": "true"})
        model_info = best_tracker.log_model(
            best_result.model_dir, data.test["text"].head(3).tolist()
        )
        best_tracker.finish("FINISHED")
        report = SweepReport(
            best_trial=best.number,
            best_value=float(best.value),
            best_params=best.params,
            trials=trials,
            test_metrics=test_metrics,
            parent_run_ids=parent.run_ids,
            best_run_ids=best_ids,
        )
        parent.log_metrics({"best_test_macro_f1": test_metrics["macro_f1"]}, step=0)
        if model_info is not None:
            report.model_uri = model_info.model_uri
            if register:
                from experiment_tracking.registry import register_challenger

                report.registered_version = register_challenger(
                    settings.registered_model,
                    model_info.model_uri,
                    best_ids.get("mlflow"),
                    {
                        "macro_f1_test": f"{test_metrics['macro_f1']:.4f}",
                        "sweep": run_name,
                        "trial": str(best.number),
                        "dataset_sha256": data.sha256,
                    },
                )
    except BaseException:
        parent.finish("FAILED")
        raise
    parent.finish("FINISHED")
    for number in results:
        if number != best.number:
            shutil.rmtree(sweep_dir / f"trial-{number}", ignore_errors=True)
    return report
