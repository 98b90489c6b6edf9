"""The steps without Airflow: fetch's error classes, validation and quarantine, idempotent
publish, release, the model artefact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from data_pipelines import steps
from data_pipelines.errors import PermanentError, QuarantinedError, TransientError
from data_pipelines.local import tree_digest
from data_pipelines.model import to_sklearn
from data_pipelines.settings import ProjectSettings
from data_pipelines.source import FaultSpec, HousingSlices, SourceServer
from dp_testing import files_under

KEY, NEXT = "2021-02-14", "2021-02-21"


@pytest.fixture
def settings(tmp_path: Path, source: SourceServer) -> ProjectSettings:
    return ProjectSettings(source_url=source.url, output_root=tmp_path / "out")


@pytest.mark.parametrize("kind", ["503", "reset", "truncate"])
def test_transient_faults_raise_transient_errors(
    settings: ProjectSettings, source: SourceServer, kind: str
) -> None:
    source.set_faults({KEY: FaultSpec(kind)})  # type: ignore[arg-type]
    with pytest.raises(TransientError):
        steps.fetch(settings, KEY)
    assert files_under(settings.output_root) == []
    assert steps.fetch(settings, KEY)["rows"] == 168  # the next request is clean


def test_404_is_permanent(settings: ProjectSettings, source: SourceServer) -> None:
    source.set_faults({KEY: FaultSpec("404")})
    with pytest.raises(PermanentError, match="HTTP 404"):
        steps.fetch(settings, KEY)


def test_timeout_is_transient(settings: ProjectSettings, source: SourceServer) -> None:
    source.set_faults({KEY: FaultSpec("slow", delay_s=2.0)})
    with pytest.raises(TransientError, match="timed out"):
        steps.fetch(settings.model_copy(update={"request_timeout_s": 0.5}), KEY)


def test_every_embedded_slice_is_valid(housing_slices: HousingSlices) -> None:
    from data_pipelines.validation import read_slice, validate_slice

    previous = None
    for key in housing_slices.ids():
        data = housing_slices.csv_bytes(key)
        assert data is not None
        report, frame = validate_slice(key, data, ProjectSettings(), previous)
        assert report.passed, report.summary()
        previous = frame if frame is not None else read_slice(data)


def test_corrupt_slice_is_quarantined_with_rules_and_rows(
    settings: ProjectSettings, source: SourceServer
) -> None:
    steps.validate(settings, steps.fetch(settings, KEY))
    source.set_faults({NEXT: FaultSpec("corrupt")})
    with pytest.raises(QuarantinedError, match="quarantined"):
        steps.validate(settings, steps.fetch(settings, NEXT))
    report = json.loads((settings.output_root / "quarantine" / NEXT / "report.json").read_text())
    by_rule = {(f["column"], f["rule"]): f for f in report["failures"]}
    assert by_rule[("MedInc", "in_range(0.0, 20.0)")]["rows"] == [3, 4, 5]
    assert by_rule[("HouseAge", "not_nullable")]["rows"] == [10, 11]
    assert by_rule[("Latitude", "in_range(32.0, 42.5)")]["rows"] == [20]
    assert by_rule[("id", "field_uniqueness")]["rows_failed"] == 4
    assert not (settings.output_root / "slices" / f"{NEXT}.csv").exists()
    # Still quarantined: the next run refuses it until it is released.
    source.set_faults({})
    with pytest.raises(QuarantinedError, match="release"):
        steps.fetch(settings, NEXT)
    archive = steps.release(settings, NEXT)
    assert (archive / "report.json").is_file()
    assert steps.validate(settings, steps.fetch(settings, NEXT))["rows"] == 168


def test_distribution_and_row_count_rules(housing_slices: HousingSlices) -> None:
    from data_pipelines.validation import read_slice, validate_slice

    data = housing_slices.csv_bytes(KEY)
    assert data is not None
    frame = read_slice(data)
    # Ages within their valid range but far from last week's; rooms stuck at one value.
    shifted = frame.assign(HouseAge=95.0 + frame["HouseAge"] % 5, AveRooms=5.0)
    text = shifted.head(50).to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S").encode()
    report, _ = validate_slice(KEY, text, ProjectSettings(), frame)
    rules = report.rules()
    assert "HouseAge:median_shift_vs_previous" in rules
    assert "AveRooms:constant_column" in rules
    assert any(rule.startswith("row_count_in") for rule in rules)


def test_publish_is_atomic_idempotent_and_traceable(settings: ProjectSettings) -> None:
    first = steps.run_plain(settings, KEY)
    before = tree_digest(settings.output_root)
    again = steps.run_plain(settings, KEY)
    assert again == first
    assert tree_digest(settings.output_root) == before
    assert files_under(settings.output_root / ".staging") == []
    folder = Path(first["path"])
    manifest = json.loads((folder / "manifest.json").read_text())
    slice_bytes = (settings.output_root / "slices" / f"{KEY}.csv").read_bytes()
    import hashlib

    assert manifest["slice"]["sha256"] == hashlib.sha256(slice_bytes).hexdigest()
    assert (
        manifest["model"]["sha256"]
        == hashlib.sha256((folder / "model.json").read_bytes()).hexdigest()
    )
    assert manifest["metrics"]["accuracy"] > manifest["metrics"]["baseline_accuracy"]
    assert (settings.output_root / "models" / KEY / "CURRENT").read_text().strip() == folder.name


def test_model_artefact_rebuilds_a_sklearn_pipeline(settings: ProjectSettings) -> None:
    from data_pipelines.model import predict_proba

    published = Path(steps.run_plain(settings, KEY)["path"])
    model = json.loads((published / "model.json").read_text())
    data = (settings.output_root / "slices" / f"{KEY}.csv").read_bytes()
    frame = steps.add_features(pd.read_csv(__import__("io").BytesIO(data)))
    pipeline = to_sklearn(model)
    np.testing.assert_allclose(
        pipeline.predict_proba(frame[model["features"]].to_numpy())[:, 1],
        predict_proba(model, frame),
        rtol=1e-9,
    )
