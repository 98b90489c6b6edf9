"""The gate: a changed prompt against its production version, judged with **production's** eval
config (golden examples and scorers stored with the production version).

A candidate passes when every check passes:

* **vs production**: its pass rate drops by at most ``max_drop`` below production's on the same
  examples (the estimate of the paired difference decides; its 95% interval for paired
  proportions, Newcombe's, is reported beside it, so a reviewer sees how sure the figure is);
* **vs the baseline** (no ratchet): the same against a pinned baseline version (production's
  stored pin, else the first production version), so small drops cannot add up; a candidate
  that moves the baseline (its own pin, or dropping production's) may only move it to a version
  that was production and passes at least as often on production's examples;
* **floor**: its pass rate reaches the floor (``min_pass_rate``); with no production version yet
  this is the only check;
* **the candidate's own eval config**, when it changes production's (examples added, removed or
  changed; scorers, floor or pin changed): the same drop and floor checks on the new config,
  production evaluated on it too, so the candidate passes on both the old and the new set and
  removing examples cannot raise a pass rate by itself;
* **scorer code**: code that differs from what production was registered with is refused
  unless the change is explicitly accepted (the acceptance is recorded on the version).

The markdown report is what CI posts on the PR.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from roadmap_lab.stats import Interval, paired_proportion_difference

from prompt_registry.evalconfig import ConfigChanges
from prompt_registry.evaluation import EvalReport

MAX_FLIPS_SHOWN = 5
MAX_IDS_SHOWN = 12
ACCEPT_FLAG = "--accept-scorer-code-change"


@dataclass
class Check:
    """One condition of the gate; a paired check carries both reports and the difference."""

    name: str
    passed: bool
    detail: str
    difference: Interval | None = None
    flipped: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "detail": self.detail,
            "difference": self.difference.as_dict() if self.difference else None,
            "flipped": self.flipped,
        }


@dataclass(frozen=True)
class ScorerCode:
    """The scorer code production was registered with against the code that runs now."""

    production: str
    running: str
    accepted: bool = False

    @property
    def changed(self) -> bool:
        return self.production != self.running

    def transition(self) -> str:
        return f"{self.production[:12]} -> {self.running[:12]}"


@dataclass
class NewConfigRuns:
    """The candidate and production on the candidate's changed eval config."""

    candidate: EvalReport
    production: EvalReport
    floor: float
    changes: ConfigChanges


@dataclass
class GateResult:
    prompt: str
    # The candidate and production on production's eval config (the candidate's own config when
    # there is no production version).
    candidate: EvalReport
    baseline: EvalReport | None
    checks: list[Check]
    new_config: NewConfigRuns | None = None
    scorer_code: ScorerCode | None = None

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def reason(self) -> str:
        failed = [c for c in self.checks if not c.passed]
        return "; ".join(f"{c.name}: {c.detail}" for c in failed or self.checks)

    @property
    def production_check(self) -> Check | None:
        return next((c for c in self.checks if c.name.startswith("vs production")), None)

    @property
    def difference(self) -> Interval | None:
        check = self.production_check
        return check.difference if check else None

    @property
    def flipped(self) -> list[dict[str, Any]]:
        check = self.production_check
        return check.flipped if check else []

    def as_dict(self) -> dict[str, Any]:
        new = self.new_config
        return {
            "prompt": self.prompt,
            "passed": self.passed,
            "reason": self.reason,
            "candidate": self.candidate.summary(),
            "baseline": self.baseline.summary() if self.baseline else None,
            "difference": self.difference.as_dict() if self.difference else None,
            "flipped": self.flipped,
            "checks": [c.as_dict() for c in self.checks],
            "eval_config_change": (
                {
                    **new.changes.as_dict(),
                    "candidate": new.candidate.summary(),
                    "production": new.production.summary(),
                }
                if new
                else None
            ),
            "scorer_code": vars(self.scorer_code) if self.scorer_code else None,
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


def paired_check(
    name: str,
    candidate: EvalReport,
    baseline: EvalReport,
    max_drop: float,
    min_gain: float | None = None,
) -> Check:
    """The candidate may lose at most ``max_drop`` of the pass rate against ``baseline`` on the
    same examples; with ``min_gain`` it must win instead: the paired interval's lower bound of
    its gain above ``min_gain`` (a gain within sampling noise is not enough)."""
    if [e.id for e in baseline.examples] != [e.id for e in candidate.examples]:
        raise ValueError("the gate compares two versions on the same examples")
    difference = paired_proportion_difference(baseline.passes(), candidate.passes())
    if min_gain is None:
        passed = difference.estimate >= -max_drop
        rule = f"the drop {'within' if passed else 'exceeds'} the allowed {max_drop:.2f}"
    else:
        passed = difference.low > min_gain
        verb = "clears" if passed else "does not clear"
        rule = f"the gain's lower bound {verb} the required {min_gain:+.2f}"
    return Check(
        name,
        passed,
        f"pass rate {baseline.pass_rate:.3f} ({baseline.label}) -> {candidate.pass_rate:.3f} "
        f"({difference.estimate:+.3f} [{difference.low:+.3f}, {difference.high:+.3f}]); {rule}",
        difference,
        flipped_examples(baseline, candidate),
    )


def floor_check(name: str, report: EvalReport, floor: float) -> Check:
    passed = report.pass_rate >= floor
    verb = "reaches" if passed else "is below"
    return Check(name, passed, f"pass rate {report.pass_rate:.3f} {verb} the floor {floor:.2f}")


def scorer_code_check(code: ScorerCode) -> Check:
    if code.accepted:
        return Check(
            "scorer code", True, f"changed ({code.transition()}), accepted with {ACCEPT_FLAG}"
        )
    return Check(
        "scorer code",
        False,
        f"changed since production was registered ({code.transition()}): refused unless "
        f"{ACCEPT_FLAG} accepts it",
    )


def decide(
    candidate: EvalReport,
    production: EvalReport | None,
    max_drop: float,
    floor: float,
    *,
    baseline: EvalReport | None = None,
    moved_baseline: EvalReport | None = None,
    refused_pin: str | None = None,
    new_config: NewConfigRuns | None = None,
    scorer_code: ScorerCode | None = None,
    min_gain: float | None = None,
) -> GateResult:
    """Every check of the gate on evaluations already made (see the module's docstring).
    ``baseline``: the no-ratchet baseline when it is not production itself; ``moved_baseline``:
    the baseline the candidate sets once production, when it moves it (it may not be worse than
    the current one); ``refused_pin``: why the candidate's pin cannot be a baseline;
    ``min_gain``: the candidate must beat production (see ``paired_check``)."""
    checks = []
    if scorer_code is not None and scorer_code.changed:
        checks.append(scorer_code_check(scorer_code))
    if production is None:
        checks.append(floor_check("no production version; floor", candidate, floor))
    else:
        checks.append(
            paired_check(
                f"vs production {production.label}", candidate, production, max_drop, min_gain
            )
        )
        if baseline is not None:
            checks.append(
                paired_check(
                    f"vs baseline {baseline.label} (no ratchet)",
                    candidate,
                    baseline,
                    max_drop,
                )
            )
        if moved_baseline is not None:
            current = baseline or production
            checks.append(
                paired_check(
                    f"baseline moved from {current.label} to {moved_baseline.label} (no ratchet)",
                    moved_baseline,
                    current,
                    0.0,
                )
            )
        if refused_pin is not None:
            checks.append(Check("baseline pin", False, refused_pin))
        checks.append(floor_check("floor", candidate, floor))
    if new_config is not None:
        checks.append(
            paired_check(
                "on the candidate's eval config vs production",
                new_config.candidate,
                new_config.production,
                max_drop,
            )
        )
        checks.append(
            floor_check(
                "floor of the candidate's eval config", new_config.candidate, new_config.floor
            )
        )
    return GateResult(candidate.prompt, candidate, production, checks, new_config, scorer_code)


def _cell(text: str, limit: int = 60) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_IDS_SHOWN])
    return shown + (f" … ({len(ids)} in all)" if len(ids) > MAX_IDS_SHOWN else "") or "none"


def _config_section(result: GateResult) -> list[str]:
    new = result.new_config
    if new is None:
        return []
    changes = new.changes
    lines = [
        "",
        f"### {result.prompt}: the eval config changes",
        "",
        "Judged on production's config above; on the candidate's config below (production "
        "evaluated on it too). The candidate must pass on both.",
        "",
        f"- added examples: {_ids(changes.added)}",
        f"- removed examples: {_ids(changes.removed)}",
        f"- changed examples: {_ids(changes.changed)}",
    ]
    if changes.scorers:
        lines.append(f"- scorers: `{changes.scorers[0]}` -> `{changes.scorers[1]}`")
    if changes.min_pass_rate:
        lines.append(f"- floor: {changes.min_pass_rate[0]} -> {changes.min_pass_rate[1]}")
    if changes.baseline_version:
        before, after = changes.baseline_version
        lines.append(f"- pinned baseline: {before} -> {after} (applies once this is production)")
    lines.append(
        f"- on the candidate's config: production {new.production.pass_rate:.1%}, candidate "
        f"{new.candidate.pass_rate:.1%} of {new.candidate.n}"
    )
    return lines


def markdown_report(results: Sequence[GateResult], max_drop: float) -> str:
    """The PR comment: one row per prompt, then each prompt's checks, eval-config changes and
    flipped examples."""
    if not results:
        return "## Prompt eval gate\n\nNo prompt changed: nothing to evaluate.\n"
    failed = [r for r in results if not r.passed]
    lines = [
        "## Prompt eval gate",
        "",
        f"**{'FAILED' if failed else 'passed'}**: {len(results) - len(failed)} of "
        f"{len(results)} changed prompts pass (allowed drop of the pass rate: {max_drop:.2f}; "
        "judged on production's golden set and scorers).",
        "",
        "| prompt | production | candidate | difference [95% CI] | fixed | broken | cut at "
        "token limit | gate |",
        "|---|---|---|---|---|---|---|---|",
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
            f"| {fixed} | {len(r.flipped) - fixed} | {r.candidate.truncated} "
            f"| {'pass' if r.passed else '**fail**'} |"
        )
    for r in results:
        lines += ["", f"**{r.prompt}** ({r.candidate.label}) checks:", ""]
        lines += [f"- {'pass' if c.passed else '**fail**'}: {c.name}: {c.detail}" for c in r.checks]
        lines += _config_section(r)
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
