"""Slice validation with pandera: types, ranges, nulls, duplicates, row counts and distribution
sanity against the previous slice. A failed validation yields a report that names each rule and
the rows (0-based data rows of the CSV, and their ids) that broke it."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from roadmap_lab.data import HOUSING_FEATURES

from data_pipelines.source import slice_bounds

if TYPE_CHECKING:
    import pandas as pd
    import pandera.pandas as pa

    from data_pipelines.settings import ProjectSettings

FEATURES = list(HOUSING_FEATURES)
TARGET = "clf_target"
# Physical bounds: California block groups (the census data's documented ranges, with margin).
FEATURE_BOUNDS: dict[str, tuple[float, float]] = {
    "MedInc": (0.0, 20.0),
    "HouseAge": (0.0, 100.0),
    "AveRooms": (0.1, 200.0),
    "AveBedrms": (0.1, 50.0),
    "Population": (1.0, 100_000.0),
    "AveOccup": (0.1, 2_000.0),
    "Latitude": (32.0, 42.5),
    "Longitude": (-124.5, -114.0),
}
MAX_ROWS_LISTED = 20


@dataclass(frozen=True)
class RuleFailure:
    rule: str
    column: str | None
    rows: list[int]  # 0-based data rows of the slice; empty: the rule is about the whole slice
    ids: list[int]
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "column": self.column,
            "rows": self.rows[:MAX_ROWS_LISTED],
            "ids": self.ids[:MAX_ROWS_LISTED],
            "rows_failed": len(self.rows),
            "detail": self.detail,
        }


@dataclass
class ValidationReport:
    slice_id: str
    rows: int
    failures: list[RuleFailure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def rules(self) -> list[str]:
        return sorted(
            {f.rule if f.column is None else f"{f.column}:{f.rule}" for f in self.failures}
        )

    def summary(self) -> str:
        if self.passed:
            return f"slice {self.slice_id}: {self.rows} rows valid"
        parts = [
            f"{f.column + ' ' if f.column else ''}{f.rule} ({len(f.rows) or 'slice'}"
            f"{' rows' if f.rows else ''})"
            for f in self.failures
        ]
        return f"slice {self.slice_id} failed validation: " + "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "slice_id": self.slice_id,
            "rows": self.rows,
            "passed": self.passed,
            "failures": [f.as_dict() for f in self.failures],
        }


def _pandera() -> Any:
    # pandera's top-level import warns about its pandas namespace; this is the supported one.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import pandera.pandas as pa
    return pa


def build_schema(
    key: str, settings: ProjectSettings, previous: pd.DataFrame | None
) -> pa.DataFrameSchema:
    """The schema one slice must satisfy; ``previous`` (the previous valid slice) adds the
    distribution checks."""
    pa = _pandera()
    start, end = slice_bounds(key)

    def feature_checks(name: str) -> list[Any]:
        low, high = FEATURE_BOUNDS[name]
        checks = [pa.Check.in_range(low, high)]
        if previous is not None and len(previous) > 1:
            # Weekly slices of this data drift a lot (one region after another), so the checks
            # catch breakage (unit changes, a column stuck at one value), not natural drift.
            median = float(previous[name].median())
            max_shift = settings.max_median_shift * (high - low)
            checks.append(
                pa.Check(
                    lambda series, median=median: bool(abs(series.median() - median) <= max_shift),
                    name="median_shift_vs_previous",
                )
            )
            if previous[name].nunique() > 1:
                checks.append(
                    pa.Check(lambda series: bool(series.nunique() > 1), name="constant_column")
                )
        return checks

    columns = {
        "id": pa.Column(int, pa.Check.ge(0), unique=True, nullable=False),
        **{name: pa.Column(float, feature_checks(name), nullable=False) for name in FEATURES},
        "timestamp": pa.Column(
            "datetime64[ns]",
            [pa.Check.ge(start, name="in_slice_week"), pa.Check.lt(end, name="in_slice_week")],
            nullable=False,
        ),
        TARGET: pa.Column(int, pa.Check.isin([0, 1]), nullable=False),
    }
    row_count = pa.Check(
        lambda frame: settings.min_rows <= len(frame) <= settings.max_rows,
        name=f"row_count_in[{settings.min_rows},{settings.max_rows}]",
    )
    return pa.DataFrameSchema(
        columns,
        checks=[row_count],
        strict=True,
        coerce=True,
        # Whole duplicated records (same features, time and target) are export errors.
        unique=[*FEATURES, "timestamp", TARGET],
        report_duplicates="all",
    )


def read_slice(data: bytes) -> pd.DataFrame:
    import pandas as pd

    return pd.read_csv(io.BytesIO(data), parse_dates=["timestamp"])


def validate_slice(
    key: str, data: bytes, settings: ProjectSettings, previous: pd.DataFrame | None
) -> tuple[ValidationReport, pd.DataFrame | None]:
    """Validate a slice's CSV bytes; the report and, when it passed, the typed frame."""
    pa = _pandera()
    frame = read_slice(data)
    report = ValidationReport(slice_id=key, rows=len(frame))
    try:
        valid = build_schema(key, settings, previous).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        report.failures = _failures(errors.failure_cases, frame)
        return report, None
    return report, valid


def _failures(cases: pd.DataFrame, frame: pd.DataFrame) -> list[RuleFailure]:
    import pandas as pd

    cases = cases.copy()
    # pandera reports a multi-column uniqueness failure once per column: one rule here.
    multi = cases["check"].astype(str) == "multiple_fields_uniqueness"
    cases.loc[multi, "column"] = None
    cases.loc[cases["column"].astype(str).isin(["<DataFrameSchema>", "None", ""]), "column"] = None
    ids = frame["id"] if "id" in frame.columns else pd.Series(dtype="int64")
    failures = []
    grouped = cases.groupby([cases["check"].astype(str), cases["column"].fillna("")], sort=True)
    for (check, column), group in grouped:
        rows = sorted({int(i) for i in group["index"].dropna()})
        row_ids = [int(ids.iloc[r]) for r in rows if r < len(ids) and pd.notna(ids.iloc[r])]
        examples = ", ".join(str(v) for v in group["failure_case"].head(5).tolist())
        failures.append(
            RuleFailure(
                rule=str(check),
                column=str(column) or None,
                rows=rows,
                ids=row_ids,
                detail=f"failure cases: {examples}",
            )
        )
    return failures
