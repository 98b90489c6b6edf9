"""One shape for every project and loop (tests/test_layout.py): the same modules in each package,
one form of ``__main__.py``, ``PROJECT`` defined once, and a README with the same sections in
order."""

from __future__ import annotations

import re
from pathlib import Path

# The project's main package (its folder name with underscores) and any second entry point.
MAIN_PACKAGE_MODULES = ("cli", "settings", "errors", "demo", "benchmark")
ENTRY_POINT_MODULES = ("cli", "settings", "errors")
MAIN_MODULE = '''"""``python -m {package}``: the command line (cli.py)."""

from {package}.cli import main

if __name__ == "__main__":
    main()
'''
README_SECTIONS = (
    "What it does",
    "Run it",
    "What it measured",
    "Tests",
    "How it scales",
    "Limits and known misses",
)
PROJECT_CONSTANT = re.compile(r"^PROJECT\s*[:=]", re.M)


def packages(project: Path) -> list[Path]:
    """The packages under the project's src/ that have a ``__main__.py`` (its entry points)."""
    return sorted(p.parent for p in (project / "src").glob("*/__main__.py"))


def main_package(folder: Path) -> str:
    """projects/data-pipelines -> data_pipelines; a loop, loops/mlops -> mlops_loop."""
    package = folder.name.replace("-", "_")
    return f"{package}_loop" if folder.parent.name == "loops" else package


def package_problems(project: Path) -> list[str]:
    name = project.name
    main = main_package(project)
    found = packages(project)
    problems = []
    if main not in {p.name for p in found}:
        problems.append(f"{name}: no package src/{main}/ with a __main__.py")
    for package in found:
        required = MAIN_PACKAGE_MODULES if package.name == main else ENTRY_POINT_MODULES
        for module in required:
            if not (package / f"{module}.py").is_file():
                problems.append(f"{name}: src/{package.name}/ has no {module}.py")
        expected = MAIN_MODULE.format(package=package.name)
        if (package / "__main__.py").read_text(encoding="utf-8") != expected:
            problems.append(f"{name}: src/{package.name}/__main__.py is not the common form")
    defined = sorted(
        str(path.relative_to(project))
        for path in (project / "src").rglob("*.py")
        if PROJECT_CONSTANT.search(path.read_text(encoding="utf-8"))
    )
    if defined != [f"src/{main}/__init__.py"]:
        problems.append(f"{name}: PROJECT must be defined once, in __init__.py; found {defined}")
    return problems


def readme_problems(project: Path) -> list[str]:
    readme = project / "README.md"
    if not readme.is_file():
        return []  # the layout check reports it
    sections = tuple(re.findall(r"^## (.+?)\s*$", readme.read_text(encoding="utf-8"), re.M))
    if sections != README_SECTIONS:
        return [
            f"{project.name}: README.md's sections are {list(sections)}; they must be "
            f"{list(README_SECTIONS)} (project-specific parts go in ### subsections)"
        ]
    return []


def shape_problems(project: Path) -> list[str]:
    return package_problems(project) + readme_problems(project)
