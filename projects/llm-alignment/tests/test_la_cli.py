"""The CLI end to end on the tiny model: bad input gets one line and exit status 2; the demo
writes what the showcase reads; evaluation, chat and export work on a trained adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from la_testing import easy_pairs
from llm_alignment.cli import app
from llm_alignment.evaluate import outcome, summarise, win_rate
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


def test_win_rate_counts_ties_as_half() -> None:
    assert outcome(0.8, 0.2) == 1.0 and outcome(0.2, 0.8) == 0.0 and outcome(0.5, 0.5) == 0.5
    figures = win_rate([1.0, 1.0, 0.5, 0.0])
    assert figures["win_rate"] == pytest.approx(0.625)
    assert (figures["wins"], figures["ties"], figures["losses"]) == (2, 1, 1)
    assert figures["ci_low"] < 0.625 < figures["ci_high"]
    report = summarise(
        [
            {
                "rule": "a",
                "base": "x y",
                "policy": "x",
                "base_score": 0.0,
                "policy_score": 1.0,
                "outcome": 1.0,
                "kl": 0.2,
            },
            {
                "rule": "b",
                "base": "x",
                "policy": "x",
                "base_score": 1.0,
                "policy_score": 1.0,
                "outcome": 0.5,
                "kl": 0.0,
            },
        ]
    )
    assert report["win_rate"] == 0.75 and report["per_rule"]["a"]["win_rate"] == 1.0
    assert report["base_length_words"] == 1.5 and report["kl_to_base"] == pytest.approx(0.1)


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
    names = [item["name"] for item in results["headline"]]
    assert any("win-rate" in name for name in names)
    for plot in results["plots"]:
        assert (folder / plot).stat().st_size > 0
    assert set(results["plots"]) == {"dpo_rewards.png", "win_rate.png"}
    assert (folder / "samples.html").read_text().count("<tr class=") == results["evaluation"]["n"]
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
        ],
    )
    assert result.exit_code == 0, result.output
    assert "overall" in result.output and page.is_file()
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
