"""The quantizer (llm-quantize resolve): llmcompressor writes a compressed-tensors folder."""

from __future__ import annotations

import json

import pytest
from llm_quantize.cli import app
from llm_quantize.quantize import quantize
from llm_quantize.store import REPORT_FILE, quantized_model_dir
from typer.testing import CliRunner


def test_w8a8_checkpoint_of_the_tiny_model(tmp_path, tiny_llama_dir, monkeypatch):
    monkeypatch.setattr(
        "llm_quantize.quantize.calibration_texts", lambda n, seed: ["A cat sat on a mat."] * n
    )
    out = quantize("w8a8-int8", tmp_path / "w8a8", samples=4, source=tiny_llama_dir)
    config = json.loads((out / "config.json").read_text())
    quant = config["quantization_config"]
    assert quant["quant_method"] == "compressed-tensors"
    weights = quant["config_groups"]["group_0"]["weights"]
    activations = quant["config_groups"]["group_0"]["input_activations"]
    assert (weights["num_bits"], weights["type"]) == (8, "int")
    assert (activations["num_bits"], activations["dynamic"]) == (8, True)
    assert "lm_head" in quant["ignore"]
    report = json.loads((out / REPORT_FILE).read_text())  # the provenance the benchmark carries
    assert report["scheme"] == "w8a8-int8" and report["calibration_samples"] == 4
    assert "training split" in report["calibration_data"] and report["seed"] == 0
    assert [step.split("(")[0] for step in report["recipe"]] == [
        "SmoothQuantModifier",
        "GPTQModifier",
    ]
    assert "smoothing_strength=0.8" in report["recipe"][0]
    assert all(report["versions"][name] for name in ("llmcompressor", "torch", "transformers"))
    assert (out / "tokenizer.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_an_existing_checkpoint_is_kept_unless_forced(tmp_path, monkeypatch):
    monkeypatch.setenv("ROADMAP_LAB_CACHE", str(tmp_path))
    folder = quantized_model_dir("fp8")
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    result = CliRunner().invoke(app, ["--scheme", "fp8"])
    assert result.exit_code == 0
    assert result.stdout.strip() == str(folder)
    assert (folder / "config.json").read_text() == "{}"


def test_forced_rebuild_replaces_the_existing_checkpoint(tmp_path, tiny_llama_dir, monkeypatch):
    monkeypatch.setattr(
        "llm_quantize.quantize.calibration_texts", lambda n, seed: ["A cat sat on a mat."] * n
    )
    folder = tmp_path / "w8a8"
    folder.mkdir()
    (folder / "config.json").write_text("{}")  # an older checkpoint
    quantize("w8a8-int8", folder, samples=2, source=tiny_llama_dir)
    config = json.loads((folder / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "compressed-tensors"
    assert json.loads((folder / REPORT_FILE).read_text())["calibration_samples"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["w8a8"]  # nothing moved aside is left


def test_bad_arguments_exit_2():
    result = CliRunner().invoke(app, ["--scheme", "int3"])
    assert result.exit_code == 2
    assert "unknown quantization scheme 'int3'" in result.stderr
    result = CliRunner().invoke(app, ["--samples", "0"])
    assert result.exit_code == 2
    assert "invalid settings: samples" in result.stderr


def test_unknown_scheme_names_the_choices():
    with pytest.raises(ValueError, match="w8a8-int8"):
        quantized_model_dir("int3")
