"""The replay's HTML report: drift scores over time (from Prometheus), alert firing times (from
the receiver), the named alert and the detection delay per scenario (in production time), and
every alert of each phase. Plots are matplotlib figures, embedded as PNG."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from roadmap_lab.results import atomic_write_text

from model_monitoring.alerting import Notification
from model_monitoring.drift import PSI_DRIFT_THRESHOLD
from model_monitoring.replay import PhaseResult
from model_monitoring.stack import Stack

PSI_FLOOR_PLOT = 1e-3
PHASE_COLOURS = {
    "held_out": "#d8f0d8", "control": "#e8f5e8", "scenario": "#fde2c8", "analysis": "#dde6f7",
}  # fmt: skip


def drift_series(stack: Stack, start: float, end: float) -> dict[str, list[tuple[float, float]]]:
    """PSI per feature over the run, as Prometheus recorded it."""
    series: dict[str, list[tuple[float, float]]] = {}
    for item in stack.query_range("model_feature_drift_psi", start, end):
        feature = item["metric"].get("feature", "?")
        series[feature] = [(float(t), float(v)) for t, v in item["values"]]
    return series


def _figures(
    phases: list[PhaseResult],
    series: dict[str, list[tuple[float, float]]],
    notifications: list[Notification],
    clock: float,
) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    origin = phases[0].started_at if phases else 0.0
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for phase in phases:
        ax.axvspan(
            phase.started_at - origin, phase.ended_at - origin,
            color=PHASE_COLOURS[phase.kind], alpha=0.6, lw=0,
        )  # fmt: skip
        ax.text(phase.started_at - origin, 0.98, phase.name, rotation=90, va="top", fontsize=7,
                transform=ax.get_xaxis_transform())  # fmt: skip
    for feature, points in sorted(series.items()):
        if points:
            values = [max(v, PSI_FLOOR_PLOT) for _, v in points]  # log scale: no zeros
            ax.plot([t - origin for t, _ in points], values, label=feature, lw=1)
    ax.axhline(PSI_DRIFT_THRESHOLD, color="black", ls="--", lw=0.8, label="PSI threshold")
    firing = sorted(
        {(n.received_at, a["labels"]["alertname"]) for n in notifications for a in n.alerts()}
    )
    for received, _ in firing:
        ax.axvline(received - origin, color="red", lw=0.6, alpha=0.5)
    ax.set_yscale("log")
    ax.set_xlabel(f"seconds since the replay started (clock x{clock:g}; red: alert at receiver)")
    ax.set_ylabel("PSI vs reference")
    ax.set_title("Feature drift over the replay")
    ax.legend(fontsize=7, ncol=5, loc="upper left", bbox_to_anchor=(0, -0.15))
    scenarios = [p for p in phases if p.kind == "scenario"]
    fig2, ax2 = plt.subplots(figsize=(7, 3.2))
    names = [p.name for p in scenarios]
    delays = [(p.detection_delay_s or 0.0) * clock / 60 for p in scenarios]
    bars = ax2.barh(
        names, delays, color=["#4c72b0" if p.detected_at else "#c44e52" for p in scenarios]
    )
    for bar, phase, minutes in zip(bars, scenarios, delays, strict=True):
        label = f"{minutes:.1f} min" if phase.detected_at else "not detected"
        ax2.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                 f" {label} ({phase.expected})", va="center", fontsize=7)  # fmt: skip
    ax2.set_xlabel("production minutes from shift start to the named alert at the receiver")
    ax2.set_title("Detection delay per scenario")
    ax2.set_xlim(0, max(delays + [1.0]) * 1.8)
    return {"drift_over_time": fig, "detection_delay": fig2}


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", dpi=110)
    return base64.b64encode(buffer.getvalue()).decode()


def write_report(
    folder: Path,
    phases: list[PhaseResult],
    series: dict[str, list[tuple[float, float]]],
    notifications: list[Notification],
    *,
    clock: float,
    bundle_version: str,
) -> tuple[Path, dict[str, Any]]:
    figures = _figures(phases, series, notifications, clock)
    origin = phases[0].started_at if phases else 0.0

    def delay(phase: PhaseResult) -> str:
        seconds = phase.detection_delay_s
        return "" if seconds is None else f"{seconds * clock / 60:.1f}"

    def alerts(found: list[Any]) -> str:
        return html.escape(", ".join(a.label for a in found))

    rows = "".join(
        "<tr>"
        f"<td>{html.escape(p.name)}</td><td>{p.kind}</td><td>{html.escape(p.description)}</td>"
        f"<td>{p.rows}</td><td>{html.escape(p.expected or '')}</td><td>{delay(p)}</td>"
        f"<td>{alerts(p.alerts)}</td><td>{alerts(p.false_alerts)}</td>"
        "</tr>"
        for p in phases
    )
    alert_rows = "".join(
        f"<tr><td>{n.received_at - origin:.1f}</td><td>{html.escape(n.receiver)}</td>"
        f"<td>{html.escape(a['status'])}</td>"
        f"<td>{html.escape(a['labels'].get('alertname', ''))}</td>"
        f"<td>{html.escape(a['labels'].get('feature', ''))}</td></tr>"
        for n in notifications
        for a in n.payload.get("alerts", [])
    )
    images = "".join(
        f'<h2>{html.escape(name.replace("_", " "))}</h2><img src="data:image/png;base64,'
        f'{_png(fig)}" alt="{name}">'
        for name, fig in figures.items()
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>model-monitoring replay</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px}}
img{{max-width:100%}}</style></head><body>
<h1>Drift replay report</h1>
<p>Bundle {html.escape(bundle_version)}; clock x{clock:g} (production minutes = seconds x
{clock:g} / 60). Detection delay: from the shift's start to the scenario's named alert at the
webhook receiver. False alerts: in held-out time and the control every alert; in a scenario every
alert but the named one.</p>
<h2>Phases</h2>
<table><tr><th>phase</th><th>kind</th><th>what</th><th>rows</th><th>expected</th>
<th>delay (production min)</th><th>alerts fired</th><th>false alerts</th></tr>{rows}</table>
{images}
<h2>Notifications at the receiver</h2>
<table><tr><th>t (s)</th><th>receiver</th><th>status</th><th>alert</th><th>feature</th></tr>
{alert_rows}</table>
</body></html>
"""
    path = atomic_write_text(folder / "report.html", page)
    return path, figures
