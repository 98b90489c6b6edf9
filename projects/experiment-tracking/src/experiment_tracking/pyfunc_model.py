"""The logged MLflow model: an MLflow "model from code" file, so it must stay self-contained.

It imports only torch, transformers, pandas, numpy and mlflow; ``mlflow.pyfunc.load_model`` runs it
without this package installed. The fine-tuned Hugging Face folder travels as the artifact
``classifier``. Input: a DataFrame with a ``text`` column; output: ``label`` and ``p_great``.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

INFERENCE_CONFIG = "inference.json"  # max_length used in training, written beside the weights


class HFTextClassifier:
    """A fine-tuned sequence classifier folder; predicts p(great) in batches, on CPU or GPU."""

    def __init__(self, folder: str | Path, batch_size: int = 64) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder = Path(folder)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = (
            AutoModelForSequenceClassification.from_pretrained(folder).to(self.device).eval()
        )
        config_file = folder / INFERENCE_CONFIG
        settings = json.loads(config_file.read_text()) if config_file.is_file() else {}
        self.max_length = int(settings.get("max_length", 128))
        self.batch_size = batch_size
        self.great_index = int(self.model.config.label2id.get("great", 1))

    def p_great(self, texts: list[str]) -> np.ndarray:
        import torch

        scores = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                texts[start : start + self.batch_size],
                truncation=True,
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            ).to(self.device)
            with torch.inference_mode():
                logits = self.model(**batch).logits.float()
            scores.append(torch.softmax(logits, dim=-1)[:, self.great_index].cpu().numpy())
        return np.concatenate(scores) if scores else np.zeros(0)


class ReviewClassifierModel(PythonModel):
    def load_context(self, context) -> None:
        self.classifier = HFTextClassifier(context.artifacts["classifier"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if isinstance(model_input, pd.DataFrame):
            texts = model_input["text"].astype(str).tolist()
        else:
            texts = [str(text) for text in model_input]
        p_great = self.classifier.p_great(texts)
        return pd.DataFrame(
            {"label": np.where(p_great >= 0.5, "great", "other"), "p_great": p_great.astype(float)}
        )


# Tells MLflow which object this file defines when it loads the model from code.
mlflow.models.set_model(ReviewClassifierModel())
