"""The MLflow model registry with aliases, and the champion/challenger promotion gate.

Registration points the ``challenger`` alias at the new version. The gate scores challenger and
champion on the same held-out test rows and computes a paired bootstrap interval of the
challenger-minus-champion macro-F1 (``roadmap_lab.stats.macro_f1_difference``). It promotes only
when the interval's lower bound (by default; ``gate_bound``) reaches the margin, so a gain within
sampling noise is not enough (or, with no champion yet, when macro-F1 reaches the floor), AND the
challenger passes every behavioural suite. Each decision is written on the challenger's version
as ``gate.*`` tags with the reason; a promotion moves ``champion`` (the old one keeps
``previous-champion``). Anything can then load ``models:/<name>@champion``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from roadmap_lab.behaviour import BehaviourReport, ScoreFunction, run_behaviour_suites
from roadmap_lab.gate import GateThresholds, decide

from experiment_tracking.data import LABELS, ReviewData
from experiment_tracking.errors import ExperimentTrackingError
from experiment_tracking.metrics import classification_metrics, scalar_metrics
from experiment_tracking.settings import ProjectSettings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.pyfunc import PyFuncModel
    from roadmap_lab.stats import Interval

logger = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous-champion"
GAIN_PARTS = ("estimate", "low", "high")


class RegistryError(ExperimentTrackingError):
    """The registry cannot do what was asked; the message says why."""


@dataclass
class ModelEvaluation:
    """A model's test-set metrics and its predicted label for every test row, in row order."""

    metrics: dict[str, Any]
    predictions: list[str]
    behaviour: BehaviourReport | None = None


@dataclass
class GateDecision:
    model_name: str
    challenger_version: str
    champion_version: str | None
    promoted: bool
    reason: str
    checks: dict[str, bool]
    challenger_metrics: dict[str, Any]
    champion_metrics: dict[str, Any] | None
    # challenger minus champion macro-F1 with its interval (None without a champion)
    gain: dict[str, Any] | None
    behaviour: dict[str, Any]
    thresholds: dict[str, Any]
    decided_at: str
    gate_run_id: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _client() -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient()


def register_challenger(name: str, model_uri: str, run_id: str | None, tags: dict[str, str]) -> str:
    """Register ``model_uri`` as a new version of ``name`` and point ``challenger`` at it."""
    import mlflow

    version = mlflow.register_model(model_uri, name, tags=tags)
    client = _client()
    if run_id:
        client.set_model_version_tag(name, version.version, "source_run_id", run_id)
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    logger.info("registered %s version %s as %s", name, version.version, CHALLENGER)
    return str(version.version)


def version_for_alias(name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(_client().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def load_scorer(model_uri: str) -> tuple[PyFuncModel, ScoreFunction]:
    """The registered pyfunc model and a function texts -> p(great)."""
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(model_uri)

    def score(texts: list[str]) -> Any:
        return model.predict(pd.DataFrame({"text": texts}))["p_great"].to_numpy(dtype=float)

    return model, score


def evaluate_model(
    model_uri: str, data: ReviewData, behaviour: bool = True, seed: int = 0
) -> ModelEvaluation:
    """Test-set metrics and predictions (and behavioural suites) of a logged or registered model."""
    from mlflow.exceptions import MlflowException

    try:
        model, score = load_scorer(model_uri)
    except (MlflowException, OSError) as error:  # no such model, alias or artifact
        raise RegistryError(f"cannot load {model_uri}: {str(error).splitlines()[0]}") from error
    output = model.predict(pd.DataFrame({"text": data.test["text"]}))
    predictions = output["label"].astype(str).tolist()
    return ModelEvaluation(
        metrics=classification_metrics(data.test["label"], predictions),
        predictions=predictions,
        behaviour=(
            run_behaviour_suites(score, data.test["text"].tolist(), seed=seed)
            if behaviour
            else None
        ),
    )


def macro_f1_gain(
    data: ReviewData,
    champion_predictions: list[str],
    challenger_predictions: list[str],
    thresholds: GateThresholds,
    seed: int = 0,
) -> Interval:
    """Challenger minus champion macro-F1 on the same test rows, with its paired bootstrap
    interval: identical predictions give exactly 0 (resampled rows change both alike)."""
    from roadmap_lab.stats import macro_f1_difference

    return macro_f1_difference(
        data.test["label"].tolist(),
        champion_predictions,
        challenger_predictions,
        labels=LABELS,
        resamples=thresholds.resamples,
        confidence=thresholds.confidence,
        seed=seed,
    )


def _predictions_artifact(version: str) -> str:
    return f"gate/predictions-v{version}.json"


def _record_gate_run(
    settings: ProjectSettings,
    decision: GateDecision,
    data: ReviewData,
    fresh_predictions: dict[str, list[str]],
) -> str:
    """A run in the experiment holding the decision, metrics, the gain's interval, the behaviour
    report and the predictions evaluated for this decision ({version: labels})."""
    import mlflow

    from experiment_tracking.tracking import configure_mlflow, standard_tags

    configure_mlflow(settings)
    tags = {
        **standard_tags(data.sha256, "promotion-gate"),
        "model_name": decision.model_name,
        "challenger_version": decision.challenger_version,
        "gate.decision": "promoted" if decision.promoted else "rejected",
    }
    with mlflow.start_run(
        run_name=f"gate-{decision.model_name}-v{decision.challenger_version}",
        tags=tags,
        nested=mlflow.active_run() is not None,
    ) as run:
        mlflow.log_params({f"threshold_{k}": v for k, v in decision.thresholds.items()})
        metrics = scalar_metrics(decision.challenger_metrics, "challenger")
        if decision.champion_metrics:
            metrics |= scalar_metrics(decision.champion_metrics, "champion")
        if decision.gain:
            metrics |= {f"gain/macro_f1_{key}": decision.gain[key] for key in GAIN_PARTS}
        metrics |= {
            f"behaviour/{name}": suite["rate"] for name, suite in decision.behaviour.items()
        }
        mlflow.log_metrics(metrics)
        mlflow.log_dict(decision.as_dict(), "gate/decision.json")
        for version, labels in fresh_predictions.items():
            mlflow.log_dict(
                {"dataset_sha256": data.sha256, "labels": labels}, _predictions_artifact(version)
            )
        return run.info.run_id


def _record_evaluation(
    name: str, version: str, evaluation: ModelEvaluation, dataset_sha256: str, gate_run_id: str
) -> None:
    """Test-set results on the version, keyed by the data set's hash, for later gates to reuse;
    the predictions stay in the gate run (a tag is too small for them)."""
    client = _client()
    client.set_model_version_tag(name, version, "eval.dataset_sha256", dataset_sha256)
    client.set_model_version_tag(name, version, "eval.metrics", json.dumps(evaluation.metrics))
    client.set_model_version_tag(
        name, version, "eval.predictions", f"runs:/{gate_run_id}/{_predictions_artifact(version)}"
    )


def _recorded_evaluation(name: str, version: str, data: ReviewData) -> ModelEvaluation | None:
    """The version's recorded test metrics and predictions, if measured on exactly this data."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    tags = _client().get_model_version(name, version).tags
    if tags.get("eval.dataset_sha256") != data.sha256 or not {
        "eval.metrics",
        "eval.predictions",
    } <= set(tags):
        return None
    try:
        recorded = mlflow.artifacts.load_dict(tags["eval.predictions"])
    except (MlflowException, OSError):  # the gate run is gone: evaluate again
        return None
    labels = recorded.get("labels")
    if recorded.get("dataset_sha256") != data.sha256 or len(labels or []) != len(data.test):
        return None
    return ModelEvaluation(json.loads(tags["eval.metrics"]), list(labels))


def promote(
    settings: ProjectSettings,
    data: ReviewData,
    challenger_version: str | None = None,
    thresholds: GateThresholds | None = None,
    name: str | None = None,
) -> GateDecision:
    """Run the gate on the challenger (default: alias ``challenger``) and act on the decision."""
    from mlflow.exceptions import MlflowException

    from experiment_tracking.tracking import configure_mlflow

    configure_mlflow(settings)
    name = name or settings.registered_model
    thresholds = thresholds or settings.thresholds()
    client = _client()
    try:
        client.get_registered_model(name)
    except MlflowException as error:
        raise RegistryError(f"no registered model {name!r}: train with --register first") from error
    challenger_version = challenger_version or version_for_alias(name, CHALLENGER)
    if challenger_version is None:
        raise RegistryError(
            f"{name} has no '{CHALLENGER}' alias: register a model or pass --challenger-version"
        )
    try:
        client.get_model_version(name, challenger_version)
    except MlflowException as error:
        raise RegistryError(f"{name} has no version {challenger_version}") from error
    champion_version = version_for_alias(name, CHAMPION)
    if champion_version == challenger_version:
        raise RegistryError(f"{name} version {challenger_version} is already the champion")

    logger.info(
        "gate: evaluating %s v%s (champion: %s)", name, challenger_version, champion_version
    )
    challenger = evaluate_model(f"models:/{name}/{challenger_version}", data, seed=settings.seed)
    assert challenger.behaviour is not None  # evaluated with the suites
    fresh = {challenger_version: challenger}  # evaluated now: recorded for later gates
    champion: ModelEvaluation | None = None
    gain: Interval | None = None
    if champion_version is not None:
        champion = _recorded_evaluation(name, champion_version, data)
        if champion is None:
            champion = evaluate_model(f"models:/{name}/{champion_version}", data, behaviour=False)
            fresh[champion_version] = champion
        gain = macro_f1_gain(
            data, champion.predictions, challenger.predictions, thresholds, settings.seed
        )
    promoted, reason, checks = decide(
        challenger.metrics["macro_f1"], gain, challenger.behaviour, thresholds
    )
    decision = GateDecision(
        model_name=name,
        challenger_version=challenger_version,
        champion_version=champion_version,
        promoted=promoted,
        reason=reason,
        checks=checks,
        challenger_metrics=challenger.metrics,
        champion_metrics=champion.metrics if champion else None,
        gain=gain.as_dict() if gain else None,
        behaviour=challenger.behaviour.as_dict(),
        thresholds=asdict(thresholds),
        decided_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    decision.gate_run_id = _record_gate_run(
        settings, decision, data, {version: e.predictions for version, e in fresh.items()}
    )
    for version, evaluation in fresh.items():
        _record_evaluation(name, version, evaluation, data.sha256, decision.gate_run_id)

    tags = {
        "gate.decision": "promoted" if promoted else "rejected",
        "gate.reason": reason,
        "gate.decided_at": decision.decided_at,
        "gate.challenger_macro_f1": f"{challenger.metrics['macro_f1']:.4f}",
        "gate.challenger_accuracy": f"{challenger.metrics['accuracy']:.4f}",
        "gate.champion_version": champion_version or "none",
        "gate.champion_macro_f1": f"{champion.metrics['macro_f1']:.4f}" if champion else "none",
        "gate.macro_f1_gain": f"{gain.estimate:+.4f}" if gain else "none",
        "gate.macro_f1_gain_low": f"{gain.low:+.4f}" if gain else "none",
        "gate.macro_f1_gain_high": f"{gain.high:+.4f}" if gain else "none",
        "gate.interval": f"{thresholds.confidence:.0%} {gain.method}" if gain else "none",
        "gate.bound": thresholds.bound,
        "gate.margin": str(thresholds.margin),
        "gate.dataset_sha256": data.sha256,
        "gate.run_id": decision.gate_run_id,
        **{
            f"gate.behaviour.{suite}": f"{values['rate']:.4f}"
            for suite, values in decision.behaviour.items()
        },
        **{f"gate.check.{check}": str(ok).lower() for check, ok in checks.items()},
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, challenger_version, key, value)
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, challenger_version)
        if champion_version is not None:
            client.set_registered_model_alias(name, PREVIOUS_CHAMPION, champion_version)
            client.set_model_version_tag(
                name, champion_version, "gate.superseded_by", challenger_version
            )
        if version_for_alias(name, CHALLENGER) == challenger_version:
            client.delete_registered_model_alias(name, CHALLENGER)
    decision.aliases = dict(client.get_registered_model(name).aliases)
    logger.info("gate: %s", reason)
    return decision
