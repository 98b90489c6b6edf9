"""The checks of the committed benchmark results (tests/test_results_files.py): every targeted
figure a project lists in benchmarks/targets.toml is in its results.json with that target, every
verdict there is the one the shared rule computes from the figure's interval, and nothing was
published from a busy machine."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from roadmap_lab.results import conditions_problem, verdict

RESULTS = Path("benchmarks") / "results.json"
TARGETS = Path("benchmarks") / "targets.toml"


def read_targets(project: Path) -> dict[str, str]:
    """name -> target of the project's targeted figures."""
    entries = tomllib.loads((project / TARGETS).read_text(encoding="utf-8")).get("figure", [])
    return {entry["name"]: entry["target"] for entry in entries}


def _verdict_problems(item: dict[str, Any]) -> list[str]:
    try:
        computed = verdict(item.get("target"), item.get("interval"), item.get("unit"))
    except (ValueError, KeyError, TypeError) as error:
        return [f"{item.get('name')!r}: {error}"]
    if item.get("verdict") != computed:
        return [
            f"{item.get('name')!r} says verdict {item.get('verdict')!r}, the rule gives "
            f"{computed!r} from its interval {item.get('interval')}"
        ]
    return []


def results_problems(project: Path) -> list[str]:
    """What is wrong with a project's committed results, each as one line."""
    name = project.name
    for required in (RESULTS, TARGETS):
        if not (project / required).is_file():
            return [f"{name}: missing {required}"]
    results = json.loads((project / RESULTS).read_text(encoding="utf-8"))
    headline = {item["name"]: item for item in results.get("headline", [])}
    problems = []
    for figure, target in read_targets(project).items():
        if figure not in headline:
            problems.append(f"{name}: targeted figure {figure!r} is missing from {RESULTS}")
        elif headline[figure].get("target") != target:
            problems.append(
                f"{name}: {figure!r} has target {headline[figure].get('target')!r}, "
                f"{TARGETS} says {target!r}"
            )
    targeted = read_targets(project)
    for figure, item in headline.items():
        if item.get("target") is not None and figure not in targeted and not item.get("reference"):
            problems.append(f"{name}: {figure!r} has a target that {TARGETS} does not list")
        problems += [f"{name}: {problem}" for problem in _verdict_problems(item)]
    if "conditions" in results:
        problem = conditions_problem(results)
        if problem:
            problems.append(f"{name}: published although {problem}")
    return problems
