#!/usr/bin/env python3
"""Writes each project README's headline table from its committed benchmarks/results.json.

The table sits between two markers in the README (see START and END); everything between them is
generated: the figures, their intervals, targets and the verdicts of roadmap_lab.results' rule,
and the machine and load they were measured on. Never edit it by hand: rerun this after
`benchmark --publish`.

    python3 build-support/headline_tables.py           # rewrite the tables that are stale
    python3 build-support/headline_tables.py --check   # exit 1 naming the stale ones

(With `PYTHONPATH=shared/src` when roadmap_lab is not installed; the repo test runs --check.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from roadmap_lab.results import project_folder, verdict

START = (
    "<!-- headline-table: generated from benchmarks/results.json by "
    "build-support/headline_tables.py; do not edit -->"
)
END = "<!-- /headline-table -->"
VERDICT_MARK = {"met": "met", "within noise": "within noise", "missed": "**missed**",
                "unverified": "unverified"}  # fmt: skip


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value is None else str(value)
    return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"


def _quantity(value: Any, unit: Any) -> str:
    text = _number(value)
    if value is None or not unit or not isinstance(value, int | float):
        return text
    return f"{text}{unit}" if unit in ("x", "%") else f"{text} {unit}"


def _value_cell(item: dict[str, Any]) -> str:
    text = _quantity(item.get("value"), item.get("unit"))
    interval = item.get("interval")
    if interval:
        text += (
            f" [{_number(interval['low'])}, {_number(interval['high'])}]"
            f" ({interval['confidence']:.0%} {interval['method']}, n={interval['n']})"
        )
    return text


def _baseline_cell(item: dict[str, Any]) -> str:
    unit = item.get("baseline_unit")
    if unit is None and item.get("unit") not in ("x", "%"):
        unit = item.get("unit")
    return _quantity(item.get("baseline"), unit)


def _conditions(results: dict[str, Any]) -> str:
    conditions = results.get("conditions")
    if not conditions:
        return "load not recorded (measured before benchmarks recorded their conditions)"
    before = conditions["load_average_before"][0]
    after = conditions["load_average_after"][0]
    return f"load average {before} at the start, {after} at the end, on {conditions['cores']} cores"


def _machine(machine: dict[str, Any]) -> str:
    parts = [str(machine.get("cpu_model") or "unknown CPU"), f"{machine.get('cores')} cores"]
    if machine.get("memory_gb"):
        parts.append(f"{machine['memory_gb']} GB")
    parts.append(f"GPU {machine['gpu']}" if machine.get("gpu") else "no GPU")
    return ", ".join(parts)


def render_table(results: dict[str, Any]) -> str:
    """The markdown table of a results file's headline, with how and where it was measured."""
    rows = [
        "| figure | value [interval] | baseline | target | verdict |",
        "|---|---|---|---|---|",
    ]
    for item in results.get("headline", []):
        found = verdict(item.get("target"), item.get("interval"), item.get("unit"))
        cells = [
            str(item["name"]),
            _value_cell(item),
            _baseline_cell(item),
            item.get("target") or "—",
            VERDICT_MARK[found] if found else "—",
        ]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    when = str(results.get("measured_at", "?"))[:10]
    notes = [
        f"Measured {when} on {_machine(results.get('machine') or {})}; {_conditions(results)}.",
        f"Command: `{results.get('command')}`.",
        "Verdicts come from each interval (roadmap_lab.results): met when all of it clears the "
        "target, within noise when it straddles it, missed when none of it does, unverified "
        "without an interval.",
    ]
    if results.get("verdicts_recomputed"):
        notes.append(f"Note: {results['verdicts_recomputed']}.")
    return "\n".join(rows) + "\n\n" + "\n".join(f"- {note}" for note in notes)


def updated_readme(text: str, table: str, name: str) -> str:
    """``text`` with the block between the markers replaced by ``table``."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"{name}: needs one '{START}' line, then one '{END}' line")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}\n{END}{tail}"


def verdict_counts(results: dict[str, Any]) -> dict[str, int]:
    counts = dict.fromkeys(VERDICT_MARK, 0)
    for item in results.get("headline", []):
        found = verdict(item.get("target"), item.get("interval"), item.get("unit"))
        if found:
            counts[found] += 1
    return counts


def render_summary(all_results: dict[str, dict[str, Any]]) -> str:
    """The root README's table: per project, how its targeted figures fare."""
    rows = [
        "| project | targeted figures | met | within noise | missed | unverified | measured |",
        "|---|---|---|---|---|---|---|",
    ]
    for project, results in all_results.items():
        counts = verdict_counts(results)
        rows.append(
            f"| [{project}]({project_folder(project)}#what-it-measured) | {sum(counts.values())} | "
            + " | ".join(str(counts[name]) for name in VERDICT_MARK)
            + f" | {str(results.get('measured_at', '?'))[:10]} |"
        )
    return "\n".join(rows) + (
        "\n\nOnly \"met\" counts as met: the whole interval of the figure clears its target. "
        "Each project's README gives the figures, intervals and the machine."
    )


def stale_readmes(root: Path, write: bool) -> list[str]:
    """The READMEs whose generated tables differ from the results files (rewritten when
    ``write``): each project's, and the root README's summary."""
    tables: dict[Path, str] = {}
    all_results: dict[str, dict[str, Any]] = {}
    found = [sorted(root.glob(f"{top}/*/benchmarks/results.json")) for top in ("projects", "loops")]
    for results_file in found[0] + found[1]:
        results = json.loads(results_file.read_text(encoding="utf-8"))
        all_results[results.get("project", results_file.parent.parent.name)] = results
        tables[results_file.parent.parent / "README.md"] = render_table(results)
    tables[root / "README.md"] = render_summary(all_results)
    stale = []
    for readme, table in tables.items():
        text = readme.read_text(encoding="utf-8")
        name = str(readme.relative_to(root))
        new = updated_readme(text, table, name)
        if new != text:
            stale.append(name)
            if write:
                readme.write_text(new, encoding="utf-8")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale tables")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args(argv)
    try:
        stale = stale_readmes(args.root, write=not args.check)
    except (ValueError, OSError, KeyError) as error:
        print(f"headline_tables: {error}", file=sys.stderr)
        return 2
    for name in stale:
        print(f"{'stale' if args.check else 'rewrote'}: {name}")
    if args.check and stale:
        print("run: python3 build-support/headline_tables.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
