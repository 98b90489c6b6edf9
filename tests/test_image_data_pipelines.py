"""data-pipelines' image: the CLI and Airflow run, and one logical date runs end to end with
Airflow's test runner on the baked-in data (no download at run time). The machinery:
project_images.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from project_images import ImageCheck, Smoke, check_project_image

CHECK = ImageCheck(
    pex="projects.data-pipelines/cli.pex",
    smoke=(
        Smoke(("python", "-m", "data_pipelines", "--help"), "backfill"),
        Smoke(("python", "-m", "airflow", "version"), "3.3.2"),
        Smoke(("python", "-m", "data_pipelines", "run", "--date", "2020-10-11"), "success"),
    ),
)


@pytest.mark.slow
def test_image_builds_and_runs_as_non_root(
    repo: Path, tmp_path: Path, record_testsuite_property: Callable[[str, object], None]
) -> None:
    check_project_image("data-pipelines", CHECK, repo, tmp_path, record_testsuite_property)
