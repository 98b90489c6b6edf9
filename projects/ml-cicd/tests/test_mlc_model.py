"""The logged model's plain-Python scorer: the same p(great) as scikit-learn's pipeline, and
scikit-learn for any pipeline it does not reproduce."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ml_cicd.model import build_pipeline, load_pyfunc
from ml_cicd.pyfunc_model import TextScorer
from ml_cicd.training import held_out_set


def test_the_plain_python_scorer_gives_scikit_learns_p_great(
    trained_model: tuple[Path, Any],
) -> None:
    folder, _ = trained_model
    native = load_pyfunc(str(folder)).unwrap_python_model()
    assert native.scorer is not None
    texts = held_out_set()["text"].astype(str).tolist()
    texts += ["", "!!", "Zzzz qqqq", "GREAT great Great, great!", "not good. Not GOOD at all"]
    expected = native.pipeline.predict_proba(texts)[:, native.great_index]
    np.testing.assert_allclose(native.p_great(texts), expected, rtol=0, atol=1e-12)


def test_a_pipeline_the_scorer_does_not_reproduce_is_left_to_scikit_learn() -> None:
    frame = pd.DataFrame({"text": ["great food", "great staff", "bad food", "bad staff"] * 3,
                          "label": ["great", "great", "other", "other"] * 3})  # fmt: skip
    pipeline = build_pipeline()
    assert TextScorer.supports(pipeline.fit(frame["text"], frame["label"]))
    pipeline.set_params(tfidf__sublinear_tf=False)
    assert not TextScorer.supports(pipeline.fit(frame["text"], frame["label"]))
