"""Shaping service answers for the pages: queue rows, reasons, countdowns, chart geometry.

Pure functions of the dicts the service returns (``get_lead``, ``list_leads``, reports):
no SQL and no HTTP here, so they are tested without a server.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

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
    half_life_us: int,
    now_us: int,
    days: int = 30,
    points: int = 61,
) -> list[tuple[int, float]]:
    """The score over the last ``days`` days, from the ledger's engagement lines: fit plus
    each line's points halved every half-life since its event (the engine decays in whole
    steps, so this is the same curve drawn smoothly)."""
    dated = [
        (_us(line["timestamp"]), float(line["points"]))
        for line in ledger
        if line.get("kind") == "engagement" and line.get("timestamp")
    ]
    start = now_us - days * 86_400_000_000
    out = []
    for i in range(points):
        t = start + (now_us - start) * i // (points - 1)
        engagement = sum(p * 2.0 ** (-(t - ts) / half_life_us) for ts, p in dated if ts <= t)
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
        "path": " ".join(
            f"{'M' if i == 0 else 'L'}{x(t)},{y(v)}" for i, (t, v) in enumerate(series)
        ),
        "lines": [{"name": n, "value": v, "y": y(v)} for n, v in lines.items()],
        "ticks": [{"value": v, "y": y(v)} for v in (bottom, (top + bottom) / 2, top)],
        "x0": pad_l,
        "x1": width - pad_r,
        "base": height - pad_b,
    }


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
