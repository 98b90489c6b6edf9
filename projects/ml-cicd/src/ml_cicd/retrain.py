"""The retrain pipeline, run after new data is committed:

validate the new slices -> train on every slice -> evaluate on the fixed held-out set ->
compare with the champion (``roadmap_lab.gate``: the paired bootstrap interval of the macro-F1
gain at its lower bound, plus the behavioural suites) -> register the model -> move
``@champion`` only when the gate passes.

``dry_run`` stops after the comparison: nothing is logged or registered. A data version that is
already registered is a no-op. Invalid data stops the run before training. A registry error stops
it too (RegistryError, fail closed): an outage is never read as "no champion". Every outcome
writes the markdown report (atomically) when a path is given.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from roadmap_lab.behaviour import BehaviourReport, run_behaviour_suites
from roadmap_lab.gate import GateThresholds, decide
from roadmap_lab.results import atomic_write_text
from roadmap_lab.stats import macro_f1_difference

from ml_cicd.model import (
    LABELS,
    classification_metrics,
    load_pyfunc,
    log_model,
    p_great_function,
    predict_labels,
)
from ml_cicd.outcome import RetrainOutcome
from ml_cicd.registry import (
    CHAMPION,
    REGISTRATION_DONE,
    REGISTRATION_TAG,
    client,
    configure,
    promote,
    registry_errors,
    version_for_alias,
    version_trained_on,
)
from ml_cicd.report import render_report
from ml_cicd.settings import ProjectSettings, ValidationRules
from ml_cicd.slices import DataVersion, combined, data_version, read_slices
from ml_cicd.training import held_out_set, train_and_evaluate
from ml_cicd.validation import validate_new_data

logger = logging.getLogger(__name__)


@dataclass
class ChampionState:
    version: str
    data: DataVersion | None
    metrics: dict[str, Any]
    predictions: list[str]


def git_commit(folder: Path) -> str | None:
    """The commit of the checkout holding ``folder``, when it is one (recorded on the model)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _data_stats(frame: pd.DataFrame) -> dict[str, Any]:
    if frame.empty:
        return {"rows": 0}
    lengths = frame["text"].astype(str).str.len()
    return {
        "rows": len(frame),
        "great_share": round(float((frame["label"] == "great").mean()), 4),
        "median_chars": float(lengths.median()),
    }


def _champion_state(settings: ProjectSettings, version: Any, test: pd.DataFrame) -> ChampionState:
    """The champion read at the start of the run, scored on the held-out set (a model that does
    not load stops the run: ModelLoadError)."""
    model = load_pyfunc(f"models:/{settings.registered_model}/{version.version}")
    p_great = p_great_function(model)(test["text"].astype(str).tolist())
    predictions = predict_labels(p_great)
    return ChampionState(
        version=str(version.version),
        data=DataVersion.from_tags(version.tags),
        metrics=classification_metrics(test["label"].astype(str).tolist(), predictions),
        predictions=predictions,
    )


def _behaviour(pipeline: Any, test: pd.DataFrame, seed: int) -> BehaviourReport:
    great = list(pipeline.classes_).index("great")

    def score(texts: list[str]) -> Any:
        return pipeline.predict_proba(list(texts))[:, great]

    return run_behaviour_suites(score, test["text"].astype(str).tolist(), seed=seed)


def _register(
    settings: ProjectSettings, outcome: RetrainOutcome, trained: Any, report_text: str
) -> None:
    """Log the run and the model, register the version with its tags, move the champion when
    the gate passed, then mark the registration complete. Runs last, once every figure is
    known; a registry error stops it (RegistryError) before the champion moves or, at worst,
    leaves a registered version without its completion tag, which a rerun does not count."""
    with registry_errors(settings, "registering the challenger"):
        _log_and_register(settings, outcome, trained, report_text)


def _log_and_register(
    settings: ProjectSettings, outcome: RetrainOutcome, trained: Any, report_text: str
) -> None:
    import mlflow

    experiment_id = configure(settings)
    commit = git_commit(settings.data_dir)
    tags = {
        **outcome.data.as_tags(),
        "data_git_commit": commit or "none",
        "gate.decision": outcome.status,
        "gate.reason": outcome.reason[:4000],
        "gate.champion_version": outcome.champion_version or "none",
        **{f"gate.check.{name}": str(ok).lower() for name, ok in outcome.checks.items()},
    }
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"retrain-{outcome.data.short}"
    ) as run:
        mlflow.set_tags({k: v for k, v in tags.items() if k != "data_slices"})
        mlflow.log_params(
            {"slices": len(outcome.data.slices), "rows": outcome.data.rows, "model": "tfidf-lr"}
        )
        mlflow.log_metrics({f"heldout_{k}": v for k, v in trained.metrics.items()})
        if outcome.gain:
            mlflow.log_metrics(
                {f"gain_macro_f1_{k}": outcome.gain[k] for k in ("estimate", "low", "high")}
            )
        mlflow.log_text(report_text, "retrain-report.md")
        mlflow.log_dict(outcome.as_dict(), "retrain-outcome.json")
        info = log_model(trained.pipeline, outcome.data, trained.metrics)
        outcome.run_id = run.info.run_id
    registered = mlflow.register_model(
        info.model_uri,
        settings.registered_model,
        tags={**tags, "metrics": json.dumps(trained.metrics), "source_run_id": outcome.run_id},
    )
    outcome.registered_version = str(registered.version)
    mlflow_client = client(settings)
    if outcome.status == "promoted":
        promote(mlflow_client, settings.registered_model, outcome.registered_version)
    mlflow_client.set_model_version_tag(
        settings.registered_model, outcome.registered_version, REGISTRATION_TAG, REGISTRATION_DONE
    )
    outcome.aliases = dict(mlflow_client.get_registered_model(settings.registered_model).aliases)


def retrain(
    settings: ProjectSettings,
    rules: ValidationRules | None = None,
    dry_run: bool = False,
    report_path: Path | None = None,
) -> RetrainOutcome:
    started = time.monotonic()
    rules = rules or ValidationRules()
    thresholds: GateThresholds = settings.thresholds()
    name = settings.registered_model
    slices = read_slices(settings.data_dir)
    data = data_version(slices)
    mlflow_client = client(settings)
    with registry_errors(settings, "reading the champion and the registered versions"):
        champion_version = version_for_alias(mlflow_client, name, CHAMPION)
        existing = version_trained_on(mlflow_client, name, data.version)
    previous = DataVersion.from_tags(champion_version.tags) if champion_version else None
    outcome = RetrainOutcome(
        status="unchanged",
        reason="",
        model_name=name,
        dry_run=dry_run,
        data=data,
        previous_data=previous,
        champion_version=str(champion_version.version) if champion_version else None,
        thresholds=asdict(thresholds),
    )

    if existing is not None:
        outcome.reason = (
            f"data version {data.short} was already trained as {name} version "
            f"{existing.version} (gate: {existing.tags.get('gate.decision', 'unknown')}); "
            "nothing to do"
        )
        return _finish(outcome, report_path, started)

    test = held_out_set(settings.test_file)
    outcome.validation = validate_new_data(
        slices, previous, rules, test["text"].astype(str).tolist()
    )
    frame = combined(slices)
    outcome.data_stats = {"new": _data_stats(frame)}
    if previous is not None:
        outcome.data_stats["previous"] = _data_stats(frame[frame["slice"].isin(previous.names())])
    if not outcome.validation.passed:
        outcome.status = "invalid"
        outcome.reason = f"invalid data, nothing trained: {outcome.validation.summary()}"
        return _finish(outcome, report_path, started)

    logger.info(
        "training on %d rows of %d slice(s), data version %s", len(frame), len(slices), data.short
    )
    trained = train_and_evaluate(frame, data, test, settings.seed)
    outcome.challenger_metrics = trained.metrics
    behaviour = _behaviour(trained.pipeline, test, settings.seed)
    outcome.behaviour = behaviour.as_dict()
    gain = None
    if champion_version is not None:
        champion = _champion_state(settings, champion_version, test)
        outcome.champion_metrics = champion.metrics
        gain = macro_f1_difference(
            test["label"].astype(str).tolist(),
            champion.predictions,
            trained.predictions,
            labels=list(LABELS),
            resamples=thresholds.resamples,
            confidence=thresholds.confidence,
            seed=settings.seed,
        )
        outcome.gain = gain.as_dict()
    promoted, reason, checks = decide(trained.metrics["macro_f1"], gain, behaviour, thresholds)
    outcome.status = "promoted" if promoted else "rejected"
    outcome.reason = reason
    outcome.checks = checks
    if not dry_run:
        _register(settings, outcome, trained, render_report(outcome))
    return _finish(outcome, report_path, started)


def _finish(outcome: RetrainOutcome, report_path: Path | None, started: float) -> RetrainOutcome:
    outcome.seconds = round(time.monotonic() - started, 2)
    if report_path is not None:
        atomic_write_text(report_path, render_report(outcome))
    logger.info("retrain: %s", outcome.reason)
    return outcome
