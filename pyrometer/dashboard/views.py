"""Shaping service answers for the pages: queue rows, reasons, countdowns, chart geometry.

Pure functions of the dicts the service returns (``get_lead``, ``list_leads``, reports):
no SQL and no HTTP here, so they are tested without a server.
"""

from __future__ import annotations

import itertools
import math
from datetime import datetime
from typing import Any

from pyrometer.core.playbook import Decay
from pyrometer.dashboard.web import parse_iso

NAME_KEYS = ("name", "full_name", "first_name")
COMPANY_KEYS = ("company", "company_name", "organization")


def display_name(lead: dict[str, Any]) -> str:
    """A person's name from common attributes, else their e-mail, else the lead id."""
    attrs = lead.get("attributes") or {}
    for key in NAME_KEYS:
        if attrs.get(key):
            first = str(attrs[key])
            last = attrs.get("last_name") if key == "first_name" else None
            return f"{first} {last}" if last else first
    return str(attrs.get("email") or lead["lead_id"])


def company(lead: dict[str, Any]) -> str | None:
    attrs = lead.get("attributes") or {}
    for key in COMPANY_KEYS:
        if attrs.get(key):
            return str(attrs[key])
    return None


def top_reasons(ledger: list[dict[str, Any]], n: int = 3) -> list[dict[str, Any]]:
    """The ledger's largest lines by what each is worth today (positive first)."""
    ranked = sorted(
        (line for line in ledger if abs(float(line.get("value") or 0)) >= 0.05),
        key=lambda line: -float(line["value"]),
    )
    return ranked[:n]


def countdown(assignment: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    """The speed-to-lead clock as a page shows it: ``state`` running, touched, breached,
    or none; ``due`` (ISO) for a running clock, which the page's script counts down."""
    if not assignment or not assignment.get("clock_started_at"):
        return {"state": "none", "text": "no clock"}
    started = parse_iso(assignment["clock_started_at"])
    touched = parse_iso(assignment.get("first_touch_at"))
    if touched is not None and started is not None:
        return {
            "state": "touched",
            "text": f"touched after {_duration((touched - started).total_seconds())}",
        }
    if assignment.get("breached_at"):
        return {"state": "breached", "text": "SLA missed"}
    due = parse_iso(assignment.get("sla_due_at"))
    if due is None:
        return {"state": "none", "text": "no SLA"}
    left = (due - now).total_seconds()
    text = f"{_clock(left)} left" if left >= 0 else f"{_clock(-left)} overdue"
    return {"state": "running", "text": text, "due": assignment["sla_due_at"]}


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}:{seconds % 60:02d}"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def queue_row(lead: dict[str, Any], now: datetime) -> dict[str, Any]:
    """One hot lead as the queue shows it."""
    return {
        "lead_id": lead["lead_id"],
        "name": display_name(lead),
        "company": company(lead),
        "score": lead["score"],
        "owner": lead.get("owner"),
        "assigned_at": lead.get("assigned_at"),
        "reason": lead.get("assignment_reason"),
        "clock": countdown(lead.get("assignment"), now),
        "reasons": top_reasons(lead.get("ledger") or []),
        "last_activity": lead.get("last_activity"),
        "touches": len(lead.get("touches") or []),
    }


def score_series(
    ledger: list[dict[str, Any]],
    fit: float,
    decay: Decay,
    now_us: int,
    days: int = 30,
    most: int = 1500,
) -> list[tuple[int, float]]:
    """The score over the last ``days`` days, exactly as the engine counts it.

    The engine fades points in whole decay steps (``decay.step``), so the score is a step
    curve: it jumps at each event and at each step boundary and is flat in between. The
    series holds the score at every such moment (at most ``most`` step boundaries, evenly
    chosen, for a very short step) and the page draws it as steps. Points are the ledger's
    earned points (caps already applied, and an event's earned points never depend on a later
    event), so only fit is today's: a past attribute change is not redrawn.
    """
    start = now_us - days * 86_400_000_000
    by_step: dict[int, list[tuple[int, float]]] = {}
    moments = {start, now_us}
    for line in ledger:
        if line.get("kind") != "engagement" or not line.get("timestamp"):
            continue
        ts = _us(line["timestamp"])
        if ts > now_us:
            continue
        by_step.setdefault(decay.step_of(ts), []).append((ts, float(line["points"])))
        if ts > start:
            moments.add(ts)
    first, last = decay.step_of(start) + 1, decay.step_of(now_us)
    stride = max(1, -(-(last - first + 1) // most))
    moments.update(s * decay.step_us for s in range(first, last + 1, stride))
    steps = sorted((step, sorted(lines)) for step, lines in by_step.items())
    out = []
    for t in sorted(moments):
        now_step = decay.step_of(t)
        engagement = 0.0
        for step, lines in steps:
            if step > now_step:
                break
            # In the moment's own step only the events up to the moment have happened.
            earned = sum(p for ts, p in lines if step < now_step or ts <= t)
            engagement += earned * decay.factor(now_step - step)
        out.append((t, round(fit + engagement, 2)))
    return out


def _us(text: str) -> int:
    found = parse_iso(text)
    assert found is not None
    return int(found.timestamp() * 1_000_000)


def line_chart(
    series: list[tuple[int, float]], lines: dict[str, float], width: int = 640, height: int = 200
) -> dict[str, Any]:
    """SVG geometry of a line chart with horizontal reference lines (hot, warm)."""
    pad_l, pad_r, pad_t, pad_b = 40, 76, 10, 24
    values = [v for _, v in series] + list(lines.values())
    top = max(*values, 1.0)
    top = math.ceil(top / 10) * 10 or 10
    bottom = min(0.0, *values)
    t0, t1 = series[0][0], series[-1][0]

    def x(t: int) -> float:
        return round(pad_l + (t - t0) / max(t1 - t0, 1) * (width - pad_l - pad_r), 1)

    def y(v: float) -> float:
        return round(pad_t + (top - v) / (top - bottom) * (height - pad_t - pad_b), 1)

    return {
        "width": width,
        "height": height,
        "path": _steps(x, y, series),
        "lines": [{"name": n, "value": v, "y": y(v)} for n, v in lines.items()],
        "ticks": [{"value": v, "y": y(v)} for v in (bottom, (top + bottom) / 2, top)],
        "x0": pad_l,
        "x1": width - pad_r,
        "base": height - pad_b,
    }


def _steps(x: Any, y: Any, series: list[tuple[int, float]]) -> str:
    """An SVG path that holds each value until the next moment, then jumps: the score is
    flat between events and decay steps, so a sloped line would draw values it never had."""
    parts = [f"M{x(series[0][0])},{y(series[0][1])}"]
    for (_, before), (t, v) in itertools.pairwise(series):
        parts.append(f"L{x(t)},{y(before)}")
        if v != before:
            parts.append(f"L{x(t)},{y(v)}")
    return " ".join(parts)


def bars(
    rows: list[dict[str, Any]], label: str, value: str, width: int = 320
) -> list[dict[str, Any]]:
    """Horizontal bar lengths (pixels) for ``rows[value]``, the longest ``width``."""
    biggest = max((float(r[value] or 0) for r in rows), default=0.0) or 1.0
    return [
        {
            "label": r[label] if r[label] is not None else "(none)",
            "value": r[value],
            "length": round(float(r[value] or 0) / biggest * width, 1),
        }
        for r in rows
    ]


def span_chart(
    spans: list[dict[str, Any]], keys: list[str], width: int = 640, height: int = 180
) -> dict[str, Any]:
    """SVG geometry of grouped columns: for each span one column per key, side by side,
    all on one scale (the tallest column is the chart's height)."""
    pad_l, pad_b, pad_t = 40, 22, 8
    top = max((float(s[k]) for s in spans for k in keys), default=0.0) or 1.0
    slot = (width - pad_l) / max(len(spans), 1)
    bar = slot * 0.8 / max(len(keys), 1)
    usable = height - pad_b - pad_t
    columns = []
    for i, span in enumerate(spans):
        for j, key in enumerate(keys):
            tall = round(float(span[key]) / top * usable, 1)
            columns.append(
                {
                    "key": key,
                    "value": span[key],
                    "x": round(pad_l + i * slot + slot * 0.1 + j * bar, 1),
                    "y": round(pad_t + usable - tall, 1),
                    "width": round(bar, 1),
                    "height": tall,
                }
            )
    return {
        "width": width,
        "height": height,
        "columns": columns,
        "top": top,
        "base": height - pad_b,
        "x0": pad_l,
        "labels": [
            {"x": round(pad_l + i * slot + slot / 2, 1), "text": span["start"][5:10]}
            for i, span in enumerate(spans)
        ],
    }
