"""The retrain report: markdown ready for a pull-request comment (data diff, validation, metrics
diff, behavioural checks, the gate's decision and reason)."""

from __future__ import annotations

from typing import Any

from ml_cicd.outcome import RetrainOutcome

HEADLINES = {
    "promoted": "promoted to champion",
    "rejected": "rejected by the gate",
    "invalid": "invalid data: nothing trained",
    "unchanged": "no change: this data version was already trained",
}
METRICS = ("macro_f1", "accuracy", "f1_great", "f1_other")


def _cell(value: Any, fmt: str = "{:.4f}") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return fmt.format(value)
    return str(value).replace("|", "\\|")


def _data_section(outcome: RetrainOutcome) -> list[str]:
    lines = ["### Data", ""]
    previous = outcome.previous_data
    known = previous.names() if previous else set()
    stats_new = outcome.data_stats.get("new", {})
    stats_old = outcome.data_stats.get("previous", {})
    lines += [
        "| | previous (champion) | this change |",
        "|---|---|---|",
        f"| data version | {previous.short if previous else '-'} | {outcome.data.short} |",
        f"| slices | {len(previous.slices) if previous else 0} | {len(outcome.data.slices)} |",
        f"| rows | {previous.rows if previous else 0} | {outcome.data.rows} |",
    ]
    if stats_new:
        lines.append(
            f"| share of great | {_cell(stats_old.get('great_share'), '{:.1%}')} | "
            f"{_cell(stats_new.get('great_share'), '{:.1%}')} |"
        )
        lines.append(
            f"| median text length (chars) | {_cell(stats_old.get('median_chars'), '{:.0f}')} | "
            f"{_cell(stats_new.get('median_chars'), '{:.0f}')} |"
        )
    added = [s for s in outcome.data.slices if s.name not in known]
    if added:
        lines += ["", "Added slices:", "", "| slice | rows | sha256 |", "|---|---|---|"]
        lines += [f"| `{s.name}` | {s.rows} | `{s.sha256[:12]}` |" for s in added]
    return [*lines, ""]


def _validation_section(outcome: RetrainOutcome) -> list[str]:
    if outcome.validation is None:
        return []
    lines = [
        "### Validation",
        "",
        "| rule | slice | result | detail | rows |",
        "|---|---|---|---|---|",
    ]
    for result in outcome.validation.results:
        rows = ", ".join(map(str, result.rows))
        if result.failed_rows > len(result.rows):
            rows += f" (+{result.failed_rows - len(result.rows)} more)"
        mark = "pass" if result.passed else "**FAIL**"
        detail = _cell(result.detail)
        lines.append(f"| {result.rule} | `{result.slice}` | {mark} | {detail} | {rows or '-'} |")
    return [*lines, ""]


def _metrics_section(outcome: RetrainOutcome) -> list[str]:
    if outcome.challenger_metrics is None:
        return []
    champion = outcome.champion_metrics or {}
    label = f"champion v{outcome.champion_version}" if outcome.champion_version else "champion"
    rows = outcome.challenger_metrics.get("rows", "")
    lines = [
        f"### Metrics (fixed held-out set, {rows} rows)",
        "",
        f"| metric | {label} | challenger | difference |",
        "|---|---|---|---|",
    ]
    for metric in METRICS:
        new = outcome.challenger_metrics.get(metric)
        old = champion.get(metric)
        diff = new - old if isinstance(new, float) and isinstance(old, float) else None
        lines.append(f"| {metric} | {_cell(old)} | {_cell(new)} | {_cell(diff, '{:+.4f}')} |")
    if outcome.gain:
        gain = outcome.gain
        lines += [
            "",
            f"macro-F1 gain {gain['estimate']:+.4f}, {gain['confidence']:.0%} interval "
            f"[{gain['low']:+.4f}, {gain['high']:+.4f}] ({gain['method']}, {gain['n']} rows).",
        ]
    return [*lines, ""]


def _behaviour_section(outcome: RetrainOutcome) -> list[str]:
    if not outcome.behaviour:
        return []
    thresholds = outcome.thresholds
    limits = {
        "minimum_functionality": f">= {thresholds.get('min_functionality_pass_rate', 0):.0%} pass",
        "invariance": f"<= {thresholds.get('max_invariance_failure_rate', 0):.0%} flip",
        "directional": f"<= {thresholds.get('max_directional_failure_rate', 0):.0%} fail",
    }
    lines = [
        "### Behavioural checks",
        "",
        "| suite | cases | rate | limit | ok |",
        "|---|---|---|---|---|",
    ]
    for name, suite in outcome.behaviour.items():
        ok = outcome.checks.get(name)
        lines.append(
            f"| {name} | {suite['cases']} | {suite['rate']:.1%} | {limits.get(name, '-')} | "
            f"{'yes' if ok else 'no'} |"
        )
    return [*lines, ""]


def render_report(outcome: RetrainOutcome) -> str:
    mode = " (dry run: nothing registered)" if outcome.dry_run else ""
    lines = [
        f"## Retrain `{outcome.model_name}`: {HEADLINES[outcome.status]}{mode}",
        "",
        f"**Decision:** {outcome.reason}",
        "",
    ]
    if outcome.registered_version:
        aliases = ", ".join(f"@{a} -> v{v}" for a, v in sorted(outcome.aliases.items()))
        lines += [
            f"Registered as version {outcome.registered_version} ({aliases or 'no alias'}).",
            "",
        ]
    lines += _data_section(outcome)
    lines += _validation_section(outcome)
    lines += _metrics_section(outcome)
    lines += _behaviour_section(outcome)
    lines.append(f"<sub>data version `{outcome.data.version}`; {outcome.seconds:.1f} s</sub>")
    return "\n".join(lines) + "\n"
