#!/usr/bin/env python3
"""Turns what a change touched into the JSON list of folders CI must build and test: the projects
(projects/<name>) and the loops that join them (loops/<name>).

Input on stdin, one per line, in any mix: Pants addresses (from
`./pants --changed-since=BASE --changed-dependents=transitive list`) and repo-relative file paths
(from `git diff --name-only BASE HEAD`, which also catches changes that own no target, such as
pants.toml). Output on stdout: a sorted JSON list of repo-relative folders, e.g.
`["loops/mlops", "projects/data-pipelines"]`.

Rules, by the path each line names:
- projects/<name>/...              -> that project (if its folder still exists), and every loop
                                      that joins it (LOOP_MEMBERS; a loop not listed there joins
                                      every project)
- loops/<name>/...                 -> that loop (if its folder still exists)
- repo-level tests, docs, other CI  -> no project (the repo-level tests run in their own job),
  and what only those tests read    also the vendored actions and the compose specification
- a target of the build root (`//:name`, e.g. the files() targets the repo-level tests read)
                                    -> no project: the files it owns are listed on their own lines
                                       (as file targets and by git diff) and count there
- anything else (shared/, 3rdparty/, pants, pants.toml, pants.ci.toml, build-support/, docker/,
  the CI workflow and its actions, the root BUILD file, unknown paths) -> every project and loop
A target generator's address (`tests:tests`, `3rdparty/python:shared`) names its folder, and
counts as that folder (`tests` is tests/, with or without the slash).
`--all` prints every folder without reading stdin (no usable base commit).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path

PROJECTS_DIR = "projects"
LOOPS_DIR = "loops"
# The projects each loop joins (it runs their code through their CLIs and HTTP APIs), so a change
# in one of them must be proven on the loop too. tests/test_layout.py checks every loop is here.
LOOP_MEMBERS = {
    "loops/mlops": ("projects/data-pipelines", "projects/model-monitoring"),
    "loops/llm": ("projects/llm-alignment", "projects/llm-serving", "projects/prompt-registry"),
}
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


def folders_for(path: str, existing: frozenset[str]) -> frozenset[str] | None:
    """The folders a change at `path` affects; None stands for every folder."""
    if path == BUILD_ROOT_TARGET:
        return frozenset()
    parts = path.split("/")
    if parts[0] in (PROJECTS_DIR, LOOPS_DIR):
        if len(parts) < 2:
            return None  # the folder itself, or a file directly in it
        folder = f"{parts[0]}/{parts[1]}"
        if folder not in existing:
            return frozenset()  # a deleted project or loop: nothing left to build
        if parts[0] == LOOPS_DIR:
            return frozenset({folder})
        return frozenset({folder}) | loops_joining(folder, existing)
    if is_under(path, AFFECTS_ALL_PROJECTS):
        return None
    if is_under(path, NO_PROJECT_FOLDERS):
        return frozenset()
    if "/" not in path and path.endswith(NO_PROJECT_ROOT_SUFFIXES):
        return frozenset()
    return None


def loops_joining(project: str, existing: frozenset[str]) -> frozenset[str]:
    """The loops that join `project` (a loop missing from LOOP_MEMBERS joins every project)."""
    loops = (f for f in existing if f.startswith(f"{LOOPS_DIR}/"))
    return frozenset(f for f in loops if project in LOOP_MEMBERS.get(f, (project,)))


def is_under(path: str, entries: tuple[str, ...]) -> bool:
    """Whether `path` is one of `entries` or lies below one of them (a folder's own address,
    `tests` from `tests:tests`, has no trailing slash)."""
    return any(path == entry or path.startswith(f"{entry}/") for entry in entries)


def changed_folders(lines: Iterable[str], existing: Iterable[str]) -> list[str]:
    existing_set = frozenset(existing)
    selected: set[str] = set()
    for line in lines:
        if not line.strip():
            continue
        affected = folders_for(path_of(line), existing_set)
        if affected is None:
            return sorted(existing_set)
        selected |= affected
    return sorted(selected)


def existing_folders(root: Path) -> list[str]:
    """projects/<name> and loops/<name>, for every folder there (hidden ones aside)."""
    return sorted(
        f"{parent}/{p.name}"
        for parent in (PROJECTS_DIR, LOOPS_DIR)
        if (root / parent).is_dir()
        for p in (root / parent).iterdir()
        if p.is_dir() and not p.name.startswith(".")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, default=Path.cwd(), help="the repo root (default: cwd)"
    )
    parser.add_argument("--all", action="store_true", help="every folder, stdin is not read")
    args = parser.parse_args(argv)
    folders = existing_folders(args.root)
    result = folders if args.all else changed_folders(sys.stdin, folders)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
