"""A small closed-loop HTTP load generator (threads with keep-alive connections) for the demo and
the tests: every request's start time, latency and status, so a report can show what a reload
did to the traffic. The benchmark uses wrk instead (a C client that leaves the server the CPU)."""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any

REVIEWS = [
    "Delicious and fresh, my kids love these snacks. Will buy again!",
    "The coffee tasted burnt and the bag arrived torn open.",
    "It is okay, nothing special, a bit pricey for what you get.",
    "Best tea I have had in years, smooth and fragrant.",
    "Stale chips, half the bag was crumbs. Not ordering again.",
    "My dog goes crazy for these treats, great value.",
    "Too sweet for my taste and the texture was odd.",
    "Arrived quickly, well packed, and tastes just like the store brand.",
]


@dataclass
class Sample:
    started: float  # seconds since the load began
    latency_s: float
    status: int  # HTTP status, 0 for a connection error or timeout
    model_version: str | None = None  # the registry version that answered


@dataclass
class LoadResult:
    samples: list[Sample] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return sum(1 for s in self.samples if s.status != 200)

    def summary(self) -> dict[str, Any]:
        ok = sorted(s.latency_s for s in self.samples if s.status == 200)

        def quantile(q: float) -> float | None:
            if not ok:
                return None
            return round(ok[min(len(ok) - 1, int(q * len(ok)))] * 1000, 2)

        return {
            "requests": len(self.samples),
            "failed": self.failed,
            "requests_per_s": round(len(self.samples) / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": quantile(0.50),
            "p99_ms": quantile(0.99),
            "mean_ms": round(statistics.fmean(ok) * 1000, 2) if ok else None,
        }


def run_load(
    base_url: str,
    seconds: float,
    concurrency: int = 4,
    batch: int = 8,
    stop: threading.Event | None = None,
) -> LoadResult:
    """POST /predict with ``batch`` reviews from ``concurrency`` threads for ``seconds`` (or until
    ``stop`` is set)."""
    import httpx

    body = {"texts": [REVIEWS[i % len(REVIEWS)] for i in range(batch)]}
    result = LoadResult()
    lock = threading.Lock()
    began = time.monotonic()
    deadline = began + seconds
    stop = stop or threading.Event()

    def worker() -> None:
        with httpx.Client(base_url=base_url, timeout=30.0) as client:
            while time.monotonic() < deadline and not stop.is_set():
                started = time.monotonic()
                version = None
                try:
                    reply = client.post("/predict", json=body)
                    status = reply.status_code
                    if status == 200:
                        version = reply.json()["model"].get("version")
                except httpx.HTTPError:
                    status = 0
                sample = Sample(started - began, time.monotonic() - started, status, version)
                with lock:
                    result.samples.append(sample)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.monotonic() - began
    result.samples.sort(key=lambda s: s.started)
    return result
