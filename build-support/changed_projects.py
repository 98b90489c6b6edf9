#!/usr/bin/env python3
"""Turns what a change touched into the JSON list of project folders CI must build and test.

Input on stdin, one per line, in any mix: Pants addresses (from
`./pants --changed-since=BASE --changed-dependents=transitive list`) and repo-relative file paths
(from `git diff --name-only BASE HEAD`, which also catches changes that own no target, such as
pants.toml). Output on stdout: a sorted JSON list of folder names under projects/, e.g.
`["llm-serving", "ml-cicd"]`.

Rules, by the path each line names:
- projects/<name>/...              -> that project (if its folder still exists)
- repo-level tests, docs, other CI  -> no project (the repo-level tests run in their own job),
  and what only those tests read    also the vendored actions and the compose specification
- a target of the build root (`//:name`, e.g. the files() targets the repo-level tests read)
                                    -> no project: the files it owns are listed on their own lines
                                       (as file targets and by git diff) and count there
- anything else (shared/, 3rdparty/, pants, pants.toml, pants.ci.toml, build-support/, docker/,
  the CI workflow and its actions, the root BUILD file, unknown paths) -> every project
A target generator's address (`tests:tests`, `3rdparty/python:shared`) names its folder, and
counts as that folder (`tests` is tests/, with or without the slash).
`--all` prints every project without reading stdin (no usable base commit).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path

PROJECTS_DIR = "projects"
# Folders under which a change affects no project. The CI workflow itself is not among them: a
# change to it must be proven on every project.
NO_PROJECT_FOLDERS = ("tests", "docs", ".github", "3rdparty/actions", "3rdparty/compose-spec")
AFFECTS_ALL_PROJECTS = (".github/workflows/ci.yml", ".github/actions")
NO_PROJECT_ROOT_SUFFIXES = (".md",)
# The build root's own targets (`//:name`): path_of gives them the empty path.
BUILD_ROOT_TARGET = ""


def path_of(line: str) -> str:
    """The repo-relative path a Pants address or a file path names ("" for the build root)."""
    text = line.strip()
    if text.startswith("//"):
        text = text[2:]
    # Generated targets: "dir/file.py:tgt" (file-level) or "dir:tgt#gen"; keep the path part.
    text = text.split("#", 1)[0]
    if ":" in text:
        spec, _, _ = text.partition(":")
        return spec.strip("/")
    return text.strip("/")


def projects_for(path: str, existing: frozenset[str]) -> frozenset[str] | None:
    """The projects a change at `path` affects; None stands for every project."""
    if path == BUILD_ROOT_TARGET:
        return frozenset()
    parts = path.split("/")
    if parts[0] == PROJECTS_DIR:
        if len(parts) >= 2 and parts[1] in existing:
            return frozenset({parts[1]})
        # A deleted project, or a file directly under projects/: nothing left to build.
        return frozenset() if len(parts) >= 2 else None
    if is_under(path, AFFECTS_ALL_PROJECTS):
        return None
    if is_under(path, NO_PROJECT_FOLDERS):
        return frozenset()
    if "/" not in path and path.endswith(NO_PROJECT_ROOT_SUFFIXES):
        return frozenset()
    return None


def is_under(path: str, entries: tuple[str, ...]) -> bool:
    """Whether `path` is one of `entries` or lies below one of them (a folder's own address,
    `tests` from `tests:tests`, has no trailing slash)."""
    return any(path == entry or path.startswith(f"{entry}/") for entry in entries)


def changed_projects(lines: Iterable[str], existing: Iterable[str]) -> list[str]:
    existing_set = frozenset(existing)
    selected: set[str] = set()
    for line in lines:
        if not line.strip():
            continue
        affected = projects_for(path_of(line), existing_set)
        if affected is None:
            return sorted(existing_set)
        selected |= affected
    return sorted(selected)


def existing_projects(root: Path) -> list[str]:
    folder = root / PROJECTS_DIR
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, default=Path.cwd(), help="the repo root (default: cwd)"
    )
    parser.add_argument("--all", action="store_true", help="every project, stdin is not read")
    args = parser.parse_args(argv)
    projects = existing_projects(args.root)
    result = projects if args.all else changed_projects(sys.stdin, projects)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
