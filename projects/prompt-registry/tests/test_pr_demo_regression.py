"""The demo's regression with the real SmolLM2-135M-Instruct: its wording makes the answers
worse by the strict label scorer, not unreadable to it (the answers name one label, often the
wrong one: "This review is positive" for a negative review)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from prompt_registry.demo import DEMO_PROMPT, REGRESSION_TEMPLATE
from prompt_registry.harness import Harness
from prompt_registry.scorers import Label

pytestmark = pytest.mark.slow


def test_the_demo_regression_gives_worse_answers_the_scorer_can_read(settings) -> None:
    harness = Harness(
        settings.model_copy(update={"model_dir": None, "batch_size": 16}), track=False
    )
    content = harness.folder(DEMO_PROMPT).content()
    assert content.config is not None
    assert [s.type for s in content.config.scorers] == ["label"]
    improved = harness.evaluate(content, content.config)
    regression = harness.evaluate(replace(content, template=REGRESSION_TEMPLATE), content.config)
    assert regression.pass_rate < improved.pass_rate - settings.gate_max_drop
    label = Label(["positive", "negative"])
    expected = {e.id: e.expected for e in content.config.examples}
    broken = [
        after
        for before, after in zip(improved.examples, regression.examples, strict=True)
        if before.passed and not after.passed
    ]
    # Broken answers name one label, the wrong one: worse answers, read correctly.
    wrong = [e for e in broken if label.answer(e.output) not in (None, expected[e.id])]
    assert len(broken) >= 4 and len(wrong) >= 0.8 * len(broken)
    unreadable = [e for e in regression.examples if label.answer(e.output) is None]
    assert len(unreadable) <= 2
