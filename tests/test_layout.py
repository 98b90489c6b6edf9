from __future__ import annotations

from pathlib import Path

import pytest
from repo_checks import image_test_path, project_layout_problems, repo_root


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


def test_repo_projects_follow_the_layout(repo: Path) -> None:
    assert project_layout_problems(repo) == []
