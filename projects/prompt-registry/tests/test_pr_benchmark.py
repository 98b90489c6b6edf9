"""The benchmark command end to end on the tiny model and the smallest sizes."""

from __future__ import annotations

import json

import pytest
from prompt_registry.benchmark import run_benchmark
from prompt_registry.errors import BenchmarkError
from prompt_registry.settings import BenchmarkSizes


def test_benchmark_writes_every_run_and_the_headline_targets(settings) -> None:
    sizes = BenchmarkSizes(examples=4, batch_size=2, max_new_tokens=2, repeats=2)
    results_file, published = run_benchmark(settings, sizes, "python -m prompt_registry benchmark")
    assert published is None
    results = json.loads(results_file.read_text())
    assert results_file.parent == settings.dist_dir / "prompt-registry" / "benchmark"
    assert [h["target"] for h in results["headline"]] == [">= 3", ">= 20", None]
    assert results["headline"][0]["name"] == (
        "Batched local generation (batch 2) vs one at a time, model warm, 2 interleaved repeats"
    )
    # Two repeats: each speed-up is a paired ratio over them, with its computed verdict.
    for item in results["headline"]:  # the third: the cached side with the weights hashed
        assert item["interval"]["n"] == 2
        assert item["interval"]["method"] == "paired ratio (t on log ratios)"
    assert [h["verdict"] in ("met", "within noise", "missed") for h in results["headline"]] == [
        True,
        True,
        False,  # no target, no verdict
    ]
    assert results["headline"][1]["outputs_identical"] == "64/64"
    assert results["conditions"]["cores"] >= 1
    batching = results["batching"]
    # Alternating order: batched first in repeat 0, one at a time first in repeat 1.
    assert [r["batch_size"] for r in batching["runs_in_order"]] == [2, 1, 1, 2]
    # Every output of every repeat compared; mismatches listed (each with both texts).
    assert batching["outputs_compared"] == 8
    mismatches = batching["mismatches"]
    assert batching["outputs_identical"] == 8 - len(mismatches)
    assert all({"batched", "one_at_a_time", "example"} <= set(m) for m in mismatches)
    assert results["headline"][0]["outputs_identical"] == f"{8 - len(mismatches)}/8"
    # The uncached side generates with the loaded model; the rerun finds all in the cache.
    cache = results["cache"]
    assert [(r["run"], r["model_calls"], r["cache_hits"]) for r in cache["runs_in_order"]] == [
        ("uncached", 32, 0),
        ("cached", 0, 32),
    ] * 2
    assert cache["outputs_differing"] == 0
    assert results["weights_hash_seconds"] >= 0
    assert results["plots"] == ["throughput.png"]
    assert (results_file.parent / "throughput.png").is_file()
    assert all("cpu_seconds" in r for r in batching["runs_in_order"] + cache["runs_in_order"])
    assert results["torch_threads"] >= 1


def test_publish_refuses_sizes_other_than_the_claims(settings) -> None:
    sizes = BenchmarkSizes(examples=4, batch_size=2, max_new_tokens=2, repeats=2)
    with pytest.raises(BenchmarkError, match="default sizes"):
        run_benchmark(settings, sizes, "python -m prompt_registry benchmark", publish=True)
