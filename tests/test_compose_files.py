"""Every compose file of the repo is valid against the Compose Specification's JSON schema (from
the compose-spec project, vendored at a pinned commit in 3rdparty/compose-spec/); the project
images it builds or names are the ones the image tests build (tests/test_image_<project>.py:
projects/<project>/Dockerfile, its last stage, or a sibling final stage on the same runtime stage,
such as the `pip` stage that installs with pip instead of unpacking the PEX), a stage that
installs with pip (no PEX, no Pants) from files the repo has and Docker's ignore file for that
Dockerfile lets into the build context; and its services follow the deployment rules: a
healthcheck on every long-running service, `depends_on` waiting for health (for a one-shot job:
its success), secrets only from required variables (`${NAME:?message}`: compose stops at once
without them; no default, no fixed value), published ports on 127.0.0.1 only. Third-party images
(PostgreSQL, Redis, Prometheus, Grafana) cannot be pulled here, so `docker compose config` is not
an option."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator  # type: ignore[import-untyped]
from repo_checks import dockerfile_instructions, walk_repo_files

COMPOSE_SPEC = Path("3rdparty") / "compose-spec"
COMPOSE_FILE = re.compile(r"^(docker-)?compose(\.[\w-]+)?\.ya?ml$")
PROJECT_IMAGE = re.compile(r"(?:^|/)roadmap-lab/(?P<project>[a-z0-9-]+)(?::[\w.-]+)?$")
# ${NAME:-default} / ${NAME-default}: the default; ${NAME}, ${NAME:?error}, ${NAME?error}: nothing.
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?-)(?P<default>[^}]*)|:?\?[^}]*)?\}")
FROM_LINE = re.compile(
    r"^\s*FROM\s+(?:--\S+\s+)*(?P<base>\S+)(?:\s+AS\s+(?P<stage>\S+))?\s*$", re.IGNORECASE
)


def compose_schema(repo: Path) -> dict[str, Any]:
    (schema,) = sorted((repo / COMPOSE_SPEC).glob("*/compose-spec.json"))
    return json.loads(schema.read_text())


def compose_files(repo: Path) -> list[Path]:
    return sorted(p for p in walk_repo_files(repo) if COMPOSE_FILE.match(p.name))


def schema_errors(document: object, schema: dict[str, Any]) -> list[str]:
    validator = Draft7Validator(schema)
    return sorted(
        f"{'/'.join(str(part) for part in error.absolute_path) or '(top)'}: {error.message}"
        for error in validator.iter_errors(document)
    )


def interpolated(text: str) -> str:
    return INTERPOLATION.sub(lambda m: m["default"] if m["op"] else "", text)


def image_tested_projects(repo: Path) -> set[str]:
    """The projects whose image a test builds: tests/test_image_<project>.py."""
    return {
        path.stem.removeprefix("test_image_").replace("_", "-")
        for path in (repo / "tests").glob("test_image_*.py")
    }


def stages(dockerfile: Path) -> list[tuple[str, str | None]]:
    """(base, name) of each FROM line, in order."""
    return [
        (m["base"], m["stage"])
        for line in dockerfile.read_text().splitlines()
        if (m := FROM_LINE.match(line))
    ]


def stage_problem(dockerfile: Path, target: str | None) -> str | None:
    """Why building ``target`` is not the image the image test builds (its last stage): None when
    it is that stage, or a sibling on the same stage of this Dockerfile (the same runtime, its
    venv installed another way)."""
    found = stages(dockerfile)
    if target is None or not found or target == found[-1][1]:
        return None
    bases = {name: base for base, name in found if name}
    last_base, last_name = found[-1]
    if target not in bases:
        return f"builds stage {target}, which {dockerfile.name} does not have"
    if bases[target] == last_base and last_base in bases:
        return None
    return (
        f"builds stage {target}; the image test builds the last stage ({last_name}), and "
        f"{target} is not built on the same stage ({bases[target]}, not {last_base})"
    )


def stage_instructions(dockerfile: Path) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Stage name (an unnamed stage: its index) -> (base, its instructions after FROM)."""
    found: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, args in dockerfile_instructions(dockerfile.read_text()):
        if keyword == "FROM" and (m := FROM_LINE.match(f"FROM {args}")):
            current = []
            found[m["stage"] or str(len(found))] = (m["base"], current)
        else:
            current.append((keyword, args))
    return found


def flag_values(args: str, flag: str) -> list[str]:
    """The values of ``--flag=VALUE`` among an instruction's arguments."""
    return [word.split("=", 1)[1] for word in args.split() if word.startswith(f"--{flag}=")]


def stages_needed(stages: dict[str, tuple[str, list[tuple[str, str]]]], target: str) -> list[str]:
    """``target`` and the stages it builds on or copies from (as BuildKit builds only those)."""
    needed, todo = [], [target]
    while todo:
        name = todo.pop()
        if name in needed or name not in stages:
            continue
        needed.append(name)
        base, instructions = stages[name]
        todo.append(base)
        for _, args in instructions:
            todo += flag_values(args, "from")
            todo += [
                part.removeprefix("from=")
                for mount in flag_values(args, "mount")
                for part in mount.split(",")
                if part.startswith("from=")
            ]
    return needed


def context_sources(instructions: list[tuple[str, str]]) -> list[str]:
    """Build-context paths that COPY/ADD (not --from another stage) and bind mounts read."""
    sources = []
    for keyword, args in instructions:
        if keyword in ("COPY", "ADD") and not flag_values(args, "from"):
            sources += [w for w in args.split() if not w.startswith("--")][:-1]
        for mount in flag_values(args, "mount"):
            options = dict(part.partition("=")[::2] for part in mount.split(","))
            if options.get("type", "bind") == "bind" and "from" not in options:
                sources.append(options.get("source", "."))
    return sources


IgnorePatterns = list[tuple[bool, re.Pattern[str]]]


def ignore_patterns(dockerfile: Path, context: Path) -> tuple[Path, IgnorePatterns]:
    """BuildKit's ignore file for ``dockerfile`` (<Dockerfile>.dockerignore, else the context's
    .dockerignore) as (is an exception `!`, regex) pairs."""
    own = dockerfile.with_name(f"{dockerfile.name}.dockerignore")
    path = own if own.is_file() else context / ".dockerignore"
    lines = path.read_text().splitlines() if path.is_file() else []
    patterns = []
    for line in (raw.strip() for raw in lines):
        if line and not line.startswith("#"):
            keep = line.startswith("!")
            patterns.append((keep, ignore_regex(line.removeprefix("!").strip("/"))))
    return path, patterns


def ignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern: `*` and `?` stop at `/`, `**` crosses folders; a match of a folder
    covers everything in it."""
    regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
    regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
    return re.compile(f"^{regex}(?:/.*)?$")


def admitted(path: str, patterns: IgnorePatterns) -> bool:
    """Whether Docker sends ``path`` in the build context: the last pattern matching it wins."""
    result = True
    for keep, regex in patterns:
        if regex.match(path):
            result = keep
    return result


def build_problems(dockerfile: Path, target: str | None, context: Path, repo: Path) -> list[str]:
    """Why the stage a compose file builds is not a pip build of files the context holds."""
    stages = stage_instructions(dockerfile)
    name = target or list(stages)[-1]
    if name not in stages:
        return []  # stage_problem names it
    needed = stages_needed(stages, name)
    instructions = [i for stage in needed for i in stages[stage][1]]
    text = "\n".join(args for _, args in instructions)
    problems = []
    if "pip install" not in text:
        problems.append(f"stage {name} installs nothing with pip")
    if ".pex" in text:
        problems.append(f"stage {name} installs a PEX (built by Pants), not with pip")
    ignore, patterns = ignore_patterns(dockerfile, context)
    for source in context_sources(instructions):
        if not admitted(source.strip("/"), patterns):
            problems.append(f"{ignore.relative_to(repo)} keeps {source} out of the build context")
        elif not (context / source).exists():
            problems.append(f"stage {name} copies {source}, which the repo does not have")
    return problems


def services(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, service in (document.get("services") or {}).items():
        if isinstance(service, dict):
            yield name, service


def image_problems(compose: Path, document: dict[str, Any], repo: Path) -> list[str]:
    """Why a service's project image is not one the image tests build (empty: it is)."""
    tested = image_tested_projects(repo)
    problems = []
    for name, service in services(document):
        built = built_dockerfile(compose, service.get("build"), repo)
        image = interpolated(str(service.get("image", "")))
        named = PROJECT_IMAGE.search(image)
        where = f"{compose.relative_to(repo)}: service {name}"
        if built is None:
            if named:
                problems.append(f"{where}: names the project image {image} but builds nothing")
            continue
        context, dockerfile, target = built
        project = dockerfile.parent.name
        if dockerfile.name != "Dockerfile" or dockerfile.parent.parent != repo / "projects":
            problems.append(f"{where}: builds {dockerfile}, not a projects/<name>/Dockerfile")
            continue
        if project not in tested:
            problems.append(f"{where}: builds {project}'s image, which no image test builds")
        if problem := stage_problem(dockerfile, target):
            problems.append(f"{where}: {problem}")
        problems += [f"{where}: {p}" for p in build_problems(dockerfile, target, context, repo)]
        if named and named["project"] != project:
            problems.append(f"{where}: builds {project}'s Dockerfile but names it {image}")
    return problems


# Environment keys that hold a secret (a key ending in _FILE names a file, not the secret).
SECRET_KEY = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|_KEY)$")
REQUIRED_VARIABLE = re.compile(r"^\$\{\w+:?\?[^}]*\}$")
LOOPBACK = "127.0.0.1"


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(entry.partition("=")[::2] for entry in environment)
    return {str(key): "" if value is None else str(value) for key, value in environment.items()}


def one_shot_services(document: dict[str, Any]) -> set[str]:
    """Services others wait for to finish (`service_completed_successfully`): jobs, not servers."""
    return {
        name
        for _, service in services(document)
        if isinstance(service.get("depends_on"), dict)
        for name, rule in service["depends_on"].items()
        if isinstance(rule, dict) and rule.get("condition") == "service_completed_successfully"
    }


def port_problems(ports: list[Any]) -> list[str]:
    problems = []
    for port in ports:
        if isinstance(port, dict):
            host_ip = port.get("host_ip")
        else:
            parts = str(port).split(":")
            host_ip = parts[0] if len(parts) == 3 else None
        if host_ip != LOOPBACK:
            problems.append(f"publishes {port} beyond {LOOPBACK}")
    return problems


def deployment_problems(compose: Path, document: dict[str, Any], repo: Path) -> list[str]:
    """Why the services would not start safely: no healthcheck on a long-running service, a
    dependency without a condition, a secret with a default or a fixed value, a port published on
    every interface."""
    text = compose.read_text()
    jobs = one_shot_services(document)
    problems = []
    for match in INTERPOLATION.finditer(text):
        if match["op"] and SECRET_KEY.search(match["name"]):
            problems.append(f"{match[0]}: a secret with a default (require it: ${{NAME:?...}})")
    for name, service in services(document):
        where = f"service {name}"
        healthcheck = service.get("healthcheck") or {}
        if name not in jobs and (not healthcheck.get("test") or healthcheck.get("disable")):
            problems.append(f"{where}: no healthcheck")
        depends_on = service.get("depends_on") or {}
        if isinstance(depends_on, list):
            problems.append(f"{where}: depends_on without a condition: {depends_on}")
        else:
            problems += [
                f"{where}: depends_on {other} without waiting for it to be healthy"
                for other, rule in depends_on.items()
                if (rule or {}).get("condition")
                != ("service_completed_successfully" if other in jobs else "service_healthy")
            ]
        for key, value in environment_of(service).items():
            if SECRET_KEY.search(key) and not REQUIRED_VARIABLE.match(value):
                problems.append(f"{where}: {key} is not a required variable (${{NAME:?...}})")
        problems += [f"{where}: {problem}" for problem in port_problems(service.get("ports") or [])]
    return [f"{compose.relative_to(repo)}: {problem}" for problem in problems]


def built_dockerfile(
    compose: Path, build: object, repo: Path
) -> tuple[Path, Path, str | None] | None:
    """The context and Dockerfile (resolved) and the target stage a `build:` entry builds; None
    without one."""
    if build is None:
        return None
    if isinstance(build, str):
        build = {"context": build}
    assert isinstance(build, dict), f"{compose}: build must be a string or a mapping"
    context = (compose.parent / interpolated(str(build.get("context", ".")))).resolve()
    dockerfile = (context / interpolated(str(build.get("dockerfile", "Dockerfile")))).resolve()
    assert dockerfile.is_file(), f"{compose.relative_to(repo)}: no Dockerfile at {dockerfile}"
    target = build.get("target")
    return context, dockerfile, (interpolated(str(target)) if target is not None else None)


def test_the_repo_has_compose_files(repo: Path) -> None:
    names = {p.relative_to(repo).as_posix() for p in compose_files(repo)}
    assert {
        "projects/model-monitoring/docker-compose.yml",
        "projects/data-pipelines/docker-compose.yml",
    } <= names, names


def test_compose_files_follow_the_compose_specification(repo: Path) -> None:
    schema = compose_schema(repo)
    problems = {
        str(path.relative_to(repo)): errors
        for path in compose_files(repo)
        if (errors := schema_errors(yaml.safe_load(path.read_text()), schema))
    }
    assert problems == {}


def test_compose_files_build_the_project_images_the_image_tests_build(repo: Path) -> None:
    problems = [
        problem
        for path in compose_files(repo)
        for problem in image_problems(path, yaml.safe_load(path.read_text()), repo)
    ]
    assert problems == []


def test_compose_services_start_safely(repo: Path) -> None:
    problems = [
        problem
        for path in compose_files(repo)
        for problem in deployment_problems(path, yaml.safe_load(path.read_text()), repo)
    ]
    assert problems == []


# The checks themselves, on fixtures (a fake repo with one image-tested project).
GOOD = """\
name: demo
services:
  app:
    image: roadmap-lab/demo
    build:
      context: ../..
      dockerfile: projects/demo/Dockerfile
      target: pip
    ports: ["127.0.0.1:8000:8000"]
    healthcheck:
      test: ["CMD", "python", "-c", "print(1)"]
  db:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}
    healthcheck:
      test: ["CMD", "pg_isready"]
    depends_on:
      app:
        condition: service_healthy
"""


FAKE_DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS build
RUN --mount=type=bind,source=dist/demo/cli.pex,target=/tmp/cli.pex \\
    PEX_TOOLS=1 python /tmp/cli.pex venv /opt/app
FROM ${BASE_IMAGE} AS pip-build
# The project's pinned dependencies.
COPY projects/demo/pyproject.toml /tmp/demo/
RUN python -m venv /opt/app && /opt/app/bin/pip install /tmp/demo
FROM ${BASE_IMAGE} AS runtime
FROM runtime AS pip
COPY --from=pip-build /opt/app /opt/app
FROM runtime AS default
COPY --from=build /opt/app /opt/app
"""


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    (tmp_path / "projects" / "demo").mkdir(parents=True)
    (tmp_path / "projects" / "demo" / "Dockerfile").write_text(FAKE_DOCKERFILE)
    (tmp_path / "projects" / "demo" / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_image_demo.py").write_text("")
    return tmp_path


def problems_of(fake_repo: Path, text: str) -> list[str]:
    path = fake_repo / "projects" / "demo" / "docker-compose.yml"
    path.write_text(text)
    return image_problems(path, yaml.safe_load(text), fake_repo)


def test_schema_accepts_a_good_compose_file(repo: Path) -> None:
    assert schema_errors(yaml.safe_load(GOOD), compose_schema(repo)) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param("    ports:", "    portz:", "'portz' does not match", id="unknown-key"),
        pytest.param("condition: service_healthy", "condition: healthy", "depends_on",
                     id="bad-condition"),
        pytest.param('["127.0.0.1:8000:8000"]', "{a: 1}", "ports", id="bad-ports"),
    ],
)
def test_schema_rejects_a_broken_compose_file(
    repo: Path, old: str, new: str, expected: str
) -> None:
    errors = schema_errors(yaml.safe_load(GOOD.replace(old, new)), compose_schema(repo))
    assert errors and any(expected in e for e in errors), errors


def test_image_check_accepts_a_built_project_image(fake_repo: Path) -> None:
    # The `pip` stage: a sibling of the last stage on the same runtime stage (the same image,
    # installed by pip), from files the build context holds.
    assert problems_of(fake_repo, GOOD) == []
    (fake_repo / ".dockerignore").write_text("*\n!projects/demo/pyproject.toml\n!dist/*/*.pex\n")
    assert problems_of(fake_repo, GOOD) == []
    assert problems_of(fake_repo, GOOD.replace("image: roadmap-lab/demo",
                                               "image: ${DEMO_IMAGE:-roadmap-lab/demo}")) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "    build:\n      context: ../..\n      dockerfile: projects/demo/Dockerfile\n"
            "      target: pip\n", "",
            "names the project image roadmap-lab/demo but builds nothing", id="named-not-built",
        ),
        pytest.param("target: pip", "target: build",
                     "builds stage build; the image test builds the last stage (default)",
                     id="other-stage"),
        pytest.param("target: pip", "target: nowhere",
                     "builds stage nowhere, which Dockerfile does not have", id="no-such-stage"),
        pytest.param("      target: pip\n", "",
                     "stage default installs a PEX (built by Pants), not with pip", id="pex"),
        pytest.param("target: pip", "target: runtime", "stage runtime installs nothing with pip",
                     id="no-pip"),
        pytest.param("image: roadmap-lab/demo", "image: roadmap-lab/other",
                     "builds demo's Dockerfile but names it roadmap-lab/other", id="misnamed"),
    ],
)
def test_image_check_rejects_what_compose_should_not_build(
    fake_repo: Path, old: str, new: str, expected: str
) -> None:
    problems = problems_of(fake_repo, GOOD.replace(old, new))
    assert problems and any(expected in problem for problem in problems), problems


def test_image_check_rejects_a_build_missing_its_files(fake_repo: Path) -> None:
    (fake_repo / ".dockerignore").write_text("*\n!dist/*/*.pex\n")
    assert problems_of(fake_repo, GOOD) == [
        "projects/demo/docker-compose.yml: service app: .dockerignore keeps "
        "projects/demo/pyproject.toml out of the build context"
    ]
    # The Dockerfile's own ignore file replaces the context's.
    own = fake_repo / "projects" / "demo" / "Dockerfile.dockerignore"
    own.write_text("*\n!projects/demo\n")
    assert problems_of(fake_repo, GOOD) == []
    (fake_repo / "projects" / "demo" / "pyproject.toml").unlink()
    assert problems_of(fake_repo, GOOD) == [
        "projects/demo/docker-compose.yml: service app: stage pip copies "
        "projects/demo/pyproject.toml, which the repo does not have"
    ]


def test_image_check_rejects_a_project_without_an_image_test(fake_repo: Path) -> None:
    (fake_repo / "tests" / "test_image_demo.py").unlink()
    problems = problems_of(fake_repo, GOOD)
    assert problems == [
        "projects/demo/docker-compose.yml: service app: builds demo's image, which no image "
        "test builds"
    ]


REQUIRED_PASSWORD = "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"


def deployment_problems_of(fake_repo: Path, text: str) -> list[str]:
    path = fake_repo / "projects" / "demo" / "docker-compose.yml"
    path.write_text(text)
    return deployment_problems(path, yaml.safe_load(text), fake_repo)


def test_deployment_check_accepts_a_good_compose_file(fake_repo: Path) -> None:
    migrate = (
        "  migrate:\n    image: postgres:16\n    restart: \"no\"\n"
        "    depends_on:\n      app: {condition: service_healthy}\n"
    )
    text = GOOD.replace(
        "      app:\n        condition: service_healthy\n",
        "      app:\n        condition: service_healthy\n"
        "      migrate:\n        condition: service_completed_successfully\n",
    ) + migrate
    assert deployment_problems_of(fake_repo, text) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param("    healthcheck:\n      test: [\"CMD\", \"python\", \"-c\", \"print(1)\"]\n",
                     "", "service app: no healthcheck", id="no-healthcheck"),
        pytest.param("    depends_on:\n      app:\n        condition: service_healthy\n",
                     "    depends_on: [app]\n", "service db: depends_on without a condition",
                     id="no-condition"),
        pytest.param("condition: service_healthy", "condition: service_started",
                     "service db: depends_on app without waiting for it to be healthy",
                     id="started-not-healthy"),
        pytest.param(REQUIRED_PASSWORD, "${POSTGRES_PASSWORD:-postgres}",
                     "${POSTGRES_PASSWORD:-postgres}: a secret with a default",
                     id="default-secret"),
        pytest.param(REQUIRED_PASSWORD, "postgres",
                     "service db: POSTGRES_PASSWORD is not a required variable", id="fixed-secret"),
        pytest.param('["127.0.0.1:8000:8000"]', '["8000:8000"]',
                     "service app: publishes 8000:8000 beyond 127.0.0.1", id="all-interfaces"),
        pytest.param('["127.0.0.1:8000:8000"]', "[{target: 8000, published: 8000}]",
                     "beyond 127.0.0.1", id="long-syntax"),
    ],
)
def test_deployment_check_rejects_an_unsafe_compose_file(
    fake_repo: Path, old: str, new: str, expected: str
) -> None:
    assert old in GOOD
    problems = deployment_problems_of(fake_repo, GOOD.replace(old, new))
    assert problems and any(expected in problem for problem in problems), problems
