"""Validation of new data slices before anything trains on them.

Per slice, a pandera schema: exactly the columns text and label, string types, labels in the
label set, no empty or over-long text, no duplicate text within the slice nor with the data it
adds to, and a size floor. Against the fixed held-out set (``leakage.py``): no text that is a
held-out review after normalising case, whitespace and punctuation, nor a near copy of one
(token Jaccard >= ``held_out_jaccard``). Against the previous data version (the champion's):
slices are append-only (a committed slice may not change or disappear), the share of "great"
may not move by more than ``max_label_share_shift``, and text lengths may not drift beyond a
Kolmogorov-Smirnov statistic of ``max_length_ks``. Every failed rule names its slice and, where
rows are at fault, the row numbers (1 = the first data row of the file).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml_cicd.leakage import HeldOutIndex
from ml_cicd.model import LABELS
from ml_cicd.settings import ValidationRules
from ml_cicd.slices import COLUMNS, DataVersion, Slice

MAX_ROWS_NAMED = 10


@dataclass
class RuleResult:
    rule: str
    slice: str
    passed: bool
    detail: str
    rows: list[int] = field(default_factory=list)  # 1-based data rows at fault (first few)
    failed_rows: int = 0


@dataclass
class ValidationReport:
    new_slices: list[str]
    results: list[RuleResult]
    stats: dict[str, Any]

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    def failures(self) -> list[RuleResult]:
        return [result for result in self.results if not result.passed]

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "new_slices": self.new_slices,
            "results": [asdict(result) for result in self.results],
            "stats": self.stats,
        }

    def summary(self) -> str:
        failures = self.failures()
        if not failures:
            return f"{len(self.results)} checks passed on {len(self.new_slices)} new slice(s)"
        return "; ".join(
            f"{f.slice}: {f.rule} ({f.detail})" + (f" rows {_rows_text(f)}" if f.rows else "")
            for f in failures
        )


def _rows_text(result: RuleResult) -> str:
    shown = ", ".join(map(str, result.rows))
    more = result.failed_rows - len(result.rows)
    return shown + (f" and {more} more" if more > 0 else "")


def slice_schema(rules: ValidationRules, previous_texts: set[str]):
    """The pandera schema one slice must satisfy (check names are the report's rule names)."""
    import pandera.pandas as pa

    return pa.DataFrameSchema(
        {
            "text": pa.Column(
                str,
                nullable=False,
                unique=True,
                checks=[
                    pa.Check(lambda s: s.str.strip().str.len() > 0, name="text_not_empty"),
                    pa.Check(lambda s: s.str.len() <= rules.max_text_chars, name="text_max_length"),
                    pa.Check(lambda s: ~s.isin(previous_texts), name="text_not_in_previous_data"),
                ],
            ),
            "label": pa.Column(
                str, nullable=False, checks=pa.Check(lambda s: s.isin(LABELS), name="label_set")
            ),
        },
        strict=True,
        checks=pa.Check(lambda frame: len(frame) >= rules.min_rows, name="size_floor"),
    )


RULE_TEXT = {
    "column_in_dataframe": "a required column is missing",
    "column_in_schema": "a column that is not text or label",
    "field_uniqueness": "duplicate text within the slice",
    "text_not_empty": "empty text",
    "text_max_length": "text over the length limit",
    "text_not_in_previous_data": "text already in the previous data",
    "label_set": f"label not in {', '.join(LABELS)}",
    "size_floor": "too few rows",
    "dtype": "wrong column type",
}


def _rule_name(check: str) -> str:
    check = str(check)
    for name in RULE_TEXT:
        if check.startswith(name):
            return name
    if check.startswith("dtype"):
        return "dtype"
    return check


def _schema_results(item: Slice, rules: ValidationRules, previous: set[str]) -> list[RuleResult]:
    import pandera.errors

    schema = slice_schema(rules, previous)
    name = item.info.name
    try:
        schema.validate(item.frame, lazy=True)
    except pandera.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        results = []
        for check, group in cases.groupby(cases["check"].map(_rule_name), sort=False):
            indexes = sorted({int(i) for i in group["index"].dropna()})
            detail = RULE_TEXT.get(str(check), str(check))
            if check in ("column_in_dataframe", "column_in_schema"):
                detail += ": " + ", ".join(sorted(map(str, group["failure_case"])))
            elif check == "size_floor":
                detail += f": {len(item.frame)} < {rules.min_rows}"
            results.append(
                RuleResult(
                    rule=str(check),
                    slice=name,
                    passed=False,
                    detail=detail,
                    rows=[i + 1 for i in indexes[:MAX_ROWS_NAMED]],
                    failed_rows=len(indexes),
                )
            )
        return results
    return [RuleResult("schema", name, True, f"{len(item.frame)} rows match the schema")]


def _leak_results(item: Slice, held_out: HeldOutIndex) -> list[RuleResult]:
    """The held-out rules on one slice's texts: each failure names the slice's rows and, for the
    first few, the held-out row each one copies."""
    if "text" not in item.frame.columns:
        return []  # the schema reports the missing column
    found = held_out.matches(item.frame["text"].astype(str).tolist())
    name = item.info.name
    rules = (
        ("text_in_held_out", found.exact, "text of the held-out set (after normalising case, "
         "whitespace and punctuation)"),
        ("text_near_held_out", found.near, f"near copy of a held-out text (token Jaccard >= "
         f"{held_out.jaccard:g})"),
    )  # fmt: skip
    results = []
    for rule, copied, what in rules:
        rows = np.flatnonzero(copied >= 0)
        if not rows.size:
            results.append(RuleResult(rule, name, True, f"no {what}"))
            continue
        pairs = ", ".join(
            f"row {row + 1} ~ held-out row {copied[row] + 1}"
            + (f" (Jaccard {found.similarity[row]:.2f})" if rule == "text_near_held_out" else "")
            for row in rows[:3]
        )
        results.append(
            RuleResult(
                rule,
                name,
                False,
                f"{what}: {pairs}; training on it would score the model on its own training data",
                rows=[int(row) + 1 for row in rows[:MAX_ROWS_NAMED]],
                failed_rows=int(rows.size),
            )
        )
    return results


def _label_share(frame: pd.DataFrame) -> float:
    return float((frame["label"] == "great").mean()) if len(frame) else 0.0


def _drift_results(item: Slice, previous: pd.DataFrame, rules: ValidationRules) -> list[RuleResult]:
    from scipy.stats import ks_2samp

    name = item.info.name
    new_share, old_share = _label_share(item.frame), _label_share(previous)
    shift = abs(new_share - old_share)
    results = [
        RuleResult(
            "label_balance",
            name,
            shift <= rules.max_label_share_shift,
            f"share of great {new_share:.1%} vs {old_share:.1%} in the previous data "
            f"(shift {shift:.1%}, max {rules.max_label_share_shift:.0%})",
        )
    ]
    statistic = float(
        ks_2samp(item.frame["text"].str.len(), previous["text"].astype(str).str.len()).statistic
    )
    results.append(
        RuleResult(
            "length_drift",
            name,
            statistic <= rules.max_length_ks,
            f"text-length KS statistic {statistic:.3f} (max {rules.max_length_ks:.2f}); median "
            f"{item.frame['text'].str.len().median():.0f} vs "
            f"{previous['text'].astype(str).str.len().median():.0f} characters",
        )
    )
    return results


def _append_only(slices: list[Slice], previous: DataVersion | None) -> list[RuleResult]:
    if previous is None:
        return []
    current = {item.info.name: item.info.sha256 for item in slices}
    results = []
    for old in previous.slices:
        if old.name not in current:
            results.append(
                RuleResult("append_only", old.name, False, "slice of the previous data removed")
            )
        elif current[old.name] != old.sha256:
            results.append(
                RuleResult(
                    "append_only",
                    old.name,
                    False,
                    f"slice changed since the previous data version ({old.sha256[:12]} -> "
                    f"{current[old.name][:12]}); add new data as a new slice",
                )
            )
    return results


def validate_new_data(
    slices: list[Slice],
    previous: DataVersion | None,
    rules: ValidationRules,
    held_out: Sequence[str],
) -> ValidationReport:
    """Validate the slices that the previous data version (None: nothing yet) lacks, against
    the previous data and the ``held_out`` texts (the fixed evaluation set)."""
    held_out_index = HeldOutIndex(held_out, rules.held_out_jaccard)
    known = previous.names() if previous else set()
    new = [item for item in slices if item.info.name not in known]
    old = [item for item in slices if item.info.name in known]
    old_frames = [item.frame for item in old if set(COLUMNS) <= set(item.frame.columns)]
    previous_rows = (
        pd.concat(old_frames, ignore_index=True) if old_frames else pd.DataFrame(columns=COLUMNS)
    )
    seen = set(previous_rows["text"].astype(str))
    results = _append_only(slices, previous)
    for item in new:
        schema_results = _schema_results(item, rules, seen)
        results += schema_results
        results += _leak_results(item, held_out_index)
        if all(r.passed for r in schema_results) and len(previous_rows):
            results += _drift_results(item, previous_rows, rules)
        if "text" in item.frame.columns:
            seen |= set(item.frame["text"].astype(str))
    if not new:
        results.append(RuleResult("new_data", "-", True, "no new slice"))
    stats = {
        "previous_rows": len(previous_rows),
        "previous_great_share": round(_label_share(previous_rows), 4)
        if len(previous_rows)
        else None,
        "new_rows": int(sum(len(item.frame) for item in new)),
    }
    return ValidationReport([item.info.name for item in new], results, stats)
