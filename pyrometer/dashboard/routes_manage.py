"""The manager's pages: funnel and reports, and the playbook (published by admins only).

Reports are the service's (``reports.summary``, ``speed_report.speed_to_lead``); the
playbook is checked with the same ``check_playbook`` as ``POST /v1/playbook/validate``
and published with the same ``publish`` as ``POST /v1/playbook``.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.engine import Connection

from pyrometer.core.playbook import PlaybookError
from pyrometer.core.playbook_check import check_playbook
from pyrometer.core.timeutil import MIN_US, iso
from pyrometer.dashboard import views
from pyrometer.dashboard.web import (
    PageError,
    Viewer,
    checked_form,
    need,
    page_user,
    redirect,
    render,
    service_of,
)
from pyrometer.service.models import model_view
from pyrometer.service.playbook_preview import preview
from pyrometer.service.playbooks import version_row, version_rows
from pyrometer.service.reports import FLOWS, over_time, summary
from pyrometer.service.rescore import job_view, publish, start_job
from pyrometer.service.speed_report import speed_to_lead
from pyrometer.service.users import Role
from pyrometer.store import models as model_registry

router = APIRouter(include_in_schema=False)
DAY_US = 86_400_000_000
PERIODS = {"30": "last 30 days", "90": "last 90 days", "365": "last 365 days", "all": "all time"}
MAX_YAML = 200_000


@router.get("/reports")
def reports_page(
    request: Request, period: str = "90", viewer: Viewer = Depends(page_user)
) -> Response:
    need(viewer, Role.MANAGER)
    if period not in PERIODS:
        period = "90"
    service = service_of(request)
    until = service.clock() + 1
    since = MIN_US if period == "all" else max(until - int(period) * DAY_US, MIN_US)
    report = summary(service, since, until)
    heat = {"hot": 0, "warm": 1, "cold": 2}  # hottest first, as a sales team reads it
    report["by_temperature"].sort(key=lambda row: heat.get(row["value"], 3))
    report["by_first_temperature"].sort(key=lambda row: heat.get(row["value"], 3))
    speed = speed_to_lead(service, since, until)
    spans = over_time(service, since, until)
    model = service.read(_active_model)
    return render(
        request,
        "reports.html",
        {
            "report": report,
            "speed": speed,
            "period": period,
            "periods": PERIODS,
            "temperature_bars": views.bars(report["by_temperature"], "value", "leads"),
            "conversion_bars": views.bars(report["by_temperature"], "value", "conversion_rate"),
            "stage_bars": views.bars(report["by_stage"], "value", "leads"),
            "rates": {r["value"]: r for r in report["by_first_temperature"]},
            "first_bars": views.bars(report["by_first_temperature"], "value", "conversion_rate"),
            "spans": spans,
            "flows": [f"{kind}:{new}" for kind, new in FLOWS],
            "span_chart": views.span_chart(spans, ["new_leads", "temperature:hot"]),
            "model": model,
            "lift_bars": views.bars(
                [{**d, "label": str(d["decile"])} for d in model["metrics"]["lift_by_decile"]],
                "label",
                "lift",
            )
            if model
            else [],
        },
    )


def _active_model(conn: Connection) -> dict[str, Any] | None:
    """The model lead reads are scored with, with its figures on held-out outcomes."""
    version = model_registry.active_version(conn)
    row = model_registry.get_model(conn, version) if version is not None else None
    if row is None or not row.metrics.get("lift_by_decile"):
        return None
    return model_view(row, full=True)


_LINE = re.compile(r"\bline (\d+)")


def check(text: str) -> dict[str, Any]:
    """``valid``, and each problem or warning with its line where the checker names one."""
    try:
        _, warnings = check_playbook(text, source="playbook")
    except PlaybookError as exc:
        problems = [_located(path, message) for path, message in exc.problems]
        return {"valid": False, "problems": problems, "warnings": []}
    return {
        "valid": True,
        "problems": [],
        "warnings": [_located(path, message) for path, message in warnings],
    }


def _located(path: str, message: str) -> dict[str, Any]:
    found = _LINE.search(path) or _LINE.search(message)
    where = re.sub(r"\s*\(?line \d+\)?", "", path).strip()
    line = int(found.group(1)) if found else None
    return {"path": path, "where": where, "msg": message, "line": line}


def _versions(rows: list[Any]) -> list[dict[str, Any]]:
    return [{"version": r.version, "name": r.name, "created": iso(r.created_us)} for r in rows]


def _in_force(request: Request) -> Any:
    row = service_of(request).read(version_row)
    assert row is not None
    return row


@router.get("/playbook")
def playbook_page(request: Request, viewer: Viewer = Depends(page_user)) -> Response:
    need(viewer, Role.MANAGER)
    service = service_of(request)
    row = _in_force(request)
    versions = service.read(version_rows)
    job_id = request.query_params.get("job")
    job = job_view(service, int(job_id)) if job_id and job_id.isdigit() else None
    return render(
        request,
        "playbook.html",
        {
            "yaml": row.yaml,
            "version": row.version,
            "versions": _versions(versions),
            "result": None,
            "job": job,
            "may_publish": viewer.may(Role.ADMIN),
        },
    )


@router.get("/playbook/job")
def playbook_job(request: Request, id: int = 0, viewer: Viewer = Depends(page_user)) -> Response:
    """The rescoring job's progress, polled by the playbook page while it runs."""
    need(viewer, Role.MANAGER)
    job = job_view(service_of(request), id)
    if job is None:
        raise PageError(404, "There is no such job.")
    return render(request, "_job.html", {"job": job})


@router.post("/playbook/check")
def playbook_check(
    request: Request,
    viewer: Viewer = Depends(page_user),
    form: dict[str, str] = Depends(checked_form),
) -> Response:
    """The check's result as a fragment (what the editor shows as you type)."""
    need(viewer, Role.MANAGER)
    text = form.get("yaml", "")[:MAX_YAML]
    current = _in_force(request).yaml
    diff = list(
        difflib.unified_diff(
            current.splitlines(), text.splitlines(), "in force", "yours", lineterm="", n=1
        )
    )
    return render(request, "_playbook_check.html", {"result": check(text), "diff": diff[:400]})


@router.post("/playbook/preview")
def playbook_preview(
    request: Request,
    viewer: Viewer = Depends(page_user),
    form: dict[str, str] = Depends(checked_form),
) -> Response:
    """Today's hot, warm and cold counts now and under the YAML in the editor."""
    need(viewer, Role.MANAGER)
    text = form.get("yaml", "")[:MAX_YAML]
    try:
        counts = preview(service_of(request), text)
    except PlaybookError:
        return render(request, "_playbook_preview.html", {"counts": None})
    return render(request, "_playbook_preview.html", {"counts": counts})


def _backtest_view(job: dict[str, Any]) -> dict[str, Any]:
    """The job with, once done, its comparison rows already formatted (best marked)."""
    from pyrometer.backtest.report import best, fmt

    result = job.get("result")
    if not result:
        return {"job": job, "rows": None}
    figures = result["playbooks"]

    def band(p: dict[str, Any], name: str, key: str) -> Any:
        return next(b[key] for b in p["bands"] if b["band"] == name)

    wanted: list[tuple[str, Any, str, str | None]] = [
        ("hot lead-days", lambda p: band(p, "hot", "observations"), "int", None),
        ("hot: won within horizon", lambda p: p["hot_precision"], "pct", "high"),
        ("hot: lift over base rate", lambda p: band(p, "hot", "lift"), "x", "high"),
        ("hot recall", lambda p: p["hot_recall"], "pct", "high"),
        ("won leads hot before winning", lambda p: p["hot_share_before_win"], "pct", "high"),
        ("new hot leads per day", lambda p: p["new_hot_per_day"], "num", None),
        ("churn", lambda p: p["churn"], "pct", "low"),
    ]
    rows = []
    for label, read, kind, better in wanted:
        values = [read(p) for p in figures]
        winners = best(values, better)
        rows.append((label, [(fmt(v, kind), i in winners) for i, v in enumerate(values)]))
    return {"job": job, "rows": rows, "result": result}


@router.post("/playbook/backtest")
def playbook_backtest(
    request: Request,
    viewer: Viewer = Depends(page_user),
    form: dict[str, str] = Depends(checked_form),
) -> Response:
    """Start a backtest of the YAML in the editor against the playbook in force: the last
    180 days' leads, day by day (a job; the fragment polls it)."""
    from pyrometer.service import backtest

    need(viewer, Role.MANAGER)
    text = form.get("yaml", "")[:MAX_YAML]
    service = service_of(request)
    try:
        plan = backtest.plan(service, text, None, None, 86_400_000_000, 30 * 86_400_000_000, None)
    except PlaybookError:
        return render(request, "_playbook_backtest.html", {"job": None, "rows": None})
    job_id = backtest.create_job(service, plan)
    if request.app.state.background:
        backtest.start_job(service, job_id, plan)
    job = job_view(service, job_id)
    assert job is not None
    return render(request, "_playbook_backtest.html", _backtest_view(job))


@router.get("/playbook/backtest/job")
def playbook_backtest_job(
    request: Request, id: int = 0, viewer: Viewer = Depends(page_user)
) -> Response:
    """A backtest job's progress, then its comparison, polled by the playbook page."""
    need(viewer, Role.MANAGER)
    job = job_view(service_of(request), id)
    if job is None or job["kind"] != "backtest":
        raise PageError(404, "There is no such backtest.")
    return render(request, "_playbook_backtest.html", _backtest_view(job))


@router.post("/playbook/publish")
def playbook_publish(
    request: Request,
    viewer: Viewer = Depends(page_user),
    form: dict[str, str] = Depends(checked_form),
) -> Response:
    need(viewer, Role.ADMIN)
    text = form.get("yaml", "")[:MAX_YAML]
    result = check(text)
    if not result["valid"]:
        service = service_of(request)
        row = _in_force(request)
        return render(
            request,
            "playbook.html",
            {
                "yaml": text,
                "version": row.version,
                "versions": _versions(service.read(version_rows)),
                "result": result,
                "job": None,
                "may_publish": True,
            },
            status=422,
        )
    service = service_of(request)
    created = publish(service, text)
    if created["job_id"] is None:
        return redirect(request, "/playbook")
    if request.app.state.background:
        start_job(service, created["job_id"])
    return redirect(request, f"/playbook?job={created['job_id']}")
