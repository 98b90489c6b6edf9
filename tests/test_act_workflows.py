"""The workflows run for real by act on this machine (tests/act_runner.py): each scenario commits a
change on top of the repo, writes the event GitHub would send, runs the workflow's jobs, and
checks what they did. The projects' own work (Pants, training, MLflow, the prompt gate) is real;
GitHub's services are act's artifact and cache servers and the recording `gh`.

- ci.yml, pull request changing one small project's source: `changes` selects exactly that
  project and the loop that joins it, and the project's job lints, type-checks, tests and
  packages it (act runs only that matrix entry: the loop's job is the same steps, and its tests
  run in the repo's own test run);
- ci.yml, a README-only change in one project: `changes` selects that project only;
- retrain.yml, pull request adding a data slice: the dry run's report is the PR comment;
- retrain.yml, push to main: retrains into a real MLflow server and promotes the champion;
- prompt-eval.yml, pull request changing a prompt: the gate's report is the PR comment.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from act_runner import (
    ActResult,
    ActRunner,
    clone_with_change,
    make_base_repo,
    pull_request_event,
    push_event,
)

# The project whose job (lint, type-check, tests, package) is quickest: llm-alignment (~110 s
# here, against ~250 s for model-monitoring, the next quickest). The LLM loop joins it.
SMALL_PROJECT = "llm-alignment"
SMALL_PROJECT_LOOP = "loops/llm"
# A project no loop joins (a loop is selected with the projects it joins: changed_projects.py).
README_PROJECT = "experiment-tracking"
PR_NUMBER = 7
PROMPTS = Path("projects/prompt-registry/src/prompt_registry/prompts")

pytestmark = pytest.mark.slow
RecordProperty = Callable[[str, object], None]


@pytest.fixture(scope="module")
def base(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The repo as one commit on main; every scenario clones it."""
    folder = tmp_path_factory.mktemp("act") / "base"
    return folder, make_base_repo(repo, folder)


def scenario(
    base: tuple[Path, str],
    tmp_path: Path,
    message: str,
    *,
    write: dict[str, str] | None = None,
    append: dict[str, str] | None = None,
) -> tuple[Path, str, str]:
    """The head of a pull request (or a push) on top of the base: the folder, base and head SHAs."""
    folder, base_sha = base
    head = tmp_path / "head"
    return head, base_sha, clone_with_change(folder, head, message, write=write, append=append)


def assert_succeeded(result: ActResult, jobs: set[str]) -> None:
    assert result.returncode == 0, result.tail()
    assert result.job_results() == dict.fromkeys(jobs, "success"), result.tail()


def module_of(repo: Path, project: str) -> str:
    """A module of the project's package (its errors.py: every project has one)."""
    (errors,) = (repo / "projects" / project / "src").glob("*/errors.py")
    return errors.relative_to(repo).as_posix()


def test_ci_pull_request_changing_one_project_tests_that_project_and_its_loop(
    repo: Path, base: tuple[Path, str], tmp_path: Path, record_testsuite_property: RecordProperty
) -> None:
    project = f"projects/{SMALL_PROJECT}"
    change = {module_of(repo, SMALL_PROJECT): "\n# A change of the act test.\n"}
    head, base_sha, head_sha = scenario(base, tmp_path, f"Change {SMALL_PROJECT}", append=change)
    runner = ActRunner(repo, tmp_path / "act")
    result = runner.run(head, "ci.yml", "pull_request", pull_request_event(base_sha, head_sha),
                        jobs=["project"], extra_args=["--matrix", f"project:{project}"],
                        timeout=1200)
    record_testsuite_property("figure.act.ci_pull_request_s", result.seconds)
    project_job = f"CI/Project {project}"
    assert_succeeded(result, {"CI/Changed projects", project_job})
    selected = json.loads(result.outputs("CI/Changed projects")["projects"])
    assert sorted(selected) == sorted([project, SMALL_PROJECT_LOOP])
    log = result.output(project_job)
    for tool in ("ruff", "mypy"):
        assert f"✓ {tool} succeeded." in log, log[-3000:]
    assert f"Run Pytest - projects/{SMALL_PROJECT}/tests/" in log
    assert f"Wrote dist/projects.{SMALL_PROJECT}/" in log
    # The job's own Pants cache key (job and project), falling back to any job's.
    assert (f"pants-Linux-ci-project-projects/{SMALL_PROJECT}-") in log


def test_ci_changes_job_selects_only_the_project_of_a_readme_change(
    repo: Path, base: tuple[Path, str], tmp_path: Path, record_testsuite_property: RecordProperty
) -> None:
    change = {f"projects/{README_PROJECT}/README.md": "\nA line of the act test.\n"}
    head, base_sha, head_sha = scenario(base, tmp_path, "README only", append=change)
    runner = ActRunner(repo, tmp_path / "act")
    result = runner.run(head, "ci.yml", "pull_request", pull_request_event(base_sha, head_sha),
                        jobs=["changes"], timeout=600)
    record_testsuite_property("figure.act.ci_readme_s", result.seconds)
    assert_succeeded(result, {"CI/Changed projects"})
    assert result.outputs("CI/Changed projects")["projects"] == f'["projects/{README_PROJECT}"]'


def new_data_slice(repo: Path, rows: int = 120) -> str:
    """A slice of bundled reviews that neither the committed slices nor the held-out set hold."""
    from roadmap_lab.data import load_reviews

    slices = repo / "projects" / "ml-cicd" / "data" / "slices"
    committed = {row["text"] for path in slices.glob("*.csv")
                 for row in csv.DictReader(path.open(newline=""))}
    train, test = load_reviews()
    fresh = train.drop_duplicates("text")
    fresh = fresh[~fresh["text"].isin(committed | set(test["text"]))]
    sample = fresh.sample(n=rows, random_state=25).loc[:, ["text", "label"]]
    out = io.StringIO()
    sample.to_csv(out, index=False, lineterminator="\n")
    return out.getvalue()


def test_retrain_pull_request_comments_its_dry_run_report(
    repo: Path, base: tuple[Path, str], tmp_path: Path, record_testsuite_property: RecordProperty
) -> None:
    change = {"projects/ml-cicd/data/slices/0002-act-test.csv": new_data_slice(repo)}
    head, base_sha, head_sha = scenario(base, tmp_path, "New review data", write=change)
    runner = ActRunner(repo, tmp_path / "act")
    result = runner.run(head, "retrain.yml", "pull_request",
                        pull_request_event(base_sha, head_sha, PR_NUMBER), timeout=1200)
    record_testsuite_property("figure.act.retrain_pull_request_s", result.seconds)
    assert_succeeded(result, {"Retrain/Retrain dry run (pull request)"})
    (comment,) = runner.comments()
    assert comment["issue"] == PR_NUMBER, comment
    report = (head / "retrain-report.md")
    assert "0002-act-test.csv" in comment["body"], comment["body"][:2000]
    assert "dry run" in comment["body"].lower(), comment["body"][:2000]
    assert not report.exists()  # act ran in its own copy of the repo, not in ours


def test_retrain_push_to_main_promotes_into_a_real_mlflow_server(
    repo: Path, base: tuple[Path, str], tmp_path: Path, record_testsuite_property: RecordProperty
) -> None:
    from mlflow import MlflowClient
    from roadmap_lab.services import mlflow_server

    change = {"projects/ml-cicd/data/slices/0002-act-test.csv": new_data_slice(repo)}
    head, base_sha, head_sha = scenario(base, tmp_path, "New review data", write=change)
    store = tmp_path / "mlflow"
    store.mkdir()
    with mlflow_server(f"sqlite:///{store / 'mlflow.db'}", store) as url:
        runner = ActRunner(repo, tmp_path / "act", variables={"MLFLOW_TRACKING_URI": url})
        result = runner.run(head, "retrain.yml", "push", push_event(base_sha, head_sha),
                            timeout=1200)
        record_testsuite_property("figure.act.retrain_push_s", result.seconds)
        assert result.returncode == 0, result.tail()
        jobs = result.job_results()
        # The retrain, and whatever follows a promotion (a deploy job), all succeeded.
        assert "Retrain/Retrain (main)" in jobs and set(jobs.values()) == {"success"}, jobs
        client = MlflowClient(tracking_uri=url)
        champion = client.get_model_version_by_alias("ml-cicd-review-classifier", "champion")
    # The first retrain on an empty registry becomes the champion, trained on both slices.
    assert champion.version == "1"
    assert champion.tags["data_git_commit"] == head_sha, champion.tags
    assert "0002-act-test.csv" in champion.tags["data_slices"], champion.tags
    assert runner.comments() == []  # a push has no pull request to comment on


def test_prompt_eval_pull_request_comments_the_gate_report(
    repo: Path, base: tuple[Path, str], tmp_path: Path, record_testsuite_property: RecordProperty
) -> None:
    template = PROMPTS / "capital-city" / "template.txt"
    head, base_sha, head_sha = scenario(
        base, tmp_path, "Reword a prompt",
        append={template.as_posix(): "\nAnswer with the city's name only.\n"},
    )
    runner = ActRunner(repo, tmp_path / "act")
    result = runner.run(head, "prompt-eval.yml", "pull_request",
                        pull_request_event(base_sha, head_sha, PR_NUMBER), timeout=1200)
    record_testsuite_property("figure.act.prompt_eval_s", result.seconds)
    (comment,) = runner.comments()
    assert comment["issue"] == PR_NUMBER
    assert "capital-city" in comment["body"], comment["body"][:2000]
    # The gate passes or fails on the numbers; either way the job reports it and the comment
    # says which.
    assert result.job_results() == {"Prompt eval gate/Gate changed prompts": (
        "success" if result.returncode == 0 else "failure")}, result.tail()
