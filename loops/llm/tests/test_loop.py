"""The loop on real components, one stack for the module: the loop's MLflow server, a small
adapter trained and registered by llm-alignment's CLI, llm-serving's vLLM serving base + adapter
(one vLLM start), prompt-registry's CLI evaluating and gating. Then the gate's refusal (a floor
the adapter cannot reach) on a fresh registry: production stays on the base's version. Then the
HF side of the benchmark: the adapter merged by llm-alignment, prompt-registry's local provider.
The projects run from their PEXes (runtime_package_dependencies), never imported."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from llm_loop.benchmark import agreement, hf_evaluation
from llm_loop.demo import PAGE, loop_record
from llm_loop.evaluation import GateOutcome, evaluate_control, gate_adapter, production_version
from llm_loop.report import control_figures, eval_provider, pair_answers, paired_gain, pass_rates
from llm_loop.serving import served_models
from llm_loop.settings import LoopSettings
from llm_loop.stack import LoopStack, loop_stack, tracking_server
from roadmap_lab.results import ResultsWriter

pytestmark = pytest.mark.slow


def loop_settings(**values: Any) -> LoopSettings:
    """Settings with the projects' PEXes where runtime_package_dependencies puts them in the
    test sandbox."""
    return LoopSettings(
        alignment_pex=Path("projects.llm-alignment/cli.pex"),
        serving_pex=Path("projects.llm-serving/cli.pex"),
        prompt_registry_pex=Path("projects.prompt-registry/cli.pex"),
        **values,
    )


def preference_file(path: Path) -> Path:
    """A few TRL conversational pairs on training rule families (answers in one word, without
    a given word): enough for one real DPO step (building pairs from SmolLM2 takes minutes)."""
    pairs = [
        ("What colour is snow? Answer with one word only.", "White.", "Snow is usually white."),
        ("Name a fruit that is yellow. One word, nothing else.", "Banana", "A banana is yellow."),
        ("Describe the sea without using the word 'water'.", "Blue, wide and salty.",
         "The sea is a lot of water."),
        ("Which animal barks? Reply with a single word.", "Dog", "The animal that barks is a dog."),
    ]  # fmt: skip
    rows = [
        {"prompt": [{"role": "user", "content": prompt}],
         "chosen": [{"role": "assistant", "content": chosen}],
         "rejected": [{"role": "assistant", "content": rejected}]}
        for prompt, chosen, rejected in pairs
    ]  # fmt: skip
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopStack]:
    folder = tmp_path_factory.mktemp("loop")
    # A small real adapter: one DPO step on a few pairs, registered by llm-alignment's CLI.
    settings = loop_settings(
        train=True, train_data=preference_file(folder / "pairs.jsonl"), train_max_steps=1,
        run_dir=folder / "run", dist_dir=folder / "dist",
    )  # fmt: skip
    with loop_stack(settings, folder / "stack") as running:
        yield running


@pytest.fixture(scope="module")
def settings(stack: LoopStack) -> LoopSettings:
    return loop_settings(train=True)


@pytest.fixture(scope="module")
def gated(
    stack: LoopStack, settings: LoopSettings, tmp_path_factory: pytest.TempPathFactory
) -> GateOutcome:
    folder = tmp_path_factory.mktemp("gate")
    trained_rules = stack.adapter.trained_rules
    return gate_adapter(
        settings, stack.steps, folder, stack.tracking_uri, stack.base_url, trained_rules
    )


def floor_of(outcome: GateOutcome) -> float:
    spec = yaml.safe_load((outcome.golden.parent / "prompt.yaml").read_text())
    return float(spec["eval"]["min_pass_rate"])


def test_the_adapter_is_trained_registered_and_served_beside_the_base(
    stack: LoopStack, settings: LoopSettings
) -> None:
    adapter = stack.adapter
    assert adapter.origin == "trained" and adapter.tracking_uri == stack.tracking_uri
    assert adapter.registered_model == settings.registered_model and adapter.version == "1"
    assert adapter.trained_rules is None  # trained on a --data file: no data card to check
    assert {"smollm2", "dpo", "zero-lora"} <= set(served_models(stack.base_url))
    assert stack.control is not None and (stack.control / "adapter_config.json").is_file()


def test_both_are_evaluated_and_the_gate_decides_by_its_rule(
    gated: GateOutcome, stack: LoopStack, tmp_path: Path
) -> None:
    assert (gated.base_version, gated.adapter_version, gated.production_before) == (1, 2, 1)
    assert eval_provider(gated.base_eval).endswith(f"{stack.base_url}:smollm2")
    assert eval_provider(gated.adapter_eval).endswith(f"{stack.base_url}:dpo")
    pairs = pair_answers(gated.base_eval, gated.adapter_eval, gated.golden)
    golden_rows = [line for line in gated.golden.read_text().splitlines() if line.strip()]
    assert len(pairs) == len(golden_rows)
    base, adapter = pass_rates(pairs)
    # prompt-registry's rule with the loop's --min-gain 0, recomputed from its own answers: the
    # paired gain's lower bound above 0 (the same interval as the card's) and the floor reached.
    expected = paired_gain(pairs).low > 0 and adapter.estimate >= floor_of(gated)
    assert gated.passed is expected
    assert json.loads(gated.gate_json.read_text())[0]["passed"] is expected
    assert gated.production_after == (2 if expected else 1)
    assert production_version(stack.tracking_uri, gated.prompt) == gated.production_after
    writer = ResultsWriter("llm-loop", tmp_path / "dist", "python -m llm_loop demo")
    figures, record = loop_record(writer, stack.adapter, gated)
    results = json.loads(writer.write({"headline": figures, **record}).read_text())
    assert results["gate"]["decision"] == ("promoted" if expected else "refused")
    page = (writer.folder / PAGE).read_text()
    assert all(pair.id in page for pair in pairs)


def test_the_zero_lora_answers_as_the_base_does(
    gated: GateOutcome, stack: LoopStack, settings: LoopSettings
) -> None:
    # The adapter with its B matrices zeroed has the base's weights: through vLLM's LoRA path
    # its greedy answers are the base's, but for rounding in the LoRA kernels and batching.
    control = evaluate_control(
        settings, stack.steps, gated.base_eval.parent, stack.tracking_uri, stack.base_url
    )
    assert eval_provider(control).endswith(f"{stack.base_url}:zero-lora")
    floor = pair_answers(gated.base_eval, control, gated.golden)
    versus = pair_answers(control, gated.adapter_eval, gated.golden)
    noise, over_zero = control_figures(floor, versus)
    identical, n = map(int, noise["identical_answers"].split("/"))
    assert n == len(floor) and identical >= n // 2, noise
    zero_passes = sum(p.adapter.passed for p in floor)
    adapter_passes = sum(p.adapter.passed for p in versus)
    assert over_zero["fixed"] - over_zero["broken"] == adapter_passes - zero_passes


def test_a_refused_gate_leaves_production_on_the_base(
    gated: GateOutcome, stack: LoopStack, settings: LoopSettings, tmp_path: Path
) -> None:
    refusing = settings.model_copy(update={"adapter_floor": 1.0})
    # The first gate's generations (same endpoint, models and prompt text): only the registry's
    # steps and decisions run again, on a fresh registry.
    cache = gated.base_eval.parent / "run" / "generations.sqlite"
    (tmp_path / "gate" / "run").mkdir(parents=True)
    shutil.copyfile(cache, tmp_path / "gate" / "run" / cache.name)
    with tracking_server(tmp_path / "registry") as registry:
        outcome = gate_adapter(
            refusing, stack.steps, tmp_path / "gate", registry, stack.base_url, None
        )
        assert production_version(registry, outcome.prompt) == 1
    pairs = pair_answers(outcome.base_eval, outcome.adapter_eval, outcome.golden)
    assert pass_rates(pairs)[1].estimate < 1.0  # the floor is out of the adapter's reach
    assert not outcome.passed and outcome.decision == "refused"
    assert "floor of the candidate's eval config" in outcome.reason
    assert outcome.production_before == outcome.production_after == 1
    assert not (tmp_path / "gate" / "promote-adapter.md").exists()


def test_hf_evaluates_the_same_version_on_the_merged_adapter(
    gated: GateOutcome, stack: LoopStack, settings: LoopSettings, tmp_path: Path
) -> None:
    hf = hf_evaluation(
        settings, stack.steps, tmp_path, stack.adapter, gated, stack.tracking_uri, limit=2
    )
    assert (tmp_path / "merged" / "config.json").is_file()
    assert eval_provider(tmp_path / "hf-base.json").startswith("local:")
    assert eval_provider(tmp_path / "hf-adapter.json") == f"local:{tmp_path / 'merged'}"
    vllm = pair_answers(gated.base_eval, gated.adapter_eval, gated.golden)
    record = agreement(vllm, hf)
    assert record["prompts"] == 2 and [p.id for p in hf] == [p.id for p in vllm[:2]]
    # A plain model folder: HF ran the merged weights, not PEFT on top of the base.
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
