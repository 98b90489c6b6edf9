"""The eval harness with the tiny model: the generation cache (a rerun calls no model; a changed
prompt, parameter or model weights miss), batching, truncated answers, and the MLflow run linked
to the prompt version."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import mlflow
import pytest
from prompt_registry.harness import Harness
from prompt_registry.providers import GenerationRequest, LocalProvider
from prompt_registry.registry import Registry


def test_a_second_eval_makes_no_model_calls_and_a_changed_prompt_misses(settings) -> None:
    harness = Harness(settings)
    folder = harness.folder("capital-city")
    content = folder.content()
    config = content.config
    first = harness.evaluate(content, config)
    assert first.n == 30 and first.model_calls == 30 and first.cache_hits == 0
    calls = harness.provider.calls

    # A new process would share only the cache file: a fresh harness, same run folder.
    again = Harness(settings).evaluate(content, config)
    assert again.model_calls == 0 and again.cache_hits == 30
    assert [e.output for e in again.examples] == [e.output for e in first.examples]
    assert harness.provider.calls == calls

    changed = replace(content, template=content.template + " Answer briefly.")
    missed = harness.evaluate(changed, config)
    assert missed.cache_hits == 0 and missed.model_calls == 30


def test_parameters_are_part_of_the_cache_key(settings) -> None:
    harness = Harness(settings)
    content = harness.folder("capital-city").content()
    harness.evaluate(content, content.config)
    longer = replace(content, params=content.params.model_copy(update={"max_new_tokens": 17}))
    assert harness.evaluate(longer, content.config).cache_hits == 0


def test_without_the_cache_every_run_calls_the_model(settings) -> None:
    harness = Harness(settings.model_copy(update={"cache": False}))
    content = harness.folder("review-sentiment").content()
    for _ in range(2):
        assert harness.evaluate(content, content.config).model_calls == 32


def test_a_model_swapped_at_the_same_path_is_evaluated_again(settings, tmp_path: Path) -> None:
    from roadmap_lab.testing.tiny_models import tiny_causal_lm_dir

    model = Path(shutil.copytree(settings.model_dir, tmp_path / "model"))
    settings = settings.model_copy(update={"model_dir": model})
    content = Harness(settings).folder("capital-city").content()
    config = replace(content.config, examples=content.config.examples[:8])
    assert Harness(settings).evaluate(content, config).model_calls == 8
    assert Harness(settings).evaluate(content, config).model_calls == 0
    # Other weights at the same path: nothing from the cache.
    shutil.rmtree(model)
    shutil.copytree(tiny_causal_lm_dir(1), model)
    swapped = Harness(settings).evaluate(content, config)
    assert swapped.model_calls == 8 and swapped.cache_hits == 0


def test_batches_group_requests_and_count_every_example(tiny_llama_dir) -> None:
    batches: list[int] = []
    provider = LocalProvider(tiny_llama_dir, batch_size=4, progress=batches.append)
    requests = [GenerationRequest(f"question {i}", max_new_tokens=3) for i in range(6)]
    requests.append(GenerationRequest("other length", max_new_tokens=5))
    finished: list[int] = []
    outputs = provider.generate(requests, lambda index, _: finished.append(index))
    assert len(outputs) == 7 and provider.calls == 7
    # Requests with other sampling parameters never share a batch.
    assert batches == [4, 2, 1]
    assert sorted(finished) == list(range(7))


def test_answers_cut_at_the_token_limit_are_counted(settings) -> None:
    # The random model rarely ends an answer: three tokens cut nearly all of them.
    harness = Harness(settings)
    content = harness.folder("capital-city").content()
    short = replace(content, params=content.params.model_copy(update={"max_new_tokens": 3}))
    config = replace(content.config, examples=content.config.examples[:8])
    report = harness.evaluate(short, config)
    cut = [e.id for e in report.examples if e.truncated]
    assert report.truncated == len(cut) > 4
    assert report.summary()["truncated"] == report.truncated
    # The finish reason comes back from the cache too.
    again = Harness(settings).evaluate(short, config)
    assert again.cache_hits == 8 and again.truncated == report.truncated


def test_the_eval_run_is_linked_to_the_registered_prompt_version(settings) -> None:
    harness = Harness(settings)
    folder = harness.folder("capital-city")
    version, created = harness.registry.register(folder)
    assert (version, created) == (1, True)
    content = harness.registry.content("capital-city", version=version)
    report = harness.evaluate(content, content.config, run_name="linked")
    run = mlflow.get_run(report.run_id)
    assert run.data.tags["prompt.uri"] == "prompts:/capital-city/1"
    assert run.data.params["prompt_version"] == "1"
    assert run.data.metrics["pass_rate"] == report.pass_rate
    assert run.data.metrics["model_calls"] == 30
    # MLflow's own link between the run and the prompt version.
    assert "capital-city" in run.data.tags.get("mlflow.linkedPrompts", "")
    assert isinstance(harness.registry, Registry)


def test_a_new_process_finds_file_digests_in_the_store_until_the_file_is_rewritten(
    tmp_path: Path, monkeypatch
) -> None:
    from prompt_registry import providers

    monkeypatch.setenv("ROADMAP_LAB_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"a" * 1000)

    def no_hashing(path: Path) -> str:
        raise AssertionError(f"{path} hashed again")

    # Just written: not settled, so hashed but not stored (a write in the same clock tick could
    # keep the key with other content).
    digest = providers.file_digest(weights)
    providers.forget_file_digests()  # as a new process
    assert not (tmp_path / "cache" / "file-digests.sqlite").exists() or _stored_rows(tmp_path) == 0
    monkeypatch.setattr(providers, "SETTLED_NS", 0)
    assert providers.file_digest(weights) == digest
    providers.forget_file_digests()
    with monkeypatch.context() as patched:
        patched.setattr(providers, "sha256_file", no_hashing)
        assert providers.file_digest(weights) == digest
        # Switched off: the store is not read.
        providers.forget_file_digests()
        patched.setenv(providers.DIGEST_STORE_ENV, "off")
        with pytest.raises(AssertionError, match="hashed again"):
            providers.file_digest(weights)
    # Rewritten in place with the same size: its ctime moves, so it is hashed again.
    providers.forget_file_digests()
    weights.write_bytes(b"b" * 1000)
    assert providers.file_digest(weights) != digest


def _stored_rows(tmp_path: Path) -> int:
    import sqlite3

    with sqlite3.connect(tmp_path / "cache" / "file-digests.sqlite") as db:
        return int(db.execute("SELECT count(*) FROM file_digests").fetchone()[0])
