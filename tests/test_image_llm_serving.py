"""llm-serving's CPU image: vLLM imports, and the OpenAI-compatible server started inside the image
completes a prompt called from outside. The machinery: project_images.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from project_images import ImageCheck, Service, Smoke, check_project_image, post_json


def _complete_a_prompt(base_url: str) -> None:
    body = {"model": "smollm2", "prompt": "The capital of France is", "max_tokens": 8}
    completion = post_json(f"{base_url}/v1/completions", {**body, "temperature": 0})
    assert "Paris" in completion["choices"][0]["text"], completion


CHECK = ImageCheck(
    pex="projects.llm-serving/cli.pex",
    smoke=(
        Smoke(("python", "-m", "llm_serving", "--help"), "serve"),
        Smoke(("python", "-c", "import vllm; print('vllm', vllm.__version__)"), "vllm 0.32"),
    ),
    service=Service(
        command=(
            "python", "-m", "llm_serving", "serve",
            "--host", "127.0.0.1", "--port", "{port}", "--enforce-eager",
        ),  # fmt: skip
        ready_path="/health",
        call=_complete_a_prompt,
    ),
)


@pytest.mark.slow
def test_image_builds_and_runs_as_non_root(
    repo: Path, tmp_path: Path, record_testsuite_property: Callable[[str, object], None]
) -> None:
    check_project_image("llm-serving", CHECK, repo, tmp_path, record_testsuite_property)
