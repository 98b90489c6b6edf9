"""An MLflow "model from code" shaped like experiment-tracking's MiniLM model: a Hugging Face
sequence classifier folder (artifact ``classifier``), DataFrame ``text`` in, ``label`` and
``p_great`` out, and no native ``p_great``, so the service must go through the pyfunc. The tests
serve it with a tiny random BERT (torch and transformers: the torch-enabled variant's job)."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel


class TransformerReviewModel(PythonModel):
    def load_context(self, context) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder = context.artifacts["classifier"]
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        self.great_index = int(self.model.config.label2id["great"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        import torch

        texts = model_input["text"].astype(str).tolist()
        batch = self.tokenizer(
            texts, truncation=True, max_length=64, padding=True, return_tensors="pt"
        )
        with torch.inference_mode():
            logits = self.model(**batch).logits.float()
        p_great = torch.softmax(logits, dim=-1)[:, self.great_index].numpy().astype(float)
        return pd.DataFrame(
            {"label": np.where(p_great >= 0.5, "great", "other"), "p_great": p_great}
        )


mlflow.models.set_model(TransformerReviewModel())
