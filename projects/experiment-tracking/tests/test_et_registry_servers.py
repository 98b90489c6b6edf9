"""Against real MLflow servers (sqlite and PostgreSQL backend stores): runs, registry, aliases,
the gate."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from et_testing import store_client
from experiment_tracking.pipeline import run_training
from experiment_tracking.registry import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, promote
from experiment_tracking.settings import ProjectSettings

pytestmark = pytest.mark.slow
MODEL = "reviews-under-test"


def test_runs_registry_and_gate(
    tracking_server: str, tmp_path: Path, tiny_bert_dir: Path, tiny_data, tiny_config
) -> None:
    settings = ProjectSettings(
        run_dir=tmp_path / "run",
        tracking_uri=tracking_server,
        trackers=["mlflow"],
        registered_model=MODEL,
        experiment="gate-test",
        gate_margin=0.01,
    )
    client = store_client(tracking_server)

    good = run_training(
        settings,
        tiny_config,
        "good",
        model_dir=tiny_bert_dir,
        data=tiny_data,
        register=True,
        progress=False,
    )
    # The run: parameters, per-step and per-epoch metrics, artifacts, lineage tags.
    run = client.get_run(good.run_ids["mlflow"])
    assert run.data.params["learning_rate"] == str(tiny_config.learning_rate)
    assert run.data.params["dataset_sha256"] == tiny_data.sha256
    assert run.data.tags["dataset_sha256"] == tiny_data.sha256
    assert run.data.tags["mlflow.source.git.commit"]
    losses = client.get_metric_history(run.info.run_id, "train/loss")
    assert good.fit.history and good.fit.evaluations  # else the comparisons below prove nothing
    assert [m.step for m in losses] == [h["step"] for h in good.fit.history]
    assert len(client.get_metric_history(run.info.run_id, "validation/macro_f1")) == len(
        good.fit.evaluations
    )
    assert run.data.metrics["test/macro_f1"] == pytest.approx(good.test_metrics["macro_f1"])
    artifacts = {
        a.path
        for folder in ("plots", "evaluation", "training")
        for a in client.list_artifacts(run.info.run_id, folder)
    }
    assert {
        "plots/confusion_matrix.png",
        "plots/learning_curve.png",
        "evaluation/test_metrics.json",
        "training/fit_summary.json",
    } <= artifacts
    assert {d.dataset.digest for d in run.inputs.dataset_inputs} == {tiny_data.sha256[:36]}

    # The registry: version 1 is the challenger; the gate makes it the first champion.
    assert good.registered_version == "1"
    assert str(client.get_model_version_by_alias(MODEL, CHALLENGER).version) == "1"
    first = promote(settings, tiny_data)
    assert first.promoted, first.reason
    assert str(client.get_model_version_by_alias(MODEL, CHAMPION).version) == "1"
    assert client.get_model_version(MODEL, "1").tags["gate.decision"] == "promoted"

    # A worse model is refused; the champion stays; the decision and reason are on the version.
    weak = run_training(
        settings,
        tiny_config.model_copy(update={"max_steps": 1}),
        "weak",
        model_dir=tiny_bert_dir,
        data=tiny_data,
        register=True,
        progress=False,
    )
    second = promote(settings, tiny_data)
    assert not second.promoted
    assert str(client.get_model_version_by_alias(MODEL, CHAMPION).version) == "1"
    tags = client.get_model_version(MODEL, weak.registered_version).tags
    assert tags["gate.decision"] == "rejected"
    assert tags["gate.reason"].startswith("rejected (quality")
    assert tags["gate.champion_version"] == "1"
    assert float(tags["gate.challenger_macro_f1"]) < float(tags["gate.champion_macro_f1"])
    # The paired interval of the gain is recorded, and the decision was taken on its lower bound.
    assert tags["gate.bound"] == "low" and tags["gate.interval"] == "95% paired bootstrap"
    assert float(tags["gate.macro_f1_gain_low"]) < 0
    assert float(tags["gate.macro_f1_gain_low"]) <= float(tags["gate.macro_f1_gain"])
    assert float(tags["gate.macro_f1_gain"]) <= float(tags["gate.macro_f1_gain_high"])
    gate_run = client.get_run(tags["gate.run_id"])
    assert second.gain is not None
    assert gate_run.data.metrics["gain/macro_f1_low"] == pytest.approx(second.gain["low"])
    # The champion's predictions were recorded by its own gate and reused for this pairing.
    assert (
        client.get_model_version(MODEL, "1")
        .tags["eval.predictions"]
        .startswith(f"runs:/{first.gate_run_id}/")
    )

    # An equally good retrain passes with margin 0: the aliases move.
    again = run_training(
        settings,
        tiny_config,
        "good-again",
        model_dir=tiny_bert_dir,
        data=tiny_data,
        register=True,
        progress=False,
    )
    third = promote(settings.model_copy(update={"gate_margin": 0.0}), tiny_data)
    assert third.promoted, third.reason
    # Same seed and settings: the same predictions, so the paired interval is exactly zero.
    assert third.gain is not None
    assert (third.gain["estimate"], third.gain["low"], third.gain["high"]) == (0.0, 0.0, 0.0)
    champion = client.get_model_version_by_alias(MODEL, CHAMPION)
    assert str(champion.version) == again.registered_version
    assert str(client.get_model_version_by_alias(MODEL, PREVIOUS_CHAMPION).version) == "1"
    assert (
        client.get_model_version(MODEL, "1").tags["gate.superseded_by"] == again.registered_version
    )

    # Anything can load the champion by alias.
    champion = mlflow.pyfunc.load_model(f"models:/{MODEL}@{CHAMPION}")
    predictions = champion.predict(
        pd.DataFrame({"text": ["Delicious and fresh, I love it.", "Stale, broken and awful."]})
    )
    assert predictions["label"].tolist() == ["great", "other"]
