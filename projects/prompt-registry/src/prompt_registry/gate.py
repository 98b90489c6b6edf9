"""The gate: a changed prompt against its production version on the same examples.

It fails when the candidate's pass rate drops by more than ``max_drop`` below production's (the
estimate of the paired difference decides; its 95% paired bootstrap interval is reported beside
it, so a reviewer sees how sure the figure is). A prompt with no production version yet must
reach its ``min_pass_rate`` floor instead. The markdown table is what CI posts on the PR.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from roadmap_lab.stats import Interval, mean_difference

from prompt_registry.evaluation import EvalReport

MAX_FLIPS_SHOWN = 5


@dataclass
class GateResult:
    prompt: str
    candidate: EvalReport
    baseline: EvalReport | None
    difference: Interval | None
    passed: bool
    reason: str
    flipped: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "passed": self.passed,
            "reason": self.reason,
            "candidate": self.candidate.summary(),
            "baseline": self.baseline.summary() if self.baseline else None,
            "difference": self.difference.as_dict() if self.difference else None,
            "flipped": self.flipped,
        }


def flipped_examples(baseline: EvalReport, candidate: EvalReport) -> list[dict[str, Any]]:
    """Examples whose verdict changed: ``fixed`` (now passes) or ``broken`` (now fails)."""
    flips = []
    for before, after in zip(baseline.examples, candidate.examples, strict=True):
        if before.passed != after.passed:
            flips.append(
                {
                    "id": after.id,
                    "change": "fixed" if after.passed else "broken",
                    "baseline_output": before.output,
                    "candidate_output": after.output,
                }
            )
    return flips


def decide(
    candidate: EvalReport,
    baseline: EvalReport | None,
    max_drop: float,
    min_pass_rate: float,
    resamples: int = 2000,
) -> GateResult:
    if baseline is None:
        passed = candidate.pass_rate >= min_pass_rate
        verb = "reaches" if passed else "is below"
        return GateResult(
            candidate.prompt,
            candidate,
            None,
            None,
            passed,
            f"no production version; pass rate {candidate.pass_rate:.3f} {verb} the floor "
            f"{min_pass_rate:.2f}",
        )
    if [e.id for e in baseline.examples] != [e.id for e in candidate.examples]:
        raise ValueError("the gate compares two versions on the same examples")
    difference = mean_difference(baseline.passes(), candidate.passes(), resamples=resamples)
    passed = difference.estimate >= -max_drop
    verdict = "within" if passed else "exceeds"
    return GateResult(
        candidate.prompt,
        candidate,
        baseline,
        difference,
        passed,
        f"pass rate {baseline.pass_rate:.3f} -> {candidate.pass_rate:.3f} "
        f"({difference.estimate:+.3f} [{difference.low:+.3f}, {difference.high:+.3f}]); "
        f"the drop {verdict} the allowed {max_drop:.2f}",
        flipped_examples(baseline, candidate),
    )


def _cell(text: str, limit: int = 60) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def markdown_report(results: Sequence[GateResult], max_drop: float) -> str:
    """The PR comment: one row per prompt, then the flipped examples of each."""
    if not results:
        return "## Prompt eval gate\n\nNo prompt changed: nothing to evaluate.\n"
    failed = [r for r in results if not r.passed]
    lines = [
        "## Prompt eval gate",
        "",
        f"**{'FAILED' if failed else 'passed'}**: {len(results) - len(failed)} of "
        f"{len(results)} changed prompts pass (allowed drop of the pass rate: {max_drop:.2f}).",
        "",
        "| prompt | production | candidate | difference [95% CI] | fixed | broken | gate |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        base = f"{r.baseline.pass_rate:.1%} ({r.baseline.label})" if r.baseline else "none"
        diff = (
            f"{r.difference.estimate:+.3f} [{r.difference.low:+.3f}, {r.difference.high:+.3f}]"
            if r.difference
            else "n/a"
        )
        fixed = sum(f["change"] == "fixed" for f in r.flipped)
        lines.append(
            f"| {r.prompt} | {base} | {r.candidate.pass_rate:.1%} of {r.candidate.n} | {diff} "
            f"| {fixed} | {len(r.flipped) - fixed} | {'pass' if r.passed else '**fail**'} |"
        )
    for r in results:
        if not r.flipped:
            continue
        lines += ["", f"<details><summary>{r.prompt}: {len(r.flipped)} flipped</summary>", ""]
        lines += ["| example | change | production output | candidate output |"]
        lines += ["|---|---|---|---|"]
        for flip in r.flipped[:MAX_FLIPS_SHOWN]:
            lines.append(
                f"| {flip['id']} | {flip['change']} | {_cell(flip['baseline_output'])} "
                f"| {_cell(flip['candidate_output'])} |"
            )
        if len(r.flipped) > MAX_FLIPS_SHOWN:
            lines.append(f"| … {len(r.flipped) - MAX_FLIPS_SHOWN} more | | | |")
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"
