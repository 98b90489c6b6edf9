"""Headline figures as the issue names them (shared by the demo and the benchmark)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

BASELINE_NAME = "TF-IDF + logistic regression"
F1_HEADLINE = f"Fine-tuned MiniLM macro-F1 (baseline: {BASELINE_NAME})"
ACCURACY_HEADLINE = f"Fine-tuned MiniLM accuracy (baseline: {BASELINE_NAME})"
THROUGHPUT_HEADLINE = "Training throughput: our Accelerate loop / Hugging Face Trainer"
OVERHEAD_HEADLINE = "Tracking overhead, start-up and flush included (MLflow + W&B on vs off)"


def headline(
    name: str, value: Any, unit: str, baseline: Any, target: str | None, **extra: Any
) -> dict[str, Any]:
    """One headline item; ``extra`` adds keys such as ``baseline_unit`` or ``interval``."""
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "target": target,
        **extra,
    }


def quality_headlines(
    minilm: Mapping[str, Any], baseline: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """One fine-tune against the baseline on the same rows: MiniLM must beat it on macro-F1;
    accuracy is reported beside it."""
    return [
        headline(
            F1_HEADLINE,
            round(minilm["macro_f1"], 4),
            "",
            round(baseline["macro_f1"], 4),
            f"> {baseline['macro_f1']:.4f}",
        ),
        headline(
            ACCURACY_HEADLINE,
            round(minilm["accuracy"], 4),
            "",
            round(baseline["accuracy"], 4),
            None,
        ),
    ]
