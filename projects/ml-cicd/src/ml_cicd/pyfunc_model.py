"""The logged MLflow model: an MLflow "model from code" file, so it stays self-contained.

It imports only joblib, numpy, pandas and mlflow: ``mlflow.pyfunc.load_model`` (and
``mlflow models serve``) run it without this package installed. The fitted scikit-learn pipeline
travels as the artifact ``pipeline``. Input: a DataFrame with a ``text`` column; output: ``label``
and ``p_great``, the same schema as experiment-tracking's MiniLM model, so the service serves
either. ``p_great(texts)`` is the native fast path the service calls behind the pyfunc.
"""

from __future__ import annotations

import joblib
import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

GREAT = "great"


class ReviewPipelineModel(PythonModel):
    def load_context(self, context) -> None:
        self.pipeline = joblib.load(context.artifacts["pipeline"])
        self.great_index = list(self.pipeline.classes_).index(GREAT)

    def p_great(self, texts: list[str]) -> np.ndarray:
        return self.pipeline.predict_proba(texts)[:, self.great_index]

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if isinstance(model_input, pd.DataFrame):
            texts = model_input["text"].astype(str).tolist()
        else:
            texts = [str(text) for text in model_input]
        p_great = self.p_great(texts)
        return pd.DataFrame(
            {"label": np.where(p_great >= 0.5, GREAT, "other"), "p_great": p_great.astype(float)}
        )


# Tells MLflow which object this file defines when it loads the model from code.
mlflow.models.set_model(ReviewPipelineModel())
