from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from roadmap_lab.models import load_smollm2, minilm_dir, smollm2_dir  # noqa: E402
from roadmap_lab.testing.tiny_models import (  # noqa: E402
    build_tiny_bert,
    build_tiny_causal_lm,
    synthetic_reviews,
    tiny_causal_lm_dir,
)

CHAT = [{"role": "user", "content": "What is the capital of France?"}]


def test_tiny_causal_lm_is_deterministic_per_seed() -> None:
    model_a, tokenizer_a = build_tiny_causal_lm(seed=0)
    model_b, tokenizer_b = build_tiny_causal_lm(seed=0)
    model_c, _ = build_tiny_causal_lm(seed=1)
    assert tokenizer_a.get_vocab() == tokenizer_b.get_vocab()
    state_a, state_b, state_c = model_a.state_dict(), model_b.state_dict(), model_c.state_dict()
    assert all(torch.equal(state_a[key], state_b[key]) for key in state_a)
    assert not torch.equal(
        state_a["model.embed_tokens.weight"], state_c["model.embed_tokens.weight"]
    )


def test_tiny_causal_lm_shape_and_tokenizer() -> None:
    model, tokenizer = build_tiny_causal_lm()
    config = model.config
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (64, 2, 4)
    assert (config.intermediate_size, config.max_position_embeddings) == (128, 512)
    assert 400 <= len(tokenizer) <= 512 == config.vocab_size
    assert sum(p.numel() for p in model.parameters()) < 200_000
    assert (
        len(
            {
                tokenizer.bos_token_id,
                tokenizer.eos_token_id,
                tokenizer.pad_token_id,
                tokenizer.unk_token_id,
            }
        )
        == 4
    )
    text = "The cat reads an old book; naïve café, 42 €!"
    assert (
        tokenizer.decode(tokenizer(text)["input_ids"]) == text
    )  # byte-level: no unknown characters
    assert len(tokenizer("The cat reads a red apple")["input_ids"]) <= 8  # BPE learned whole words


def test_tiny_causal_lm_round_trips_and_generates(lab_cache: Path) -> None:
    folder = tiny_causal_lm_dir()
    assert folder == lab_cache / "models" / "tiny-causal-lm-seed0"
    assert tiny_causal_lm_dir() == folder
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    built, _ = build_tiny_causal_lm()
    assert torch.equal(model.lm_head.weight, built.lm_head.weight)

    prompt = tokenizer.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=False)
    assert (
        prompt
        == "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    )
    inputs = tokenizer(prompt, return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert output.shape[0] == 1
    assert inputs["input_ids"].shape[1] < output.shape[1] <= inputs["input_ids"].shape[1] + 6
    assert torch.equal(output[0, : inputs["input_ids"].shape[1]], inputs["input_ids"][0])


@pytest.mark.slow
def test_smollm2_converts_once_and_answers() -> None:
    folder = smollm2_dir()
    assert smollm2_dir() == folder
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["dtype"] == "bfloat16"
    assert config["num_hidden_layers"] == 30 and config["vocab_size"] == 49152
    assert (folder / "model.safetensors").stat().st_size < 300_000_000  # bf16, not fp32
    assert (folder / "generation_config.json").exists()

    model, tokenizer = load_smollm2()
    assert model.dtype == torch.float32
    assert "<|im_start|>" in tokenizer.chat_template
    inputs = tokenizer.apply_chat_template(
        CHAT, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


@pytest.mark.slow
def test_minilm_embeds_similar_sentences_closer() -> None:
    folder = minilm_dir()
    assert (folder / "config.json").exists() and (folder / "model.safetensors").exists()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = transformers.AutoModel.from_pretrained(folder, local_files_only=True).eval()
    sentences = ["The food was delicious.", "This meal tasted great.", "The train leaves at noon."]
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1)
    embeddings = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert embeddings.shape == (3, 384)
    similarity = embeddings @ embeddings.T
    assert similarity[0, 1] > similarity[0, 2] + 0.2


def test_tiny_bert_classifies_into_its_labels_and_reloads(tmp_path: Path) -> None:
    folder = build_tiny_bert(tmp_path / "bert", labels=("other", "great"))
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    assert model.config.id2label == {0: "other", 1: "great"}
    reviews = synthetic_reviews(30, seed=2)
    assert set(reviews["label"]) == {"great", "other"} and len(reviews) == 30
    with torch.no_grad():
        logits = model(**tokenizer(list(reviews["text"]), padding=True, return_tensors="pt")).logits
    assert tuple(logits.shape) == (30, 2)
