"""Resumable benchmark stages: the full-size benchmark takes hours on 2 cores, longer than one
sitting, so each stage (a seed's data, a seed's DPO and evaluation, the reward model, GRPO, the
speed comparison) writes a record when it finishes and ``--resume`` skips the stages already
recorded with the same settings.

A stage's record is one JSON file (with any files the stage keeps in a folder beside it), written
atomically: a folder built under a temporary name and renamed into place, so an interrupted stage
leaves nothing that looks finished. Each record carries what it ran beside (load, CPU seconds,
machine) and when, so a benchmark assembled from several sittings says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from roadmap_lab.machine import describe_machine
from roadmap_lab.results import BenchmarkConditions, atomic_write_json

from llm_alignment.errors import ConfigError

logger = logging.getLogger(__name__)
RECORD = "record.json"

# A stage's work gets its scratch folder (kept files go there) and returns its figures.
StageWork = Callable[[Path], dict[str, Any]]


def files_digest(paths: list[Path]) -> str:
    """A short hash of the files' names and bytes: a stage records the code (and weights) it
    ran with, so --resume never mixes records made by other code."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def sources_digest(functions: tuple[Callable[..., Any], ...]) -> str:
    """A short hash of the functions' source code (a stage that runs a few functions of a
    module need not depend on the rest of it)."""
    import inspect

    text = "\n".join(inspect.getsource(function) for function in functions)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint(settings: dict[str, Any]) -> str:
    """A short hash of the settings a stage ran with (sorted JSON)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class StageStore:
    """The records of one benchmark's stages, one folder per stage under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def folder(self, name: str) -> Path:
        return self.root / name

    def record(self, name: str) -> dict[str, Any] | None:
        """The finished stage's record, or None when the stage has not finished."""
        path = self.folder(name) / RECORD
        if not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def run(
        self, name: str, settings: dict[str, Any], work: StageWork, *, resume: bool
    ) -> dict[str, Any]:
        """The stage's record: reused when ``resume`` and it finished with the same settings,
        otherwise computed now (replacing any earlier record)."""
        earlier = self.record(name)
        wanted = fingerprint(settings)
        if resume and earlier is not None:
            if earlier["fingerprint"] != wanted:
                raise ConfigError(
                    f"stage {name!r} in {self.root} was recorded with other settings "
                    f"({earlier['settings']}); run without --resume or with another stage folder"
                )
            logger.info("Stage %s: finished %s, reused", name, earlier["finished_at"])
            return earlier
        return self._compute(name, settings, wanted, work)

    def _compute(
        self, name: str, settings: dict[str, Any], wanted: str, work: StageWork
    ) -> dict[str, Any]:
        final = self.folder(name)
        staging = final.with_name(f".{name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        logger.info("Stage %s: starting", name)
        conditions, started = BenchmarkConditions(), time.monotonic()
        result = work(staging)
        record = {
            "stage": name,
            "settings": settings,
            "fingerprint": wanted,
            "result": result,
            "seconds": round(time.monotonic() - started, 1),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": describe_machine(),
            "conditions": conditions.finish(),
        }
        atomic_write_json(staging / RECORD, record)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        logger.info("Stage %s: finished in %.0f s", name, record["seconds"])
        return record
