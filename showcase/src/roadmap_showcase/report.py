"""Render the showcase as one self-contained static HTML page, plus summary.json."""

from __future__ import annotations

import json
from datetime import datetime
from html import escape
from pathlib import Path, PurePosixPath

from roadmap_lab.machine import describe_machine
from roadmap_lab.results import atomic_write_json, atomic_write_text, verdict

from roadmap_showcase.runner import ProjectOutcome, ShowcaseRun

TITLE = "Roadmap Lab showcase"


def write_outputs(
    run: ShowcaseRun, showcase_dir: Path, registry_name: str = "showcase.toml"
) -> Path:
    """Write summary.json and index.html (each atomically); return the page's path."""
    machine = pick_machine(run.outcomes)
    atomic_write_json(showcase_dir / "summary.json", summary(run, machine))
    page = showcase_dir / "index.html"
    atomic_write_text(page, render_report(run, machine, registry_name))
    return page


def pick_machine(outcomes: list[ProjectOutcome]) -> dict:
    """The machine the first project reported, else the one measured here."""
    for outcome in outcomes:
        machine = (outcome.results or {}).get("machine")
        if isinstance(machine, dict) and machine:
            return machine
    return describe_machine()


def summary(run: ShowcaseRun, machine: dict) -> dict:
    return {
        "generated_at": run.finished_at.isoformat(timespec="seconds"),
        "machine": machine,
        "ok": len(run.outcomes) - len(run.failed),
        "failed": len(run.failed),
        "build": None
        if run.build is None
        else {
            "addresses": run.build.addresses,
            "ok": run.build.ok,
            "duration_s": round(run.build.duration_s, 2),
            "log": run.build.log,
        },
        "projects": [outcome.summary() for outcome in run.outcomes],
    }


# --- formatting helpers -----------------------------------------------------------------------


def as_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def format_number(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or (value.is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def format_quantity(value: object, unit: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict | list):
        return json.dumps(value)
    text = str(value) if isinstance(value, str) else format_number(value)
    if not isinstance(unit, str) or not unit or as_number(value) is None:
        return text
    return f"{text}{unit}" if unit in ("%", "x", "×") else f"{text} {unit}"


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def format_machine(machine: dict) -> str:
    parts = []
    if machine.get("cpu_model"):
        parts.append(str(machine["cpu_model"]))
    if machine.get("cores"):
        parts.append(f"{machine['cores']} cores")
    if machine.get("memory_gb"):
        parts.append(f"{format_number(machine['memory_gb'])} GB RAM")
    parts.append(f"GPU: {machine['gpu']}" if machine.get("gpu") else "no GPU")
    if machine.get("python"):
        parts.append(f"Python {machine['python']}")
    if machine.get("platform"):
        parts.append(str(machine["platform"]))
    return " · ".join(parts)


def is_reference(entry: dict) -> bool:
    """A figure carried from a committed benchmark, not measured by this run: shown, not counted."""
    return entry.get("reference") is True


def baseline_unit(entry: dict) -> str | None:
    """The unit a headline's baseline is shown in: its own ``baseline_unit`` when given; else the
    figure's unit, except for ratios and percentages, whose baseline (the denominator) is never
    in "x" or "%" itself."""
    if "baseline_unit" in entry:
        unit = entry["baseline_unit"]
        return unit if isinstance(unit, str) else None
    unit = entry.get("unit")
    if not isinstance(unit, str) or unit in ("x", "×", "%"):
        return None
    return unit


# How each verdict is shown: (CSS class, symbol). Only "met" counts as met.
VERDICT_STYLE = {
    "met": ("met", "✓"),
    "within noise": ("noise", "≈"),
    "missed": ("missed", "✗"),
    "unverified": ("muted", "?"),
}


def entry_verdict(entry: dict) -> str | None:
    """The verdict of a headline entry by the shared rule (from its interval, never from a verdict
    the file states); "invalid" when the target is no comparison; None without a target."""
    try:
        return verdict(entry.get("target"), entry.get("interval"), entry.get("unit"))
    except (ValueError, TypeError, KeyError):
        return "invalid"


def verdict_counts(outcome: ProjectOutcome) -> tuple[dict[str, int], int]:
    """(verdict -> count over the targeted figures this run measured, references carried)."""
    counts: dict[str, int] = {}
    references = 0
    for entry in (outcome.results or {}).get("headline", []):
        if is_reference(entry):
            references += 1
            continue
        found = entry_verdict(entry)
        if found is not None:
            counts[found] = counts.get(found, 0) + 1
    return counts, references


def _local_time(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M %Z")


# --- HTML -------------------------------------------------------------------------------------


def render_report(run: ShowcaseRun, machine: dict, registry_name: str = "showcase.toml") -> str:
    ok_count = len(run.outcomes) - len(run.failed)
    failed_count = len(run.failed)
    elapsed = (run.finished_at - run.started_at).total_seconds()
    pills = [f'<span class="pill ok">{ok_count} ok</span>']
    pills.append(
        f'<span class="pill {"failed" if failed_count else "muted"}">{failed_count} failed</span>'
    )
    if run.build is not None:
        state = "ok" if run.build.ok else "failed"
        pills.append(
            f'<a class="pill muted" href="{escape(run.build.log)}">Pants build {state} · '
            f"{escape(format_duration(run.build.duration_s))}</a>"
        )
    header = f"""<header class="hero"><div class="wrap">
<h1>{escape(TITLE)}</h1>
<p class="meta">Generated {escape(_local_time(run.finished_at))}
 · run took {escape(format_duration(elapsed))}</p>
<p class="meta machine"><span class="label">Machine</span> {escape(format_machine(machine))}</p>
<p class="summary">{''.join(pills)}</p>
</div></header>"""

    if not run.outcomes:
        body = f"""<section class="card empty">
<h2>No projects are registered</h2>
<p>The showcase runs the projects listed in <code>{escape(registry_name)}</code>,
and it lists none yet. Add a <code>[[project]]</code> entry there
(see <code>showcase/README.md</code>) and run the showcase again.</p>
</section>"""
    else:
        body = _overview(run.outcomes) + "\n".join(
            _card(outcome, machine) for outcome in run.outcomes
        )

    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(TITLE)}</title>
<style>{CSS}</style>
</head>
<body>
{header}
<main class="wrap">
{body}
</main>
<footer class="wrap">Rendered by <code>roadmap_showcase</code> from each project's
<code>results.json</code>.</footer>
</body>
</html>
"""


def _overview(outcomes: list[ProjectOutcome]) -> str:
    rows = []
    for outcome in outcomes:
        counts, references = verdict_counts(outcome)
        checked = sum(counts.values())
        if not outcome.ok:
            targets = '<span class="muted">—</span>'
        elif checked == 0:
            targets = '<span class="muted">none measured</span>'
        else:
            met = counts.get("met", 0)
            css = "met" if met == checked else "missed"
            others = ", ".join(
                f"{count} {name}" for name, count in sorted(counts.items()) if name != "met"
            )
            targets = f'<span class="{css}">{met}/{checked} met</span>'
            if others:
                targets += f' <span class="muted">({escape(others)})</span>'
        if outcome.ok and references:
            targets += f' <span class="muted">(+{references} reference)</span>'
        rows.append(
            f'<tr><td><a href="#{escape(outcome.project.name)}">'
            f"{escape(outcome.project.title)}</a></td><td>{_badge(outcome)}</td>"
            f'<td class="num">{escape(format_duration(outcome.duration_s))}</td>'
            f"<td>{targets}</td></tr>"
        )
    return f"""<section class="card overview">
<h2>Overview</h2>
<table>
<thead><tr><th>Project</th><th>Status</th><th class="num">Duration</th><th>Targets</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
</section>
"""


def _badge(outcome: ProjectOutcome) -> str:
    css = "ok" if outcome.ok else "failed"
    return f'<span class="badge {css}">{escape(outcome.status)}</span>'


def _card(outcome: ProjectOutcome, page_machine: dict) -> str:
    project = outcome.project
    results = outcome.results or {}
    meta = [f"<code>{escape(project.name)}</code>", escape(format_duration(outcome.duration_s))]
    if results.get("measured_at"):
        meta.append(f"measured {escape(str(results['measured_at']))}")
    if outcome.log:
        meta.append(f'<a href="{escape(outcome.log)}">log</a>')
    if outcome.results_copy:
        meta.append(f'<a href="{escape(outcome.results_copy)}">results.json</a>')
    # Pages the demo wrote (side-by-side answers, samples): linked from the card.
    meta += [
        f'<a class="page" href="{escape(page)}">{escape(PurePosixPath(page).name)}</a>'
        for page in outcome.pages
    ]
    parts = [
        f'<article class="card project {escape(outcome.status)}" id="{escape(project.name)}">',
        f'<div class="card-head"><h2>{escape(project.title)}</h2>{_badge(outcome)}</div>',
        f'<p class="meta">{" · ".join(meta)}</p>',
    ]
    machine = results.get("machine")
    if isinstance(machine, dict) and machine and machine != page_machine:
        parts.append(
            f'<p class="meta"><span class="label">Ran on</span> '
            f"{escape(format_machine(machine))}</p>"
        )
    if results.get("claim"):
        # The claim the demo stated before it ran; the headline below judges it.
        parts.append(
            f'<p class="claim"><span class="label">Claim</span> {escape(str(results["claim"]))}</p>'
        )
    if outcome.ok:
        parts.append(_headline_table(results.get("headline", [])))
        if outcome.plots:
            figures = "".join(_figure(plot) for plot in outcome.plots)
            parts.append(f'<div class="plots">{figures}</div>')
    else:
        parts.append(
            f'<div class="failure"><p><strong>Failed:</strong> '
            f"{escape(outcome.reason or 'unknown')}</p>"
        )
        if outcome.log_tail:
            parts.append(
                f"<details open><summary>Last {len(outcome.log_tail)} log lines</summary>"
                f"<pre>{escape(chr(10).join(outcome.log_tail))}</pre></details>"
            )
        parts.append("</div>")
    parts.append("</article>")
    return "\n".join(parts)


def _figure(plot: str) -> str:
    src = escape(plot)
    name = PurePosixPath(plot)
    return (
        f'<figure><a href="{src}"><img src="{src}" alt="{escape(name.stem)}" loading="lazy"></a>'
        f"<figcaption>{escape(name.name)}</figcaption></figure>"
    )


def format_interval(entry: dict) -> str:
    interval = entry.get("interval")
    if not isinstance(interval, dict):
        return ""
    return (
        f" [{format_number(interval.get('low'))}, {format_number(interval.get('high'))}]"
        f" ({format_number(100 * float(interval.get('confidence', 0)))}% {interval.get('method')},"
        f" n={interval.get('n')})"
    )


def _verdict_cell(entry: dict) -> str:
    if is_reference(entry):
        when = str(entry.get("measured_at") or "?")[:10]
        return (
            f'<span class="muted" title="carried from the committed benchmark, not measured '
            f'by this run">reference, measured {escape(when)}</span>'
        )
    found = entry_verdict(entry)
    if found is None:
        return '<span class="muted">—</span>'
    css, symbol = VERDICT_STYLE.get(found, ("muted", "!"))
    return f'<span class="{css}">{symbol} {escape(found)}</span>'


def _headline_table(headline: list[dict]) -> str:
    if not headline:
        return '<p class="muted">No headline figures reported.</p>'
    rows = []
    for entry in headline:
        unit = entry.get("unit")
        target = entry.get("target")
        target_text = "—" if target is None else str(target)
        baseline = entry.get("baseline")
        shown_unit = baseline_unit(entry) if not isinstance(baseline, str) else None
        rows.append(
            f"<tr><td>{escape(str(entry.get('name')))}</td>"
            f'<td class="num value">{escape(format_quantity(entry.get("value"), unit))}'
            f'<span class="interval">{escape(format_interval(entry))}</span></td>'
            f'<td class="num">{escape(format_quantity(baseline, shown_unit))}</td>'
            f'<td class="num">{escape(target_text)}</td><td>{_verdict_cell(entry)}</td></tr>'
        )
    return f"""<table class="headline">
<thead><tr><th>Measure</th><th class="num">Value [interval]</th><th class="num">Baseline</th>
<th class="num">Target</th><th>Verdict</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
<p class="legend muted">Verdicts come from each figure's interval: met when all of it clears the
target, within noise when it straddles the target, missed when none of it does, unverified when
no interval was measured. Only "met" counts as met.</p>"""


CSS = """
:root { --bg: #f4f5f7; --card: #fff; --text: #1f2328; --muted: #656d76; --line: #d8dee4;
  --ok: #1a7f37; --ok-bg: #dafbe1; --bad: #cf222e; --bad-bg: #ffebe9; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text);
  font: 15px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "Helvetica Neue", Arial,
    sans-serif; }
.wrap { max-width: 1120px; margin: 0 auto; padding: 0 24px; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
code { font: 0.9em/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  background: rgba(175,184,193,0.2); padding: 0.1em 0.35em; border-radius: 4px; }
.hero { background: linear-gradient(135deg, #1b2a41 0%, #24476b 100%); color: #fff;
  padding: 32px 0 24px; }
.hero h1 { margin: 0 0 6px; font-size: 30px; letter-spacing: -0.01em; }
.hero .meta { color: #c9d5e3; margin: 2px 0; }
.hero .label, .card .label { display: inline-block; font-size: 11px; text-transform: uppercase;
  letter-spacing: 0.06em; font-weight: 600; margin-right: 6px; opacity: 0.8; }
.summary { margin: 14px 0 0; display: flex; gap: 8px; flex-wrap: wrap; }
.pill { display: inline-block; padding: 3px 12px; border-radius: 999px; font-weight: 600;
  font-size: 13px; }
.pill.ok { background: var(--ok-bg); color: var(--ok); }
.pill.failed { background: var(--bad-bg); color: var(--bad); }
.pill.muted { background: rgba(255,255,255,0.14); color: #e6edf3; }
main.wrap { padding-top: 24px; padding-bottom: 8px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 18px 22px; margin: 0 0 20px; box-shadow: 0 1px 2px rgba(31,35,40,0.06); }
.card.project.ok { border-left: 5px solid var(--ok); }
.card.project.failed { border-left: 5px solid var(--bad); }
.card h2 { margin: 0; font-size: 19px; }
.card-head { display: flex; align-items: center; justify-content: space-between; gap: 12px; }
.card .meta { color: var(--muted); margin: 4px 0 12px; font-size: 13.5px; }
.card .claim { margin: 4px 0 12px; font-size: 14px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 12px;
  font-weight: 700; text-transform: uppercase; letter-spacing: 0.05em; }
.badge.ok { background: var(--ok-bg); color: var(--ok); }
.badge.failed { background: var(--bad-bg); color: var(--bad); }
table { width: 100%; border-collapse: collapse; font-size: 14px; }
th { text-align: left; color: var(--muted); font-weight: 600; font-size: 12px;
  text-transform: uppercase; letter-spacing: 0.04em; border-bottom: 2px solid var(--line);
  padding: 6px 10px; }
td { border-bottom: 1px solid var(--line); padding: 7px 10px; vertical-align: top; }
tbody tr:last-child td { border-bottom: none; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.value { font-weight: 600; }
.overview h2 { margin-bottom: 10px; }
.met { color: var(--ok); font-weight: 600; }
.missed { color: var(--bad); font-weight: 600; }
.noise { color: #9a6700; font-weight: 600; }
.interval { display: block; font-weight: 400; font-size: 12px; color: var(--muted);
  white-space: normal; }
.legend { font-size: 12.5px; margin: 8px 0 0; }
.muted { color: var(--muted); }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 16px;
  margin-top: 16px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 8px;
  background: #fafbfc; }
figure img { display: block; width: 100%; height: auto; border-radius: 4px;
  image-rendering: auto; }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 6px; text-align: center; }
.failure { background: var(--bad-bg); border: 1px solid #ffcecb; border-radius: 8px;
  padding: 10px 14px; }
.failure p { margin: 0 0 8px; }
.failure summary { cursor: pointer; color: var(--muted); font-size: 13px; }
pre { background: #0d1117; color: #e6edf3; padding: 12px 14px; border-radius: 6px;
  overflow-x: auto; font: 12.5px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  margin: 8px 0 0; white-space: pre-wrap; word-break: break-word; }
.empty { text-align: center; padding: 40px 24px; }
.empty p { color: var(--muted); max-width: 620px; margin: 10px auto 0; }
footer { color: var(--muted); font-size: 12.5px; padding: 8px 24px 32px; }
"""
