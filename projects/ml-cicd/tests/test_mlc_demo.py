"""The demo end to end (real uvicorn service, git clone of the data, three retrains, a reload
under load), on a short load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ml_cicd.demo import DEMO_MODEL, run_demo
from ml_cicd.settings import ProjectSettings
from ml_cicd.training import bundled_training_rows


@pytest.mark.slow
def test_demo_promotes_reloads_without_failures_and_refuses_bad_labels(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "slices").mkdir(parents=True)
    rows = bundled_training_rows().sample(frac=1, random_state=0).reset_index(drop=True)
    rows.iloc[:1100].to_csv(data / "slices" / "0001-reviews.csv", index=False)
    settings = ProjectSettings(run_dir=tmp_path / "runs", data_dir=data, dist_dir=tmp_path / "dist")

    path = run_demo(settings, "python -m ml_cicd demo", load_seconds=2)

    results = json.loads(path.read_text())
    statuses = [retrain["status"] for retrain in results["retrains"].values()]
    assert statuses == ["promoted", "promoted", "rejected"]
    during = results["load_during_reload"]
    assert during["requests"] > 0 and during["failed"] == 0
    reload = results["reload"]
    assert reload["reply"]["status"] == 200 and reload["reply"]["switched"] is True
    second = list(results["retrains"].values())[1]
    assert reload["served_version"] == second["registered_version"]
    assert reload["first_answer_of_new_version_s"] is not None
    headline = {item["name"]: item for item in results["headline"]}
    assert headline["failed requests during the reload"]["value"] == 0
    assert headline["gate: shuffled-label slice"]["value"] == "rejected"
    for plot in results["plots"]:
        assert (path.parent / plot).stat().st_size > 0
    assert len(results["reports"]) == 3
    # The committed data folder was not touched: the demo worked on a clone.
    assert [p.name for p in (data / "slices").iterdir()] == ["0001-reviews.csv"]
    assert results["retrains"]["committed data"]["model_name"] == DEMO_MODEL
