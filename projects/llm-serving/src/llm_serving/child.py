"""Run a measurement in a child process: its own interpreter, environment and process group.

Both sides of the benchmark run this way (a vLLM engine, the HF baseline in one dtype), so they
get the same runtime (the environment is in place when the child's interpreter starts, as
``LD_PRELOAD`` must be), each gets the whole machine, and all their memory and worker processes are
gone when the child ends. The child writes its result atomically; the parent waits at most
``timeout_s`` for it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from roadmap_lab.results import atomic_write_json
from roadmap_lab.services import stop_process_group

from llm_serving.errors import EngineError

logger = logging.getLogger(__name__)

# How long a child that has written its result may take to exit before it is killed (vLLM's
# engine shutdown can wait forever on its own worker processes).
EXIT_GRACE_S = 60.0
# How long a child being stopped (timeout, Ctrl-C) gets between SIGTERM and SIGKILL.
STOP_GRACE_S = 10.0
POLL_S = 1.0


def loaded_openmp() -> list[str]:
    """The OpenMP runtimes mapped into this process: what ``LD_PRELOAD`` and torch really
    loaded (with Intel's preloaded, its symbols win over the GNU one torch links)."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            names = {os.path.basename(line.split()[-1]) for line in maps if "/" in line}
    except OSError:  # no /proc
        return []
    return sorted(name for name in names if name.startswith(("libiomp", "libgomp", "libomp")))


def _child_main(
    target: Callable[..., dict[str, Any]], args: tuple[Any, ...], result_path: str
) -> None:
    os.setsid()  # own process group: the parent can stop the child's processes with it
    atomic_write_json(Path(result_path), target(*args))


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_in_child(
    target: Callable[..., dict[str, Any]],
    args: tuple[Any, ...],
    env: dict[str, str],
    timeout_s: float,
    label: str,
) -> dict[str, Any]:
    """``target(*args)`` in a spawned child with ``env``; returns the dict it returned.

    Raises EngineError when the child fails or has no result after ``timeout_s`` (it is then
    stopped). Ctrl-C here stops the child too.
    """
    with tempfile.TemporaryDirectory(prefix="llm-serving-child-") as tmp:
        result_path = Path(tmp) / "result.json"
        # spawn: a clean interpreter (vLLM refuses to run in a forked child with threads).
        context = multiprocessing.get_context("spawn")
        child = context.Process(
            target=_child_main, args=(target, args, str(result_path)), name=label
        )
        with _environment(env):  # LD_PRELOAD must be there when the interpreter starts
            child.start()
        deadline = time.monotonic() + timeout_s
        try:
            while child.is_alive() and not result_path.is_file():
                if time.monotonic() > deadline:
                    raise EngineError(
                        f"{label} did not finish within {timeout_s:.0f} s and was stopped "
                        "(LLM_SERVING_ENGINE_TIMEOUT_S sets the limit)"
                    )
                child.join(timeout=POLL_S)
            child.join(timeout=EXIT_GRACE_S)
            if child.is_alive():
                logger.warning("%s still running after its result; stopping it", label)
        finally:
            # Always, Ctrl-C included: the child if it still runs, and whatever it left behind
            # in its process group (vLLM's engine core), so no engine outlives the call.
            if child.pid is not None:
                stop_process_group(child.pid, STOP_GRACE_S)
            if child.is_alive():  # stopped before it became its own group's leader
                child.kill()
            child.join()
        if not result_path.is_file():
            raise EngineError(f"{label} failed (exit code {child.exitcode}); see its log above")
        result: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
        return result
