"""``merge-adapter`` on the shared tiny random Llama: the merged folder is a plain HF model whose
logits equal base + adapter's, from a saved adapter folder and from a registered MLflow model
version; a bad source is one line and exit 2, and leaves no output."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import torch
from llm_alignment.cli import app
from llm_alignment.generation import load_policy
from llm_alignment.tracking import register_adapter, use_experiment
from typer.testing import CliRunner, Result

runner = CliRunner()
PROMPTS = ["Name a fruit.", "What is two plus two?", "Write one word about the sea."]


@pytest.fixture(scope="module")
def adapter_dir(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter with non-zero weights on attention and MLP projections (a fresh one is
    the identity: merging it would prove nothing)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    config = LoraConfig(
        r=4, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False
    )
    folder = tmp_path_factory.mktemp("adapter") / "adapter"
    get_peft_model(base, config).save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(folder)
    return folder


def logits(model: torch.nn.Module, tokenizer, prompts: list[str]) -> list[torch.Tensor]:
    with torch.inference_mode():
        return [model(**tokenizer(p, return_tensors="pt")).logits[0] for p in prompts]


def merge(*args: object) -> Result:
    return runner.invoke(app, ["merge-adapter", *map(str, args)])


def assert_merged_equals_adapter(merged_dir: Path, tiny_llama_dir: Path, adapter: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged = AutoModelForCausalLM.from_pretrained(merged_dir, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(merged_dir, local_files_only=True)
    assert merged.dtype == torch.float32 and not (merged_dir / "adapter_config.json").exists()
    with_adapter, _ = load_policy(tiny_llama_dir, adapter)
    base, _ = load_policy(tiny_llama_dir)
    got, want = logits(merged, tokenizer, PROMPTS), logits(with_adapter, tokenizer, PROMPTS)
    plain = logits(base, tokenizer, PROMPTS)
    for merged_logits, adapter_logits, base_logits in zip(got, want, plain, strict=True):
        torch.testing.assert_close(merged_logits, adapter_logits, atol=1e-5, rtol=0)
        # The adapter changes the outputs, so equality above is the merge, not a no-op.
        assert (adapter_logits - base_logits).abs().max() > 1e-3


def test_a_merged_adapter_folder_gives_base_plus_adapter_logits(
    adapter_dir: Path, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "out" / "merged"
    dest.mkdir(parents=True)
    (dest / "stale.txt").write_text("from an earlier merge")
    result = merge(adapter_dir, dest, "--model-dir", tiny_llama_dir, "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert_merged_equals_adapter(dest, tiny_llama_dir, adapter_dir)
    # The old folder was replaced whole, and no staging folder is left beside it.
    assert not (dest / "stale.txt").exists()
    assert [p.name for p in dest.parent.iterdir()] == ["merged"]


def test_a_registered_adapter_version_is_downloaded_and_merged(
    adapter_dir: Path, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    use_experiment(uri, "tests-merge", tmp_path / "artifacts")
    with mlflow.start_run():
        version = register_adapter(adapter_dir, tiny_llama_dir, "tests-merge")
    # The process-wide registry is another one: --tracking-uri alone must name the registry.
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    dest = tmp_path / "merged"
    result = merge(
        f"models:/tests-merge/{version}", dest, "--model-dir", tiny_llama_dir,
        "--tracking-uri", uri,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert_merged_equals_adapter(dest, tiny_llama_dir, adapter_dir)


def test_an_adapter_for_another_base_is_one_line_and_exit_2(
    adapter_dir: Path, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    import json
    import shutil

    foreign = Path(shutil.copytree(adapter_dir, tmp_path / "foreign"))
    config = json.loads((foreign / "adapter_config.json").read_text())
    (foreign / "adapter_config.json").write_text(
        json.dumps({**config, "target_modules": ["c_attn"]})  # GPT-2's name: not in a Llama
    )
    dest = tmp_path / "merged"
    result = merge(foreign, dest, "--model-dir", tiny_llama_dir, "--run-dir", tmp_path / "run")
    assert result.exit_code == 2, result.output
    assert "does not fit the base" in result.output and not dest.exists()
    result = merge(adapter_dir, dest, "--model-dir", tmp_path, "--run-dir", tmp_path / "run")
    assert result.exit_code == 2 and "not a Hugging Face model folder" in result.output


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{tmp}/nowhere", "no such adapter folder"),
        ("{tmp}", "holds no LoRA adapter"),
        ("models:/tests-merge/1", "no MLflow registry to ask"),
        ("models:/missing/3", "models:/missing/3: "),
    ],
)
def test_a_bad_source_is_one_line_and_exit_2(
    source: str, message: str, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    if source == "models:/missing/3":  # a registry that holds no such model
        run_dir.mkdir()
        mlflow.MlflowClient(f"sqlite:///{run_dir / 'mlflow.db'}").search_experiments()
    dest = tmp_path / "merged"
    result = merge(
        source.format(tmp=tmp_path), dest, "--model-dir", tiny_llama_dir, "--run-dir", run_dir
    )
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not dest.exists()
