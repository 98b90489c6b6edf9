"""The loop's figures and its side-by-side page, from prompt-registry's own outputs (its eval
files and gate report; nothing is generated again here):

* pass rates of the base and the adapter with Wilson intervals; the adapter's paired gain with a
  paired interval over the prompts (Newcombe's score interval for paired proportions: a
  bootstrap is too narrow when few prompts flip), judged on "> 0" by the shared rule, the same
  interval prompt-registry's gate decides on;
* the gate's decision and its reason;
* a page with every prompt, the base's and the adapter's answers and their verdicts.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roadmap_lab.results import Headline, headline_figure
from roadmap_lab.stats import Interval, paired_proportion_difference, wilson_interval

from llm_loop.errors import LlmLoopError

if TYPE_CHECKING:
    from matplotlib.figure import Figure  # pants: no-infer-dep (type only)

GAIN_TARGET = "> 0"
GAIN_FIGURE = "the adapter's pass-rate gain over the base, paired (held-out rules, vLLM)"
GATE_FIGURE = "prompt-registry's gate: the adapter's version against production (the base)"


@dataclass(frozen=True)
class Answer:
    output: str
    passed: bool
    truncated: bool


@dataclass(frozen=True)
class Pair:
    """One golden example answered by the base and by the adapter."""

    id: str
    rule: str
    prompt: str
    base: Answer
    adapter: Answer


def read_answers(eval_file: Path) -> dict[str, Answer]:
    """id -> answer of a prompt-registry ``eval --output-json`` file, in its order."""
    try:
        examples = json.loads(eval_file.read_text(encoding="utf-8"))["examples"]
        return {
            str(e["id"]): Answer(str(e["output"]), bool(e["passed"]), bool(e.get("truncated")))
            for e in examples
        }
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise LlmLoopError(f"{eval_file}: not a prompt-registry eval file ({error})") from None


def eval_provider(eval_file: Path) -> str:
    """The provider an eval file's answers came from (``openai:<url>:<model>``, ``local:...``)."""
    return str(json.loads(eval_file.read_text(encoding="utf-8"))["summary"]["provider"])


def read_golden(golden_file: Path) -> dict[str, dict[str, Any]]:
    """id -> row of a golden set (JSON lines: id, vars, check)."""
    rows = [json.loads(line) for line in golden_file.read_text(encoding="utf-8").splitlines()]
    return {str(row["id"]): row for row in rows if row}


def pair_answers(base_eval: Path, adapter_eval: Path, golden_file: Path) -> list[Pair]:
    """The two evaluations side by side; an error unless both answered the same examples."""
    base, adapter = read_answers(base_eval), read_answers(adapter_eval)
    if list(base) != list(adapter):
        raise LlmLoopError(f"{base_eval} and {adapter_eval} hold different examples")
    golden = read_golden(golden_file)
    missing = [key for key in base if key not in golden]
    if missing:
        raise LlmLoopError(f"{golden_file} lacks the examples {', '.join(missing[:5])}")
    pairs = []
    for key, answer in base.items():
        row = golden[key]
        prompt = "\n".join(str(value) for value in row.get("vars", {}).values())
        rule = str((row.get("check") or {}).get("rule", "?"))
        pairs.append(Pair(key, rule, prompt, answer, adapter[key]))
    return pairs


def pass_rates(pairs: list[Pair]) -> tuple[Interval, Interval]:
    n = len(pairs)
    base = wilson_interval(sum(p.base.passed for p in pairs), n)
    adapter = wilson_interval(sum(p.adapter.passed for p in pairs), n)
    return base, adapter


def paired_gain(pairs: list[Pair]) -> Interval:
    """Adapter minus base pass rate on the same prompts, with the gate's paired interval."""
    return paired_proportion_difference(
        [p.base.passed for p in pairs], [p.adapter.passed for p in pairs]
    )


def per_rule(pairs: list[Pair]) -> dict[str, dict[str, int]]:
    """rule -> prompts, base passes, adapter passes."""
    table: dict[str, Counter[str]] = {}
    for pair in pairs:
        counts = table.setdefault(pair.rule, Counter())
        counts["prompts"] += 1
        counts["base_passes"] += pair.base.passed
        counts["adapter_passes"] += pair.adapter.passed
    return {rule: dict(counts) for rule, counts in sorted(table.items())}


def flips(pairs: list[Pair]) -> dict[str, int]:
    fixed = sum(p.adapter.passed and not p.base.passed for p in pairs)
    broken = sum(p.base.passed and not p.adapter.passed for p in pairs)
    return {"fixed": fixed, "broken": broken, "same": len(pairs) - fixed - broken}


def headline(pairs: list[Pair], decision: str, reason: str, engine: str = "vLLM") -> list[Headline]:
    """Base and adapter pass rates, the paired gain on its target, the gate's decision."""
    base, adapter = pass_rates(pairs)
    gain = paired_gain(pairs)
    counts = flips(pairs)
    return [
        headline_figure(
            GAIN_FIGURE if engine == "vLLM" else GAIN_FIGURE.replace("vLLM", engine),
            None, "pass rate", baseline=0.0, target=GAIN_TARGET, interval=gain, digits=4,
            prompts=len(pairs), **counts,
        ),
        headline_figure(f"pass rate of the base ({engine})", None, "fraction",
                        interval=base, digits=4, passes=sum(p.base.passed for p in pairs)),
        headline_figure(f"pass rate of the adapter ({engine})", None, "fraction",
                        interval=adapter, digits=4, passes=sum(p.adapter.passed for p in pairs)),
        headline_figure(GATE_FIGURE, f"{decision}: {reason}", "", decision=decision,
                        reason=reason),
        *length_figures(pairs, engine),
    ]  # fmt: skip


# Word-count bands for the length-matched gain: answers in one band are compared as equals.
LENGTH_BANDS = (10, 25, 50)


def length_band(answer: Answer) -> int:
    words = len(answer.output.split())
    return sum(words > edge for edge in LENGTH_BANDS)


def length_figures(pairs: list[Pair], engine: str) -> list[Headline]:
    """What length can do to the gain (training rewards short answers; ``quoted`` fails an
    answer cut at the token limit): answers cut and mean words per model, the gain on the
    prompts neither model's answer was cut on, and on those of them whose two answers are in
    the same length band (<= 10, 11-25, 26-50, > 50 words). Reported, not targeted."""
    uncut = [p for p in pairs if not (p.base.truncated or p.adapter.truncated)]
    matched = [p for p in uncut if length_band(p.base) == length_band(p.adapter)]

    def words(answers: list[Answer]) -> float:
        return round(sum(len(a.output.split()) for a in answers) / max(len(answers), 1), 1)

    base, adapter = [p.base for p in pairs], [p.adapter for p in pairs]
    figures = [
        headline_figure(
            f"answers cut at the token limit, base -> adapter ({engine})",
            f"{sum(a.truncated for a in base)}/{len(pairs)} -> "
            f"{sum(a.truncated for a in adapter)}/{len(pairs)}",
            "", mean_words_base=words(base), mean_words_adapter=words(adapter),
        ),
    ]  # fmt: skip
    subsets = (
        (uncut, "prompts neither answer was cut on"),
        (matched, "uncut prompts whose two answers are in the same length band"),
    )
    for subset, what in subsets:
        if subset:
            figures.append(
                headline_figure(
                    f"the adapter's gain on {what} ({engine})",
                    None,
                    "pass rate",
                    baseline=0.0,
                    target=None,
                    interval=paired_gain(subset),
                    digits=4,
                    prompts=len(subset),
                    **flips(subset),
                )
            )
    return figures


def control_figures(floor: list[Pair], versus: list[Pair], engine: str = "vLLM") -> list[Headline]:
    """The noise floor (``llm_loop.control``): the zero LoRA against the base (``floor``: its
    answers on the adapter's side), and the adapter against the zero LoRA (``versus``: the zero
    LoRA on the base's side). Reported, not targeted."""
    identical = sum(p.base.output.strip() == p.adapter.output.strip() for p in floor)
    return [
        headline_figure(
            f"the zero LoRA's gain over the base: the noise floor ({engine})", None, "pass rate",
            baseline=0.0, target=None, interval=paired_gain(floor), digits=4,
            identical_answers=f"{identical}/{len(floor)}", **flips(floor),
        ),
        headline_figure(
            f"the adapter's gain over the zero LoRA ({engine})", None, "pass rate",
            baseline=0.0, target=None, interval=paired_gain(versus), digits=4, **flips(versus),
        ),
    ]  # fmt: skip


def pass_rate_figure(pairs: list[Pair], title: str) -> Figure:
    """Passes per rule family, base beside adapter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rules = per_rule(pairs)
    names = list(rules)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    positions = range(len(names))
    sides = (("base_passes", "base"), ("adapter_passes", "adapter"))
    for offset, (key, label) in enumerate(sides):
        rates = [rules[n][key] / rules[n]["prompts"] for n in names]
        ax.bar([p + 0.4 * offset - 0.2 for p in positions], rates, width=0.4, label=label)
    ax.set_xticks(list(positions), names)
    ax.set_ylim(0, 1)
    ax.set_ylabel("pass rate")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def _verdict(answer: Answer) -> str:
    css, word = ("pass", "pass") if answer.passed else ("fail", "fail")
    cut = " <small>(cut at the token limit)</small>" if answer.truncated else ""
    return f'<span class="{css}">{word}</span>{cut}'


def answers_page(pairs: list[Pair], figures: list[Headline], decision: str, reason: str) -> str:
    """The side-by-side page: the decision, the figures, then every prompt with both answers."""
    rows = "\n".join(
        f"<tr><td>{html.escape(p.id)}<br><small>{html.escape(p.rule)}</small></td>"
        f"<td>{html.escape(p.prompt)}</td>"
        f"<td><pre>{html.escape(p.base.output)}</pre>{_verdict(p.base)}</td>"
        f"<td><pre>{html.escape(p.adapter.output)}</pre>{_verdict(p.adapter)}</td></tr>"
        for p in pairs
    )
    listed = "\n".join(
        f"<li>{html.escape(str(f['name']))}: {html.escape(_shown(f))}</li>" for f in figures
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>llm-loop: base vs adapter</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #1f2328; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border: 1px solid #d8dee4; padding: 6px; vertical-align: top; text-align: left; }}
pre {{ white-space: pre-wrap; margin: 0 0 4px; font-size: 13px; }}
.pass {{ color: #1a7f37; font-weight: 600; }} .fail {{ color: #cf222e; font-weight: 600; }}
</style></head><body>
<h1>The adapter against its base, on rules it never trained on</h1>
<p><strong>Gate decision: {html.escape(decision)}</strong> ({html.escape(reason)})</p>
<ul>
{listed}
</ul>
<table><thead><tr><th>example</th><th>prompt</th><th>base answer</th><th>adapter answer</th>
</tr></thead><tbody>
{rows}
</tbody></table>
</body></html>
"""


def _shown(figure: Headline) -> str:
    interval = figure.get("interval")
    text = str(figure.get("value"))
    if interval:
        text += f" [{interval['low']}, {interval['high']}] ({interval['method']})"
    if figure.get("verdict"):
        text += f"; target {figure['target']}: {figure['verdict']}"
    return text
