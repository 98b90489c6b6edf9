"""prompt-registry's CPU image: the shipped prompts load and both models are baked in (no download
at run time). The machinery: project_images.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from project_images import ImageCheck, Smoke, check_project_image

CHECK = ImageCheck(
    pex="projects.prompt-registry/cli.pex",
    smoke=(
        Smoke(("python", "-m", "prompt_registry", "--help"), "gate"),
        Smoke(("python", "-m", "prompt_registry", "show", "review-sentiment"), "{{review}}"),
        Smoke(
            (
                "python",
                "-c",
                "from roadmap_lab.models import minilm_dir, smollm2_dir; "
                "print('models', (smollm2_dir() / 'config.json').is_file(), "
                "(minilm_dir() / 'config.json').is_file())",
            ),
            "models True True",
        ),
    ),
)


@pytest.mark.slow
def test_image_builds_and_runs_as_non_root(
    repo: Path, tmp_path: Path, record_testsuite_property: Callable[[str, object], None]
) -> None:
    check_project_image("prompt-registry", CHECK, repo, tmp_path, record_testsuite_property)
