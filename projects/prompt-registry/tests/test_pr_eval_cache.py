"""The eval harness with the tiny model: the generation cache (a rerun calls no model, a changed
prompt misses), batching, and the MLflow run linked to the prompt version."""

from __future__ import annotations

from dataclasses import replace

import mlflow
from prompt_registry.harness import Harness
from prompt_registry.providers import GenerationRequest, LocalProvider
from prompt_registry.registry import Registry


def test_a_second_eval_makes_no_model_calls_and_a_changed_prompt_misses(settings) -> None:
    harness = Harness(settings)
    folder = harness.folder("capital-city")
    content = folder.content()
    first = harness.evaluate(folder, content)
    assert first.n == 30 and first.model_calls == 30 and first.cache_hits == 0
    calls = harness.provider.calls

    # A new process would share only the cache file: a fresh harness, same run folder.
    again = Harness(settings).evaluate(folder, content)
    assert again.model_calls == 0 and again.cache_hits == 30
    assert [e.output for e in again.examples] == [e.output for e in first.examples]
    assert harness.provider.calls == calls

    changed = replace(content, template=content.template + " Answer briefly.")
    missed = harness.evaluate(folder, changed)
    assert missed.cache_hits == 0 and missed.model_calls == 30


def test_parameters_are_part_of_the_cache_key(settings) -> None:
    harness = Harness(settings)
    folder = harness.folder("capital-city")
    content = folder.content()
    harness.evaluate(folder, content)
    longer = replace(content, params=content.params.model_copy(update={"max_new_tokens": 17}))
    assert harness.evaluate(folder, longer).cache_hits == 0


def test_without_the_cache_every_run_calls_the_model(settings) -> None:
    harness = Harness(settings.model_copy(update={"cache": False}))
    folder = harness.folder("review-sentiment")
    for _ in range(2):
        assert harness.evaluate(folder, folder.content()).model_calls == 32


def test_batches_group_requests_and_count_every_example(tiny_llama_dir) -> None:
    batches: list[int] = []
    provider = LocalProvider(tiny_llama_dir, batch_size=4, progress=batches.append)
    requests = [GenerationRequest(f"question {i}", max_new_tokens=3) for i in range(6)]
    requests.append(GenerationRequest("other length", max_new_tokens=5))
    outputs = provider.generate(requests)
    assert len(outputs) == 7 and provider.calls == 7
    # Requests with other sampling parameters never share a batch.
    assert batches == [4, 2, 1]


def test_the_eval_run_is_linked_to_the_registered_prompt_version(settings) -> None:
    harness = Harness(settings)
    folder = harness.folder("capital-city")
    version, created = harness.registry.register(folder)
    assert (version, created) == (1, True)
    content = harness.registry.content("capital-city", version=version)
    report = harness.evaluate(folder, content, run_name="linked")
    run = mlflow.get_run(report.run_id)
    assert run.data.tags["prompt.uri"] == "prompts:/capital-city/1"
    assert run.data.params["prompt_version"] == "1"
    assert run.data.metrics["pass_rate"] == report.pass_rate
    assert run.data.metrics["model_calls"] == 30
    # MLflow's own link between the run and the prompt version.
    assert "capital-city" in run.data.tags.get("mlflow.linkedPrompts", "")
    assert isinstance(harness.registry, Registry)
