"""Prometheus durations, and rule files on an accelerated clock: model-monitoring's replay and the
MLOps loop run Prometheus and Alertmanager k times faster than production by dividing every
interval, ``for:`` duration and range selector (``[5m]``) by k, so the same rules fire after the
same number of evaluation cycles. Standard library only (the callers load the YAML)."""

from __future__ import annotations

import copy
import re
from typing import Any

from roadmap_lab.errors import LabError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_RANGE = re.compile(r"\[((?:\d+(?:ms|s|m|h|d|w|y))+)(?=[\]:])")


class DurationError(LabError):
    """Text that is not a Prometheus duration."""


def parse_duration(text: str) -> float:
    """Seconds of a Prometheus duration such as ``1h30m`` or ``500ms``."""
    parts = _DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise DurationError(f"not a Prometheus duration: {text!r}")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def format_duration(seconds: float) -> str:
    """A Prometheus duration in whole milliseconds (at least 1 ms)."""
    milliseconds = max(round(seconds * 1000), 1)
    if milliseconds % 1000 == 0:
        return f"{milliseconds // 1000}s"
    return f"{milliseconds}ms"


def scale_duration(text: str, clock: float) -> str:
    return format_duration(parse_duration(text) / clock)


def scale_expr(expr: str, clock: float) -> str:
    """Divide every range selector and subquery range of a PromQL expression by ``clock``."""
    return _RANGE.sub(lambda match: "[" + scale_duration(match.group(1), clock), expr)


def scaled_rules(rules: dict[str, Any], clock: float) -> dict[str, Any]:
    """A rule file's content with group intervals, expressions and ``for:`` /
    ``keep_firing_for:`` durations divided by ``clock`` (the input is left as it was)."""
    scaled = copy.deepcopy(rules)
    for group in scaled.get("groups", []):
        if "interval" in group:
            group["interval"] = scale_duration(group["interval"], clock)
        for rule in group.get("rules", []):
            rule["expr"] = scale_expr(str(rule["expr"]), clock)
            for key in ("for", "keep_firing_for"):
                if key in rule:
                    rule[key] = scale_duration(str(rule[key]), clock)
    return scaled
