"""Headline figures as the issue names them (shared by the demo and the benchmark)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

F1_HEADLINE = "Fine-tuned MiniLM macro-F1 (baseline: TF-IDF + logistic regression)"
ACCURACY_HEADLINE = "Fine-tuned MiniLM accuracy (baseline: TF-IDF + logistic regression)"
THROUGHPUT_HEADLINE = "Training throughput: our Accelerate loop / Hugging Face Trainer"
OVERHEAD_HEADLINE = "Tracking overhead (MLflow + W&B on vs off)"
COMMITTED_BENCHMARK = Path("projects/experiment-tracking/benchmarks/results.json")


def headline(name: str, value: Any, unit: str, baseline: Any, target: str | None) -> dict[str, Any]:
    return {"name": name, "value": value, "unit": unit, "baseline": baseline, "target": target}


def quality_headlines(minilm: dict[str, Any], baseline: dict[str, Any]) -> list[dict[str, Any]]:
    """MiniLM must beat the baseline on macro-F1; accuracy is reported beside it."""
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


def committed_benchmark_headlines(path: Path = COMMITTED_BENCHMARK) -> list[dict[str, Any]]:
    """Throughput and overhead figures from the committed benchmark, labelled as such (or none)."""
    try:
        results = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return []
    picked = []
    for item in results.get("headline", []):
        if item.get("name") in (THROUGHPUT_HEADLINE, OVERHEAD_HEADLINE):
            picked.append(
                {
                    **item,
                    "name": f"{item['name']} [benchmark {results.get('measured_at', '?')[:10]}]",
                }
            )
    return picked
