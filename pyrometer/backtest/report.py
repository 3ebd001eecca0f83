"""A backtest's figures as rows (for the terminal and HTML alike) and the HTML report.

The report is one self-contained HTML file with inline SVG plots, like the model
evaluation report: no script, no network, opens from an e-mail attachment.
"""

from __future__ import annotations

import html
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pyrometer.backtest.metrics import BANDS, Metrics
from pyrometer.backtest.run import Result
from pyrometer.core.timeutil import iso

COLORS = ("#c0392b", "#2980b9", "#27ae60", "#8e44ad", "#d35400")
BAND_COLORS = {"hot": "#c0392b", "warm": "#e67e22", "cold": "#2980b9"}


@dataclass(frozen=True)
class Row:
    """One line of the comparison: a label, how to read it, and which way is better."""

    label: str
    value: Callable[[Metrics], float | None]
    fmt: str  # "int", "pct", "x" (a ratio such as lift), "days", "num"
    better: str | None = None  # "high", "low" or None (neither: volumes)


def _band(name: str, what: str) -> Callable[[Metrics], float | None]:
    def read(m: Metrics) -> float | None:
        band = m.band(name)
        return {"obs": band.observations, "leads": band.leads, "rate": band.rate}.get(
            what, band.lift
        )

    return read


ROWS: tuple[Row, ...] = (
    Row("leads observed", lambda m: m.leads, "int"),
    Row("lead-days (open leads × as-of days)", lambda m: m.observations, "int"),
    Row("base rate: won within horizon", lambda m: m.base_rate, "pct"),
    *(
        row
        for band in BANDS
        for row in (
            Row(f"{band}: lead-days", _band(band, "obs"), "int"),
            Row(f"{band}: leads ever {band}", _band(band, "leads"), "int"),
            Row(
                f"{band}: won within horizon",
                _band(band, "rate"),
                "pct",
                "low" if band == "cold" else "high",
            ),
            Row(f"{band}: lift over base rate", _band(band, "lift"), "x", None),
        )
    ),
    Row("hot precision (hot lead-days that won)", lambda m: m.hot_precision, "pct", "high"),
    Row("hot recall (won lead-days that were hot)", lambda m: m.hot_recall, "pct", "high"),
    Row("won leads", lambda m: m.won_leads, "int"),
    Row("won leads hot before winning", lambda m: m.hot_share_before_win, "pct", "high"),
    Row("median days hot before winning", lambda m: m.median_lead_time_days, "days", "high"),
    Row("new hot leads per day", lambda m: m.new_hot_per_day, "num"),
    Row("peak new hot leads in a day", lambda m: m.peak_new_hot_per_day, "num"),
    Row(
        "days over capacity",
        lambda m: m.steps_over_capacity if m.capacity_per_day is not None else None,
        "int",
        "low",
    ),
    Row("churn (band changes per lead-day step)", lambda m: m.churn, "pct", "low"),
)


def fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "x":
        return f"{value:.2f}×"
    if kind == "days":
        return f"{value:.1f} d"
    return f"{value:.1f}"


def best(values: Sequence[float | None], better: str | None) -> set[int]:
    """Indexes of the best values (none when all equal or the row has no better way)."""
    known = [v for v in values if v is not None]
    if better is None or len(known) < 2 or min(known) == max(known):
        return set()
    target = max(known) if better == "high" else min(known)
    return {i for i, v in enumerate(values) if v == target}


def _svg(width: int, height: int, body: str) -> str:
    return f'<svg width="{width}" height="{height}" font-size="11">{body}</svg>'


def _legend(names: Sequence[str], x: int, y: int) -> str:
    return "".join(
        f'<rect x="{x}" y="{y + 14 * i - 8}" width="10" height="10" '
        f'fill="{COLORS[i % len(COLORS)]}"/><text x="{x + 14}" y="{y + 14 * i + 1}">'
        f"{html.escape(name)}</text>"
        for i, name in enumerate(names)
    )


def conversion_svg(result: Result) -> str:
    """Conversion within the horizon per band, one bar per playbook, base rate dashed."""
    w, h, pad = 420, 260, 40
    rates = [[m.band(b).rate or 0.0 for b in BANDS] for m in result.metrics]
    top = max([1e-9, *(r for rs in rates for r in rs)]) * 1.15
    group = (w - pad - 10) / len(BANDS)
    bar = (group - 12) / max(1, len(result.metrics))
    parts = [
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - 10}" y2="{h - pad}" stroke="#333"/>',
        f'<text x="{pad - 4}" y="14" text-anchor="end">{100 * top:.0f}%</text>',
    ]
    for g, band in enumerate(BANDS):
        x0 = pad + g * group + 6
        parts.append(
            f'<text x="{x0 + group / 2 - 6:.1f}" y="{h - pad + 14}" text-anchor="middle">'
            f"{band}</text>"
        )
        for i, rs in enumerate(rates):
            height = rs[g] / top * (h - pad - 10)
            parts.append(
                f'<rect x="{x0 + i * bar:.1f}" y="{h - pad - height:.1f}" '
                f'width="{bar - 2:.1f}" height="{height:.1f}" fill="{COLORS[i % len(COLORS)]}">'
                f"<title>{html.escape(result.names[i])} {band}: {100 * rs[g]:.1f}%</title></rect>"
            )
    for i, m in enumerate(result.metrics):
        if m.base_rate:
            y = h - pad - m.base_rate / top * (h - pad - 10)
            parts.append(
                f'<line x1="{pad}" y1="{y:.1f}" x2="{w - 10}" y2="{y:.1f}" '
                f'stroke="{COLORS[i % len(COLORS)]}" stroke-dasharray="4"/>'
            )
    parts.append(_legend(result.names, w - 150, 16))
    return _svg(w, h, "".join(parts))


def hot_volume_svg(result: Result) -> str:
    """New hot leads per as-of day, one line per playbook, capacity as a dashed line."""
    w, h, pad = 560, 260, 40
    # From the second as-of time: at the first nobody *becomes* hot (see Metrics).
    per_day = [[n / m.step_days for n in m.new_hot_per_step[1:]] for m in result.metrics]
    capacity = result.metrics[0].capacity_per_day
    n = len(result.as_of_times)
    top = max([1.0, *(v for vs in per_day for v in vs), capacity or 0.0]) * 1.1
    steps = max(1, len(result.as_of_times) - 2)

    def xy(step: int, value: float) -> str:
        x = pad + step / steps * (w - pad - 10)
        return f"{x:.1f},{h - pad - value / top * (h - pad - 10):.1f}"

    parts = [
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - 10}" y2="{h - pad}" stroke="#333"/>',
        f'<line x1="{pad}" y1="10" x2="{pad}" y2="{h - pad}" stroke="#333"/>',
        f'<text x="{pad - 4}" y="14" text-anchor="end">{top:.0f}</text>',
        f'<text x="{pad}" y="{h - pad + 14}">{(iso(result.as_of_times[1 % n]) or "")[:10]}</text>',
        f'<text x="{w - 10}" y="{h - pad + 14}" text-anchor="end">'
        f"{(iso(result.as_of_times[-1]) or '')[:10]}</text>",
    ]
    for i, values in enumerate(per_day):
        points = " ".join(xy(s, v) for s, v in enumerate(values))
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{COLORS[i % len(COLORS)]}"/>'
        )
    if capacity is not None:
        y = h - pad - capacity / top * (h - pad - 10)
        parts.append(
            f'<line x1="{pad}" y1="{y:.1f}" x2="{w - 10}" y2="{y:.1f}" stroke="#000" '
            f'stroke-dasharray="6 3"><title>capacity {capacity:g}/day</title></line>'
            f'<text x="{w - 12}" y="{y - 4:.1f}" text-anchor="end">capacity</text>'
        )
    parts.append(_legend(result.names, pad + 10, 24))
    return _svg(w, h, "".join(parts))


def lead_time_svg(result: Result, bins: int = 10) -> str:
    """How many days before winning won leads were first hot: a histogram per playbook."""
    w, h, pad = 420, 260, 40
    longest = max(
        [result.horizon_us / 86_400_000_000, *(d for m in result.metrics for d in m.lead_time_days)]
    )
    width = longest / bins
    counts = [
        [sum(1 for d in m.lead_time_days if k * width < d <= (k + 1) * width) for k in range(bins)]
        for m in result.metrics
    ]
    top = max([1, *(c for cs in counts for c in cs)]) * 1.1
    group = (w - pad - 10) / bins
    bar = (group - 2) / max(1, len(counts))
    parts = [
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - 10}" y2="{h - pad}" stroke="#333"/>',
        f'<text x="{pad - 4}" y="14" text-anchor="end">{top:.0f}</text>',
        f'<text x="{w / 2}" y="{h - 8}" text-anchor="middle">days hot before winning</text>',
    ]
    for k in range(bins):
        x0 = pad + k * group + 1
        parts.append(
            f'<text x="{x0 + group / 2:.1f}" y="{h - pad + 12}" text-anchor="middle">'
            f"{(k + 1) * width:.0f}</text>"
        )
        for i, cs in enumerate(counts):
            height = cs[k] / top * (h - pad - 10)
            parts.append(
                f'<rect x="{x0 + i * bar:.1f}" y="{h - pad - height:.1f}" '
                f'width="{bar:.1f}" height="{height:.1f}" fill="{COLORS[i % len(COLORS)]}"/>'
            )
    parts.append(_legend(result.names, w - 150, 16))
    return _svg(w, h, "".join(parts))


def render(result: Result, command: str, extra_html: str = "") -> str:
    """The whole report: the comparison table (best values marked) and the three plots."""
    head = "".join(f"<th>{html.escape(n)}</th>" for n in result.names)
    lines = []
    for row in ROWS:
        values = [row.value(m) for m in result.metrics]
        winners = best(values, row.better)
        cells = "".join(
            f'<td class="{"best" if i in winners else ""}">{fmt(v, row.fmt)}</td>'
            for i, v in enumerate(values)
        )
        lines.append(f"<tr><th>{html.escape(row.label)}</th>{cells}</tr>")
    times = result.as_of_times
    median_hot = [
        statistics.median(m.new_hot_per_step[1:]) / m.step_days
        if len(m.new_hot_per_step) > 1
        else 0.0
        for m in result.metrics
    ]
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Pyrometer backtest</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
th:first-child{{text-align:left}}td.best{{background:#d5f5e3;font-weight:bold}}
figure{{display:inline-block;margin:1em}}</style></head><body>
<h1>Backtest</h1>
<p>{len(times)} as-of times from {iso(times[0])} to {iso(times[-1])}; horizon
{result.horizon_us / 86_400_000_000:g} days; {result.leads:,} leads, {result.events:,} events;
outcomes from {html.escape(result.outcomes_from)}. At each as-of time only events up to it
are scored and only wins after it count. Best value per row in green.
Median new hot leads per day: {", ".join(f"{v:.1f}" for v in median_hot)}.</p>
<p><code>{html.escape(command)}</code></p>
<table><tr><th></th>{head}</tr>{"".join(lines)}</table>
<figure>{conversion_svg(result)}<figcaption>Won within the horizon, per band (dashed: base
rate)</figcaption></figure>
<figure>{hot_volume_svg(result)}<figcaption>New hot leads per day against capacity
</figcaption></figure>
<figure>{lead_time_svg(result)}<figcaption>Days between first hot and the win</figcaption>
</figure>
{extra_html}
</body></html>
"""
