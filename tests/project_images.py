"""Checks of a project's CPU image, built here the way CI builds it: each project's
`tests/test_image_<project>.py` describes its checks (an ImageCheck) and calls
`check_project_image`.

The PEX comes from `./pants package` (tests/BUILD lists it in that test file's
`runtime_package_dependencies`, so Pants builds it and puts it in the test sandbox);
`docker/build-image.sh` builds the project's Dockerfile with buildah (no Docker engine); the
project's smoke checks run inside the image as its non-root user, and a project with a service
starts it inside the image and is called over HTTP from outside. Each image's size and build time
(the build script's wall time: with builds side by side it includes sharing the cores) are recorded
as `figure.<project>.*` JUnit properties of the test suite, which the test command prints; the
image is removed afterwards. (The image store's growth is not: builds and prunes of other tests
share the store.)

One test file per project, so that Pants runs the image builds as separate processes and reuses a
cached result for a project whose image inputs did not change.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from repo_checks import run_build_script
from roadmap_lab.services import ManagedProcess, free_port, tcp_probe


@dataclass(frozen=True)
class Smoke:
    """A command run inside the image; it must exit 0 and print ``expect``."""

    command: tuple[str, ...]
    expect: str


@dataclass(frozen=True)
class Service:
    """A server started inside the image (``{port}`` in the command is a free port) and called
    from outside once ``ready_path`` answers 200."""

    command: tuple[str, ...]
    ready_path: str
    call: Callable[[str], None]
    startup_timeout_s: float = 600.0


@dataclass(frozen=True)
class ImageCheck:
    pex: str  # where runtime_package_dependencies put the PEX, relative to the sandbox root
    smoke: tuple[Smoke, ...]
    service: Service | None = None
    # Smoke checks every image gets: the non-root user of the repo's image style.
    common: tuple[Smoke, ...] = field(default=(Smoke(("id", "-u"), "10001"),))


def post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.status == 200
        return json.loads(response.read())


# Separates the checks' outputs in the one container that runs them all.
MARKER = "@@smoke-check"


def _staged_context(check: ImageCheck, repo: Path, folder: Path) -> Path:
    """A build context holding only the PEX, where the Dockerfile expects it (dist/...)."""
    pex = repo / check.pex
    assert pex.is_file(), f"{check.pex} is missing: tests/BUILD must list it as a package"
    target = folder / "dist" / check.pex
    target.parent.mkdir(parents=True)
    try:
        os.link(pex, target)  # the PEX is large; a hard link costs nothing
    except OSError:
        shutil.copy2(pex, target)
    return folder


def check_project_image(
    project: str,
    check: ImageCheck,
    repo: Path,
    tmp_path: Path,
    record_testsuite_property: Callable[[str, object], None],
) -> None:
    """Build ``project``'s image from its Dockerfile, run the checks, remove the image."""

    def record(name: str, value: object) -> None:
        record_testsuite_property(f"figure.{project}.{name}", value)

    context = _staged_context(check, repo, tmp_path / "context")
    dockerfile = repo / "projects" / project / "Dockerfile"
    tag = f"localhost/roadmap-lab/{project}-test:latest"
    started = time.monotonic()
    built = run_build_script(repo, str(dockerfile), str(context), tag, timeout=2400)
    build_s = round(time.monotonic() - started, 1)
    try:
        assert built.returncode == 0, built.stderr[-4000:]
        size = run_build_script(repo, "--size", tag)
        assert size.returncode == 0, size.stderr
        record("image_size", size.stdout.strip())
        record("image_build_s", build_s)

        for smoke, (code, output) in run_smoke_checks(repo, tag, (*check.common, *check.smoke)):
            assert code == 0, f"{smoke.command} exited with {code}: {output[-3000:]}"
            assert smoke.expect in output, f"{smoke.command} printed {output[-2000:]!r}"

        if check.service is not None:
            _call_service_from_outside(check.service, repo, tag, tmp_path, record)
    finally:
        removed = run_build_script(repo, "--remove", tag, timeout=600)
        assert removed.returncode == 0, removed.stderr


def run_smoke_checks(
    repo: Path, tag: str, checks: tuple[Smoke, ...]
) -> list[tuple[Smoke, tuple[int, str]]]:
    """Run every check in ONE container (each new container copies the whole image with the vfs
    driver) and return each check's exit code and output."""
    script = "\n".join(
        f"echo '{MARKER} {index}'; {shlex.join(smoke.command)} 2>&1; echo \"{MARKER} exit $?\""
        for index, smoke in enumerate(checks)
    )
    ran = run_build_script(repo, "--run", tag, "sh", "-c", script, timeout=900)
    assert ran.returncode == 0, ran.stderr[-3000:]
    sections = ran.stdout.split(f"{MARKER} ")[1:]
    results = []
    for index, smoke in enumerate(checks):
        header, _, body = sections[2 * index].partition("\n")
        code = sections[2 * index + 1].split()[1]
        assert header.strip() == str(index), ran.stdout[-3000:]
        results.append((smoke, (int(code), body)))
    return results


def _call_service_from_outside(
    service: Service,
    repo: Path,
    tag: str,
    tmp_path: Path,
    record: Callable[[str, object], None],
) -> None:
    port = free_port()
    command = [part.format(port=port) for part in service.command]
    base_url = f"http://127.0.0.1:{port}"
    argv = ["bash", str(repo / "docker" / "build-image.sh"), "--run", tag, *command]
    server = ManagedProcess(
        argv,
        name=f"{tag} service",
        log_path=tmp_path / "service.log",
        ready=f"{base_url}{service.ready_path}",
        startup_timeout_s=service.startup_timeout_s,
    )
    started = time.monotonic()
    with server:
        record("service_ready_s", round(time.monotonic() - started, 1))
        service.call(base_url)
        stopped_in = stop_like_docker(server, command)
        record("service_stop_s", stopped_in)
    assert not tcp_probe("127.0.0.1", port)(), "the service still listens after it was stopped"


def stop_like_docker(wrapper: ManagedProcess, command: list[str], grace_s: float = 90) -> float:
    """`docker stop`: SIGTERM to the container's main process only, then wait for it (and so the
    wrapper) to exit. Signalling the wrapper's whole group instead ends buildah first, and the
    server's own children (vLLM's engine) would be orphaned mid-shutdown."""
    program = _exec_target(command)
    main = [pid for pid in _descendants(wrapper.pid) if _runs(_cmdline(pid), program)]
    assert len(main) == 1, f"no single process runs {command} in the container: {main}"
    started = time.monotonic()
    os.kill(main[0], signal.SIGTERM)
    while wrapper.poll() is None:
        assert time.monotonic() - started < grace_s, f"{command} ignored SIGTERM for {grace_s} s"
        time.sleep(0.5)
    assert wrapper.poll() == 143 or wrapper.poll() == 0, wrapper.log_tail()
    return round(time.monotonic() - started, 1)


def _descendants(root: int) -> list[int]:
    """Every process below ``root`` in the process tree (from each /proc/<pid>/stat's ppid)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # After "(comm) ": state, ppid, ...
                ppid = int((entry / "stat").read_bytes().rpartition(b")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _exec_target(command: list[str]) -> list[str]:
    """The process ``command`` ends up as: ``env NAME=VALUE ... program`` execs the program."""
    if command[:1] != ["env"]:
        return command
    rest = command[1:]
    while rest and "=" in rest[0]:
        rest = rest[1:]
    return rest


def _runs(cmdline: list[str], command: list[str]) -> bool:
    """Whether a process's argv is ``command``: buildah's chroot runtime execs the program by its
    resolved path (``/usr/bin/python`` for ``python``), so argv[0] is compared by its name."""
    return (
        len(cmdline) == len(command)
        and Path(cmdline[0]).name == command[0]
        and cmdline[1:] == command[1:]
    )


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").rstrip("\0").split("\0")
