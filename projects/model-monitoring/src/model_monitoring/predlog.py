"""The prediction log: JSON lines, one line per request batch, rotated by size.

Each worker process appends to its own files (``<kind>-<pid>.jsonl``, so workers never interleave
partial lines); a full file is renamed ``<kind>-<pid>-<time>.jsonl`` and the oldest renamed files
beyond ``backups`` are deleted. Kinds:

    predictions  {"ts", "model_version", "ids": [...], "inputs": {feature: [...]},
                  "prediction": [...], "confidence": [...]}   (null input = missing value)
    labels       {"ts", "ids": [...], "labels": [...]}

``LogTailer`` reads what all workers appended since its last call: it follows files by inode,
so a rename by rotation neither loses nor repeats lines. Once it has handed over every line of a
file whose writer process is gone (a worker that died or was replaced), it deletes the file.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

PREDICTIONS = "predictions"
LABELS = "labels"


class RotatingJsonLines:
    """Appends JSON lines to ``<folder>/<kind>-<pid>.jsonl``; thread-safe within a process."""

    def __init__(self, folder: Path, kind: str, max_bytes: int, backups: int) -> None:
        self.folder = folder
        self.kind = kind
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._pid = -1
        self._stream: Any = None
        self._size = 0  # of the open file: tell() would be a system call per line
        # msgspec writes NaN as null: a missing input stays a JSON null in the log.
        self._encoder = msgspec.json.Encoder()
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def path(self) -> Path:
        return self.folder / f"{self.kind}-{os.getpid()}.jsonl"

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line (NaN becomes null)."""
        line = self._encoder.encode(record) + b"\n"
        with self._lock:
            stream = self._open()
            stream.write(line)
            stream.flush()  # the drift job reads it from another process
            self._size += len(line)
            if self._size >= self.max_bytes:
                self._rotate()

    def _open(self) -> Any:
        if self._stream is None or self._pid != os.getpid():  # a fork gets its own file
            self._pid = os.getpid()
            self._stream = self.path.open("ab")
            self._size = self._stream.seek(0, os.SEEK_END)
        return self._stream

    def _rotate(self) -> None:
        self._stream.close()
        self._stream = None
        stem = f"{self.kind}-{os.getpid()}"
        self.path.rename(self.folder / f"{stem}-{time.time_ns()}.jsonl")
        rotated = sorted(self.folder.glob(f"{stem}-*.jsonl"))
        for old in rotated[: max(len(rotated) - self.backups, 0)]:
            old.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            if self._stream is not None:
                self._stream.close()
                self._stream = None


def writer_pid(path: Path) -> int | None:
    """The pid in ``<kind>-<pid>.jsonl`` or ``<kind>-<pid>-<time>.jsonl``."""
    parts = path.stem.split("-")
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True


class LogTailer:
    """Yields the records appended to ``<folder>/<kind>-*.jsonl`` since the previous call, and
    deletes a dead writer's file once every line of it has been yielded."""

    def __init__(self, folder: Path, kind: str) -> None:
        self.folder = folder
        self.kind = kind
        self._offsets: dict[int, int] = {}  # inode -> bytes consumed

    def read_new(self) -> Iterator[dict[str, Any]]:
        files = []
        for path in self.folder.glob(f"{self.kind}-*.jsonl"):
            try:
                files.append((path.stat().st_mtime_ns, path))
            except FileNotFoundError:  # deleted by rotation meanwhile
                continue
        seen = set()
        for _, path in sorted(files):  # oldest first: roughly time order across workers
            pid = writer_pid(path)
            # Checked before reading: a writer dead by now has appended its last line.
            finished = pid is not None and not process_alive(pid)
            try:
                stream = path.open("rb")
            except FileNotFoundError:
                continue
            with stream:
                inode = os.fstat(stream.fileno()).st_ino
                seen.add(inode)
                offset = self._offsets.get(inode, 0)
                stream.seek(offset)
                data = stream.read()
                end = data.rfind(b"\n") + 1  # a line still being written waits for next time
                self._offsets[inode] = offset + end
            for line in data[:end].splitlines():
                if line.strip():
                    yield msgspec.json.decode(line)
            if finished and end == len(data):  # the caller has taken every line above
                path.unlink(missing_ok=True)
        for inode in set(self._offsets) - seen:  # deleted files
            del self._offsets[inode]
