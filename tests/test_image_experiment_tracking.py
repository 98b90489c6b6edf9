"""experiment-tracking's CPU image: the CLI runs as the non-root user and the MiniLM encoder is
baked in (no download at run time). The machinery: project_images.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from project_images import ImageCheck, Smoke, check_project_image

CHECK = ImageCheck(
    pex="projects.experiment-tracking/cli.pex",
    smoke=(
        Smoke(("python", "-m", "experiment_tracking", "--help"), "Tracked fine-tuning"),
        Smoke(
            (
                "python",
                "-c",
                "import torch, mlflow, transformers; from roadmap_lab.models import "
                "minilm_dir; print(minilm_dir(), (minilm_dir() / 'config.json').is_file())",
            ),
            "all-minilm-l6-v2 True",
        ),
    ),
)


@pytest.mark.slow
def test_image_builds_and_runs_as_non_root(
    repo: Path, tmp_path: Path, record_testsuite_property: Callable[[str, object], None]
) -> None:
    check_project_image("experiment-tracking", CHECK, repo, tmp_path, record_testsuite_property)
