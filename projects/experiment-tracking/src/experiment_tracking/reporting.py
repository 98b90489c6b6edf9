"""Headline figures as the issue names them (shared by the demo and the benchmark); every verdict
is computed from an interval by ``roadmap_lab.results``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from roadmap_lab.results import Headline, headline_figure
from roadmap_lab.stats import Interval, macro_f1_difference

from experiment_tracking.data import LABELS

BASELINE_NAME = "TF-IDF + logistic regression"
GAIN_HEADLINE = f"Fine-tuned MiniLM macro-F1 gain over {BASELINE_NAME} (same rows)"
F1_HEADLINE = "Fine-tuned MiniLM macro-F1"
ACCURACY_HEADLINE = "Fine-tuned MiniLM accuracy"
THROUGHPUT_HEADLINE = "Training throughput: our Accelerate loop / Hugging Face Trainer"
OVERHEAD_HEADLINE = "Tracking overhead, start-up and flush included (MLflow + W&B on vs off)"
CONFIDENCE = 0.95


def test_set_gain(
    truth: Sequence[str], baseline_predictions: Sequence[str], minilm_predictions: Sequence[str],
    seed: int = 0,
) -> Interval:
    """MiniLM minus TF-IDF macro-F1 on the same test rows, paired bootstrap interval."""
    return macro_f1_difference(
        list(truth), list(baseline_predictions), list(minilm_predictions),
        labels=LABELS, confidence=CONFIDENCE, seed=seed,
    )  # fmt: skip


def quality_headlines(
    minilm: Mapping[str, Any], baseline: Mapping[str, Any], gain: Interval
) -> list[Headline]:
    """One fine-tune against the baseline on the same rows: MiniLM must beat it on macro-F1 (the
    whole interval of the gain above 0); its macro-F1 and accuracy are reported beside it."""
    return [
        headline_figure(
            GAIN_HEADLINE, None, "", baseline=round(baseline["macro_f1"], 4), target="> 0",
            interval=gain,
        ),  # fmt: skip
        headline_figure(F1_HEADLINE, round(minilm["macro_f1"], 4), "", baseline=None),
        headline_figure(
            ACCURACY_HEADLINE, round(minilm["accuracy"], 4), "",
            baseline=round(baseline["accuracy"], 4),
        ),  # fmt: skip
    ]
