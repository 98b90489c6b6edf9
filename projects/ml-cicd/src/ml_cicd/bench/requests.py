"""The request mix: every text of the held-out set, in batches, each server's body shape, and
the check that a server answers what the model predicts.

Both servers get the same texts in the same order, each in its own JSON shape (``{"texts":
[...]}`` for ours, MLflow's ``{"dataframe_split": ...}``). The batches cover the whole held-out
set (the last one wraps around to the first texts), so the load is not a few reviews repeated;
neither server caches answers, so every request is a prediction.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ml_cicd.errors import BenchmarkError

OURS, MLFLOW = "ml-cicd", "mlflow"
SERVERS = (OURS, MLFLOW)
LABELS = {OURS: "ml-cicd service", MLFLOW: "mlflow models serve"}
PREDICT_PATH = {OURS: "/predict", MLFLOW: "/invocations"}
PREDICTION_TOLERANCE = 1e-6


def request_batches(texts: Sequence[str], batch: int) -> list[list[str]]:
    """Consecutive batches of ``batch`` texts that cover every text, in order; the last batch
    is filled up from the first texts."""
    if not texts:
        raise BenchmarkError("no texts to send")
    count = -(-len(texts) // batch)  # ceil
    cycled = [texts[i % len(texts)] for i in range(count * batch)]
    return [list(cycled[i : i + batch]) for i in range(0, len(cycled), batch)]


def request_body(server: str, texts: Sequence[str]) -> dict[str, Any]:
    """One request in the server's own JSON shape."""
    if server == OURS:
        return {"texts": list(texts)}
    return {"dataframe_split": {"columns": ["text"], "data": [[text] for text in texts]}}


def write_bodies(server: str, batches: list[list[str]], path: Path) -> Path:
    """One JSON body a line, as the wrk script reads them."""
    lines = [json.dumps(request_body(server, texts), ensure_ascii=False) for texts in batches]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def post_json(url: str, body: dict[str, Any], timeout_s: float = 30.0) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            answer: dict[str, Any] = json.loads(reply.read())
            return answer
    except urllib.error.HTTPError as error:
        detail = error.read()[:500].decode(errors="replace")
        raise BenchmarkError(f"POST {url} answered {error.code}: {detail}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise BenchmarkError(f"POST {url} failed: {error}") from None


def check_predictions(
    server: str, url: str, texts: list[str], expected: list[tuple[str, float]]
) -> None:
    """One request; its labels and p(great) must be the model's (same model, both servers)."""
    answer = post_json(url, request_body(server, texts))
    try:
        got = [(str(p["label"]), float(p["p_great"])) for p in answer["predictions"]]
    except (KeyError, TypeError, ValueError):
        raise BenchmarkError(f"{LABELS[server]} answered {str(answer)[:300]}") from None
    wrong = [
        i
        for i, ((label, p), (want_label, want_p)) in enumerate(zip(got, expected, strict=False))
        if label != want_label or abs(p - want_p) > PREDICTION_TOLERANCE
    ]
    if len(got) != len(expected) or wrong:
        raise BenchmarkError(
            f"{LABELS[server]} does not predict what the model does: {len(got)} predictions for "
            f"{len(expected)} texts, {len(wrong)} differ (first {wrong[:3]})"
        )
