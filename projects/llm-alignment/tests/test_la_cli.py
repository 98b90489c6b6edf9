"""The CLI end to end on the tiny model: bad input gets one line and exit status 2; the demo
writes what the showcase reads; evaluation, chat and export work on a trained adapter (the
evaluation's arithmetic is in test_la_evaluate.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from la_testing import easy_pairs
from llm_alignment.cli import app
from typer.testing import CliRunner

runner = CliRunner()


def test_inspect_data_reports_a_malformed_row_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(easy_pairs(1)[0]) + "\n" + '{"prompt": "x"}\n')
    result = runner.invoke(app, ["inspect-data", str(path)])
    assert result.exit_code == 2
    assert "line 2: missing chosen, rejected" in result.output
    assert "Traceback" not in result.output


def test_inspect_data_shows_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in easy_pairs(3)))
    result = runner.invoke(app, ["inspect-data", str(path), "--format", "conversational"])
    assert result.exit_code == 0, result.output
    assert "3 rows" in result.output


def test_train_dpo_refuses_bad_options_before_loading_anything(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train-dpo", "--set", "beta", "--run-dir", str(tmp_path)])
    assert result.exit_code == 2 and "--set expects KEY=VALUE" in result.output
    result = runner.invoke(app, ["train-dpo", "--set", "lora_r=0", "--run-dir", str(tmp_path)])
    assert (
        result.exit_code == 2
        and "lora_r: Input should be greater than or equal to 1" in result.output
    )
    result = runner.invoke(app, ["train-dpo", "--run-dir", str(tmp_path)])
    assert result.exit_code == 2 and "not a built data set" in result.output
    result = runner.invoke(app, ["train-dpo", "--processes", "0", "--run-dir", str(tmp_path)])
    assert result.exit_code == 2 and "--processes must be at least 1, got 0" in result.output
    # Checked once, before torchrun starts any process.
    result = runner.invoke(app, ["train-dpo", "--processes", "2", "--run-dir", str(tmp_path)])
    assert result.exit_code == 2 and "not a built data set" in result.output


@pytest.mark.slow
def test_demo_writes_results_plots_page_and_vllm_adapter(
    tmp_path: Path, tiny_llama_dir: Path
) -> None:
    dist, run = tmp_path / "dist", tmp_path / "run"
    args = ["--model-dir", str(tiny_llama_dir), "--run-dir", str(run), "--dist-dir", str(dist)]
    result = runner.invoke(app, ["demo", *args])
    assert result.exit_code == 0, result.output
    folder = dist / "llm-alignment"
    results = json.loads((folder / "results.json").read_text())
    assert results["project"] == "llm-alignment"
    assert "never trained on" in results["claim"] and "Claim:" in result.output
    names = [item["name"] for item in results["headline"]]
    assert any("win-rate" in name for name in names)
    for plot in results["plots"]:
        assert (folder / plot).stat().st_size > 0
    assert set(results["plots"]) == {"dpo_rewards.png", "win_rate.png"}
    evaluation = results["evaluation"]
    judged = sum(group["n"] for group in evaluation["groups"].values())
    assert (folder / "samples.html").read_text().count("<tr class=") == judged
    # One prompt per held-out template: 16 of held-out rules, 14 of training rules.
    assert evaluation["groups"]["heldout_rule"]["n_clusters"] == 16
    assert evaluation["groups"]["heldout_template"]["n_clusters"] == 14
    assert evaluation["kl_to_base"]["samples"] == 2 * judged
    assert "held-out rule families" in results["headline"][0]["name"]
    assert results["headline"][0]["interval"]["method"].startswith("cluster bootstrap")
    assert sorted(p.name for p in (folder / "vllm-adapter").iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    card = json.loads((run / "demo" / "data" / "card.json").read_text())
    assert card["splits"]["train"]["pairs"] == results["dpo"]["pairs"]

    adapter = run / "demo" / "dpo" / "adapter"
    data_dir = run / "demo" / "data"
    page = tmp_path / "eval.html"
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--adapter",
            str(adapter),
            "--data-dir",
            str(data_dir),
            "--html",
            str(page),
            "--model-dir",
            str(tiny_llama_dir),
            "--max-new-tokens",
            "8",
            "--kl-samples",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "held-out rules" in result.output and "length-controlled" in result.output
    assert page.is_file()
    result = runner.invoke(
        app,
        [
            "chat",
            "--adapter",
            str(adapter),
            "--message",
            "hello",
            "--model-dir",
            str(tiny_llama_dir),
            "--max-new-tokens",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        ["chat", "--adapter", str(tmp_path), "--message", "hi", "--model-dir", str(tiny_llama_dir)],
    )
    assert result.exit_code == 2 and "holds no LoRA adapter" in result.output


TINY_BENCHMARK = [
    "seeds=[0, 1]",
    "per_template=1",
    "samples=2",
    "max_new_tokens=6",
    "dpo_epochs=1",
    "batch_size=2",
    "eval_per_template=1",
    "kl_samples=1",
    "grpo_steps=1",
    "speed_pairs=2",
    "speed_repeats=2",
]


@pytest.mark.slow
def test_benchmark_runs_in_stages_pools_the_seeds_and_resumes(
    tmp_path: Path, tiny_llama_dir: Path
) -> None:
    dist, run, stages = tmp_path / "dist", tmp_path / "run", tmp_path / "stages"
    args = ["--model-dir", str(tiny_llama_dir), "--run-dir", str(run), "--dist-dir", str(dist)]
    args += ["--stage-dir", str(stages), *(f"--set={item}" for item in TINY_BENCHMARK)]
    result = runner.invoke(app, ["benchmark", *args])
    assert result.exit_code == 0, result.output
    expected = {"data-seed0", "data-seed1", "dpo-seed0", "dpo-seed1", "reward", "grpo", "speed"}
    assert {path.name for path in stages.iterdir()} == expected
    results_file = dist / "llm-alignment" / "benchmark" / "results.json"
    results = json.loads(results_file.read_text())
    pooled = results["headline"][0]
    assert "2 seeds pooled" in pooled["name"] and "held-out rule families" in pooled["name"]
    assert set(results["dpo_pooled"]["heldout_rule"]["raw"]["per_seed"]) == {"0", "1"}
    assert len(results["dpo_speed"]["precomputed"]) == 2
    assert set(results["conditions"]["stages"]) == expected
    finished = {name: results["stages"][name]["finished_at"] for name in expected}

    result = runner.invoke(app, ["benchmark", "--resume", *args])
    assert result.exit_code == 0, result.output
    again = json.loads(results_file.read_text())
    assert {name: again["stages"][name]["finished_at"] for name in expected} == finished
    assert again["dpo_pooled"] == results["dpo_pooled"]

    changed = [*args, "--set=grpo_steps=2"]
    result = runner.invoke(app, ["benchmark", "--resume", *changed])
    assert result.exit_code == 2 and "other settings" in result.output
