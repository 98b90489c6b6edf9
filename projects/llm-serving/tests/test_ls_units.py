"""Fast unit tests: settings, workloads, throughput arithmetic, report targets, CLI errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from llm_serving.benchmark import greedy_agreement
from llm_serving.cli import main
from llm_serving.config import ServingSettings
from llm_serving.models import ModelNotFoundError, resolve_model
from llm_serving.report import targets
from llm_serving.server import VllmServer, metric_value
from llm_serving.throughput import Throughput, count_output_tokens
from llm_serving.workload import Workload, long_tail_lengths


def test_throughput_line_has_vllm_benchmark_shape():
    result = Throughput("vllm", requests=64, input_tokens=2048, output_tokens=4096, elapsed_s=8.0)
    assert result.line() == (
        "Throughput: 8.00 requests/s, 768.00 total tokens/s, 512.00 output tokens/s"
    )
    assert result.to_dict()["output_tokens_per_s"] == 512.0


def test_output_tokens_stop_at_eos_or_budget():
    assert count_output_tokens([5, 6, 2, 7, 8], {2}, budget=10) == 3  # EOS counted, rest dropped
    assert count_output_tokens([5, 6, 7, 8], {2}, budget=3) == 3
    assert count_output_tokens([5, 6, 2], set(), budget=3) == 3  # EOS ignored


def test_long_tail_lengths_are_seeded_clipped_and_skewed():
    lengths = long_tail_lengths(2000, median=40, sigma=0.9, low=8, high=320, seed=0)
    assert lengths == long_tail_lengths(2000, median=40, sigma=0.9, low=8, high=320, seed=0)
    assert min(lengths) >= 8 and max(lengths) <= 320
    assert 35 <= np.median(lengths) <= 45
    assert np.percentile(lengths, 95) > 3 * np.median(lengths)  # a long tail, not a uniform spread


def test_workload_checks_its_shape():
    with pytest.raises(ValueError, match="no prompts"):
        Workload("w", [], [], True)
    with pytest.raises(ValueError, match="one max_tokens per prompt"):
        Workload("w", [[1, 2]], [4, 4], True)
    assert Workload("w", [[1, 2], [3]], [4, 5], False).input_tokens == 3


def test_greedy_agreement():
    same = greedy_agreement([[1, 2, 3], [4, 5]], [[1, 2, 3], [4, 5]])
    assert same == {"exact_match": 1.0, "mean_prefix_agreement": 1.0}
    half = greedy_agreement([[1, 2, 3, 4]], [[1, 2, 9, 9]])
    assert half == {"exact_match": 0.0, "mean_prefix_agreement": 0.5}


def test_settings_from_environment_and_engine_flags(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_SERVING_PORT", "9123")
    monkeypatch.setenv("LLM_SERVING_KV_CACHE_GIB", "1.5")
    settings = ServingSettings(run_dir=tmp_path, cpu_threads_bind="0-1")
    assert settings.port == 9123
    env = settings.engine_env()
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "0-1"
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["VLLM_CACHE_ROOT"].startswith(str(tmp_path.resolve()))
    argv = VllmServer(settings, Path("/models/m")).command()
    assert argv[argv.index("--kv-cache-memory-bytes") + 1] == str(int(1.5 * 2**30))
    assert argv[argv.index("--port") + 1] == "9123"
    assert "--gpu-memory-utilization" not in argv

    cuda = ServingSettings(device="cuda", run_dir=tmp_path, enforce_eager=True)
    assert "VLLM_CPU_OMP_THREADS_BIND" not in cuda.engine_env()
    kwargs = cuda.engine_kwargs(Path("/models/m"))
    assert kwargs["gpu_memory_utilization"] == 0.85 and "kv_cache_memory_bytes" not in kwargs
    assert "--enforce-eager" in VllmServer(cuda, Path("/models/m")).command()


@pytest.mark.parametrize(
    ("field", "value"),
    [("cpu_threads_bind", "all of them"), ("port", 70000), ("device", "tpu"), ("kv_cache_gib", 0)],
)
def test_invalid_settings_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        ServingSettings(**{field: value})


def test_unknown_or_missing_models_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("ROADMAP_LAB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelNotFoundError, match="not a model folder"):
        resolve_model(str(tmp_path / "nowhere"))
    with pytest.raises(ModelNotFoundError, match="llm-serving:quantize -- --scheme w8a8-int8"):
        resolve_model("smollm2-w8a8")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert resolve_model(str(folder)) == folder


def test_metric_value_sums_label_sets():
    text = (
        "# HELP vllm:num_requests_running Running.\n"
        'vllm:num_requests_running{engine="0",model_name="m"} 2.0\n'
        'vllm:num_requests_running{engine="1",model_name="m"} 1.0\n'
        'vllm:num_requests_running_total{engine="0"} 99.0\n'
    )
    assert metric_value(text, "vllm:num_requests_running") == 3.0
    assert metric_value(text, "vllm:missing") is None


def _results(seq_ratio: float, chat_ratio: float, quant: float, ppl_delta: float) -> dict:
    return {
        "device": "cpu",
        "ratios": {
            "vllm_vs_hf_sequential": seq_ratio,
            "vllm_vs_hf_best_static_chat": chat_ratio,
            "quantized_vs_bf16_equal_lengths": quant,
        },
        "quality": {"perplexity_delta_pct": ppl_delta},
    }


def test_targets_follow_the_issue():
    met = targets(_results(31.0, 3.2, 1.25, 1.5))
    assert [t["met"] for t in met] == [True, True, True, True]
    assert [t["target"] for t in met] == [">= 30", ">= 3", ">= 1.2", "<= 2"]
    missed = targets(_results(29.0, 2.0, 1.1, 2.5))
    assert [t["met"] for t in missed] == [False, False, False, False]


def test_cli_errors_are_one_line_and_non_zero(capsys, tmp_path):
    assert main(["serve", "--model", str(tmp_path / "nowhere")]) == 2
    assert "error: " in capsys.readouterr().err
    assert main(["benchmark", "--quantization", "int3"]) == 2
    assert "unknown quantization 'int3'" in capsys.readouterr().err
    assert main(["serve", "--port", "70000"]) == 2
    assert "invalid settings: port" in capsys.readouterr().err
