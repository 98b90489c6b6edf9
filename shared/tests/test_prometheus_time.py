from __future__ import annotations

import pytest
from roadmap_lab.prometheus_time import (
    DurationError,
    format_duration,
    parse_duration,
    scale_expr,
    scaled_rules,
)


@pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), ("1h30m", 5400), ("2s", 2)])
def test_durations_round_trip(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["5 minutes", "", "5m30", "1.5.5s"])
def test_a_bad_duration_is_an_error(text: str) -> None:
    with pytest.raises(DurationError, match="not a Prometheus duration"):
        parse_duration(text)


def test_range_selectors_scale_with_the_clock_but_subquery_steps_do_not() -> None:
    assert scale_expr("rate(x[5m]) / rate(y[1h])", 30) == "rate(x[10s]) / rate(y[120s])"
    assert scale_expr("max_over_time(x[15m:1m])", 60) == "max_over_time(x[15s:1m])"


def test_scaled_rules_scale_intervals_and_durations_and_leave_the_input() -> None:
    rules = {
        "groups": [
            {
                "name": "g",
                "interval": "1m",
                "rules": [
                    {"alert": "A", "expr": "avg_over_time(x[10m]) > 1", "for": "5m"},
                    {"record": "r", "expr": "sum(y)", "keep_firing_for": "2m"},
                ],
            }
        ]
    }
    scaled = scaled_rules(rules, 30)
    group = scaled["groups"][0]
    assert group["interval"] == "2s"
    assert group["rules"][0] == {"alert": "A", "expr": "avg_over_time(x[20s]) > 1", "for": "10s"}
    assert group["rules"][1]["keep_firing_for"] == "4s"
    assert rules["groups"][0]["interval"] == "1m"
