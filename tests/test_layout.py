from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from repo_checks import (
    image_test_path,
    loop_folders,
    project_folders,
    project_layout_problems,
    repo_root,
)
from shape_checks import (
    ENTRY_POINT_MODULES,
    MAIN_MODULE,
    MAIN_PACKAGE_MODULES,
    README_SECTIONS,
    shape_problems,
)


def make_project(root: Path, name: str, skip: str | None = None) -> Path:
    project = root / "projects" / name
    (project / "tests" / "unit").mkdir(parents=True)
    for file in ("BUILD", "Dockerfile", "README.md", "tests/unit/test_cli.py"):
        if file != skip:
            (project / file).write_text("")
    image_test = image_test_path(root, name)
    image_test.parent.mkdir(exist_ok=True)
    image_test.write_text("")
    return project


def test_repo_root_walks_up_from_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pants.toml").write_text("")
    nested = tmp_path / "projects" / "demo" / "src"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    assert repo_root() == tmp_path.resolve()


def test_repo_root_without_pants_toml_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="no pants.toml"):
        repo_root(tmp_path)


def test_complete_projects_pass(tmp_path: Path) -> None:
    make_project(tmp_path, "alpha")
    make_project(tmp_path, "beta")
    (tmp_path / "projects" / "README.md").write_text("a file beside the projects is no project")
    assert project_layout_problems(tmp_path) == []


def test_no_projects_folder_passes(tmp_path: Path) -> None:
    assert project_layout_problems(tmp_path) == []


@pytest.mark.parametrize(
    ("skip", "problem"),
    [
        ("BUILD", "projects/alpha: missing BUILD"),
        ("Dockerfile", "projects/alpha: missing Dockerfile"),
        ("README.md", "projects/alpha: missing README.md"),
        ("tests/unit/test_cli.py", "projects/alpha: tests/ has no test_*.py"),
    ],
)
def test_missing_piece_is_reported(tmp_path: Path, skip: str, problem: str) -> None:
    make_project(tmp_path, "alpha", skip=skip)
    make_project(tmp_path, "beta")
    assert project_layout_problems(tmp_path) == [problem]


def test_missing_tests_folder_is_reported(tmp_path: Path) -> None:
    project = tmp_path / "projects" / "alpha"
    project.mkdir(parents=True)
    for file in ("BUILD", "Dockerfile", "README.md"):
        (project / file).write_text("")
    (project / "test_misplaced.py").write_text("")
    image_test_path(tmp_path, "alpha").parent.mkdir()
    image_test_path(tmp_path, "alpha").write_text("")
    assert project_layout_problems(tmp_path) == ["projects/alpha: missing tests/ folder"]


def test_a_dockerfile_without_its_image_test_is_reported(tmp_path: Path) -> None:
    make_project(tmp_path, "data-pipes")
    image_test_path(tmp_path, "data-pipes").unlink()
    assert project_layout_problems(tmp_path) == [
        "projects/data-pipes: missing its image test tests/test_image_data_pipes.py"
    ]


def test_tests_folder_with_only_helpers_is_reported(tmp_path: Path) -> None:
    project = make_project(tmp_path, "alpha", skip="tests/unit/test_cli.py")
    (project / "tests" / "conftest.py").write_text("")
    (project / "tests" / "helpers_test_data.py").write_text("")
    assert project_layout_problems(tmp_path) == ["projects/alpha: tests/ has no test_*.py"]


def test_a_loop_needs_no_dockerfile_but_its_readme_and_tests(tmp_path: Path) -> None:
    loop = tmp_path / "loops" / "mlops"
    (loop / "tests").mkdir(parents=True)
    (loop / "BUILD").write_text("")
    assert project_layout_problems(tmp_path) == [
        "loops/mlops: missing README.md",
        "loops/mlops: tests/ has no test_*.py",
    ]
    (loop / "README.md").write_text("")
    (loop / "tests" / "test_loop.py").write_text("")
    assert project_layout_problems(tmp_path) == []


def test_repo_projects_follow_the_layout(repo: Path) -> None:
    assert project_layout_problems(repo) == []


def test_every_loop_names_the_projects_it_joins(repo: Path) -> None:
    # CI tests a loop whenever a project it joins changes (build-support/changed_projects.py).
    spec = importlib.util.spec_from_file_location(
        "changed_projects", repo / "build-support" / "changed_projects.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    loops = {folder.relative_to(repo).as_posix() for folder in loop_folders(repo)}
    assert set(module.LOOP_MEMBERS) == loops
    projects = {folder.relative_to(repo).as_posix() for folder in project_folders(repo)}
    assert {m for members in module.LOOP_MEMBERS.values() for m in members} <= projects


def write_package(project: Path, package: str, modules: tuple[str, ...]) -> None:
    folder = project / "src" / package
    folder.mkdir(parents=True)
    for module in modules:
        (folder / f"{module}.py").write_text("")
    (folder / "__main__.py").write_text(MAIN_MODULE.format(package=package))


def shaped_project(root: Path) -> Path:
    project = make_project(root, "data-pipes")
    write_package(project, "data_pipes", ("__init__", *MAIN_PACKAGE_MODULES))
    (project / "src" / "data_pipes" / "__init__.py").write_text('PROJECT = "data-pipes"\n')
    write_package(project, "data_quantize", ENTRY_POINT_MODULES)
    sections = "".join(f"## {section}\n\n### detail\n\n" for section in README_SECTIONS)
    (project / "README.md").write_text(f"# data-pipes\n\n{sections}")
    return project


def test_a_project_of_the_common_shape_passes(tmp_path: Path) -> None:
    assert shape_problems(shaped_project(tmp_path)) == []


def test_shape_problems_are_named(tmp_path: Path) -> None:
    project = shaped_project(tmp_path)
    (project / "src" / "data_pipes" / "errors.py").unlink()
    (project / "src" / "data_quantize" / "__main__.py").write_text("from x import main\nmain()\n")
    (project / "src" / "data_pipes" / "demo.py").write_text('PROJECT = "data-pipes"\n')
    readme = project / "README.md"
    readme.write_text(readme.read_text().replace("## Tests", "## Testing"))
    assert shape_problems(project) == [
        "data-pipes: src/data_pipes/ has no errors.py",
        "data-pipes: src/data_quantize/__main__.py is not the common form",
        "data-pipes: PROJECT must be defined once, in __init__.py; found "
        "['src/data_pipes/__init__.py', 'src/data_pipes/demo.py']",
        "data-pipes: README.md's sections are ['What it does', 'Run it', 'What it measured', "
        "'Testing', 'How it scales', 'Limits and known misses']; they must be ['What it does', "
        "'Run it', 'What it measured', 'Tests', 'How it scales', 'Limits and known misses'] "
        "(project-specific parts go in ### subsections)",
    ]


def test_repo_projects_have_the_common_shape(repo: Path) -> None:
    assert [problem for p in project_folders(repo) for problem in shape_problems(p)] == []


def test_a_loop_s_package_is_named_for_the_loop(tmp_path: Path) -> None:
    loop = tmp_path / "loops" / "mlops"
    write_package(loop, "mlops", ("__init__", *MAIN_PACKAGE_MODULES))
    assert shape_problems(loop)[0] == "mlops: no package src/mlops_loop/ with a __main__.py"


def test_repo_loops_have_the_common_shape(repo: Path) -> None:
    assert [problem for p in loop_folders(repo) for problem in shape_problems(p)] == []


def test_no_project_defines_its_own_cli_error_handling(repo: Path) -> None:
    # roadmap_lab.cli.cli_errors is the one place.
    copies = [
        str(path.relative_to(repo))
        for folder in ("projects", "loops")
        for path in (repo / folder).rglob("*.py")
        if "def cli_errors" in path.read_text(encoding="utf-8")
    ]
    assert copies == []
