"""Data slices and their validation, on small frames written to a temporary data folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from ml_cicd.errors import DataError
from ml_cicd.settings import ValidationRules
from ml_cicd.slices import DataVersion, data_version, read_slices
from ml_cicd.validation import validate_new_data

RULES = ValidationRules(min_rows=4, max_text_chars=200)


def reviews(n: int, start: int = 0, great_every: int = 2, length: int = 1) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "text": [f"review {i} " + "word " * length for i in range(start, start + n)],
            "label": ["great" if i % great_every == 0 else "other" for i in range(n)],
        }
    )


def write(folder: Path, name: str, frame: pd.DataFrame) -> Path:
    (folder / "slices").mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "slices" / name, index=False)
    return folder


def test_slice_and_data_versions_follow_the_content(tmp_path: Path) -> None:
    write(tmp_path, "0001.csv", reviews(10))
    first = data_version(read_slices(tmp_path))
    assert first.rows == 10 and len(first.version) == 64
    assert data_version(read_slices(tmp_path)) == first  # stable
    write(tmp_path, "0002.csv", reviews(10, start=10))
    second = data_version(read_slices(tmp_path))
    assert second.version != first.version and second.slices[0] == first.slices[0]
    assert DataVersion.from_tags(second.as_tags()) == second
    write(tmp_path, "0001.csv", reviews(10, start=100))
    assert data_version(read_slices(tmp_path)).slices[0].sha256 != first.slices[0].sha256


def test_missing_or_empty_data_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no slices folder"):
        read_slices(tmp_path)
    (tmp_path / "slices").mkdir()
    with pytest.raises(DataError, match="no .csv slices"):
        read_slices(tmp_path)


def test_a_clean_first_slice_passes(tmp_path: Path) -> None:
    write(tmp_path, "0001.csv", reviews(10))
    report = validate_new_data(read_slices(tmp_path), None, RULES)
    assert report.passed, report.summary()
    assert report.new_slices == ["0001.csv"]


@pytest.mark.parametrize(
    ("edit", "rule", "rows"),
    [
        (lambda f: f.assign(label=["great", "bad", *f["label"][2:]]), "label_set", [2]),
        (lambda f: f.assign(text=["", *f["text"][1:]]), "text_not_empty", [1]),
        (lambda f: f.assign(text=["   ", *f["text"][1:]]), "text_not_empty", [1]),
        (lambda f: f.assign(text=["x" * 201, *f["text"][1:]]), "text_max_length", [1]),
        (lambda f: f.assign(text=[f["text"][1], *f["text"][1:]]), "field_uniqueness", [1, 2]),
        (lambda f: f.head(3), "size_floor", []),
        (lambda f: f.rename(columns={"label": "score"}), "column_in_dataframe", []),
        (lambda f: f.assign(stars=5), "column_in_schema", []),
    ],
)
def test_each_schema_rule_names_its_rows(tmp_path: Path, edit, rule: str, rows: list[int]) -> None:
    write(tmp_path, "0001.csv", edit(reviews(10)))
    report = validate_new_data(read_slices(tmp_path), None, RULES)
    assert not report.passed
    failed = {result.rule: result for result in report.failures()}
    assert rule in failed, report.summary()
    assert failed[rule].rows == rows
    assert failed[rule].slice == "0001.csv"


def test_drift_and_duplicates_against_the_previous_data(tmp_path: Path) -> None:
    write(tmp_path, "0001.csv", reviews(40))
    previous = data_version(read_slices(tmp_path))
    # All "great", long texts, and one text of the previous data again.
    drifted = reviews(20, start=40, great_every=1, length=30)
    drifted.loc[3, "text"] = reviews(40)["text"][7]
    write(tmp_path, "0002.csv", drifted)
    report = validate_new_data(read_slices(tmp_path), previous, RULES)
    assert report.new_slices == ["0002.csv"]
    failed = {result.rule: result for result in report.failures()}
    assert failed["text_not_in_previous_data"].rows == [4]
    # Drift checks run once the schema passes.
    drifted.loc[3, "text"] = "a new text " + "word " * 30
    write(tmp_path, "0002.csv", drifted)
    report = validate_new_data(read_slices(tmp_path), previous, RULES)
    assert {r.rule for r in report.failures()} == {"label_balance", "length_drift"}
    # A similar slice passes.
    write(tmp_path, "0002.csv", reviews(20, start=40))
    assert validate_new_data(read_slices(tmp_path), previous, RULES).passed


def test_previous_slices_are_append_only(tmp_path: Path) -> None:
    write(tmp_path, "0001.csv", reviews(10))
    write(tmp_path, "0002.csv", reviews(10, start=10))
    previous = data_version(read_slices(tmp_path))
    (tmp_path / "slices" / "0002.csv").unlink()
    report = validate_new_data(read_slices(tmp_path), previous, RULES)
    assert [(r.rule, r.slice) for r in report.failures()] == [("append_only", "0002.csv")]
    assert "removed" in report.failures()[0].detail
