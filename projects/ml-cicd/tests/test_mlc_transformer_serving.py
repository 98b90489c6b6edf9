"""The torch-enabled variant's job: serving a transformer pyfunc (experiment-tracking's MiniLM
champion has this shape) through the pyfunc interface, and reloading between it and the
scikit-learn model under one running service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mlc_testing import (
    GREAT_TEXT,
    OTHER_TEXT,
    ModelFolders,
    RunningService,
    reload,
    running_service,
    service_env,
)

REVIEWS = [GREAT_TEXT, OTHER_TEXT, "Fine tea, a bit weak.", "My dog loves these treats."]


def tiny_bert_classifier(folder: Path) -> Path:
    """A random 2-layer BERT with a WordPiece tokenizer trained on a few sentences."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(
        REVIEWS * 5, trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials)
    )
    fast = BertTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    config = BertConfig(
        vocab_size=fast.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=2, id2label={0: "other", 1: "great"},
        label2id={"other": 0, "great": 1},
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def transformer_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import mlflow.pyfunc

    folder = tmp_path_factory.mktemp("transformer")
    output = folder / "model"
    mlflow.pyfunc.save_model(
        path=str(output),
        python_model=str(Path(__file__).with_name("mlc_transformer_model.py")),
        artifacts={"classifier": str(tiny_bert_classifier(folder / "classifier"))},
    )
    return output


@pytest.fixture(scope="module")
def server(
    model_folders: ModelFolders, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    folder = tmp_path_factory.mktemp("service")
    with running_service(folder, service_env(folder / "run", model_folders.good)) as service:
        yield service


@pytest.mark.slow
def test_serves_a_transformer_pyfunc_and_reloads_between_flavours(
    server: RunningService, transformer_model: Path, model_folders: ModelFolders
) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert reload(client, transformer_model).status_code == 200
        assert client.get("/model").json()["uri"] == str(transformer_model)
        answer = client.post("/predict", json={"texts": REVIEWS})
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        assert len(predictions) == len(REVIEWS)
        for prediction in predictions:
            assert 0.0 <= prediction["p_great"] <= 1.0
            assert prediction["label"] == ("great" if prediction["p_great"] >= 0.5 else "other")

        assert reload(client, model_folders.good).status_code == 200
        back = client.post("/predict", json={"texts": [GREAT_TEXT, OTHER_TEXT]}).json()
        assert back["predictions"][0]["label"] == "great"
        assert back["predictions"][1]["label"] == "other"
