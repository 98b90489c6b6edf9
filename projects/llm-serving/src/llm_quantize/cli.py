"""Command line of the quantizer: one command, so its options come first.

    python -m llm_quantize --scheme w8a8-int8      # SmoothQuant 0.8 + GPTQ, calibrated on reviews
    python -m llm_quantize --scheme fp8            # GPU serving (no calibration data needed)

Pants: ``./pants run projects/llm-serving:quantize -- --scheme w8a8-int8``. The result goes to
``<cache>/models/smollm2-135m-instruct-<scheme>/`` unless ``--out`` names another folder; the
folder's path is printed on stdout. Settings come from options, then ``LLM_QUANTIZE_*``
environment variables, then defaults.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from roadmap_lab.cli import cli_errors, given, setup

from llm_quantize.quantize import quantize
from llm_quantize.settings import QuantizeSettings
from llm_quantize.store import SCHEMES, quantized_model_dir

logger = logging.getLogger("llm_quantize")

# A single-command app (not roadmap_lab.cli.lab_app, whose setup callback makes a group of
# subcommands): `python -m llm_quantize --scheme ...` is what users and gpu-bench.yml run; it
# calls the common setup itself.
app = typer.Typer(
    add_completion=False, help=__doc__.splitlines()[0], pretty_exceptions_show_locals=False
)


@app.command()
def run(
    scheme: Annotated[str, typer.Option(help=", ".join(SCHEMES))] = "w8a8-int8",
    out: Annotated[
        Path | None, typer.Option(help="output folder (default: the model cache)")
    ] = None,
    samples: Annotated[
        int | None, typer.Option(help="calibration samples (LLM_QUANTIZE_SAMPLES, 256)")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="calibration seed (LLM_QUANTIZE_SEED, 0)")
    ] = None,
    force: Annotated[bool, typer.Option(help="rebuild even if the folder exists")] = False,
) -> None:
    """Quantize SmolLM2-135M-Instruct into a compressed-tensors folder vLLM loads."""
    setup("llm-quantize")
    with cli_errors():
        settings = QuantizeSettings(**given(samples=samples, seed=seed))
        default_dir = quantized_model_dir(scheme)  # also refuses an unknown scheme
        out_dir = out or default_dir
        if out_dir.is_dir() and not force:
            logger.info("%s already exists (use --force to rebuild)", out_dir)
        else:
            quantize(scheme, out_dir, samples=settings.samples, seed=settings.seed)
        typer.echo(out_dir)


def main() -> None:
    app()
