"""Classification metrics shared by the fine-tune, the baseline and the promotion gate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from experiment_tracking.data import LABELS


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, Any]:
    """macro-F1, accuracy, per-class F1 and the confusion matrix (rows true, columns predicted)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    labels = list(LABELS)
    per_class = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        **{f"f1_{label}": float(score) for label, score in zip(labels, per_class, strict=True)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "labels": labels,
    }


def scalar_metrics(metrics: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """The numeric entries of ``metrics`` as ``{prefix}/{name}`` (for trackers)."""
    return {
        f"{prefix}/{name}": float(value)
        for name, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
