"""Real TRL training on the shared tiny random Llama: DPO raises the implicit reward margin on its
training pairs and is tracked and registered in MLflow; the reward model separates an easy pair
set; the GRPO step runs and logs its mean reward; adapters reload with the same outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import pytest
import torch
from la_testing import EASY_PROMPTS, easy_pairs
from llm_alignment.dpo import (
    DPOOptions,
    implicit_reward_margins,
    load_options,
    lora_config,
    train_dpo,
)
from llm_alignment.errors import AdapterError, ConfigError, PreferenceDataError
from llm_alignment.export import VLLM_FILES, export_for_vllm
from llm_alignment.generation import generate, load_policy
from llm_alignment.prompts import make_prompts
from llm_alignment.reward import RewardOptions, RewardScorer, pairwise_accuracy, train_reward_model
from llm_alignment.rl import GRPOOptions, train_grpo, verifier_reward
from llm_alignment.tracking import adapter_fingerprint
from roadmap_lab.services import python_child_env

SHIPPED_CONFIG = Path("projects/llm-alignment/configs/dpo_smollm2.yaml")


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("mlflow")
    return {
        "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}",
        "experiment": "tests",
        "artifacts_dir": folder / "artifacts",
    }


@pytest.fixture(scope="module")
def dpo_run(
    tiny_llama_dir: Path, tracking: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    options = DPOOptions(
        output_dir=tmp_path_factory.mktemp("dpo"),
        max_steps=8,
        learning_rate=5e-3,
        per_device_train_batch_size=4,
        register_name="tests-dpo",
    )
    return train_dpo(options, easy_pairs(8), tiny_llama_dir, **tracking)


def test_dpo_steps_raise_the_implicit_reward_margin_on_training_pairs(
    dpo_run: dict[str, Any], tiny_llama_dir: Path
) -> None:
    model, tokenizer = load_policy(tiny_llama_dir, Path(dpo_run["adapter_dir"]))
    margins = implicit_reward_margins(model, tokenizer, easy_pairs(8), beta=0.1)
    # Before training the policy is the reference: every margin is exactly 0.
    assert sum(margins) / len(margins) > 0.05
    assert sum(1 for m in margins if m > 0) / len(margins) >= 0.75
    history = [h for h in dpo_run["history"] if "rewards/margins" in h]
    assert len(history) == 8
    assert history[-1]["rewards/margins"] > history[0]["rewards/margins"]
    assert history[-1]["rewards/accuracies"] >= 0.75


def test_dpo_run_is_tracked_and_the_adapter_registered(
    dpo_run: dict[str, Any], tracking: dict[str, Any]
) -> None:
    client = mlflow.MlflowClient(tracking["tracking_uri"])
    run = client.get_run(dpo_run["run_id"])
    for key in (
        "loss",
        "rewards/chosen",
        "rewards/rejected",
        "rewards/accuracies",
        "rewards/margins",
    ):
        assert key in run.data.metrics, key
    assert len(client.get_metric_history(dpo_run["run_id"], "rewards/margins")) == 8
    assert run.data.params["beta"] == "0.1"
    assert dpo_run["model_version"] == "1"
    version = client.get_model_version("tests-dpo", "1")
    assert version.run_id == dpo_run["run_id"]


def test_registered_policy_answers_like_the_saved_adapter(
    dpo_run: dict[str, Any], tracking: dict[str, Any], tiny_llama_dir: Path
) -> None:
    mlflow.set_tracking_uri(tracking["tracking_uri"])
    registered = mlflow.pyfunc.load_model("models:/tests-dpo/1")
    prompts = ["Name a fruit.", "What is two plus two?"]
    model, tokenizer = load_policy(tiny_llama_dir, Path(dpo_run["adapter_dir"]))
    expected = [
        r[0]
        for r in generate(
            model, tokenizer, [[{"role": "user", "content": p}] for p in prompts], max_new_tokens=64
        )
    ]
    assert registered.predict(prompts) == expected


def test_adapter_saves_and_reloads_with_the_same_outputs(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    # Non-zero LoRA weights from the start, so the adapter changes the outputs.
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(base, config).eval()
    ids = torch.tensor([[1, 5, 9, 30, 42, 7]])
    with torch.inference_mode():
        before = model(ids).logits
        with model.disable_adapter():
            plain = model(ids).logits
    assert not torch.allclose(before, plain)
    model.save_pretrained(tmp_path / "adapter")
    reloaded, _ = load_policy(tiny_llama_dir, tmp_path / "adapter")
    with torch.inference_mode():
        after = reloaded(ids).logits
    torch.testing.assert_close(after, before)


def test_precomputed_reference_log_probs_give_the_same_loss_trajectory(
    tiny_llama_dir: Path, tracking: dict[str, Any], tmp_path: Path
) -> None:
    trajectories = {}
    for precompute in (False, True):
        options = DPOOptions(
            output_dir=tmp_path / str(precompute),
            max_steps=4,
            learning_rate=5e-3,
            precompute_ref_log_probs=precompute,
            register_name=None,
        )
        summary = train_dpo(options, easy_pairs(8), tiny_llama_dir, **tracking)
        assert summary["precompute_ref_log_probs"] is precompute and summary["steps"] == 4
        assert "model_version" not in summary
        assert (tmp_path / str(precompute) / "adapter" / "adapter_model.safetensors").is_file()
        steps = [h for h in summary["history"] if "loss" in h]
        trajectories[precompute] = torch.tensor(
            [[h["loss"], h["rewards/margins"]] for h in steps], dtype=torch.float64
        )
    on_the_fly, precomputed = trajectories[False], trajectories[True]
    assert on_the_fly.shape == (4, 2)
    assert (
        on_the_fly[-1, 0] < on_the_fly[0, 0] - 0.1
    )  # it trained: the comparison is not of constants
    # Same data, seed and reference (the base, adapter off); only when the reference runs
    # differs, so float32 reduction order is the only source of difference (~1e-7 measured).
    torch.testing.assert_close(precomputed, on_the_fly, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_dpo_trains_in_two_processes_and_only_the_main_one_saves_and_logs(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in easy_pairs(8)))
    run_dir, tracking_uri = tmp_path / "run", f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [
        *("train-dpo", "--processes", "2", "--data", str(data), "--max-steps", "4"),
        *("--batch-size", "2", "--learning-rate", "5e-3", "--register-name", "tests-dpo-ddp"),
        *("--model-dir", str(tiny_llama_dir), "--run-dir", str(run_dir)),
        *("--tracking-uri", tracking_uri),
    ]
    completed = subprocess.run(
        [sys.executable, "-m", "llm_alignment", *command],
        env=python_child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    summary = json.loads((run_dir / "dpo" / "summary.json").read_text())
    # What torch.distributed told each process inside the trainer (gathered at train end).
    seen = [(p["rank"], p["world_size"], p["backend"]) for p in summary["processes"]]
    assert seen == [(0, 2, "gloo"), (1, 2, "gloo")]
    # 8 pairs, 2 per process and step: 2 steps per epoch, so 4 steps covered the data twice.
    assert summary["steps"] == 4 and summary["history"][-1]["epoch"] == 2.0

    client = mlflow.MlflowClient(tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments)
    assert [r.info.run_id for r in runs] == [summary["run_id"]]
    assert runs[0].data.params["world_size"] == "2"
    assert len(client.get_metric_history(summary["run_id"], "loss")) == 4
    assert len(client.search_model_versions("name='tests-dpo-ddp'")) == 1

    # The saved adapter loads, and its tensors are bit for bit those both processes ended with.
    model, _ = load_policy(tiny_llama_dir, run_dir / "dpo" / "adapter")
    assert {p["adapter_sha256"] for p in summary["processes"]} == {adapter_fingerprint(model)}
    from peft import get_peft_model_state_dict

    lora_b = [t for name, t in get_peft_model_state_dict(model).items() if "lora_B" in name]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b)  # trained: LoRA B starts at 0
    # Staged and renamed: nothing half-written or set aside is left.
    assert sorted(p.name for p in (run_dir / "dpo").iterdir()) == ["adapter", "summary.json"]


def test_reward_model_separates_an_easy_pair_set(tiny_llama_dir: Path, tmp_path: Path) -> None:
    options = RewardOptions(output_dir=tmp_path, num_train_epochs=4, learning_rate=5e-3)
    summary = train_reward_model(options, easy_pairs(16), tiny_llama_dir)
    assert summary["steps"] == 16
    scorer = RewardScorer(tiny_llama_dir, Path(summary["adapter_dir"]))
    heldout = easy_pairs(24)[16:]  # other filler numbers, same kind of pairs
    accuracy = pairwise_accuracy(scorer, heldout)
    assert accuracy["accuracy"] >= 0.9
    assert accuracy["mean_margin"] > 0
    with pytest.raises(PreferenceDataError, match="no held-out pairs"):
        pairwise_accuracy(scorer, [])


def test_grpo_step_runs_and_logs_its_mean_reward(
    tiny_llama_dir: Path, tracking: dict[str, Any], tmp_path: Path
) -> None:
    prompts = [item.as_row() for item in make_prompts(1, seed=0)][:8]
    options = GRPOOptions(
        output_dir=tmp_path,
        max_steps=2,
        num_generations=2,
        per_device_train_batch_size=4,
        max_completion_length=8,
        register_name=None,
    )
    summary = train_grpo(options, prompts, tiny_llama_dir, **tracking)
    rewards = [h["reward"] for h in summary["history"] if "reward" in h]
    assert len(rewards) == 2
    assert all(0.0 <= r <= 1.0 for r in rewards)
    logged = mlflow.MlflowClient(tracking["tracking_uri"]).get_metric_history(
        summary["run_id"], "reward"
    )
    assert [m.value for m in logged] == pytest.approx(rewards)
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()


def favoured_tokens(model_dir: Path) -> set[int]:
    """The tokens whose (tied) embeddings point along one fixed direction: about half the
    vocabulary, all raised together by moving the last hidden state that way."""
    from safetensors.torch import load_file

    embeddings = load_file(str(model_dir / "model.safetensors"))["model.embed_tokens.weight"]
    direction = torch.randn(embeddings.shape[1], generator=torch.Generator().manual_seed(0))
    return set(torch.nonzero(embeddings @ direction > 0).flatten().tolist())


def test_grpo_raises_the_mean_reward_on_a_trivially_learnable_reward(
    tiny_llama_dir: Path, tracking: dict[str, Any], tmp_path: Path
) -> None:
    favoured = favoured_tokens(tiny_llama_dir)
    assert 0.3 < len(favoured) / 512 < 0.7

    def favoured_fraction(completion_ids: list[list[int]], **_: Any) -> list[float]:
        return [sum(t in favoured for t in ids) / max(len(ids), 1) for ids in completion_ids]

    options = GRPOOptions(
        output_dir=tmp_path,
        max_steps=6,
        learning_rate=5e-3,
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=8,
        # The random model's logits are tiny (std ~0.16): at temperature 1 its answers are
        # near-uniform noise that a few LoRA steps cannot move measurably; at 0.1 they can.
        temperature=0.1,
        beta=0.0,
        register_name=None,
    )
    prompts = [{"prompt": prompt, "check": {}} for prompt in EASY_PROMPTS]
    summary = train_grpo(
        options, prompts, tiny_llama_dir, **tracking, reward_funcs=[favoured_fraction]
    )
    rewards = [h["reward"] for h in summary["history"] if "reward" in h]
    assert len(rewards) == 6
    # Measured over seeds 0-2: the first step's mean 0.0-0.22, the last two's 0.98-1.0.
    assert sum(rewards[-2:]) / 2 > rewards[0] + 0.4, rewards


def test_verifier_reward_reads_conversational_completions() -> None:
    completions = [
        [{"role": "assistant", "content": "42"}],
        [{"role": "assistant", "content": "no"}],
    ]
    check = json.dumps({"rule": "arithmetic", "answer": 42})
    assert verifier_reward(completions, [check, check]) == [1.0, 0.0]


def test_exported_adapter_has_vllms_layout(dpo_run: dict[str, Any], tmp_path: Path) -> None:
    info = export_for_vllm(Path(dpo_run["adapter_dir"]), tmp_path / "vllm", "smollm2")
    assert sorted(p.name for p in (tmp_path / "vllm").iterdir()) == sorted(VLLM_FILES)
    config = json.loads((tmp_path / "vllm" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "smollm2" and config["peft_type"] == "LORA"
    assert info["rank"] == 16
    source = Path(dpo_run["adapter_dir"]) / "adapter_model.safetensors"
    assert (tmp_path / "vllm" / "adapter_model.safetensors").read_bytes() == source.read_bytes()


def test_export_refuses_adapters_vllm_cannot_load(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="not a saved PEFT LoRA adapter"):
        export_for_vllm(tmp_path, tmp_path / "out")
    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    (tmp_path / "adapter_config.json").write_text(
        json.dumps(
            {"peft_type": "LORA", "target_modules": ["q_proj"], "modules_to_save": ["score"]}
        )
    )
    with pytest.raises(AdapterError, match="vLLM loads only LoRA weights"):
        export_for_vllm(tmp_path, tmp_path / "out")


def test_options_come_from_yaml_with_flags_on_top(tmp_path: Path) -> None:
    shipped = load_options(DPOOptions, SHIPPED_CONFIG, {})
    assert (
        shipped.beta == 0.1
        and shipped.lora_r == 16
        and shipped.register_name == "llm-alignment-dpo"
    )
    custom = tmp_path / "dpo.yaml"
    custom.write_text("beta: 0.3\nlora-r: 4\nprecompute_ref_log_probs: true\n")
    options = load_options(DPOOptions, custom, {"beta": 0.5, "max_steps": None})
    assert options.beta == 0.5 and options.lora_r == 4 and options.precompute_ref_log_probs
    assert lora_config(options).r == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("beta: -1\n", "beta: Input should be greater than 0"),
        ("betta: 0.1\n", "betta: Extra inputs are not permitted"),
        ("- a list\n", "must be a mapping"),
        ("beta: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_configs_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_options(DPOOptions, path, {})
    with pytest.raises(ConfigError, match="does not exist"):
        load_options(DPOOptions, tmp_path / "absent.yaml", {})
