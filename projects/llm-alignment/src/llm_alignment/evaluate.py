"""Win-rate of a policy (base + LoRA adapter) against the base model on held-out prompts.

Both answer every prompt greedily. The judge is pass/fail (``verifiable.passes``, full
compliance): the policy wins a prompt when its answer passes and the base's does not, loses in
the reverse, and ties otherwise (ties count half). The graded score is kept as a side figure only:
it lets brevity win (fewer words, fewer letters in the wrong case, partial credit for a number
somewhere in the text).

Figures, each for (a) held-out templates of training rules and (b) held-out rules (the headline):

* the win-rate with a cluster bootstrap interval over templates (prompts of one template are not
  independent); a figure with fewer than ``MIN_CLUSTERS`` templates is marked unverified;
* the length-controlled win-rate: the same on the prompts whose two answers fall in the same
  length band (``LENGTH_BANDS``), with how many prompts were kept;
* per rule (few templates each: marked ``few_clusters``).

``pooled_win_rates`` combines several seeds: per-seed figures and a pooled one whose interval
resamples templates, then seeds, then prompts. KL(policy || base) is estimated by Monte Carlo
over answers sampled from the policy (``mc_kl``).
"""

from __future__ import annotations

import html
import logging
import math
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from roadmap_lab import verifiable
from roadmap_lab.results import atomic_write_text
from roadmap_lab.stats import cluster_bootstrap_mean, hierarchical_bootstrap_mean

from llm_alignment.errors import PreferenceDataError
from llm_alignment.generation import chat_prompt, generate, load_policy
from llm_alignment.prompts import HELDOUT_RULE, HELDOUT_RULES, HELDOUT_TEMPLATE

logger = logging.getLogger(__name__)
MIN_CLUSTERS = 10
# Upper word counts of the length bands: 0-2, 3-5, 6-10, 11-20, 21 or more words.
LENGTH_BANDS = (2, 5, 10, 20)
JUDGE = "verifiable.passes (full compliance): win = policy passes and base fails; ties half"
GROUP_NAMES = {
    HELDOUT_RULE: "held-out rules",
    HELDOUT_TEMPLATE: "held-out templates of training rules",
}
Sample = dict[str, Any]


def outcome(policy: float, base: float, tolerance: float = 1e-9) -> float:
    """1 when the policy's value is higher (a pass against a fail), 0.5 for a tie, 0 for lower."""
    if abs(policy - base) <= tolerance:
        return 0.5
    return 1.0 if policy > base else 0.0


def length_band(text: str) -> int:
    """The index of the length band (``LENGTH_BANDS``) of ``text``'s word count."""
    return bisect_left(LENGTH_BANDS, len(verifiable.words(text)))


def win_rate(outcomes: Sequence[float], clusters: Sequence[Any], seed: int = 0) -> dict[str, Any]:
    """Win-rate (ties half) with a cluster bootstrap interval over ``clusters`` (templates), the
    counts, and whether it has the ``MIN_CLUSTERS`` a reported figure needs."""
    n_clusters = len(set(clusters))
    figure: dict[str, Any] = {
        "win_rate": sum(outcomes) / len(outcomes) if outcomes else None,
        "ci_low": None,
        "ci_high": None,
        "n": len(outcomes),
        "n_clusters": n_clusters,
        "wins": sum(1 for o in outcomes if o == 1.0),
        "ties": sum(1 for o in outcomes if o == 0.5),
        "losses": sum(1 for o in outcomes if o == 0.0),
        "verified": n_clusters >= MIN_CLUSTERS,
        "method": None,
    }
    if n_clusters >= 2:
        interval = cluster_bootstrap_mean(outcomes, list(clusters), seed=seed)
        figure |= {"ci_low": interval.low, "ci_high": interval.high, "method": interval.method}
    return figure


def first_per_template(rows: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The first ``count`` prompts of each template (the template count sets the interval's
    clusters; more prompts per template add less)."""
    seen: dict[str, int] = {}
    kept = []
    for row in rows:
        seen[row["template_id"]] = seen.get(row["template_id"], 0) + 1
        if seen[row["template_id"]] <= count:
            kept.append(row)
    return kept


def sample_group(row: dict[str, Any]) -> str:
    """A held-out prompt's group; data sets built before the split recorded none."""
    if "group" in row:
        return str(row["group"])
    return HELDOUT_RULE if row["rule"] in HELDOUT_RULES else HELDOUT_TEMPLATE


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def length_controlled(samples: list[Sample]) -> list[Sample]:
    """The samples whose policy and base answers fall in the same length band."""
    return [s for s in samples if length_band(s["policy"]) == length_band(s["base"])]


def group_summary(samples: list[Sample]) -> dict[str, Any]:
    """Raw and length-controlled win-rate, pass rates, graded scores and lengths of one group."""

    def figure(rows: list[Sample]) -> dict[str, Any]:
        return win_rate([s["outcome"] for s in rows], [s["template_id"] for s in rows])

    by_rule: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_rule[sample["rule"]].append(sample)
    per_rule = {}
    for rule, rows in sorted(by_rule.items()):
        rule_figure = figure(rows)
        per_rule[rule] = rule_figure | {
            "few_clusters": not rule_figure["verified"],
            "base_pass_rate": _mean([s["base_pass"] for s in rows]),
            "policy_pass_rate": _mean([s["policy_pass"] for s in rows]),
        }
    return figure(samples) | {
        "length_controlled": figure(length_controlled(samples)),
        "length_matched": figure(length_matched(samples)),
        "untruncated": figure(
            [s for s in samples if not (s["base_truncated"] or s["policy_truncated"])]
        ),
        "base_pass_rate": _mean([s["base_pass"] for s in samples]),
        "policy_pass_rate": _mean([s["policy_pass"] for s in samples]),
        "base_score": _mean([s["base_score"] for s in samples]),
        "policy_score": _mean([s["policy_score"] for s in samples]),
        "base_truncated": _mean([s["base_truncated"] for s in samples]),
        "policy_truncated": _mean([s["policy_truncated"] for s in samples]),
        "leave_one_rule_out": leave_one_rule_out(samples),
        "base_length_words": _mean([len(verifiable.words(s["base"])) for s in samples]),
        "policy_length_words": _mean([len(verifiable.words(s["policy"])) for s in samples]),
        "per_rule": per_rule,
    }


def leave_one_rule_out(samples: list[Sample]) -> dict[str, float]:
    """The win-rate with each rule left out in turn (rule -> win-rate without it), so a figure
    carried by one rule shows."""
    rules = sorted({s["rule"] for s in samples})
    if len(rules) < 2:
        return {}
    return {rule: _mean([s["outcome"] for s in samples if s["rule"] != rule]) for rule in rules}


# Rules an answer cannot break by being longer's opposite: cutting an answer to fewer words
# never adds a comma or a wrong-case letter, so the base cut to the policy's length is fair.
PREFIX_MONOTONE_RULES = ("no_commas", "letter_case")


def rejudge(samples: list[Sample]) -> list[Sample]:
    """Judge stored answers again with the current judge (a record keeps its texts and checks,
    so a fix to judging needs no new answers)."""
    return [
        judge(s, s["base"], s["policy"], (s["base_truncated"], s["policy_truncated"]))
        for s in samples
    ]


def length_matched(samples: list[Sample]) -> list[Sample]:
    """For rules where a shorter answer can only do better (``PREFIX_MONOTONE_RULES``), the
    base answer cut to the policy answer's word count and judged again; others unchanged."""
    matched = []
    for s in samples:
        if s["rule"] in PREFIX_MONOTONE_RULES:
            cut = " ".join(s["base"].split()[: len(s["policy"].split())])
            s = judge(s, cut, s["policy"], (s["base_truncated"], s["policy_truncated"]))
        matched.append(s)
    return matched


def summarise(samples: list[Sample]) -> dict[str, Any]:
    """The report of judged samples: a summary per group (held-out rules first)."""
    by_group: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_group[sample["group"]].append(sample)
    return {
        "judge": JUDGE,
        "headline_group": HELDOUT_RULE,
        "min_clusters": MIN_CLUSTERS,
        "length_bands_words": band_names(),
        "groups": {
            group: group_summary(by_group[group])
            for group in (HELDOUT_RULE, HELDOUT_TEMPLATE)
            if by_group[group]
        },
    }


def band_names() -> list[str]:
    edges = [-1, *LENGTH_BANDS]
    return [f"{low + 1}-{high}" for low, high in zip(edges, edges[1:], strict=False)] + [
        f"{LENGTH_BANDS[-1] + 1}+"
    ]


def pooled_win_rates(per_seed: dict[int, list[Sample]], seed: int = 0) -> dict[str, Any]:
    """Several seeds' judged samples (seed -> samples): per group, each seed's figure and the
    pooled one, whose interval resamples templates, then seeds, then prompts, widened to cover
    every seed's own estimate (seeds and templates are crossed, and with 3 seeds a bootstrap
    cannot see a whole run that went better or worse). A pooled figure is verified when every
    seed has ``MIN_CLUSTERS`` templates in it."""
    pooled: dict[str, Any] = {}
    for group in (HELDOUT_RULE, HELDOUT_TEMPLATE):
        for name, select in (("raw", lambda rows: rows), ("length_controlled", length_controlled)):
            rows = {
                s: select([r for r in samples if r["group"] == group])
                for s, samples in per_seed.items()
            }
            pooled.setdefault(group, {})[name] = _pooled_figure(rows, seed)
        everything = [r for samples in per_seed.values() for r in samples if r["group"] == group]
        if everything:
            pooled[group]["all_seeds"] = group_summary(everything)
    return pooled


def _pooled_figure(rows: dict[int, list[Sample]], seed: int) -> dict[str, Any]:
    per_seed = {
        s: win_rate([r["outcome"] for r in samples], [r["template_id"] for r in samples], seed)
        for s, samples in rows.items()
    }
    flat = [(s, r) for s, samples in rows.items() for r in samples]
    figure: dict[str, Any] = {
        "per_seed": per_seed,
        "seeds": len(rows),
        "n": len(flat),
        "distinct_prompts": len({r["prompt"] for _, r in flat}),
        "n_clusters_min": min((f["n_clusters"] for f in per_seed.values()), default=0),
        "win_rate": None,
        "ci_low": None,
        "ci_high": None,
        "method": None,
    }
    figure["verified"] = len(rows) >= 2 and figure["n_clusters_min"] >= MIN_CLUSTERS
    if len({s for s, _ in flat}) >= 2:
        # Templates outermost: every seed judges the same held-out templates (and mostly the
        # same prompts, with the same greedy base answer), so seeds are not independent draws
        # above templates; nesting seeds inside templates keeps the interval honest.
        interval = hierarchical_bootstrap_mean(
            [r["outcome"] for _, r in flat],
            [[r["template_id"] for _, r in flat], [s for s, _ in flat]],
            seed=seed,
        )
        estimates = [f["win_rate"] for f in per_seed.values() if f["win_rate"] is not None]
        figure |= {
            "win_rate": interval.estimate,
            "ci_low": min(interval.low, *estimates),
            "ci_high": max(interval.high, *estimates),
            "method": f"{interval.method}, widened to cover each seed's estimate",
        }
    return figure


def mc_kl(policy_logps: Any, base_logps: Any) -> dict[str, Any]:
    """Monte Carlo KL(policy || base) from answers sampled from the policy: the mean over
    answers of log pi(y) - log p_base(y). Rows are prompts and columns their samples (a 1-D
    input is one sample per row); the standard error is over the prompts' means, since samples
    of one prompt are not independent of it."""
    ratio = np.asarray(policy_logps, dtype=float) - np.asarray(base_logps, dtype=float)
    if ratio.ndim == 1:
        ratio = ratio[:, None]
    units = ratio.mean(axis=1)
    se = float(units.std(ddof=1) / math.sqrt(units.size)) if units.size > 1 else None
    return {"kl": float(ratio.mean()), "se": se, "samples": int(ratio.size), "prompts": units.size}


def sampled_log_probs(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    *,
    samples: int,
    max_new_tokens: int,
    batch_size: int = 16,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(policy, base) log-probabilities, prompts x ``samples``, of answers sampled from the
    policy at temperature 1 (no top-p or top-k), summed over each answer's tokens up to and
    including its end-of-sequence token (answers cut at ``max_new_tokens`` stop there)."""
    import torch

    tokenizer.padding_side = "left"
    texts = [chat_prompt(tokenizer, [{"role": "user", "content": p}]) for p in prompts]
    per_batch = max(1, batch_size // samples)
    policy, base = [], []
    torch.manual_seed(seed)
    for start in range(0, len(texts), per_batch):
        batch = tokenizer(
            texts[start : start + per_batch],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        ).to(model.device)
        with torch.inference_mode():
            sequences = model.generate(
                **batch,
                do_sample=True,
                temperature=1.0,
                top_p=1.0,
                top_k=0,
                num_return_sequences=samples,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            prompt_mask = batch["attention_mask"].repeat_interleave(samples, dim=0)
            policy.append(_answer_log_probs(model, tokenizer, sequences, prompt_mask))
            with model.disable_adapter():
                base.append(_answer_log_probs(model, tokenizer, sequences, prompt_mask))
    return np.concatenate(policy).reshape(-1, samples), np.concatenate(base).reshape(-1, samples)


def _answer_log_probs(model: Any, tokenizer: Any, sequences: Any, prompt_mask: Any) -> np.ndarray:
    """Sum of log p(token) over each sequence's answer (after the prompt), up to and including
    its first end-of-sequence token."""
    import torch

    width = prompt_mask.shape[1]
    answer = sequences[:, width:]
    ended = (answer == tokenizer.eos_token_id).long()
    keep = (ended.cumsum(dim=1) - ended) == 0
    attention = torch.cat([prompt_mask, keep.long()], dim=1)
    # Positions as generate() numbered them under left padding.
    positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
    # Logits only where they predict an answer token (the vocabulary makes them large).
    logits = model(
        sequences,
        attention_mask=attention,
        position_ids=positions,
        logits_to_keep=answer.shape[1] + 1,
    ).logits
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    token_logp = logp.gather(-1, answer.unsqueeze(-1)).squeeze(-1)
    return (token_logp * keep).sum(dim=1).cpu().numpy()


def judge(
    row: dict[str, Any],
    base_text: str,
    policy_text: str,
    truncated: tuple[bool, bool] = (False, False),
) -> Sample:
    """One held-out prompt's two answers, judged pass/fail, with the graded scores beside and
    whether each answer ran into the token limit (``truncated``: base, policy)."""
    base_pass = verifiable.passes(base_text, row["check"])
    policy_pass = verifiable.passes(policy_text, row["check"])
    return {
        "prompt_id": row.get("prompt_id"),
        "template_id": row.get("template_id", row["rule"]),
        "group": sample_group(row),
        "rule": row["rule"],
        "prompt": row["prompt"],
        "check": row["check"],
        "base": base_text,
        "policy": policy_text,
        "base_pass": base_pass,
        "policy_pass": policy_pass,
        "base_score": verifiable.score(base_text, row["check"]),
        "policy_score": verifiable.score(policy_text, row["check"]),
        "outcome": outcome(float(policy_pass), float(base_pass)),
        "base_truncated": truncated[0],
        "policy_truncated": truncated[1],
    }


def evaluate_policy(
    base_model_dir: Path,
    adapter_dir: Path,
    prompts: list[dict[str, Any]],
    *,
    max_new_tokens: int = 48,
    batch_size: int = 16,
    kl_samples: int = 4,
    seed: int = 0,
    reward_model_dir: Path | None = None,
    base_responses: list[str] | None = None,
) -> dict[str, Any]:
    """Answer ``prompts`` (rows with prompt, template_id, rule, check, group) with base and
    policy; judge, summarise, and estimate KL to the base over ``kl_samples`` sampled answers
    per prompt."""
    if not prompts:
        raise PreferenceDataError("no held-out prompts to evaluate on")
    model, tokenizer = load_policy(base_model_dir, adapter_dir)
    conversations = [[{"role": "user", "content": row["prompt"]}] for row in prompts]
    options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "batch_size": batch_size}
    if base_responses is None:
        with model.disable_adapter():
            base_responses = [r[0] for r in generate(model, tokenizer, conversations, **options)]
    policy_responses = [r[0] for r in generate(model, tokenizer, conversations, **options)]
    policy_logps, base_logps = sampled_log_probs(
        model, tokenizer, [row["prompt"] for row in prompts], samples=kl_samples, seed=seed,
        **options,
    )  # fmt: skip
    del model

    def hit_limit(text: str) -> bool:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"]) >= max_new_tokens - 1

    samples = [
        judge(row, base_text, policy_text, (hit_limit(base_text), hit_limit(policy_text)))
        for row, base_text, policy_text in zip(
            prompts, base_responses, policy_responses, strict=True
        )
    ]
    report = summarise(samples) | {"kl_to_base": mc_kl(policy_logps, base_logps)}
    if reward_model_dir is not None:
        report["reward_model"] = reward_model_preference(base_model_dir, reward_model_dir, samples)
    report["samples"] = samples
    return report


def reward_model_preference(
    base_model_dir: Path, reward_model_dir: Path, samples: list[Sample]
) -> dict[str, Any]:
    """The reward model as a second judge: per group, how often it prefers the policy's answer."""
    from llm_alignment.reward import RewardScorer

    scorer = RewardScorer(base_model_dir, reward_model_dir)
    texts = [s["prompt"] for s in samples]
    base_rewards = scorer.score(texts, [s["base"] for s in samples])
    policy_rewards = scorer.score(texts, [s["policy"] for s in samples])
    figures = {}
    for group in sorted({s["group"] for s in samples}):
        rows = [i for i, s in enumerate(samples) if s["group"] == group]
        figures[group] = win_rate(
            [outcome(policy_rewards[i], base_rewards[i]) for i in rows],
            [samples[i]["template_id"] for i in rows],
        )
    return figures


def summary_details(summary: dict[str, Any]) -> dict[str, Any]:
    """What a reader needs beside a win-rate (a group summary's): wins/ties/losses, pass rates,
    each rule's win-rate, the range with one rule left out, and answers cut by the limit."""
    left_out = summary["leave_one_rule_out"].values()
    return {
        "wins_ties_losses": f"{summary['wins']}/{summary['ties']}/{summary['losses']}",
        "pass_rate_base_to_policy": (
            f"{summary['base_pass_rate']:.3f} -> {summary['policy_pass_rate']:.3f}"
        ),
        "per_rule": {
            rule: f"{f['win_rate']:.3f} ({f['wins']}/{f['ties']}/{f['losses']})"
            for rule, f in summary["per_rule"].items()
        },
        "one_rule_left_out": f"{min(left_out):.3f}-{max(left_out):.3f}" if left_out else None,
        "base_cut_to_policy_length": figure_text(summary["length_matched"]),
        "without_answers_cut_by_the_limit": figure_text(summary["untruncated"]),
        "truncated_base_policy": (
            f"{summary['base_truncated']:.3f}/{summary['policy_truncated']:.3f}"
        ),
    }


def figure_text(figure: dict[str, Any]) -> str:
    """A figure as one line: estimate [interval] (templates, prompts), unverified or not."""
    if figure["win_rate"] is None:
        return "no prompts"
    interval = (
        f" [{figure['ci_low']:.3f}, {figure['ci_high']:.3f}]"
        if figure["ci_low"] is not None
        else ""
    )
    flag = "" if figure["verified"] else ", unverified: too few templates"
    return (
        f"{figure['win_rate']:.3f}{interval} ({figure['n_clusters']} templates, "
        f"{figure['n']} prompts{flag})"
    )


def render_html(report: dict[str, Any], title: str, path: Path) -> Path:
    """A page with the figures and every held-out prompt's two answers side by side."""
    outcome_label = {1.0: "policy wins", 0.5: "tie", 0.0: "base wins"}

    def cell(text: str, passed: bool, graded: float) -> str:
        verdict = "pass" if passed else "fail"
        return f"<pre>{html.escape(text)}</pre><small>{verdict} (graded {graded:.2f})</small>"

    rows = [
        f"<tr class='o{int(s['outcome'] * 2)}'><td>{html.escape(GROUP_NAMES[s['group']])}</td>"
        f"<td>{html.escape(s['rule'])}</td><td>{html.escape(s['prompt'])}</td>"
        f"<td>{cell(s['base'], s['base_pass'], s['base_score'])}</td>"
        f"<td>{cell(s['policy'], s['policy_pass'], s['policy_score'])}</td>"
        f"<td>{outcome_label[s['outcome']]}</td></tr>"
        for s in report["samples"]
    ]
    figures = []
    for group, summary in report["groups"].items():
        per_rule = "".join(
            f"<li>{html.escape(rule)}: {figure_text(r)}</li>"
            for rule, r in summary["per_rule"].items()
        )
        lc = summary["length_controlled"]
        figures.append(
            f"<h2>{html.escape(GROUP_NAMES[group])}</h2><p>Win-rate (ties half): "
            f"<b>{figure_text(summary)}</b>; {summary['wins']} wins, {summary['ties']} ties, "
            f"{summary['losses']} losses. Length-controlled: {figure_text(lc)}. Pass rate: base "
            f"{summary['base_pass_rate']:.3f}, policy {summary['policy_pass_rate']:.3f}. Graded "
            f"score: base {summary['base_score']:.3f}, policy {summary['policy_score']:.3f}. "
            f"Length (words): base {summary['base_length_words']:.1f}, policy "
            f"{summary['policy_length_words']:.1f}.</p><ul>{per_rule}</ul>"
        )
    kl = report["kl_to_base"]
    kl_se = "n/a" if kl["se"] is None else f"{kl['se']:.3f}"
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px;vertical-align:top}}pre{{white-space:pre-wrap;margin:0;
max-width:40em}}.o2{{background:#e8f7e8}}.o0{{background:#fbe9e9}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Judge: {html.escape(report['judge'])}. Intervals: 95% cluster bootstrap over templates.
Length bands (words): {', '.join(report['length_bands_words'])}. KL to base:
{kl['kl']:.3f} ± {kl_se} (SE) nats per answer ({kl['samples']} sampled answers).</p>
{''.join(figures)}
<h2>Samples</h2><table><tr><th>group</th><th>rule</th><th>prompt</th><th>base</th>
<th>policy</th><th>outcome</th></tr>{''.join(rows)}</table></body></html>
"""
    return atomic_write_text(path, page)
