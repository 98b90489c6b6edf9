"""llm-alignment's CPU image: the CLI runs as the non-root user, SmolLM2 is baked in (no download
at run time), TRL and PEFT import, and the verifier judges. The machinery: project_images.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from project_images import ImageCheck, Smoke, check_project_image

CHECK = ImageCheck(
    pex="projects.llm-alignment/cli.pex",
    smoke=(
        Smoke(("python", "-m", "llm_alignment", "--help"), "train-dpo"),
        Smoke(
            (
                "python",
                "-c",
                "import peft, trl; from roadmap_lab.models import smollm2_dir; "
                "from roadmap_lab.verifiable import score; "
                "print('trl', trl.__version__, 'peft', peft.__version__, "
                "(smollm2_dir() / 'config.json').is_file(), "
                "score('42', {'rule': 'arithmetic', 'answer': 42}))",
            ),
            "trl 1.16.0 peft 0.21.2 True 1.0",
        ),
    ),
)


@pytest.mark.slow
def test_image_builds_and_runs_as_non_root(
    repo: Path, tmp_path: Path, record_testsuite_property: Callable[[str, object], None]
) -> None:
    check_project_image("llm-alignment", CHECK, repo, tmp_path, record_testsuite_property)
