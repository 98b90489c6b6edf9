from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
from repo_checks import loop_folders, project_folders
from results_checks import results_problems

HEADLINE_TABLES = Path("build-support") / "headline_tables.py"
QUIET = {"cores": 2, "load_average_before": [0.3, 0.2, 0.1], "load_average_after": [1, 1, 1]}


def headline_tables(repo: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("headline_tables", repo / HEADLINE_TABLES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def figure(**overrides: object) -> dict:
    return {
        "name": "speed-up",
        "value": 2.4,
        "unit": "x",
        "baseline": 100.0,
        "target": ">= 2",
        "interval": {"low": 2.1, "high": 2.7, "confidence": 0.95, "method": "t", "n": 5},
        "verdict": "met",
        **overrides,
    }


def make_project(root: Path, headline: list[dict], targets: dict[str, str], **results: object):
    project = root / "projects" / "alpha"
    (project / "benchmarks").mkdir(parents=True)
    payload = {"project": "alpha", "headline": headline, "conditions": QUIET, **results}
    (project / "benchmarks" / "results.json").write_text(json.dumps(payload))
    (project / "benchmarks" / "targets.toml").write_text(
        "".join(f'[[figure]]\nname = "{n}"\ntarget = "{t}"\n' for n, t in targets.items())
    )
    return project


def test_consistent_results_pass(tmp_path: Path) -> None:
    project = make_project(tmp_path, [figure(), figure(name="size", target=None, verdict=None)],
                           {"speed-up": ">= 2"})  # fmt: skip
    assert results_problems(project) == []


@pytest.mark.parametrize(
    ("headline", "targets", "problem"),
    [
        ([], {"speed-up": ">= 2"}, "'speed-up' is missing"),
        ([figure(target=">= 1")], {"speed-up": ">= 2"}, "has target '>= 1', benchmarks/targets"),
        ([figure()], {}, "has a target that benchmarks/targets.toml does not list"),
        # A verdict typed by hand, or one the interval does not support.
        ([figure(interval=None)], {"speed-up": ">= 2"}, "the rule gives 'unverified'"),
        ([figure(interval={**figure()["interval"], "low": 1.9})], {"speed-up": ">= 2"},
         "the rule gives 'within noise'"),
        ([figure(target="detected")], {"speed-up": "detected"}, "is not a comparison"),
    ],
)  # fmt: skip
def test_inconsistent_results_are_reported(
    tmp_path: Path, headline: list[dict], targets: dict[str, str], problem: str
) -> None:
    problems = results_problems(make_project(tmp_path, headline, targets))
    assert len(problems) == 1 and problem in problems[0], problems


def test_results_from_a_busy_machine_are_reported(tmp_path: Path) -> None:
    busy = {**QUIET, "load_average_before": [3.5, 2.0, 1.0]}
    project = make_project(tmp_path, [figure()], {"speed-up": ">= 2"}, conditions=busy)
    assert results_problems(project) == ["alpha: published although it started at load "
                                         "average 3.5 on 2 cores (a busy machine)"]  # fmt: skip


def test_every_committed_results_file_passes(repo: Path) -> None:
    # A loop's results are checked once it published some (before, it has only its targets).
    loops = [loop for loop in loop_folders(repo) if (loop / "benchmarks/results.json").is_file()]
    folders = project_folders(repo) + loops
    problems = [line for folder in folders for line in results_problems(folder)]
    assert problems == []


def test_readme_tables_are_generated_from_the_results(repo: Path) -> None:
    assert headline_tables(repo).stale_readmes(repo, write=False) == [], (
        "run: python3 build-support/headline_tables.py"
    )


def test_a_hand_edited_table_is_stale(tmp_path: Path, repo: Path) -> None:
    tables = headline_tables(repo)
    make_project(tmp_path, [figure()], {"speed-up": ">= 2"}, measured_at="2026-12-01T10:00:00")
    readme = tmp_path / "projects" / "alpha" / "README.md"
    readme.write_text(f"# alpha\n\n{tables.START}\n{tables.END}\n")
    (tmp_path / "README.md").write_text(f"# repo\n\n{tables.START}\n{tables.END}\n")
    assert tables.stale_readmes(tmp_path, write=True) == ["projects/alpha/README.md", "README.md"]
    assert "| speed-up | 2.4x [2.1, 2.7] (95% t, n=5) | 100 | >= 2 | met |" in readme.read_text()
    assert tables.stale_readmes(tmp_path, write=False) == []
    readme.write_text(readme.read_text().replace("| met |", "| **met!** |"))
    assert tables.stale_readmes(tmp_path, write=False) == ["projects/alpha/README.md"]
