"""What the MLOps loop (loops/mlops) needs from the pipeline: source scenarios that pass
validation but change what a model learns (``inverted``, ``mislabelled``), and runs without a
logical date that train the next week of the history."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import requests
from data_pipelines import steps
from data_pipelines.model import predict_proba, train_model
from data_pipelines.settings import ProjectSettings
from data_pipelines.source import INVERT_MEDINC, FaultSpec, HousingSlices, SourceServer
from data_pipelines.validation import TARGET, read_slice, validate_slice
from roadmap_lab.housing_model import add_features

KEY, PREVIOUS, NEXT = "2020-11-29", "2020-11-22", "2020-12-06"


def frame(data: bytes | None) -> pd.DataFrame:
    assert data is not None
    return pd.read_csv(io.BytesIO(data))


def test_an_inverted_slice_passes_validation_and_misleads_a_model_trained_before_it(
    housing_slices: HousingSlices,
) -> None:
    clean = frame(housing_slices.csv_bytes(KEY))
    inverted = frame(housing_slices.inverted_bytes(KEY))
    assert (inverted["MedInc"] + clean["MedInc"]).round(9).eq(INVERT_MEDINC).all()
    assert inverted.drop(columns="MedInc").equals(clean.drop(columns="MedInc"))
    previous = read_slice(housing_slices.csv_bytes(PREVIOUS) or b"")
    report, _ = validate_slice(KEY, housing_slices.inverted_bytes(KEY) or b"", ProjectSettings(),
                               previous)  # fmt: skip
    assert report.passed, report.summary()

    features = [c for c in add_features(previous).columns if c not in ("id", "timestamp", TARGET)]
    model = train_model(add_features(previous)[features], previous[TARGET])

    def accuracy(rows: pd.DataFrame) -> float:
        predicted = predict_proba(model, add_features(rows)[features]) >= 0.5
        return float((predicted == rows[TARGET].to_numpy()).mean())

    # The same rows, only the incomes inverted: the model's answers go wrong.
    seen = frame(housing_slices.inverted_bytes(PREVIOUS))
    assert accuracy(seen) < accuracy(previous) - 0.05


def test_a_mislabelled_slice_passes_validation_with_the_same_labels_shuffled(
    housing_slices: HousingSlices,
) -> None:
    clean, bad = frame(housing_slices.csv_bytes(KEY)), frame(housing_slices.mislabelled_bytes(KEY))
    assert bad.drop(columns=TARGET).equals(clean.drop(columns=TARGET))
    assert sorted(bad[TARGET]) == sorted(clean[TARGET])
    assert (bad[TARGET] != clean[TARGET]).mean() > 0.2
    previous = read_slice(housing_slices.csv_bytes(PREVIOUS) or b"")
    report, _ = validate_slice(KEY, housing_slices.mislabelled_bytes(KEY) or b"",
                               ProjectSettings(), previous)  # fmt: skip
    assert report.passed, report.summary()


def test_the_source_serves_the_scenarios_on_every_request(housing_slices: HousingSlices) -> None:
    faults = {KEY: FaultSpec.parse(f"{KEY}=inverted")[1], NEXT: FaultSpec("mislabelled")}
    with SourceServer(slices=housing_slices, faults=faults) as server:
        for _ in range(2):
            body = requests.get(f"{server.url}/slices/{KEY}.csv", timeout=10).content
            assert body == housing_slices.inverted_bytes(KEY)
        body = requests.get(f"{server.url}/slices/{NEXT}.csv", timeout=10).content
        assert body == housing_slices.mislabelled_bytes(NEXT)
        etag = requests.get(f"{server.url}/slices/{KEY}.csv", timeout=10).headers["ETag"]
        again = requests.get(f"{server.url}/slices/{KEY}.csv", headers={"If-None-Match": etag},
                             timeout=10)  # fmt: skip
        assert again.status_code == 304


@pytest.mark.usefixtures("airflow_home")  # the store is Airflow's ObjectStoragePath
def test_a_run_without_a_logical_date_trains_the_week_after_the_newest_model(
    tmp_path: Path,
) -> None:
    settings = ProjectSettings(output_root=str(tmp_path / "out"), start_date=date(2021, 2, 14))
    assert steps.next_week(settings) == "2021-02-14"
    models = tmp_path / "out" / "models"
    (models / "2021-02-21").mkdir(parents=True)  # a folder without CURRENT: never published
    assert steps.next_week(settings) == "2021-02-14"
    for week in ("2021-02-14", "2021-02-21"):
        (models / week).mkdir(parents=True, exist_ok=True)
        (models / week / "CURRENT").write_text("v1\n")
    assert steps.next_week(settings) == "2021-02-28"
