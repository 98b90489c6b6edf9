from __future__ import annotations

import json
from pathlib import Path

import pytest
from et_testing import store_client
from experiment_tracking.demo import DEMO_MODEL, run_demo
from experiment_tracking.reporting import F1_HEADLINE, GAIN_HEADLINE
from experiment_tracking.settings import ProjectSettings, TrainConfig
from experiment_tracking.sweep import run_sweep
from roadmap_lab.results import committed_results


@pytest.mark.slow
def test_sweep_nests_trials_and_registers_the_best(
    tmp_path: Path, tiny_bert_dir: Path, tiny_data
) -> None:
    settings = ProjectSettings(
        run_dir=tmp_path / "run", trackers=["mlflow"], registered_model="swept"
    )
    base = TrainConfig(epochs=2, batch_size=16, learning_rate=3e-3)
    report = run_sweep(
        settings, base, tiny_data, 3, "tiny-sweep", model_dir=tiny_bert_dir, progress=False
    )

    client = store_client(tmp_path / "run")
    parent_id = report.parent_run_ids["mlflow"]
    children = client.search_runs(
        [client.get_run(parent_id).info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    assert len(children) == 3
    best_values = [t["value"] for t in report.trials if t["value"] is not None]
    assert report.best_value == max(best_values)
    assert client.get_run(parent_id).data.params["best_trial"] == str(report.best_trial)
    assert report.best_run_ids["mlflow"] in {c.info.run_id for c in children}
    assert (
        str(client.get_model_version_by_alias("swept", "challenger").version)
        == report.registered_version
    )
    source = client.get_model_version("swept", report.registered_version).tags["source_run_id"]
    assert source == report.best_run_ids["mlflow"]


@pytest.mark.slow
def test_demo_writes_results_and_plots(tmp_path: Path, tiny_bert_dir: Path) -> None:
    settings = ProjectSettings(
        run_dir=tmp_path / "run", dist_dir=tmp_path / "dist", trackers=["mlflow"]
    )
    results_file = run_demo(
        settings,
        "python -m experiment_tracking demo",
        train_subset=256,
        model_dir=tiny_bert_dir,
        progress=False,
    )
    results = json.loads(results_file.read_text())
    assert results_file == tmp_path / "dist" / "experiment-tracking" / "results.json"
    assert results["status"] == "ok"
    assert results["command"] == "python -m experiment_tracking demo"
    gain = results["headline"][0]
    assert gain["name"] == GAIN_HEADLINE and gain["target"] == "> 0"
    # The gain on the test rows carries its paired bootstrap interval, so it earns a verdict.
    assert gain["interval"]["method"] == "paired bootstrap" and gain["interval"]["n"] > 0
    assert gain["verdict"] in ("met", "within noise", "missed")
    assert set(results["plots"]) == {
        "baseline_vs_minilm.png",
        "confusion_matrix.png",
        "learning_curve.png",
    }
    for plot in results["plots"]:
        assert (results_file.parent / plot).stat().st_size > 0

    # Figures carried from the committed benchmark (a resource on sys.path) are references with
    # their date; every other figure was measured by this run.
    committed = committed_results("experiment-tracking")
    assert committed is not None, "the committed benchmark results are not shipped"
    references = [item for item in results["headline"] if item.get("reference")]
    measured = [item for item in results["headline"] if not item.get("reference")]
    assert [item["name"] for item in references] == [h["name"] for h in committed["headline"]]
    assert {item["measured_at"] for item in references} == {committed["measured_at"]}
    assert {item["name"] for item in measured} >= {F1_HEADLINE, "Demo wall time (budget 300 s)"}

    assert len(results["gate"]) == 2
    second = results["gate"][1]
    assert not second["promoted"]  # the under-trained challenger never wins
    assert second["reason"].startswith("rejected")
    client = store_client(tmp_path / "run")
    assert (
        client.get_model_version(DEMO_MODEL, second["challenger_version"]).tags["gate.decision"]
        == "rejected"
    )
    # Every artifact stays in the run folder (none under the working directory).
    experiments = [e for e in client.search_experiments() if e.name != "Default"]
    assert experiments
    for experiment in experiments:
        assert experiment.artifact_location.startswith((tmp_path / "run").resolve().as_uri())
