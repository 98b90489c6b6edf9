"""Win-rate of a policy (base + LoRA adapter) against the base model on held-out prompts.

Both answer every prompt greedily; the verifier scores each answer; the policy wins a prompt when
its score is higher, ties count half. The interval is Wilson's at 95% (ties as half a success),
per rule as well. Beside it: mean response length (words), the KL divergence of the policy from
the base along the policy's own answers (exact over the vocabulary at each position, summed over
the answer's tokens, in nats), and the reward model's preference when a reward model is given.
"""

from __future__ import annotations

import html
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from roadmap_lab import verifiable
from roadmap_lab.results import atomic_write_text
from roadmap_lab.stats import wilson_interval

from llm_alignment.errors import PreferenceDataError
from llm_alignment.generation import chat_prompt, generate, load_policy

logger = logging.getLogger(__name__)


def outcome(policy_score: float, base_score: float, tolerance: float = 1e-9) -> float:
    """1 for a win of the policy, 0.5 for a tie, 0 for a loss."""
    if abs(policy_score - base_score) <= tolerance:
        return 0.5
    return 1.0 if policy_score > base_score else 0.0


def win_rate(outcomes: list[float]) -> dict[str, Any]:
    """Win-rate (ties half) with its 95% Wilson interval, and the counts."""
    interval = wilson_interval(sum(outcomes), len(outcomes))
    return {
        "win_rate": interval.estimate,
        "ci_low": interval.low,
        "ci_high": interval.high,
        "n": len(outcomes),
        "wins": sum(1 for o in outcomes if o == 1.0),
        "ties": sum(1 for o in outcomes if o == 0.5),
        "losses": sum(1 for o in outcomes if o == 0.0),
    }


def kl_to_base(model: Any, tokenizer: Any, prompts: list[str], responses: list[str]) -> list[float]:
    """Per answer: sum over its tokens of KL(policy || base) at that position (nats)."""
    import torch

    values = []
    for prompt, response in zip(prompts, responses, strict=True):
        prefix = chat_prompt(tokenizer, [{"role": "user", "content": prompt}])
        prefix_ids = tokenizer(prefix, add_special_tokens=False, return_tensors="pt")["input_ids"]
        encoded = tokenizer(prefix + response, add_special_tokens=False, return_tensors="pt")
        full = encoded["input_ids"].to(model.device)
        start = prefix_ids.shape[1]
        if full.shape[1] <= start:
            values.append(0.0)
            continue
        with torch.inference_mode():
            policy_logits = model(full).logits[0, start - 1 : -1]
            with model.disable_adapter():
                base_logits = model(full).logits[0, start - 1 : -1]
        policy_logp = torch.log_softmax(policy_logits.float(), dim=-1)
        base_logp = torch.log_softmax(base_logits.float(), dim=-1)
        per_token = (policy_logp.exp() * (policy_logp - base_logp)).sum(dim=-1)
        values.append(float(per_token.sum()))
    return values


def evaluate_policy(
    base_model_dir: Path,
    adapter_dir: Path,
    prompts: list[dict[str, Any]],
    *,
    max_new_tokens: int = 48,
    batch_size: int = 16,
    reward_model_dir: Path | None = None,
    base_responses: list[str] | None = None,
) -> dict[str, Any]:
    """Answer ``prompts`` (rows with prompt, rule, check) with base and policy; compare."""
    if not prompts:
        raise PreferenceDataError("no held-out prompts to evaluate on")
    model, tokenizer = load_policy(base_model_dir, adapter_dir)
    conversations = [[{"role": "user", "content": row["prompt"]}] for row in prompts]
    options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "batch_size": batch_size}
    if base_responses is None:
        with model.disable_adapter():
            base_responses = [r[0] for r in generate(model, tokenizer, conversations, **options)]
    policy_responses = [r[0] for r in generate(model, tokenizer, conversations, **options)]
    kl = kl_to_base(model, tokenizer, [row["prompt"] for row in prompts], policy_responses)
    del model
    samples = []
    for row, base_text, policy_text, kl_value in zip(
        prompts, base_responses, policy_responses, kl, strict=True
    ):
        base_score = verifiable.score(base_text, row["check"])
        policy_score = verifiable.score(policy_text, row["check"])
        samples.append(
            {
                "prompt_id": row.get("prompt_id"),
                "rule": row["rule"],
                "prompt": row["prompt"],
                "base": base_text,
                "policy": policy_text,
                "base_score": base_score,
                "policy_score": policy_score,
                "outcome": outcome(policy_score, base_score),
                "kl": kl_value,
            }
        )
    report = summarise(samples)
    if reward_model_dir is not None:
        from llm_alignment.reward import RewardScorer

        scorer = RewardScorer(base_model_dir, reward_model_dir)
        texts = [row["prompt"] for row in prompts]
        base_rewards = scorer.score(texts, base_responses)
        policy_rewards = scorer.score(texts, policy_responses)
        for sample, base_r, policy_r in zip(samples, base_rewards, policy_rewards, strict=True):
            sample["base_reward"], sample["policy_reward"] = base_r, policy_r
        report["reward_model"] = win_rate(
            [outcome(p, b) for p, b in zip(policy_rewards, base_rewards, strict=True)]
        )
    report["samples"] = samples
    return report


def summarise(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Overall and per-rule win-rate, mean scores, lengths and KL of scored samples."""
    by_rule: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for sample in samples:
        by_rule[sample["rule"]].append(sample)

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else 0.0

    per_rule = {
        rule: win_rate([s["outcome"] for s in rows])
        | {
            "base_score": mean([s["base_score"] for s in rows]),
            "policy_score": mean([s["policy_score"] for s in rows]),
        }
        for rule, rows in sorted(by_rule.items())
    }
    return win_rate([s["outcome"] for s in samples]) | {
        "base_score": mean([s["base_score"] for s in samples]),
        "policy_score": mean([s["policy_score"] for s in samples]),
        "base_length_words": mean([len(verifiable.words(s["base"])) for s in samples]),
        "policy_length_words": mean([len(verifiable.words(s["policy"])) for s in samples]),
        "kl_to_base": mean([s["kl"] for s in samples]),
        "per_rule": per_rule,
    }


def render_html(report: dict[str, Any], title: str, path: Path) -> Path:
    """A page with the figures and every held-out prompt's two answers side by side."""
    outcome_label = {1.0: "policy wins", 0.5: "tie", 0.0: "base wins"}
    rows = []
    for sample in report["samples"]:
        rows.append(
            "<tr class='o{o}'><td>{rule}</td><td>{prompt}</td><td><pre>{base}</pre>"
            "<small>score {bs:.2f}</small></td><td><pre>{policy}</pre><small>score {ps:.2f}"
            "</small></td><td>{label}</td></tr>".format(
                o=int(sample["outcome"] * 2),
                rule=html.escape(sample["rule"]),
                prompt=html.escape(sample["prompt"]),
                base=html.escape(sample["base"]),
                policy=html.escape(sample["policy"]),
                bs=sample["base_score"],
                ps=sample["policy_score"],
                label=outcome_label[sample["outcome"]],
            )
        )
    per_rule = "".join(
        f"<tr><td>{html.escape(rule)}</td><td>{r['win_rate']:.2f} [{r['ci_low']:.2f}, "
        f"{r['ci_high']:.2f}]</td><td>{r['n']}</td><td>{r['base_score']:.2f}</td>"
        f"<td>{r['policy_score']:.2f}</td></tr>"
        for rule, r in report["per_rule"].items()
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px;vertical-align:top}}pre{{white-space:pre-wrap;margin:0;
max-width:40em}}.o2{{background:#e8f7e8}}.o0{{background:#fbe9e9}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Win-rate against the base (ties half): <b>{report['win_rate']:.3f}</b>
(95% Wilson [{report['ci_low']:.3f}, {report['ci_high']:.3f}], n={report['n']}: {report['wins']}
wins, {report['ties']} ties, {report['losses']} losses). Mean verifier score: base
{report['base_score']:.3f}, policy {report['policy_score']:.3f}. Mean length (words): base
{report['base_length_words']:.1f}, policy {report['policy_length_words']:.1f}. KL to base:
{report['kl_to_base']:.3f} nats per answer.</p>
<h2>Per rule</h2><table><tr><th>rule</th><th>win-rate [95% CI]</th><th>n</th>
<th>base score</th><th>policy score</th></tr>{per_rule}</table>
<h2>Samples</h2><table><tr><th>rule</th><th>prompt</th><th>base</th><th>policy</th>
<th>outcome</th></tr>{''.join(rows)}</table></body></html>
"""
    return atomic_write_text(path, page)
