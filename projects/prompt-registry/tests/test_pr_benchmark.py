"""The benchmark command end to end on the tiny model and the smallest sizes."""

from __future__ import annotations

import json

from prompt_registry.benchmark import run_benchmark
from prompt_registry.settings import BenchmarkSizes


def test_benchmark_writes_every_run_and_the_headline_targets(settings) -> None:
    sizes = BenchmarkSizes(examples=4, batch_size=2, max_new_tokens=2, repeats=2)
    results_file, published = run_benchmark(settings, sizes, "python -m prompt_registry benchmark")
    assert published is None
    results = json.loads(results_file.read_text())
    assert results_file.parent == settings.dist_dir / "prompt-registry" / "benchmark"
    assert [h["target"] for h in results["headline"]] == [">= 3", ">= 20"]
    # Two repeats: each speed-up is a paired ratio over them, with its computed verdict.
    for item in results["headline"]:
        assert item["interval"]["n"] == 2
        assert item["interval"]["method"] == "paired ratio (t on log ratios)"
        assert item["verdict"] in ("met", "within noise", "missed")
    assert results["conditions"]["cores"] >= 1
    batching = results["batching"]["runs_in_order"]
    # Alternating order: batched first in repeat 0, one at a time first in repeat 1.
    assert [r["batch_size"] for r in batching] == [2, 1, 1, 2]
    cache = results["cache"]["runs_in_order"]
    assert [(r["run"], r["model_calls"], r["cache_hits"]) for r in cache] == [
        ("cold", 32, 0),
        ("cached", 0, 32),
    ] * 2
    assert results["plots"] == ["throughput.png"]
    assert (results_file.parent / "throughput.png").is_file()
