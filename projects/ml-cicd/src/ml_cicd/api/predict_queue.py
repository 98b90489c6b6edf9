"""A bounded queue in front of the prediction threads (load shedding).

At most ``capacity`` predictions wait or run in one worker. A request that finds the queue full
is refused at once (``QueueFull``: the route answers 503 with Retry-After) instead of waiting
into a late 504. A prediction that times out gives its slot back as soon as it stops: at once
when it had not started (its queued work is cancelled), when its thread finishes otherwise,
so work that nobody waits for any more still counts against the bound.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class QueueFull(Exception):
    """Every slot is taken: refuse the request now."""


class NotRunning(Exception):
    """The queue is not started (the service is starting or shutting down)."""


class PredictionQueue:
    def __init__(self, threads: int, capacity: int) -> None:
        if capacity < 1 or threads < 1:
            raise ValueError("a prediction queue needs at least one thread and one slot")
        self.threads = threads
        self.capacity = capacity
        self._pool: ThreadPoolExecutor | None = None
        self._pending = 0
        self._lock = threading.Lock()  # slots are given back from the prediction threads

    @property
    def pending(self) -> int:
        return self._pending

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="predict")

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None

    async def run(self, timeout_s: float, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a prediction thread; QueueFull at once when every slot is taken,
        TimeoutError after ``timeout_s`` (the queued work is cancelled if it had not started)."""
        pool = self._pool
        if pool is None:
            raise NotRunning
        with self._lock:
            if self._pending >= self.capacity:
                raise QueueFull
            self._pending += 1
        try:
            future = pool.submit(fn, *args)
        except RuntimeError:  # shut down meanwhile
            self._release()
            raise NotRunning from None
        future.add_done_callback(self._release)
        # wait_for cancels the wrapper on timeout, which cancels the work if it is still queued.
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)

    def _release(self, _: Future[Any] | None = None) -> None:
        with self._lock:
            self._pending -= 1
