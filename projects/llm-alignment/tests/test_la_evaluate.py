"""The evaluation: the pass/fail judge, win-rates per group with cluster intervals over templates,
the length-controlled figure, pooling seeds, and the Monte Carlo KL estimator (against the
analytic KL of two categorical distributions, and exactly 0 for a policy equal to its base)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llm_alignment.evaluate import (
    MIN_CLUSTERS,
    judge,
    length_band,
    length_matched,
    mc_kl,
    outcome,
    pooled_win_rates,
    rejudge,
    sampled_log_probs,
    summarise,
    win_rate,
)
from llm_alignment.prompts import HELDOUT_RULE, HELDOUT_TEMPLATE


def test_the_judge_is_pass_fail_so_brevity_alone_does_not_win() -> None:
    row = {"prompt": "p", "template_id": "t", "rule": "one_word", "check": {"rule": "one_word"}}
    # The shorter answer scores higher graded (1/words), but neither follows the rule: a tie.
    tie = judge(row, "The capital of France is Paris.", "Paris, France")
    assert tie["policy_score"] > tie["base_score"] and tie["outcome"] == 0.5
    win = judge(row, "It is Paris.", "Paris")
    assert (win["base_pass"], win["policy_pass"], win["outcome"]) == (False, True, 1.0)
    assert judge(row, "Paris", "It is Paris.")["outcome"] == 0.0
    # Rows of data sets built before the split are grouped by their rule.
    case = {"prompt": "p", "rule": "letter_case", "check": {"rule": "letter_case", "case": "lower"}}
    assert judge(case, "a", "b")["group"] == HELDOUT_RULE
    assert outcome(1.0, 0.0) == 1.0 and outcome(0.0, 0.0) == 0.5


def test_a_cut_down_answer_does_not_win_a_held_out_rule() -> None:
    # A trained habit of brevity: the base's answer breaks the rule, the policy's says too
    # little to be the description asked for. Neither passes: a tie, not a win.
    check = {"rule": "no_commas", "min_words": 6}
    row: dict[str, Any] = {"prompt": "Describe a garden without commas.", "check": check}
    row |= {"template_id": "commas/none", "rule": "no_commas", "group": HELDOUT_RULE}
    base = "A garden is green, quiet and full of flowers, bees and birds."
    for policy in ("Green.", "A garden grows."):
        assert judge(row, base, policy)["outcome"] == 0.5
    assert judge(row, base, "A garden is green and full of flowers.")["outcome"] == 1.0


def sample(group: str, template: str, result: float, base: str = "a", policy: str = "b") -> dict:
    return {
        "group": group,
        "template_id": template,
        "rule": template.split("/")[0],
        "prompt": "p",
        "check": {"rule": "one_word"},
        "base": base,
        "policy": policy,
        "base_pass": result == 0.0,
        "policy_pass": result == 1.0,
        "base_score": 0.5,
        "policy_score": 0.5,
        "outcome": result,
        "base_truncated": False,
        "policy_truncated": False,
    }


def test_win_rate_counts_ties_as_half_with_a_cluster_interval() -> None:
    figure = win_rate([1.0, 1.0, 0.5, 0.0], ["a", "a", "b", "b"])
    assert figure["win_rate"] == pytest.approx(0.625)
    assert (figure["wins"], figure["ties"], figure["losses"]) == (2, 1, 1)
    assert (figure["n"], figure["n_clusters"], figure["verified"]) == (4, 2, False)
    assert figure["ci_low"] <= 0.625 <= figure["ci_high"] and "2 clusters" in figure["method"]
    one = win_rate([1.0, 0.0], ["a", "a"])
    assert one["ci_low"] is None and not one["verified"]
    ten = win_rate([1.0, 0.5] * 10, [f"t{i}" for i in range(10) for _ in range(2)])
    assert ten["n_clusters"] == MIN_CLUSTERS and ten["verified"]


def test_summary_per_group_with_length_control_and_few_cluster_rules() -> None:
    rules = [sample(HELDOUT_RULE, f"quoted/{i}", 1.0) for i in range(10)]
    rules += [
        sample(HELDOUT_RULE, f"quoted/{i}", 0.0, policy="far longer answer here ok")
        for i in range(10)
    ]
    templates = [sample(HELDOUT_TEMPLATE, f"json/{i}", 0.5) for i in range(3)]
    report = summarise(rules + templates)
    assert report["headline_group"] == HELDOUT_RULE and "passes" in report["judge"]
    held = report["groups"][HELDOUT_RULE]
    assert held["win_rate"] == 0.5 and held["n_clusters"] == 10 and held["verified"]
    # The losses had a policy answer in another length band: length control drops them.
    assert length_band("far longer answer here ok") != length_band("a")
    controlled = held["length_controlled"]
    assert (controlled["n"], controlled["win_rate"], controlled["verified"]) == (10, 1.0, True)
    assert held["per_rule"]["quoted"]["few_clusters"] is False
    assert held["policy_pass_rate"] == 0.5 and held["base_pass_rate"] == 0.5
    few = report["groups"][HELDOUT_TEMPLATE]
    assert few["n_clusters"] == 3 and not few["verified"]
    assert few["per_rule"]["json"]["few_clusters"] is True


def test_pooled_figure_resamples_seeds_and_reports_each_seed() -> None:
    per_seed = {
        seed: [
            sample(HELDOUT_RULE, f"r/{t}", 1.0 if (t + seed) % 3 else 0.5)
            for t in range(12)
            for _ in range(2)
        ]
        + [sample(HELDOUT_TEMPLATE, f"t/{t}", 0.5) for t in range(4)]
        for seed in range(3)
    }
    pooled = pooled_win_rates(per_seed)
    rules = pooled[HELDOUT_RULE]["raw"]
    assert set(rules["per_seed"]) == {0, 1, 2} and rules["seeds"] == 3
    everything = [
        s["outcome"] for rows in per_seed.values() for s in rows if s["group"] == HELDOUT_RULE
    ]
    assert rules["win_rate"] == pytest.approx(np.mean(everything))
    assert rules["ci_low"] < rules["win_rate"] < rules["ci_high"]
    assert "hierarchical" in rules["method"] and rules["verified"]
    assert not pooled[HELDOUT_TEMPLATE]["raw"]["verified"]  # 4 templates per seed
    assert pooled[HELDOUT_RULE]["length_controlled"]["n"] == 72
    # Every seed judged the same prompt text here: one distinct prompt, not 72.
    assert rules["distinct_prompts"] == 1
    details = pooled[HELDOUT_RULE]["all_seeds"]
    assert details["n"] == 72 and details["leave_one_rule_out"] == {}  # one rule: none to drop


def test_monte_carlo_kl_matches_the_analytic_kl_of_two_categoricals() -> None:
    rng = np.random.default_rng(0)
    p = np.array([0.5, 0.2, 0.2, 0.1])
    q = np.array([0.25, 0.25, 0.25, 0.25])
    draws = rng.choice(4, size=(2000, 4), p=p)  # 2000 prompts x 4 samples
    estimate = mc_kl(np.log(p[draws]), np.log(q[draws]))
    exact = float(np.sum(p * np.log(p / q)))
    assert estimate["samples"] == 8000 and estimate["prompts"] == 2000
    assert abs(estimate["kl"] - exact) < 4 * estimate["se"]
    assert estimate["se"] < 0.02
    assert mc_kl([1.0], [1.0])["se"] is None


@pytest.mark.slow
def test_sampled_kl_of_a_policy_equal_to_its_base_is_exactly_zero(
    tmp_path: Path, tiny_llama_dir: Path
) -> None:
    from llm_alignment.generation import load_policy
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    # A fresh LoRA adapter adds exactly zero (its B matrix starts at 0).
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    get_peft_model(base, config).save_pretrained(str(tmp_path / "adapter"))
    model, tokenizer = load_policy(tiny_llama_dir, tmp_path / "adapter")
    prompts = ["Say hi.", "Name a colour, please.", "Count to three."]
    policy, reference = sampled_log_probs(
        model, tokenizer, prompts, samples=3, max_new_tokens=6, batch_size=4
    )
    assert policy.shape == (3, 3) and (policy < 0).all()
    assert mc_kl(policy, reference)["kl"] == 0.0
    again, _ = sampled_log_probs(
        model, tokenizer, prompts, samples=3, max_new_tokens=6, batch_size=4
    )
    assert np.array_equal(again, policy)  # seeded


@pytest.mark.slow
def test_answer_log_probs_do_not_depend_on_left_padding(tiny_llama_dir: Path) -> None:
    """The KL sums log-probs of answers generated in left-padded batches: a padded row must
    score as it would alone (positions numbered as generate() numbered them)."""
    import torch
    from llm_alignment.evaluate import _answer_log_probs
    from llm_alignment.generation import chat_prompt, load_policy

    model, tokenizer = load_policy(tiny_llama_dir)
    tokenizer.padding_side = "left"
    texts = [
        chat_prompt(tokenizer, [{"role": "user", "content": text}])
        for text in ("Hi.", "Name a long list of colours, please, one by one.")
    ]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    width = batch["input_ids"].shape[1]
    torch.manual_seed(0)
    with torch.inference_mode():
        sequences = model.generate(
            **batch, do_sample=True, top_k=0, max_new_tokens=8, pad_token_id=tokenizer.pad_token_id
        )
        padded = _answer_log_probs(model, tokenizer, sequences, batch["attention_mask"])
        for row, text in enumerate(texts):
            alone = tokenizer([text], return_tensors="pt", add_special_tokens=False)
            sequence = torch.cat([alone["input_ids"], sequences[row : row + 1, width:]], dim=1)
            single = _answer_log_probs(model, tokenizer, sequence, alone["attention_mask"])
            assert padded[row] == pytest.approx(single[0], abs=1e-4)
            # By hand: one plain forward, the answer's tokens up to the first end-of-sequence.
            start = alone["input_ids"].shape[1]
            answer = sequence[0, start:].tolist()
            if tokenizer.eos_token_id in answer:
                answer = answer[: answer.index(tokenizer.eos_token_id) + 1]
            logp = torch.log_softmax(model(sequence).logits[0].float(), dim=-1)
            by_hand = sum(float(logp[start - 1 + i, token]) for i, token in enumerate(answer))
            assert padded[row] == pytest.approx(by_hand, abs=1e-4)


def test_length_matched_cuts_the_base_to_the_policy_answer_for_prefix_rules() -> None:
    check = {"rule": "no_commas", "min_words": 6}
    row: dict[str, Any] = {"prompt": "Describe a garden without commas.", "check": check}
    row |= {"template_id": "commas/none", "rule": "no_commas", "group": HELDOUT_RULE}
    # The base breaks the rule only after the policy's length: cut there, it passes too.
    judged = judge(
        row, "A garden is green and quiet today, with bees.", "A garden is green and calm."
    )
    assert judged["outcome"] == 1.0
    (matched,) = length_matched([judged])
    assert matched["base"] == "A garden is green and quiet" and matched["outcome"] == 0.5
    assert rejudge([judged]) == [judged]


def test_the_pooled_interval_covers_every_seeds_estimate() -> None:
    # Seed 2's run went worse on every template: a bootstrap inside templates averages it out.
    per_seed = {
        seed: [
            sample(HELDOUT_RULE, f"r/{t}", 0.5 if seed == 2 or t % 4 == 0 else 1.0)
            for t in range(12)
        ]
        for seed in range(3)
    }
    figure = pooled_win_rates(per_seed)[HELDOUT_RULE]["raw"]
    assert figure["per_seed"][2]["win_rate"] == 0.5
    assert figure["ci_low"] <= 0.5 and "each seed" in figure["method"]
