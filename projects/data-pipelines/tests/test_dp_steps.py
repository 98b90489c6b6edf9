"""The steps without Airflow's runner: downloads checked before use, validation and quarantine,
the history's rules (complete windows, an immutable past, CURRENT only forward), forward
evaluation, idempotent publish, the trend report, and the store on a non-local fsspec URL."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from data_pipelines import steps
from data_pipelines.errors import PermanentError, QuarantinedError, TransientError
from data_pipelines.local import tree_digest
from data_pipelines.model import to_sklearn
from data_pipelines.settings import ProjectSettings
from data_pipelines.source import FaultSpec, HousingSlices, SourceServer, sha256_hex
from data_pipelines.store import ArtefactStore
from dp_testing import files_under

pytestmark = pytest.mark.usefixtures("airflow_home")  # the store is Airflow's ObjectStoragePath

KEY, NEXT, THIRD = "2021-02-14", "2021-02-21", "2021-02-28"  # the tests' history starts at KEY


@pytest.fixture
def settings(tmp_path: Path, source: SourceServer) -> ProjectSettings:
    return ProjectSettings(
        source_url=source.url, output_root=str(tmp_path / "out"), scratch_dir=tmp_path / "scratch"
    )


def current(settings: ProjectSettings, key: str) -> Path:
    """The local folder of week ``key``'s published version."""
    models = Path(settings.output_root) / "models" / key
    return models / (models / "CURRENT").read_text().strip()


# --- fetch: every payload checked before anything reads it ---------------------------------


@pytest.mark.parametrize("kind", ["503", "reset", "truncate"])
def test_transient_faults_raise_transient_errors(
    settings: ProjectSettings, source: SourceServer, kind: str
) -> None:
    source.set_faults({KEY: FaultSpec(kind)})  # type: ignore[arg-type]
    with pytest.raises(TransientError):
        steps.fetch(settings, KEY)
    assert files_under(Path(settings.output_root)) == []
    assert files_under(settings.scratch_dir) == []  # the task's scratch went with the error
    assert steps.fetch(settings, KEY)["rows"] == 168  # the next request is clean
    assert files_under(settings.scratch_dir) == []


def test_404_is_permanent(settings: ProjectSettings, source: SourceServer) -> None:
    source.set_faults({KEY: FaultSpec("404")})
    with pytest.raises(PermanentError, match="HTTP 404"):
        steps.fetch(settings, KEY)


def test_a_silent_server_times_out(settings: ProjectSettings, source: SourceServer) -> None:
    source.set_faults({KEY: FaultSpec("slow", delay_s=2.0)})
    with pytest.raises(TransientError, match="timed out"):
        steps.fetch(settings.model_copy(update={"request_timeout_s": 0.5}), KEY)


def test_the_deadline_covers_the_whole_body(
    settings: ProjectSettings, source: SourceServer
) -> None:
    # Ten pieces 0.3 s apart: no single read waits 1 s, but the body takes 3 s.
    source.set_faults({KEY: FaultSpec("trickle", count=2, delay_s=0.3)})
    patient = settings.model_copy(update={"request_timeout_s": 1.0})
    with pytest.raises(TransientError, match="deadline"):
        steps.fetch(patient.model_copy(update={"download_deadline_s": 1.0}), KEY)
    assert steps.fetch(patient.model_copy(update={"download_deadline_s": 30.0}), KEY)["rows"] == 168


def test_the_size_cap_holds_while_streaming(
    settings: ProjectSettings, source: SourceServer, housing_slices: HousingSlices
) -> None:
    size = len(housing_slices.csv_bytes(KEY) or b"")
    capped = settings.model_copy(update={"max_payload_bytes": 8_000})
    source.set_faults({KEY: FaultSpec("chunked", count=2)})  # no Content-Length to refuse early
    with pytest.raises(PermanentError, match="cap after") as error:
        steps.fetch(capped, KEY)
    read = int(str(error.value).split("cap after ")[1].split()[0])
    assert 8_000 < read < size  # it stopped reading once over the cap
    assert steps.fetch(settings, KEY)["rows"] == 168  # a chunked body within the cap is fine
    with pytest.raises(PermanentError, match="declares"):
        steps.fetch(capped, KEY)  # a declared length over the cap: refused before the body


def test_the_content_type_must_be_csv(settings: ProjectSettings, source: SourceServer) -> None:
    source.set_faults({KEY: FaultSpec("html")})
    with pytest.raises(PermanentError, match="text/html"):
        steps.fetch(settings, KEY)


# --- validation and quarantine --------------------------------------------------------------


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
    steps.run_plain(settings, KEY)
    source.set_faults({NEXT: FaultSpec("corrupt")})
    with pytest.raises(QuarantinedError, match="quarantined"):
        steps.validate(settings, steps.fetch(settings, NEXT))
    output = Path(settings.output_root)
    report = json.loads((output / "quarantine" / NEXT / "report.json").read_text())
    by_rule = {(f["column"], f["rule"]): f for f in report["failures"]}
    assert by_rule[("MedInc", "in_range(0.0, 20.0)")]["rows"] == [3, 4, 5]
    assert by_rule[("HouseAge", "not_nullable")]["rows"] == [10, 11]
    assert by_rule[("Latitude", "in_range(32.0, 42.5)")]["rows"] == [20]
    assert by_rule[("id", "field_uniqueness")]["rows_failed"] == 4
    assert not (output / "slices" / f"{NEXT}.csv").exists()
    # Still quarantined: the next run refuses it until it is released.
    source.set_faults({})
    with pytest.raises(QuarantinedError, match="release"):
        steps.fetch(settings, NEXT)
    archive = steps.release(settings, NEXT)
    assert ArtefactStore.of(settings).at(archive + "/report.json").exists()
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


# --- the history ----------------------------------------------------------------------------


def test_a_week_runs_only_after_the_week_before(settings: ProjectSettings) -> None:
    with pytest.raises(PermanentError, match="before the history's start date"):
        steps.fetch(settings, "2021-02-07")
    with pytest.raises(PermanentError, match="not a weekly date"):
        steps.fetch(settings, "2021-02-15")
    with pytest.raises(PermanentError, match=f"history incomplete: week {NEXT}"):
        steps.fetch(settings, THIRD)
    assert files_under(Path(settings.output_root)) == []


def test_a_logical_date_must_be_midnight_utc() -> None:
    assert steps.logical_slice_id(datetime(2021, 2, 14, tzinfo=UTC)) == KEY
    one_hour_east = timezone(timedelta(hours=1))
    assert steps.logical_slice_id(datetime(2021, 2, 14, 1, tzinfo=one_hour_east)) == KEY
    with pytest.raises(PermanentError, match="not at 00:00 UTC"):
        steps.logical_slice_id(datetime(2021, 2, 14, 6, tzinfo=UTC))


def test_two_runs_of_one_date_stage_apart(settings: ProjectSettings) -> None:
    """A backfill's run and a manual run of the same week: neither removes the other's work."""
    store = ArtefactStore.of(settings)
    other = steps.fetch(settings, KEY, "backfill__2021-02-14T00:00:00+00:00")
    first = steps.run_plain(settings, KEY, "manual__2021-02-14T00:00:00+00:00")
    assert store.at(other["uri"]).exists()
    validated = steps.validate(settings, other)
    prepared = steps.preprocess(settings, validated)
    trained = steps.train(settings, prepared)
    evaluated = steps.evaluate(settings, prepared, trained)
    assert steps.publish(settings, validated, prepared, trained, evaluated) == first
    assert files_under(Path(settings.output_root) / "staging") == []


def test_validate_keeps_the_bytes_ingested_first(settings: ProjectSettings) -> None:
    """Another run stored other bytes for the week between this run's fetch and its validate:
    they stay, and this run's bytes are quarantined (no check-then-write hole)."""
    steps.run_plain(settings, KEY)
    fetched = steps.fetch(settings, NEXT)
    ingested = Path(settings.output_root) / "slices" / f"{NEXT}.csv"
    ingested.write_bytes(b"the other run's bytes\n")
    with pytest.raises(QuarantinedError, match="changed upstream"):
        steps.validate(settings, fetched)
    assert ingested.read_bytes() == b"the other run's bytes\n"
    quarantined = Path(settings.output_root) / "quarantine" / NEXT
    report = json.loads((quarantined / "report.json").read_text())
    assert report["ingested_sha256"] == sha256_hex(b"the other run's bytes\n")
    assert files_under(Path(settings.output_root) / "staging") == []


def test_preprocess_refuses_a_slice_changed_since_validate(settings: ProjectSettings) -> None:
    steps.run_plain(settings, KEY)
    validated = steps.validate(settings, steps.fetch(settings, NEXT))
    output = Path(settings.output_root) / "slices"
    (output / f"{NEXT}.csv").write_bytes((output / f"{KEY}.csv").read_bytes())
    with pytest.raises(PermanentError, match="changed since validate"):
        steps.preprocess(settings, validated)


def test_a_changed_past_slice_is_quarantined_and_nothing_is_overwritten(
    settings: ProjectSettings, source: SourceServer
) -> None:
    steps.run_plain(settings, KEY)
    steps.run_plain(settings, NEXT)
    output = Path(settings.output_root)
    before = tree_digest(output)
    source.set_faults({KEY: FaultSpec("changed")})
    with pytest.raises(QuarantinedError, match="changed upstream"):
        steps.run_plain(settings, KEY)
    report = json.loads((output / "quarantine" / KEY / "report.json").read_text())
    assert report["rules"] == ["changed_after_ingest"]
    assert report["ingested_sha256"] == before[f"slices/{KEY}.csv"]
    after = tree_digest(output)
    assert {k: v for k, v in after.items() if not k.startswith("quarantine/")} == before


def test_current_moves_only_to_a_newer_week(settings: ProjectSettings) -> None:
    steps.run_plain(settings, KEY)
    newest = steps.run_plain(settings, NEXT)
    again = steps.run_plain(settings, KEY)  # a backfill of an older week
    assert again["current"] == {"slice_id": NEXT, "version": newest["version"]}
    pointer = json.loads((Path(settings.output_root) / "models" / "CURRENT").read_text())
    assert pointer == {"slice_id": NEXT, "version": newest["version"]}


def test_forward_evaluation_is_recorded_beside_both_models(settings: ProjectSettings) -> None:
    first = steps.run_plain(settings, KEY)
    steps.run_plain(settings, NEXT)
    manifest = json.loads((current(settings, NEXT) / "manifest.json").read_text())
    forward = manifest["forward_evaluation"]
    assert forward["model"] == {
        "slice_id": KEY,
        "version": first["version"],
        "manifest_sha256": first["manifest_sha256"],
    }
    slice_bytes = (Path(settings.output_root) / "slices" / f"{NEXT}.csv").read_bytes()
    assert forward["slice"] == {"slice_id": NEXT, "sha256": sha256_hex(slice_bytes)}
    assert NEXT not in [w["slice_id"] for w in json.loads(
        (current(settings, KEY) / "manifest.json").read_text())["window"]]  # fmt: skip
    record = json.loads((current(settings, KEY) / "forward" / f"{NEXT}.json").read_text())
    assert record["metrics"] == forward["metrics"]
    assert record["by"]["slice_id"] == NEXT
    assert 0.5 < forward["metrics"]["accuracy"] <= 1.0 and forward["metrics"]["rows"] == 168
    first_manifest = json.loads((current(settings, KEY) / "manifest.json").read_text())
    assert first_manifest["forward_evaluation"] is None  # the history's first week


# --- publish, report, the model ------------------------------------------------------------


def test_publish_is_idempotent_and_pins_every_input(settings: ProjectSettings) -> None:
    steps.run_plain(settings, KEY)
    first = steps.run_plain(settings, NEXT)
    output = Path(settings.output_root)
    before = tree_digest(output)
    assert steps.run_plain(settings, NEXT) == first
    assert tree_digest(output) == before
    assert files_under(output / "staging") == [] and files_under(settings.scratch_dir) == []
    folder = current(settings, NEXT)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [w["slice_id"] for w in manifest["window"]] == [KEY, NEXT]
    for member in manifest["window"]:
        assert member["sha256"] == before[f"slices/{member['slice_id']}.csv"]
    assert manifest["model"]["sha256"] == sha256_hex((folder / "model.json").read_bytes())
    in_window = manifest["metrics"]["in_window"]
    assert in_window["accuracy"] > in_window["baseline_accuracy"]


def test_a_publish_retry_after_its_staging_went_finds_its_version(
    settings: ProjectSettings,
) -> None:
    """Publish removed the staging, then the task died before Airflow recorded its success: the
    retry finds this run's version published and finishes, instead of failing on the staging."""
    steps.run_plain(settings, KEY)
    validated = steps.validate(settings, steps.fetch(settings, NEXT))
    prepared = steps.preprocess(settings, validated)
    trained = steps.train(settings, prepared)
    evaluated = steps.evaluate(settings, prepared, trained)
    first = steps.publish(settings, validated, prepared, trained, evaluated)
    assert not ArtefactStore.of(settings).at(trained["uri"]).exists()
    before = tree_digest(Path(settings.output_root))
    assert steps.publish(settings, validated, prepared, trained, evaluated) == first
    assert tree_digest(Path(settings.output_root)) == before


def test_the_trend_report_has_a_page_with_a_plot(settings: ProjectSettings) -> None:
    for key in (KEY, NEXT, THIRD):
        steps.run_plain(settings, key)
    steps.model_report(settings, THIRD, [THIRD])
    reports = Path(settings.output_root) / "reports"
    report = json.loads((reports / f"{THIRD}.json").read_text())
    assert [m["slice_id"] for m in report["models"]] == [KEY, NEXT, THIRD]
    assert report["models"][0]["forward"] is None
    assert report["models"][2]["forward"]["model"] == NEXT
    page = (reports / f"{THIRD}.html").read_text()
    assert '<img alt="metric trend" src="data:image/png;base64,' in page
    assert page.count("<tr>") == 4  # the header and one row per model


def test_model_artefact_rebuilds_a_sklearn_pipeline(settings: ProjectSettings) -> None:
    from data_pipelines.model import predict_proba

    steps.run_plain(settings, KEY)
    model = json.loads((current(settings, KEY) / "model.json").read_text())
    data = (Path(settings.output_root) / "slices" / f"{KEY}.csv").read_bytes()
    frame = steps.add_features(pd.read_csv(io.BytesIO(data)))
    np.testing.assert_allclose(
        to_sklearn(model).predict_proba(frame[model["features"]].to_numpy())[:, 1],
        predict_proba(model, frame),
        rtol=1e-9,
    )


def test_any_fsspec_url_serves_as_the_store(settings: ProjectSettings, tmp_path: Path) -> None:
    """fsspec's in-memory filesystem, attached to Airflow's object storage the way a provider
    attaches s3://, stands in for an object store: no artefact touches the disk."""
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem  # type: ignore[import-untyped]

    attach(protocol="memory", fs=MemoryFileSystem())
    memory = settings.model_copy(update={"output_root": f"memory://dp-{uuid.uuid4().hex}"})
    steps.run_plain(memory, KEY)
    published = steps.run_plain(memory, NEXT)
    assert published["uri"].startswith(memory.output_url + "/models/")
    store = ArtefactStore.of(memory)
    manifest = json.loads((store.at(published["uri"]) / "manifest.json").read_bytes())
    assert manifest["forward_evaluation"]["model"]["slice_id"] == KEY
    assert json.loads((store.models() / "CURRENT").read_bytes())["slice_id"] == NEXT
    assert files_under(tmp_path / "out") == [] and files_under(settings.scratch_dir) == []
    with pytest.raises(PermanentError, match="not in the artefact store"):
        store.at(str(Path(settings.output_root).resolve().as_uri()))
