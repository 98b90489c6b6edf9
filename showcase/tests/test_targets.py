import pytest
from roadmap_showcase.report import format_number, format_quantity
from roadmap_showcase.targets import Target, parse_target, target_met


@pytest.mark.parametrize(
    ("text", "unit", "expected"),
    [
        (">= 30", None, Target(">=", 30.0)),
        ("< 5", "s", Target("<", 5.0)),
        ("<= 0.02", None, Target("<=", 0.02)),
        (">1.5", None, Target(">", 1.5)),
        ("== 1", None, Target("==", 1.0)),
        ("≥ 90", "%", Target("≥", 90.0)),
        (">= -1e-3", None, Target(">=", -0.001)),
        (">= 30 tok/s", "tok/s", Target(">=", 30.0)),
        (">= 95%", "%", Target(">=", 95.0)),
    ],
)
def test_simple_comparisons_parse(text, unit, expected):
    assert parse_target(text, unit) == expected


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        ("30", None),
        ("better than before", None),
        (">= thirty", None),
        (">= 30 per batch", "tok/s"),
        ("between 1 and 2", None),
        (None, None),
        (30, None),
        ("", None),
        (">=", None),
    ],
)
def test_anything_else_is_not_a_target(text, unit):
    assert parse_target(text, unit) is None


@pytest.mark.parametrize(
    ("value", "target", "met"),
    [
        (31, ">= 30", True),
        (30, ">= 30", True),
        (29.9, ">= 30", False),
        (4.99, "< 5", True),
        (5, "< 5", False),
        (0.02, "<= 0.02", True),
        (0.021, "<= 0.02", False),
        ("35", ">= 30", True),
        ("n/a", ">= 30", None),
        (True, ">= 0", None),
        (None, "< 5", None),
        (12, "about 10", None),
        (12, None, None),
    ],
)
def test_target_met(value, target, met):
    assert target_met(value, target) is met


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (780.4, "tok/s", "780.4 tok/s"),
        (1234567, None, "1,234,567"),
        (0.0123456, "", "0.01235"),
        (12.0, "s", "12 s"),
        (95.5, "%", "95.5%"),
        (1.62, "x", "1.62x"),
        (None, "s", "—"),
        ("n/a", "s", "n/a"),
        ("0.5", "s", "0.5 s"),
    ],
)
def test_quantities_are_formatted_for_reading(value, unit, text):
    assert format_quantity(value, unit) == text


def test_large_floats_are_grouped():
    assert format_number(123456.7) == "123,457"
