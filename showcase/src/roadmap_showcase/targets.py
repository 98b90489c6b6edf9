"""Targets as projects write them in their headline ("">= 30", "< 5", "<= 0.02 s")."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "≥": operator.ge,
    "<=": operator.le,
    "≤": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "=": operator.eq,
}
_TARGET = re.compile(
    r"\s*(>=|<=|==|≥|≤|>|<|=)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*"
)


@dataclass(frozen=True)
class Target:
    op: str
    threshold: float

    def is_met(self, value: float) -> bool:
        return _OPERATORS[self.op](value, self.threshold)


def parse_target(target: object, unit: object = None) -> Target | None:
    """The comparison in `target`, or None when it is not a simple one.

    A trailing word is accepted only when it repeats the headline's unit (">= 30 tok/s" with
    unit "tok/s"), so free text such as ">= 30 per batch" is not silently read as ">= 30".
    """
    if not isinstance(target, str):
        return None
    match = _TARGET.fullmatch(target)
    if match is None:
        return None
    op, number, suffix = match.groups()
    if suffix and (not isinstance(unit, str) or suffix.casefold() != unit.strip().casefold()):
        return None
    return Target(op, float(number))


def as_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def target_met(value: object, target: object, unit: object = None) -> bool | None:
    """True/False when `target` is a simple comparison and `value` a number, else None."""
    parsed = parse_target(target, unit)
    number = as_number(value)
    if parsed is None or number is None:
        return None
    return parsed.is_met(number)
