"""The files the uvicorn workers of one service share, in ``settings.workers_dir`` (``run_server``
makes a fresh folder per start):

    reload.lock          flock: one reload at a time across the workers
    state.json           the model every worker must serve (``committed``) and the change under
                         way (``proposal``: generation, URI, pinned registry version, leader,
                         phase prepare / commit / abort); written only by the lock holder
    worker-<pid>.json    each worker's own report: the generation and model it serves, and the
                         generation it has prepared (loaded and smoke-tested) or failed to

Every write is a temp file renamed into place, so a reader never sees half a file. A worker that
died without removing its report is ignored (its pid no longer runs). Without a folder (an app
built on its own, as tests and the fuzzer do) the group is just this process.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from roadmap_lab.results import atomic_write_json

STATE_FILE = "state.json"
LOCK_FILE = "reload.lock"
STATUS_PREFIX = "worker-"

Phase = Literal["prepare", "commit", "abort"]


@dataclass(frozen=True)
class Target:
    """A model every worker can load the same way: the URI and, for a registry alias, the
    version the leader resolved (so an alias that moves meanwhile cannot split the workers)."""

    generation: int
    uri: str
    version: str | None


@dataclass(frozen=True)
class Proposal(Target):
    leader: int
    phase: Phase


@dataclass(frozen=True)
class SharedState:
    committed: Target | None = None
    proposal: Proposal | None = None

    @property
    def latest_generation(self) -> int:
        return max(
            self.committed.generation if self.committed else 0,
            self.proposal.generation if self.proposal else 0,
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


class WorkerGroup:
    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.pid = os.getpid()
        self._thread_lock = threading.Lock()
        self._lock_file: int | None = None
        self._seen: tuple[int, int, int] | None = None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    @property
    def shared(self) -> bool:
        return self.folder is not None

    # --- the reload lock ---

    def try_lock(self) -> bool:
        """Take the group's reload lock without waiting; False while another reload holds it
        (in this worker or another)."""
        if not self._thread_lock.acquire(blocking=False):
            return False
        if self.folder is None:
            return True
        descriptor = os.open(self.folder / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            self._thread_lock.release()
            return False
        self._lock_file = descriptor
        return True

    def unlock(self) -> None:
        if self._lock_file is not None:
            os.close(self._lock_file)  # closing releases the flock
            self._lock_file = None
        self._thread_lock.release()

    # --- the shared state ---

    def read_state(self) -> SharedState:
        raw = self._read(STATE_FILE) if self.folder is not None else None
        if raw is None:
            return SharedState()
        committed = raw.get("committed")
        proposal = raw.get("proposal")
        return SharedState(
            Target(**committed) if committed else None, Proposal(**proposal) if proposal else None
        )

    def write_state(self, state: SharedState) -> None:
        """Only the holder of the reload lock writes the state."""
        if self.folder is not None:
            atomic_write_json(self.folder / STATE_FILE, asdict(state))

    def state_changed(self) -> bool:
        """True when state.json was replaced since the last call (a cheap stat)."""
        if self.folder is None:
            return False
        try:
            stat = (self.folder / STATE_FILE).stat()
        except FileNotFoundError:
            return False
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        changed, self._seen = seen != self._seen, seen
        return changed

    # --- the workers' reports ---

    def report(self, serving: dict[str, Any] | None, prepared: dict[str, Any] | None) -> None:
        """This worker's report: what it serves (``LoadedModel.info()`` with the generation) and
        the generation it prepared: ``{"generation", "ok", "reason"}``."""
        if self.folder is not None:
            status = {"pid": self.pid, "serving": serving, "prepared": prepared}
            atomic_write_json(self.folder / f"{STATUS_PREFIX}{self.pid}.json", status)

    def withdraw(self) -> None:
        if self.folder is not None:
            (self.folder / f"{STATUS_PREFIX}{self.pid}.json").unlink(missing_ok=True)

    def reports(self) -> list[dict[str, Any]]:
        """The reports of the workers that still run, this one included, by pid."""
        if self.folder is None:
            return []
        found = []
        for path in sorted(self.folder.glob(f"{STATUS_PREFIX}*.json")):
            raw = self._read(path.name)
            if raw is not None and _pid_alive(int(raw["pid"])):
                found.append(raw)
        return found

    def peer_reports(self) -> list[dict[str, Any]]:
        return [report for report in self.reports() if report["pid"] != self.pid]

    def _read(self, name: str) -> dict[str, Any] | None:
        assert self.folder is not None
        try:
            raw: dict[str, Any] = json.loads((self.folder / name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return raw
