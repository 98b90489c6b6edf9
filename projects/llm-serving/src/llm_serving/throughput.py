"""Throughput in the shape of vLLM's benchmark: requests/s, total tokens/s, output tokens/s."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Throughput:
    engine: str
    requests: int
    input_tokens: int
    output_tokens: int
    elapsed_s: float
    batch_size: int | None = None  # HF static batching only
    dtype: str | None = None  # HF only (vLLM's dtype is the engine's)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.elapsed_s

    @property
    def total_tokens_per_s(self) -> float:
        return (self.input_tokens + self.output_tokens) / self.elapsed_s

    @property
    def output_tokens_per_s(self) -> float:
        return self.output_tokens / self.elapsed_s

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Throughput:
        """The inverse of ``to_dict`` (which adds the derived rates)."""
        keys = (
            "engine", "requests", "input_tokens", "output_tokens", "elapsed_s", "batch_size",
            "dtype",
        )  # fmt: skip
        return cls(**{key: data[key] for key in keys})

    def line(self) -> str:
        """vLLM's own format (benchmarks/benchmark_throughput.py)."""
        return (
            f"Throughput: {self.requests_per_s:.2f} requests/s, "
            f"{self.total_tokens_per_s:.2f} total tokens/s, "
            f"{self.output_tokens_per_s:.2f} output tokens/s"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "elapsed_s": round(self.elapsed_s, 3),
            "requests_per_s": round(self.requests_per_s, 3),
            "total_tokens_per_s": round(self.total_tokens_per_s, 2),
            "output_tokens_per_s": round(self.output_tokens_per_s, 2),
        }


def count_output_tokens(token_ids: list[int], eos_ids: set[int], budget: int) -> int:
    """Tokens a request really produced: up to and including the first EOS, at most ``budget``."""
    for position, token in enumerate(token_ids[:budget]):
        if token in eos_ids:
            return position + 1
    return min(len(token_ids), budget)


def median_run(runs: Sequence[tuple[Throughput, T]]) -> tuple[Throughput, T]:
    """The run with the median output tokens/s (the lower middle one of an even count)."""
    ranked = sorted(runs, key=lambda run: run[0].output_tokens_per_s)
    return ranked[(len(ranked) - 1) // 2]


def fastest(results: Sequence[Throughput]) -> Throughput:
    return max(results, key=lambda result: result.output_tokens_per_s)
