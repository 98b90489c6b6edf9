"""The MLflow model registry with aliases, and the champion/challenger promotion gate.

Registration points the ``challenger`` alias at the new version. The gate evaluates challenger and
champion on the same held-out test set, runs the behavioural suites on the challenger, and promotes
only when the challenger beats the champion by the margin (or, with no champion yet, reaches the
floor) AND passes every suite. Each decision is written on the challenger's version as ``gate.*``
tags with the reason; a promotion moves ``champion`` (the old one keeps ``previous-champion``).
Anything can then load ``models:/<name>@champion``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from experiment_tracking.behaviour import BehaviourReport, run_behaviour_suites
from experiment_tracking.data import ReviewData
from experiment_tracking.metrics import classification_metrics, scalar_metrics
from experiment_tracking.settings import ProjectSettings

logger = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous-champion"


class RegistryError(RuntimeError):
    """The registry cannot do what was asked; the message says why."""


@dataclass(frozen=True)
class GateThresholds:
    margin: float = 0.01
    min_macro_f1: float = 0.5
    min_functionality_pass_rate: float = 0.8
    max_invariance_failure_rate: float = 0.1
    max_directional_failure_rate: float = 0.1

    @classmethod
    def from_settings(cls, settings: ProjectSettings) -> GateThresholds:
        return cls(
            margin=settings.gate_margin,
            min_macro_f1=settings.gate_min_macro_f1,
            min_functionality_pass_rate=settings.gate_min_functionality_pass_rate,
            max_invariance_failure_rate=settings.gate_max_invariance_failure_rate,
            max_directional_failure_rate=settings.gate_max_directional_failure_rate,
        )


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
    behaviour: dict[str, Any]
    thresholds: dict[str, float]
    decided_at: str
    gate_run_id: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _client():
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


def load_scorer(model_uri: str):
    """The registered pyfunc model and a function texts -> p(great)."""
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(model_uri)

    def score(texts: list[str]):
        return model.predict(pd.DataFrame({"text": texts}))["p_great"].to_numpy(dtype=float)

    return model, score


def evaluate_model(
    model_uri: str, data: ReviewData, behaviour: bool = True, seed: int = 0
) -> tuple[dict[str, Any], BehaviourReport | None]:
    """Test-set metrics (and behavioural suites) of a logged or registered model."""
    model, score = load_scorer(model_uri)
    predictions = model.predict(pd.DataFrame({"text": data.test["text"]}))
    metrics = classification_metrics(data.test["label"], predictions["label"].astype(str).tolist())
    report = (
        run_behaviour_suites(score, data.test["text"].tolist(), seed=seed) if behaviour else None
    )
    return metrics, report


def decide(
    challenger_macro_f1: float,
    champion_macro_f1: float | None,
    behaviour: BehaviourReport,
    thresholds: GateThresholds,
) -> tuple[bool, str, dict[str, bool]]:
    """The gate's rule, as a pure function: (promoted, reason, checks)."""
    checks: dict[str, bool] = {}
    reasons: list[str] = []
    if champion_macro_f1 is None:
        checks["quality"] = challenger_macro_f1 >= thresholds.min_macro_f1
        quality_text = (
            f"no champion yet; macro-F1 {challenger_macro_f1:.4f} "
            f"{'>=' if checks['quality'] else '<'} floor {thresholds.min_macro_f1:.4f}"
        )
    else:
        required = champion_macro_f1 + thresholds.margin
        checks["quality"] = challenger_macro_f1 >= required
        quality_text = (
            f"macro-F1 {challenger_macro_f1:.4f} vs champion {champion_macro_f1:.4f} "
            f"({'meets' if checks['quality'] else 'misses'} the required {required:.4f}, margin "
            f"{thresholds.margin:.4f})"
        )
    suites = behaviour.suites()
    checks["minimum_functionality"] = (
        suites["minimum_functionality"].rate >= thresholds.min_functionality_pass_rate
    )
    checks["invariance"] = suites["invariance"].rate <= thresholds.max_invariance_failure_rate
    checks["directional"] = suites["directional"].rate <= thresholds.max_directional_failure_rate
    behaviour_text = (
        f"minimum functionality {suites['minimum_functionality'].rate:.0%} passed "
        f"(needs >= {thresholds.min_functionality_pass_rate:.0%}), invariance "
        f"{suites['invariance'].rate:.1%} flipped "
        f"(max {thresholds.max_invariance_failure_rate:.0%}), "
        f"directional {suites['directional'].rate:.1%} failed (max "
        f"{thresholds.max_directional_failure_rate:.0%})"
    )
    promoted = all(checks.values())
    failed = [name for name, ok in checks.items() if not ok]
    reasons.append(quality_text)
    reasons.append(behaviour_text)
    verdict = "promoted" if promoted else f"rejected ({', '.join(failed)} failed)"
    return promoted, f"{verdict}: " + "; ".join(reasons), checks


def _record_gate_run(
    settings: ProjectSettings, decision: GateDecision, data: ReviewData
) -> str | None:
    """A run in the experiment holding the decision, metrics and behaviour report."""
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
        metrics |= {
            f"behaviour/{name}": suite["rate"] for name, suite in decision.behaviour.items()
        }
        mlflow.log_metrics(metrics)
        mlflow.log_dict(decision.as_dict(), "gate/decision.json")
        return run.info.run_id


def _record_metrics(name: str, version: str, metrics: dict[str, Any], dataset_sha256: str) -> None:
    """Test-set results on the version, keyed by the data set's hash, for later gates to reuse."""
    client = _client()
    client.set_model_version_tag(name, version, "eval.dataset_sha256", dataset_sha256)
    client.set_model_version_tag(name, version, "eval.metrics", json.dumps(metrics))


def _recorded_metrics(name: str, version: str, dataset_sha256: str) -> dict[str, Any] | None:
    """The version's recorded test metrics if they were measured on exactly this data set."""
    tags = _client().get_model_version(name, version).tags
    if tags.get("eval.dataset_sha256") != dataset_sha256 or "eval.metrics" not in tags:
        return None
    return json.loads(tags["eval.metrics"])


def promote(
    settings: ProjectSettings,
    data: ReviewData,
    challenger_version: str | None = None,
    thresholds: GateThresholds | None = None,
    name: str | None = None,
) -> GateDecision:
    """Run the gate on the challenger (default: alias ``challenger``) and act on the decision."""
    from experiment_tracking.tracking import configure_mlflow

    configure_mlflow(settings)
    name = name or settings.registered_model
    thresholds = thresholds or GateThresholds.from_settings(settings)
    client = _client()
    from mlflow.exceptions import MlflowException

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
    challenger_metrics, behaviour = evaluate_model(
        f"models:/{name}/{challenger_version}", data, seed=settings.seed
    )
    champion_metrics = None
    if champion_version is not None:
        champion_metrics = _recorded_metrics(name, champion_version, data.sha256)
        if champion_metrics is None:
            champion_metrics, _ = evaluate_model(
                f"models:/{name}/{champion_version}", data, behaviour=False
            )
            _record_metrics(name, champion_version, champion_metrics, data.sha256)
    promoted, reason, checks = decide(
        challenger_metrics["macro_f1"],
        champion_metrics["macro_f1"] if champion_metrics else None,
        behaviour,
        thresholds,
    )
    decision = GateDecision(
        model_name=name,
        challenger_version=challenger_version,
        champion_version=champion_version,
        promoted=promoted,
        reason=reason,
        checks=checks,
        challenger_metrics=challenger_metrics,
        champion_metrics=champion_metrics,
        behaviour=behaviour.as_dict(),
        thresholds=asdict(thresholds),
        decided_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    decision.gate_run_id = _record_gate_run(settings, decision, data)
    _record_metrics(name, challenger_version, challenger_metrics, data.sha256)

    tags = {
        "gate.decision": "promoted" if promoted else "rejected",
        "gate.reason": reason,
        "gate.decided_at": decision.decided_at,
        "gate.challenger_macro_f1": f"{challenger_metrics['macro_f1']:.4f}",
        "gate.challenger_accuracy": f"{challenger_metrics['accuracy']:.4f}",
        "gate.champion_version": champion_version or "none",
        "gate.champion_macro_f1": f"{champion_metrics['macro_f1']:.4f}"
        if champion_metrics
        else "none",
        "gate.margin": str(thresholds.margin),
        "gate.dataset_sha256": data.sha256,
        "gate.run_id": decision.gate_run_id or "",
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
