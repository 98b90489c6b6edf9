"""Workflows that cannot run here (GPU runners, Docker, registry pushes), planned with act: every
step only echoes what it was given (tests/act_runner.py, plan_workflow), so act resolves each
job's `if`, `needs`, matrix, `env`, `with` and container options as GitHub would. And the sticky
PR comment action, run for real by act against the recording `gh`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from act_runner import (
    ActResult,
    ActRunner,
    make_base_repo,
    plan_workflow,
    pull_request_event,
    push_event,
)

WORKFLOWS = Path(".github") / "workflows"


def run_plan(
    repo: Path,
    tmp_path: Path,
    workflow: str,
    event_name: str,
    event: dict,
    step_outputs: dict[tuple[str, str], dict[str, str]] | None = None,
    *,
    check: bool = True,
) -> ActResult:
    """act on a copy of the repo whose ``workflow`` is replaced by its plan."""
    runner = ActRunner(repo, tmp_path / "act")
    folder = tmp_path / "planned"
    make_base_repo(repo, folder)
    path = folder / WORKFLOWS / workflow
    path.write_text(plan_workflow(path.read_text(), step_outputs=step_outputs))
    result = runner.run(folder, workflow, event_name, event, extra_args=["--dryrun"], timeout=300)
    if check:
        assert result.returncode == 0, result.tail()
    return result


ML_CICD_CHANGED = {("changes", "select"): {"projects": '["projects/ml-cicd"]'}}


def test_ci_push_to_main_builds_then_pushes_ml_cicd_images_after_its_tests(
    repo: Path, tmp_path: Path
) -> None:
    result = run_plan(
        repo, tmp_path, "ci.yml", "push", push_event("0" * 40, "1" * 40), ML_CICD_CHANGED
    )
    jobs = result.job_results()
    assert jobs == {
        "CI/Changed projects": "success",
        "CI/Project projects/ml-cicd": "success",
        "CI/Repo-level checks": "success",
        "CI/ml-cicd images": "success",
        "CI/Push the ml-cicd images": "success",
    }, jobs
    order = result.job_order()
    assert order.index("CI/Project projects/ml-cicd") < order.index("CI/ml-cicd images")
    assert order.index("CI/ml-cicd images") < order.index("CI/Push the ml-cicd images")
    images = result.output("CI/ml-cicd images")
    assert "PLAN ml-cicd-image step" in images
    # On main the tested images are handed over as an artifact, uncompressed by zip.
    assert "PLAN PLAN_WITH_NAME=ml-cicd-images" in images
    assert "PLAN PLAN_WITH_COMPRESSION_LEVEL=0" in images
    push = result.output("CI/Push the ml-cicd images")
    assert "PLAN PLAN_WITH_NAME=ml-cicd-images" in push
    assert "PLAN REGISTRY_TOKEN=stand-in-token" not in push  # act masks secrets
    assert "PLAN REGISTRY_USER=" in push


def test_ci_pull_request_builds_ml_cicd_images_but_pushes_nothing(
    repo: Path, tmp_path: Path
) -> None:
    result = run_plan(
        repo, tmp_path, "ci.yml", "pull_request", pull_request_event("0" * 40, "1" * 40),
        ML_CICD_CHANGED,
    )
    jobs = result.job_results()
    assert jobs.get("CI/ml-cicd images") == "success", jobs
    assert "CI/Push the ml-cicd images" not in jobs, jobs
    images = result.output("CI/ml-cicd images")
    assert "PLAN PLAN_WITH_NAME=ml-cicd-images" not in images  # the hand-over is main's only


def test_ci_builds_no_ml_cicd_image_when_ml_cicd_did_not_change(
    repo: Path, tmp_path: Path
) -> None:
    other = {("changes", "select"): {"projects": '["projects/data-pipelines"]'}}
    result = run_plan(repo, tmp_path, "ci.yml", "push", push_event("0" * 40, "1" * 40), other)
    jobs = result.job_results()
    assert jobs.get("CI/Project projects/data-pipelines") == "success", jobs
    assert "CI/ml-cicd images" not in jobs and "CI/Push the ml-cicd images" not in jobs, jobs


@pytest.mark.parametrize(
    ("event_name", "event", "scheme"),
    [
        pytest.param(
            "workflow_dispatch", {"inputs": {"quantization": "w8a8-int8"}}, "w8a8-int8",
            id="dispatch",
        ),
        pytest.param("schedule", {"schedule": "23 3 * * *"}, "fp8", id="nightly"),
    ],
)
def test_gpu_bench_runs_its_containers_as_the_runner_user_and_cleans_up(
    repo: Path, tmp_path: Path, event_name: str, event: dict, scheme: str
) -> None:
    runner_user = {("runner-user", "user"): {"user": "1001:1001"}}
    result = run_plan(repo, tmp_path, "gpu-bench.yml", event_name, event, runner_user)
    jobs = result.job_results()
    assert set(jobs.values()) == {"success"} and len(jobs) == 4, jobs
    for job in (f"GPU benchmark/vLLM on GPU ({scheme})",
                "GPU benchmark/llm-alignment on GPU (DPO, reward model, GRPO)"):
        output = result.output(job)
        assert "PLAN PLAN_CONTAINER_IMAGE=vllm/vllm-openai:" in output, output[-2000:]
        assert "--user 1001:1001" in output, output[-2000:]
        assert "Clean the workspace (planned)" in " ".join(result.step_results(job)), job
    assert f"PLAN SCHEME={scheme}" in result.output(f"GPU benchmark/vLLM on GPU ({scheme})")


STICKY_WORKFLOW = """\
name: Sticky
on: pull_request
permissions:
  contents: read
jobs:
  comment:
    runs-on: ubuntu-latest
    timeout-minutes: 5
    permissions:
      pull-requests: write
    steps:
      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1
        with:
          persist-credentials: false
      - run: |
          echo "first report" > "$RUNNER_TEMP/one.md"
          echo "second report" > "$RUNNER_TEMP/two.md"
      - uses: ./.github/actions/sticky-comment
        with:
          marker: fixture
          body-file: ${{ runner.temp }}/one.md
          pr-number: ${{ github.event.pull_request.number }}
      - uses: ./.github/actions/sticky-comment
        with:
          marker: other-workflow
          body-file: ${{ runner.temp }}/one.md
          pr-number: ${{ github.event.pull_request.number }}
      - id: again
        uses: ./.github/actions/sticky-comment
        with:
          marker: fixture
          body-file: ${{ runner.temp }}/two.md
          pr-number: ${{ github.event.pull_request.number }}
      - env:
          URL: ${{ steps.again.outputs.url }}
        run: echo "comment at $URL"
"""


def test_sticky_comment_edits_its_own_comment_instead_of_adding_one(
    repo: Path, tmp_path: Path
) -> None:
    runner = ActRunner(repo, tmp_path / "act")
    folder = tmp_path / "repo"
    make_base_repo(repo, folder)
    (folder / WORKFLOWS / "sticky.yml").write_text(STICKY_WORKFLOW)
    result = runner.run(
        folder, "sticky.yml", "pull_request", pull_request_event("0" * 40, "1" * 40, number=12),
        timeout=300,
    )
    assert result.returncode == 0, result.tail()
    comments = runner.comments()
    assert [(c["issue"], c["edits"]) for c in comments] == [(12, 1), (12, 0)], comments
    fixture, other = comments
    assert fixture["body"] == "<!-- roadmap-lab:sticky-comment:fixture -->\nsecond report\n"
    assert other["body"].startswith("<!-- roadmap-lab:sticky-comment:other-workflow -->\n")
    assert f"comment at {fixture['html_url']}" in result.output()


def test_sticky_comment_refuses_a_marker_that_could_break_its_query(
    repo: Path, tmp_path: Path
) -> None:
    runner = ActRunner(repo, tmp_path / "act")
    folder = tmp_path / "repo"
    make_base_repo(repo, folder)
    first = "marker: fixture\n          body-file: ${{ runner.temp }}/one"
    injected = 'marker: \'x") or true or ("\'\n          body-file: ${{ runner.temp }}/one'
    bad = STICKY_WORKFLOW.replace(first, injected)
    (folder / WORKFLOWS / "sticky.yml").write_text(bad)
    result = runner.run(
        folder, "sticky.yml", "pull_request", pull_request_event("0" * 40, "1" * 40), timeout=300
    )
    assert result.returncode != 0
    assert "marker must be lowercase letters, digits and dashes" in result.output()
    assert runner.comments() == []


def workflow_events(repo: Path) -> list[tuple[str, str]]:
    """(workflow file, event) for every trigger of every workflow."""
    found = []
    for path in sorted((repo / WORKFLOWS).glob("*.yml")):
        document = yaml.safe_load(path.read_text())
        triggers = document.get("on", document.get(True))
        names = [triggers] if isinstance(triggers, str) else list(triggers)
        found += [(path.name, name) for name in names]
    return found


EVENTS = {
    "push": push_event("0" * 40, "1" * 40),
    "pull_request": pull_request_event("0" * 40, "1" * 40),
    "workflow_dispatch": {"inputs": {}},
    "schedule": {"schedule": "23 3 * * *"},
}
# Outputs that later jobs parse (fromJSON), set as the real steps would.
KNOWN_OUTPUTS = {"ci.yml": ML_CICD_CHANGED}


def test_every_workflow_plans_for_each_of_its_events(repo: Path, tmp_path: Path) -> None:
    """Each workflow and trigger, every job planned: no expression, `needs` or matrix that act
    cannot resolve, and at least one job runs."""
    failures = {}
    for workflow, event_name in workflow_events(repo):
        assert event_name in EVENTS, f"{workflow}: no test event for {event_name}"
        folder = tmp_path / f"{workflow}-{event_name}"
        result = run_plan(repo, folder, workflow, event_name, EVENTS[event_name],
                          KNOWN_OUTPUTS.get(workflow), check=False)
        jobs = result.job_results()
        if result.returncode != 0 or not jobs or set(jobs.values()) != {"success"}:
            failures[f"{workflow} on {event_name}"] = (jobs, result.tail(1500))
    assert failures == {}
