from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from experiment_tracking.cli import app
from experiment_tracking.data import (
    DataError,
    fingerprint,
    load_data,
    split_validation,
    validate_frame,
)
from typer.testing import CliRunner


def test_validate_frame_keeps_text_and_label_only() -> None:
    frame = pd.DataFrame({"text": ["good", "bad"], "label": [" great", "other"], "extra": [1, 2]})
    clean = validate_frame(frame, "data")
    assert list(clean.columns) == ["text", "label"]
    assert clean["label"].tolist() == ["great", "other"]


def test_missing_columns_are_named() -> None:
    with pytest.raises(DataError, match=r"lacks column\(s\) text, label \(found: review, score\)"):
        validate_frame(pd.DataFrame({"review": ["x"], "score": ["great"]}), "data")


def test_unknown_labels_are_named_and_counted() -> None:
    frame = pd.DataFrame({"text": ["a", "b", "c"], "label": ["great", "fantastic", "fantastic"]})
    with pytest.raises(
        DataError, match=r"unknown label\(s\) 'fantastic' in 2 row\(s\); allowed: other, great"
    ):
        validate_frame(frame, "data")


def test_empty_texts_are_rejected() -> None:
    with pytest.raises(DataError, match="1 row"):
        validate_frame(pd.DataFrame({"text": ["ok", "  "], "label": ["great", "other"]}), "data")


def test_fingerprint_is_stable_and_sensitive() -> None:
    frame = pd.DataFrame({"text": ["a", "b"], "label": ["great", "other"]})
    changed = frame.assign(label=["other", "other"])
    assert fingerprint(frame, frame) == fingerprint(frame.copy(), frame.copy())
    assert fingerprint(frame, frame) != fingerprint(changed, frame)


def test_validation_split_is_stratified_and_seeded(tiny_data) -> None:
    train = pd.concat([tiny_data.train, tiny_data.validation], ignore_index=True)
    fit_a, val_a = split_validation(train, 0.2, seed=3)
    fit_b, val_b = split_validation(train, 0.2, seed=3)
    _, val_other = split_validation(train, 0.2, seed=4)
    assert fit_a.equals(fit_b) and val_a.equals(val_b)
    assert not val_a.equals(val_other)  # the seed moves rows between the two parts
    # A partition of the rows: nothing lost, nothing in both.
    assert len(fit_a) + len(val_a) == len(train) and len(val_a) == round(0.2 * len(train))
    assert sorted(pd.concat([fit_a, val_a])["text"]) == sorted(train["text"])
    share = (val_a["label"] == "great").mean()
    assert abs(share - (train["label"] == "great").mean()) < 0.03


def test_embedded_reviews_have_the_documented_sizes() -> None:
    data = load_data(validation_fraction=0.1)
    assert len(data.train) + len(data.validation) == 4000
    assert len(data.test) == 1000
    assert set(data.train["label"]) == {"great", "other"}


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"review": ["tasty"], "score": ["great"]}), "lacks column(s) text, label"),
        (
            pd.DataFrame({"text": ["tasty", "meh"], "label": ["great", "5 stars"]}),
            "unknown label(s) '5 stars'",
        ),
    ],
    ids=["missing-columns", "unknown-labels"],
)
def test_cli_rejects_bad_data_with_one_line(
    tmp_path: Path, data_files, frame: pd.DataFrame, message: str
) -> None:
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--train-file",
            str(bad),
            "--test-file",
            str(data_files[1]),
            "--run-dir",
            str(run_dir),
            "--tracker",
            "mlflow",
        ],
    )
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error:") and message in lines[0]
    assert "Traceback" not in result.output
    assert not run_dir.exists()  # nothing tracked or written for bad input
