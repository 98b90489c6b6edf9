from __future__ import annotations

from pathlib import Path

from import_graph import cycles, import_graph


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_cycle_through_a_function_level_or_type_only_import_is_found(tmp_path: Path) -> None:
    write(tmp_path, "projects/p/src/pkg/__init__.py", "")
    write(tmp_path, "projects/p/src/pkg/cli.py", "from pkg.report import render\n")
    write(tmp_path, "projects/p/src/pkg/report.py", "def render():\n    from pkg import cli\n")
    write(tmp_path, "projects/p/src/pkg/a.py", "from typing import TYPE_CHECKING\n"
          "if TYPE_CHECKING:\n    from .b import B\n")  # fmt: skip
    write(tmp_path, "projects/p/src/pkg/b.py", "from pkg.a import x\n")
    write(tmp_path, "projects/p/src/pkg/c.py", "import pkg.a\nimport json\n")
    graph = import_graph(tmp_path)
    assert graph["pkg.c"] == {"pkg.a"}  # json is not ours
    assert cycles(graph) == [["pkg.a", "pkg.b"], ["pkg.cli", "pkg.report"]]


def test_a_package_importing_its_own_modules_is_no_cycle(tmp_path: Path) -> None:
    write(tmp_path, "shared/src/lib/__init__.py", "PROJECT = 'x'\n")
    write(tmp_path, "shared/src/lib/one.py", "from lib import PROJECT\nfrom lib.two import f\n")
    write(tmp_path, "shared/src/lib/two.py", "def f():\n    return 1\n")
    assert cycles(import_graph(tmp_path)) == []


def test_our_modules_import_without_cycles(repo: Path) -> None:
    found = cycles(import_graph(repo))
    assert found == [], "import cycles (move what both need into a third module): " + "; ".join(
        " <-> ".join(component) for component in found
    )


def test_library_code_never_imports_the_test_helpers(repo: Path) -> None:
    importers = sorted(
        module
        for module, targets in import_graph(repo).items()
        if not module.startswith("roadmap_lab.testing")
        and any(t.startswith("roadmap_lab.testing") for t in targets)
    )
    assert importers == [], "roadmap_lab.testing is for tests only"
