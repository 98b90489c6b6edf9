"""The training data as committed slices: ``<data_dir>/slices/*.csv`` (columns ``text``,
``label``), read in name order. Slices are append-only: new data arrives as a new file.

Each slice's version is the sha256 of its bytes; the data version is the sha256 of the ordered
(name, slice version) list, so it changes when any slice is added, removed or edited. Every model
trained from the data records both (``DataVersion.as_tags``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from ml_cicd.errors import DataError

SLICES_FOLDER = "slices"
COLUMNS = ("text", "label")


@dataclass(frozen=True)
class SliceInfo:
    name: str
    sha256: str
    rows: int


@dataclass(frozen=True)
class DataVersion:
    slices: tuple[SliceInfo, ...]

    @property
    def version(self) -> str:
        digest = hashlib.sha256()
        for item in self.slices:
            digest.update(f"{item.name}\t{item.sha256}\n".encode())
        return digest.hexdigest()

    @property
    def short(self) -> str:
        return self.version[:12]

    @property
    def rows(self) -> int:
        return sum(item.rows for item in self.slices)

    def as_tags(self) -> dict[str, str]:
        """What a model trained on this data records (run and model-version tags)."""
        return {
            "data_version": self.version,
            "data_slices": json.dumps([asdict(item) for item in self.slices]),
        }

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> DataVersion | None:
        raw = tags.get("data_slices")
        if not raw:
            return None
        return cls(tuple(SliceInfo(**item) for item in json.loads(raw)))

    def names(self) -> set[str]:
        return {item.name for item in self.slices}


@dataclass(frozen=True)
class Slice:
    info: SliceInfo
    frame: pd.DataFrame  # raw columns as read; validation decides what is acceptable
    path: Path


def slice_files(data_dir: Path) -> list[Path]:
    folder = Path(data_dir) / SLICES_FOLDER
    if not folder.is_dir():
        raise DataError(f"no slices folder {folder}: the data folder holds slices/*.csv")
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise DataError(f"{folder} has no .csv slices")
    return files


def read_slice(path: Path) -> Slice:
    """One slice, read as text (no type guessing), with its content hash."""
    raw = Path(path).read_bytes()
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"cannot read slice {path.name}: {reason}") from error
    info = SliceInfo(path.name, hashlib.sha256(raw).hexdigest(), len(frame))
    return Slice(info, frame, Path(path))


def read_slices(data_dir: Path) -> list[Slice]:
    return [read_slice(path) for path in slice_files(data_dir)]


def data_version(slices: list[Slice]) -> DataVersion:
    return DataVersion(tuple(item.info for item in slices))


def combined(slices: list[Slice]) -> pd.DataFrame:
    """The (text, label) rows of every slice, in slice order, with the slice name."""
    frames = [
        item.frame.loc[:, list(COLUMNS)].assign(slice=item.info.name)
        for item in slices
        if set(COLUMNS) <= set(item.frame.columns)
    ]
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=[*COLUMNS, "slice"])
    )
