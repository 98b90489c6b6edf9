"""The artefact store: every step reads and writes through Airflow's ``ObjectStoragePath`` under
one root URL (a ``file://`` folder by default, any fsspec URL by setting), so tasks on workers
that share no disk pass each other URLs of the store, never local paths. Layout:

    slices/<id>.csv                               ingested slices: the bytes fetched, never replaced
    quarantine/<id>/{slice.csv,report.json}       a refused slice (failed validation, changed body)
    released/<id>/<sha12>/{slice.csv,report.json} a quarantined slice after `release`
    staging/<id>/<run>/...                        one run's work in progress, removed by publish
    models/<id>/<version>/{model.json,metrics.json,manifest.json}
    models/<id>/<version>/forward/<next id>.json  the model evaluated on the following week
    models/<id>/CURRENT                           the week's version
    models/CURRENT                                the newest week with a model, and its version
    reports/<id>.{json,html}                      the report DAG's metric trend

Each object is written under a temporary name and renamed into place: an atomic rename on a
POSIX filesystem, a copy of a complete object on an object store. An ingested slice is written
once (``write_once``: exclusive on a POSIX filesystem). A set of files has a marker
written last (a version's manifest.json, a quarantine's report.json), and pointers (CURRENT) are
written only after what they point at. A task's local scratch is a temp folder under
``scratch_dir``, deleted when the task ends."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from data_pipelines.errors import PermanentError
from data_pipelines.source import sha256_hex

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from data_pipelines.settings import ProjectSettings


@dataclass(frozen=True)
class ArtefactStore:
    root: ObjectStoragePath

    @classmethod
    def of(cls, settings: ProjectSettings) -> ArtefactStore:
        from airflow.sdk import ObjectStoragePath

        return cls(ObjectStoragePath(settings.output_url, conn_id=settings.output_conn_id))

    # --- the layout -----------------------------------------------------------------------

    def slice(self, key: str) -> ObjectStoragePath:
        return self.root / "slices" / f"{key}.csv"

    def quarantine(self, key: str) -> ObjectStoragePath:
        return self.root / "quarantine" / key

    def released(self, key: str) -> ObjectStoragePath:
        return self.root / "released" / key

    def staging(self, key: str, run_id: str) -> ObjectStoragePath:
        """One run's folder: two runs of a date (a backfill beside a manual run) never share it."""
        return self.root / "staging" / key / re.sub(r"[^A-Za-z0-9._-]", "_", run_id)

    def models(self, key: str | None = None) -> ObjectStoragePath:
        return self.root / "models" if key is None else self.root / "models" / key

    def report(self, key: str, suffix: str) -> ObjectStoragePath:
        return self.root / "reports" / f"{key}.{suffix}"

    def current_version(self, key: str) -> str | None:
        """The version published for week ``key``, or None."""
        pointer = self.models(key) / "CURRENT"
        return pointer.read_text().strip() if pointer.exists() else None

    def is_quarantined(self, key: str) -> bool:
        return (self.quarantine(key) / "report.json").exists()

    # --- reading and writing -----------------------------------------------------------

    def at(self, uri: str) -> ObjectStoragePath:
        """A URI that an earlier task passed on (an XCom), checked to lie in this store."""
        from airflow.sdk import ObjectStoragePath

        root = str(self.root).rstrip("/") + "/"
        if not uri.startswith(root):
            raise PermanentError(f"{uri} is not in the artefact store {self.root}")
        return ObjectStoragePath(uri, conn_id=self.root.conn_id)

    def read_pinned(self, uri: str, sha256: str) -> bytes:
        """The object at ``uri``, which must still have the hash an earlier task recorded."""
        data = self.at(uri).read_bytes()
        if sha256_hex(data) != sha256:
            raise PermanentError(f"{uri} changed since it was written (sha256 differs)")
        return data

    def write(self, path: ObjectStoragePath, data: bytes) -> ObjectStoragePath:
        """Write ``data`` to ``path`` all or nothing (a temporary object renamed into place)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.parent / f".{path.name}.{uuid.uuid4().hex}.partial"
        try:
            partial.write_bytes(data)
            partial.rename(path)
        finally:
            if partial.exists():
                partial.unlink()
        return path

    def write_once(self, path: ObjectStoragePath, data: bytes) -> bytes:
        """Write ``data`` to ``path`` unless an object is there already; the bytes at ``path``
        afterwards (the first writer's). On a POSIX filesystem the name is taken by a hard link,
        which fails when it exists, so of two writers at once one wins and the other sees its
        bytes; on an object store it is a check, then a write (no exclusive create here)."""
        if path.protocol != "file":
            if not path.exists():
                self.write(path, data)
            return path.read_bytes()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.parent / f".{path.name}.{uuid.uuid4().hex}.partial"
        try:
            partial.write_bytes(data)
            with contextlib.suppress(FileExistsError):
                os.link(partial.path, path.path)
        finally:
            if partial.exists():
                partial.unlink()
        return path.read_bytes()

    def upload(self, path: ObjectStoragePath, local: Path) -> ObjectStoragePath:
        """Copy the local file ``local`` to ``path`` all or nothing, streaming."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.parent / f".{path.name}.{uuid.uuid4().hex}.partial"
        try:
            with local.open("rb") as source, partial.open("wb") as target:
                shutil.copyfileobj(source, target)
            partial.rename(path)
        finally:
            if partial.exists():
                partial.unlink()
        return path

    def remove(self, path: ObjectStoragePath) -> None:
        """Delete an object or a folder and all under it (nothing when absent)."""
        if path.is_dir():
            path.rmdir(recursive=True)
        elif path.exists():
            path.unlink()


@contextlib.contextmanager
def scratch_folder(settings: ProjectSettings, name: str) -> Iterator[Path]:
    """A private local folder for one task's work, deleted when the block ends, however."""
    settings.scratch_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.scratch_dir, prefix=f"{name}-") as folder:
        yield Path(folder)
