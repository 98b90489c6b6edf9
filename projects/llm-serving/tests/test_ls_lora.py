"""Fast tests of LoRA adapters and of serving securely by default, without vLLM: adapter checks,
the registry (a real MLflow store on sqlite, and one that does not answer), vLLM's command line,
the CLI's one-line refusals (exit 2) before anything starts, and LoRA's cost from recorded
rounds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llm_serving.benchmark import BenchmarkConfig
from llm_serving.cli import app
from llm_serving.errors import BenchmarkSizeError, ExposureError, LoraError
from llm_serving.lora import LoraAdapter, adapter_rank, max_lora_rank, resolve_adapters
from llm_serving.lora_bench import lora_cost, lora_rounds
from llm_serving.server import VllmServer
from llm_serving.settings import ProjectSettings, is_loopback
from roadmap_lab.services import free_port
from typer.testing import CliRunner


def make_adapter(folder: Path, rank: int = 8, peft_type: str = "LORA") -> Path:
    """The files vLLM reads of a PEFT adapter (the weights' content is not checked here)."""
    folder.mkdir(parents=True)
    config = {"peft_type": peft_type, "r": rank, "target_modules": ["q_proj", "v_proj"]}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    (folder / "adapter_model.safetensors").write_bytes(b"\0" * 16)
    return folder


def serve(*argv: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, ["serve", *argv], env=env)


def test_adapter_checks_say_what_is_wrong(tmp_path):
    assert adapter_rank(make_adapter(tmp_path / "ok", rank=12)) == 12
    with pytest.raises(LoraError, match="no such adapter folder"):
        adapter_rank(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LoraError, match="not a PEFT adapter"):
        adapter_rank(tmp_path / "empty")
    with pytest.raises(LoraError, match="a IA3 adapter, not LoRA"):
        adapter_rank(make_adapter(tmp_path / "ia3", peft_type="IA3"))
    with pytest.raises(LoraError, match="rank 1024"):
        adapter_rank(make_adapter(tmp_path / "huge", rank=1024))


def test_adapter_names_must_be_new_and_plain(tmp_path):
    adapter = make_adapter(tmp_path / "a")
    [served] = resolve_adapters([f"dpo={adapter}"], "smollm2", tmp_path / "dl", None)
    assert (served.name, served.folder, served.rank) == ("dpo", adapter.resolve(), 8)
    for spec, words in (
        ("dpo", "NAME=PATH"),
        (f"smollm2={adapter}", "already served"),
        (f"has space={adapter}", "the name must be"),
    ):
        with pytest.raises(LoraError, match=words):
            resolve_adapters([spec], "smollm2", tmp_path / "dl", None)
    with pytest.raises(LoraError, match="already served"):
        resolve_adapters([f"x={adapter}", f"x={adapter}"], "smollm2", tmp_path / "dl", None)


def test_vllm_gets_the_adapters_and_a_rank_that_fits_them(tmp_path):
    adapters = [
        LoraAdapter("a", tmp_path / "a", 8, "a"),
        LoraAdapter("b", tmp_path / "b", 20, "b"),
    ]
    assert max_lora_rank(adapters) == 32
    server = VllmServer(ProjectSettings(port=8123), tmp_path / "model", adapters=adapters)
    argv = server.command()
    assert "--enable-lora" in argv
    assert argv[argv.index("--max-lora-rank") + 1] == "32"
    assert argv[argv.index("--max-loras") + 1] == "2"
    start = argv.index("--lora-modules") + 1
    assert argv[start : start + 2] == [f"a={tmp_path / 'a'}", f"b={tmp_path / 'b'}"]
    assert server.served_models == ["smollm2", "a", "b"]
    assert "--enable-lora" not in VllmServer(ProjectSettings(), tmp_path / "model").command()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("10.1.2.3", False), ("my-host", False), ("", False)],
)  # fmt: skip
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


def test_beyond_loopback_needs_a_key_or_an_explicit_allowance(tmp_path):
    ProjectSettings().check_exposure()  # 127.0.0.1 by default
    with pytest.raises(ExposureError, match="without an API key"):
        ProjectSettings(host="0.0.0.0").check_exposure()
    with pytest.raises(ExposureError):
        ProjectSettings(host="0.0.0.0", api_key="").check_exposure()  # an empty key is none
    ProjectSettings(host="0.0.0.0", api_key="k").check_exposure()
    ProjectSettings(host="0.0.0.0", allow_unauthenticated=True).check_exposure()
    # The key reaches vLLM through its environment, never its command line.
    settings = ProjectSettings(host="0.0.0.0", api_key="s3cret", port=8123)
    assert settings.engine_env()["VLLM_API_KEY"] == "s3cret"
    assert "s3cret" not in " ".join(VllmServer(settings, tmp_path).command())
    # The server itself refuses too (whoever builds it), before anything starts.
    with pytest.raises(ExposureError):
        VllmServer(ProjectSettings(host="0.0.0.0", port=8123), tmp_path).start()


def test_serve_refuses_to_start_exposed_without_a_key(tmp_path):
    result = serve("--host", "0.0.0.0", "--model", str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    assert "refusing to serve on 0.0.0.0 without an API key" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    # Allowed, or with a key: it gets past the check (to the missing model here).
    for argv, env in (
        (["--allow-unauthenticated"], None),
        ([], {"LLM_SERVING_API_KEY": "k"}),
    ):
        result = serve("--host", "0.0.0.0", "--model", str(tmp_path / "nowhere"), *argv, env=env)
        assert result.exit_code == 2 and "not a model folder" in result.stderr


def test_serve_rejects_bad_adapters_in_one_line(tmp_path):
    not_lora = make_adapter(tmp_path / "ia3", peft_type="IA3")
    for spec, words in (
        (f"dpo={tmp_path / 'missing'}", "no such adapter folder"),
        (f"dpo={not_lora}", "not LoRA"),
        ("dpo=models:/policy/1", "no MLflow registry to ask"),
        ("dpo", "NAME=PATH"),
    ):
        result = serve("--lora", spec)
        assert result.exit_code == 2, result.output
        assert words in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real MLflow registry (sqlite) holding version 1 of ``policy``: a pyfunc model with the
    adapter folder as its ``adapter`` artifact, as llm-alignment registers it."""
    import mlflow
    from mlflow.pyfunc import PythonModel

    class Policy(PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    adapter = make_adapter(root / "dpo-adapter", rank=16)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("lora", artifact_location=(root / "art").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        mlflow.pyfunc.log_model(
            name="policy",
            python_model=Policy(),
            artifacts={"adapter": str(adapter)},
            registered_model_name="policy",
            pip_requirements=["mlflow"],
        )
    mlflow.MlflowClient(uri).set_registered_model_alias("policy", "champion", "1")
    return uri


def test_a_registered_model_version_resolves_to_its_adapter_folder(registry, tmp_path):
    import mlflow

    # The process-wide registry is another one: the given URI alone must name the registry.
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    specs = ["dpo=models:/policy/1", "best=models:/policy@champion"]
    dpo, best = resolve_adapters(specs, "smollm2", tmp_path / "lora", registry)
    assert dpo.rank == best.rank == 16 and dpo.source == "models:/policy/1"
    assert dpo.folder.is_relative_to(tmp_path / "lora" / "dpo")
    assert sorted(p.name for p in dpo.folder.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    # A second resolve replaces the download (no leftovers beside it).
    resolve_adapters(specs[:1], "smollm2", tmp_path / "lora", registry)
    assert sorted(p.name for p in (tmp_path / "lora").iterdir()) == ["best", "dpo"]


def test_registry_errors_fail_closed_in_one_line(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    run_dir = str(tmp_path / "run")
    cases = (
        (registry, "models:/policy/9", "policy"),
        (registry, "models:/nothing/1", "nothing"),
        (registry, "models:/policy@nope", "nope"),
        (f"http://127.0.0.1:{free_port()}", "models:/policy/1", "failed"),
    )
    for uri, source, words in cases:
        env = {"LLM_SERVING_TRACKING_URI": uri, "LLM_SERVING_RUN_DIR": run_dir}
        result = serve("--lora", f"dpo={source}", env=env)
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("error: ") and words in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not any((tmp_path / "run" / "lora").iterdir())  # no half-downloaded adapter left


def _level(tok_s: float, ttft_ms: float, errors: int = 0) -> dict[str, Any]:
    return {"output_tokens_per_s": tok_s, "ttft_ms": {"p50": ttft_ms}, "errors": errors}


def test_lora_cost_is_a_paired_ratio_over_recorded_rounds():
    measured = [
        {"smollm2": _level(300.0, 50.0), "lora": _level(240.0, 60.0)},
        {"smollm2": _level(280.0, 55.0), "lora": _level(231.0, 66.0)},
        {"smollm2": _level(320.0, 45.0), "lora": _level(250.0, 58.5, errors=1)},
    ]
    cost = lora_cost(measured, "smollm2", "lora")
    throughput, ttft = cost["headline"]
    assert cost["failed_requests"] == 1
    assert throughput["per_round_adapter"] == [240.0, 231.0, 250.0]
    ratios = [0.8, 0.825, 0.78125]
    assert throughput["value"] == pytest.approx(np.exp(np.mean(np.log(ratios))), abs=1e-4)
    assert throughput["interval"]["low"] < min(ratios) and throughput["interval"]["high"] > 0.8
    assert (throughput["target"], throughput["verdict"]) == (None, None)  # reported, not judged
    assert ttft["value"] == pytest.approx(np.exp(np.mean(np.log([1.2, 1.2, 1.3]))), abs=1e-4)
    assert (ttft["baseline"], ttft["baseline_unit"]) == (50.0, "ms")


def test_lora_cost_needs_an_even_number_of_rounds_and_a_prompt_per_request():
    for rounds in (1, 3):  # an odd count puts one side first more often
        with pytest.raises(BenchmarkSizeError, match=r"even number \(>= 2\) of rounds"):
            lora_rounds("http://127.0.0.1:1", ("a", "b"), [[1]] * 16, 4, 1, rounds=rounds)
    # 2 rounds and the warm-up: 6 levels, so 5 prompts leave none per request.
    with pytest.raises(BenchmarkSizeError, match="a prompt per request"):
        lora_rounds("http://127.0.0.1:1", ("a", "b"), [[1]] * 5, 4, 1, rounds=2)
    for rounds in (1, 3):
        with pytest.raises(BenchmarkSizeError, match="lora_rounds"):
            BenchmarkConfig(lora_adapter="x", lora_rounds=rounds)
    assert BenchmarkConfig(lora_adapter="x", lora_requests=8).lora_prompts == 2 * 5 * 8
