"""Data slices and their validation, on small frames written to a temporary data folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from ml_cicd.errors import DataError
from ml_cicd.leakage import HeldOutIndex, normalise
from ml_cicd.settings import ValidationRules
from ml_cicd.slices import DataVersion, data_version, read_slices
from ml_cicd.validation import validate_new_data

RULES = ValidationRules(min_rows=4, max_text_chars=200)
# A stand-in for the fixed held-out set: no slice text below repeats these unless a test says so.
HELD_OUT = [
    "The green tea tastes of grass and honey when brewed three minutes in water that is not "
    "quite boiling, and the tin keeps it fresh for months",
    "Short and sweet.",
]


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
    report = validate_new_data(read_slices(tmp_path), None, RULES, HELD_OUT)
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
    report = validate_new_data(read_slices(tmp_path), None, RULES, HELD_OUT)
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
    report = validate_new_data(read_slices(tmp_path), previous, RULES, HELD_OUT)
    assert report.new_slices == ["0002.csv"]
    failed = {result.rule: result for result in report.failures()}
    assert failed["text_not_in_previous_data"].rows == [4]
    # Drift checks run once the schema passes.
    drifted.loc[3, "text"] = "a new text " + "word " * 30
    write(tmp_path, "0002.csv", drifted)
    report = validate_new_data(read_slices(tmp_path), previous, RULES, HELD_OUT)
    assert {r.rule for r in report.failures()} == {"label_balance", "length_drift"}
    # A similar slice passes.
    write(tmp_path, "0002.csv", reviews(20, start=40))
    assert validate_new_data(read_slices(tmp_path), previous, RULES, HELD_OUT).passed


def test_previous_slices_are_append_only(tmp_path: Path) -> None:
    write(tmp_path, "0001.csv", reviews(10))
    write(tmp_path, "0002.csv", reviews(10, start=10))
    previous = data_version(read_slices(tmp_path))
    (tmp_path / "slices" / "0002.csv").unlink()
    report = validate_new_data(read_slices(tmp_path), previous, RULES, HELD_OUT)
    assert [(r.rule, r.slice) for r in report.failures()] == [("append_only", "0002.csv")]
    assert "removed" in report.failures()[0].detail


def test_normalising_ignores_case_whitespace_and_punctuation() -> None:
    assert normalise("  Great TEA!!\tIt's   <br />GOOD...") == "great tea it s br good"
    assert normalise("Ｃａｆé") == normalise("café")  # NFKC: full-width letters
    index = HeldOutIndex(["Great tea, it's good."])
    found = index.matches(["GREAT tea -- it s good", "great tea it is good", "other"])
    assert found.exact.tolist() == [0, -1, -1]


def test_near_copies_are_found_by_token_jaccard() -> None:
    words = HELD_OUT[0].split()
    for position, word in ((2, "black"), (9, "five"), (20, "box")):  # three words changed
        words[position] = word
    index = HeldOutIndex(HELD_OUT, jaccard=0.8)
    found = index.matches([" ".join(words), "Short and very sweet.", HELD_OUT[0]])
    assert found.near.tolist() == [0, -1, -1]  # the exact copy is not also a near one
    assert found.exact.tolist() == [-1, -1, 0]
    assert 0.8 <= found.similarity[0] < 1
    # Jaccard {short, and, sweet} / {short, and, very, sweet} = 0.75: below the threshold.
    assert HeldOutIndex(HELD_OUT, jaccard=0.75).matches(["Short and very sweet."]).near[0] == 1


def test_a_slice_with_held_out_texts_is_refused_naming_rows(tmp_path: Path) -> None:
    frame = reviews(10)
    frame.loc[1, "text"] = HELD_OUT[0].upper() + "!!!"  # an exact copy after normalising
    frame.loc[4, "text"] = HELD_OUT[0].replace("three minutes", "four minutes")  # a near copy
    write(tmp_path, "0001.csv", frame)
    report = validate_new_data(read_slices(tmp_path), None, RULES, HELD_OUT)
    failed = {result.rule: result for result in report.failures()}
    assert set(failed) == {"text_in_held_out", "text_near_held_out"}, report.summary()
    assert failed["text_in_held_out"].rows == [2]
    assert "row 2 ~ held-out row 1" in failed["text_in_held_out"].detail
    assert failed["text_near_held_out"].rows == [5]
    assert "row 5 ~ held-out row 1 (Jaccard 0.9" in failed["text_near_held_out"].detail
    assert "text_near_held_out" in report.summary()


def _changed(words: list[str], count: int) -> str:
    """``words`` with the first ``count`` replaced by words they do not contain."""
    return " ".join([f"other{i}" for i in range(count)] + words[count:])


def test_the_default_rules_refuse_a_near_copy_above_0_8_and_pass_one_below(tmp_path: Path) -> None:
    rules = ValidationRules()
    assert rules.held_out_jaccard == 0.8  # the documented default
    # A held-out review of 40 distinct words; changing k of them leaves (40 - k) / (40 + k).
    words = [f"word{i}" for i in range(40)]
    held_out = [" ".join(words)]
    for changed, jaccard, refused in ((5, 35 / 45, False), (4, 36 / 44, True)):
        text = _changed(words, changed)
        assert len(set(text.split()) & set(words)) / len(set(text.split()) | set(words)) == (
            pytest.approx(jaccard)
        )
        frame = reviews(60)
        frame.loc[3, "text"] = text
        write(tmp_path, "0001.csv", frame)
        report = validate_new_data(read_slices(tmp_path), None, rules, held_out)
        if refused:  # Jaccard 0.818
            assert [r.rule for r in report.failures()] == ["text_near_held_out"]
            assert report.failures()[0].rows == [4]
            assert f"(Jaccard {jaccard:.2f}" in report.failures()[0].detail
        else:  # Jaccard 0.778
            assert report.passed, report.summary()


def test_the_bundled_training_rows_leave_out_every_copy_of_a_held_out_review() -> None:
    from ml_cicd.training import bundled_training_rows
    from roadmap_lab.data import load_reviews

    train, test = load_reviews()
    unique = train.drop_duplicates("text")
    kept = bundled_training_rows(test)
    dropped = unique[~unique["text"].isin(set(kept["text"]))]
    held_out = set(test["text"].map(normalise))
    exact = dropped[dropped["text"].map(normalise).isin(held_out)]
    near = dropped.drop(exact.index)
    # 7 reviews are in both splits, 1 more with a sentence changed: exactly these 8 go.
    assert (len(exact), len(near)) == (7, 1)
    assert len(kept) == len(unique) - 8
    # The near copy's closest held-out review, measured here with plain sets.
    tokens = set(normalise(near["text"].iloc[0]).split())
    closest = max(
        len(tokens & other) / len(tokens | other)
        for other in (set(normalise(text).split()) for text in test["text"])
    )
    assert 0.8 <= closest < 1
    # Nothing left is a copy by either rule.
    assert not kept["text"].map(normalise).isin(held_out).any()
    assert not HeldOutIndex(test["text"]).leaks(kept["text"].tolist()).any()
