"""Load and validate showcase.toml, the list of projects the showcase runs."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TIMEOUT_S = 600.0
PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
# A Pants address with an explicit target name, e.g. "projects/foo:cli".
PANTS_ADDRESS = re.compile(r"[A-Za-z0-9._/-]*:[A-Za-z0-9._-]+")
KNOWN_KEYS = {
    "name", "title", "demo", "args", "timeout_s", "results", "command", "prepare", "prepare_args",
    "packages",
}  # fmt: skip


class RegistryError(ValueError):
    """showcase.toml is unreadable or invalid; the message is one line for the user."""


@dataclass(frozen=True)
class Project:
    name: str
    title: str
    demo: str | None  # Pants pex_binary address; None when `command` is given
    args: tuple[str, ...]
    timeout_s: float
    results: Path  # relative to the repo root unless absolute
    command: tuple[str, ...] | None
    # A pex_binary run before the demo (e.g. a step in another resolve); same timeout.
    prepare: str | None = None
    prepare_args: tuple[str, ...] = ()
    # Other pex_binaries the demo runs (a loop runs its projects' CLIs), built with the demos.
    packages: tuple[str, ...] = ()

    @property
    def folders(self) -> list[str]:
        """The folders whose Debian packages the demo needs: those of its Pants addresses."""
        addresses = [a for a in (self.demo, self.prepare, *self.packages) if a]
        return list(dict.fromkeys(a.partition(":")[0] for a in addresses)) or [self.name]


def load_registry(path: Path) -> list[Project]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryError(
            f"{path}: file not found (run from the repo root or pass --registry)"
        ) from None
    except OSError as error:
        raise RegistryError(f"{path}: cannot read: {error.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RegistryError(f"{path}: invalid TOML: {error}") from None
    return parse_registry(data, source=str(path))


def parse_registry(data: dict, source: str = "showcase.toml") -> list[Project]:
    unknown = sorted(set(data) - {"project"})
    if unknown:
        raise RegistryError(
            f"{source}: unknown top-level key(s) {', '.join(unknown)}; expected [[project]] tables"
        )
    entries = data.get("project", [])
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise RegistryError(f"{source}: 'project' must be an array of tables ([[project]])")

    projects: list[Project] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries, start=1):
        project = _parse_project(entry, f"{source}: project #{index}")
        if project.name in seen:
            raise RegistryError(f"{source}: project #{index}: duplicate name {project.name!r}")
        seen.add(project.name)
        projects.append(project)
    return projects


def _parse_project(entry: dict, where: str) -> Project:
    name = entry.get("name")
    if name is None:
        raise RegistryError(f"{where}: missing required key 'name'")
    if not isinstance(name, str) or not PROJECT_NAME.fullmatch(name):
        raise RegistryError(
            f"{where}: 'name' must be a folder name like 'model-monitoring', got {name!r}"
        )
    where = f"{where} ({name!r})"

    unknown = sorted(set(entry) - KNOWN_KEYS)
    if unknown:
        raise RegistryError(
            f"{where}: unknown key(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(KNOWN_KEYS))}"
        )

    title = entry.get("title")
    if title is None:
        raise RegistryError(f"{where}: missing required key 'title'")
    if not isinstance(title, str) or not title.strip():
        raise RegistryError(f"{where}: 'title' must be a non-empty string")

    command = entry.get("command")
    if command is not None:
        command = _string_list(command, "command", where)
        if not command:
            raise RegistryError(f"{where}: 'command' must not be empty")

    demo = entry.get("demo")
    if demo is None and command is None:
        raise RegistryError(f"{where}: missing required key 'demo' (or give 'command')")
    if demo is not None and (not isinstance(demo, str) or not PANTS_ADDRESS.fullmatch(demo)):
        raise RegistryError(
            f"{where}: 'demo' must be a Pants address like 'projects/{name}:cli', got {demo!r}"
        )

    args = _string_list(entry.get("args", []), "args", where)

    prepare = entry.get("prepare")
    if prepare is not None and (
        not isinstance(prepare, str) or not PANTS_ADDRESS.fullmatch(prepare)
    ):
        raise RegistryError(
            f"{where}: 'prepare' must be a Pants address like 'projects/{name}:prepare', "
            f"got {prepare!r}"
        )
    prepare_args = _string_list(entry.get("prepare_args", []), "prepare_args", where)
    packages = _string_list(entry.get("packages", []), "packages", where)
    for address in packages:
        if not PANTS_ADDRESS.fullmatch(address):
            raise RegistryError(
                f"{where}: 'packages' holds Pants addresses like 'projects/{name}:cli', "
                f"got {address!r}"
            )
    if prepare_args and prepare is None:
        raise RegistryError(f"{where}: 'prepare_args' given without 'prepare'")

    timeout_s = entry.get("timeout_s", DEFAULT_TIMEOUT_S)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or timeout_s <= 0:
        raise RegistryError(
            f"{where}: 'timeout_s' must be a positive number of seconds, got {timeout_s!r}"
        )

    results = entry.get("results", f"dist/{name}/results.json")
    if not isinstance(results, str) or not results.strip():
        raise RegistryError(f"{where}: 'results' must be a path string, got {results!r}")

    return Project(
        name=name,
        title=title.strip(),
        demo=demo,
        args=tuple(args),
        timeout_s=float(timeout_s),
        results=Path(results),
        command=tuple(command) if command is not None else None,
        prepare=prepare,
        prepare_args=tuple(prepare_args),
        packages=tuple(packages),
    )


def _string_list(value: object, key: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise RegistryError(f"{where}: {key!r} must be a list of strings, got {value!r}")
    return value
