"""The sales pages: my queue (live), the lead list with its CSV export, one lead.

Every read goes through the service (``get_lead``, ``list_leads``, ``add_touch``,
``update_lead``), the same functions the REST API answers with.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import yaml
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from pyrometer.core.playbook import Stage, Temperature
from pyrometer.core.timeutil import iso
from pyrometer.dashboard import views
from pyrometer.dashboard.web import (
    PageError,
    Viewer,
    checked_form,
    is_htmx,
    need,
    now_utc,
    page_user,
    redirect,
    render,
    service_of,
)
from pyrometer.service import leads as lead_changes
from pyrometer.service import models
from pyrometer.service.lead_filters import BadFilter
from pyrometer.service.reads import BadCursor, LeadQuery, get_lead, list_leads
from pyrometer.service.reps import list_reps
from pyrometer.service.runtime import Service
from pyrometer.service.touches import UnknownLead, add_touch
from pyrometer.service.users import Role
from pyrometer.store.live import last_transition_id
from pyrometer.store.touches import KINDS

router = APIRouter(include_in_schema=False)
QUEUE_SIZE = 25
PAGE_SIZE = 50
CSV_LIMIT = 100_000
CSV_COLUMNS = (
    "lead_id",
    "score",
    "fit",
    "engagement",
    "temperature",
    "stage",
    "funnel",
    "owner",
    "source",
    "suppressed",
    "last_activity",
    "created",
)
TOUCH_KINDS = tuple(k for k in ("call", "email", "meeting") if k in KINDS)


# --- My queue -----------------------------------------------------------------------


def _queue_query(viewer: Viewer) -> LeadQuery | None:
    """Hot leads, most recently active first: a rep's own (None: the rep user is linked
    to no routing rep), everyone's for managers and admins."""
    assert viewer.user is not None
    owner: tuple[str, ...] = ()
    if not viewer.may(Role.MANAGER):
        if viewer.user.rep_id is None:
            return None
        owner = (viewer.user.rep_id,)
    return LeadQuery(
        temperature=(Temperature.HOT.value,), owner=owner, sort="-last_activity", limit=QUEUE_SIZE
    )


def _queue_rows(service: Service, viewer: Viewer) -> list[dict[str, Any]]:
    query = _queue_query(viewer)
    if query is None:
        return []
    now = now_utc()
    rows = []
    for item in list_leads(service, query)["items"]:
        lead = get_lead(service, item["lead_id"], 100, 1, 1)
        if lead is not None:
            rows.append(views.queue_row(lead, now))
    return rows


@router.get("/queue")
def queue_page(request: Request, viewer: Viewer = Depends(page_user)) -> Response:
    service = service_of(request)
    # Read before the rows: the page's live stream starts after this id, so a lead that
    # turns hot between this page and its stream opening is still announced.
    seen = service.read(last_transition_id)
    rows = _queue_rows(service, viewer)
    return render(
        request,
        "queue.html",
        {
            "rows": rows,
            "unlinked": _queue_query(viewer) is None,
            "kinds": TOUCH_KINDS,
            "stream_after": seen,
        },
    )


@router.get("/queue/rows")
def queue_rows(request: Request, viewer: Viewer = Depends(page_user)) -> Response:
    """The queue's table body alone: what the page fetches when the stream says so."""
    rows = _queue_rows(service_of(request), viewer)
    return render(request, "_queue_rows.html", {"rows": rows, "kinds": TOUCH_KINDS})


@router.post("/touch")
def touch(
    request: Request,
    viewer: Viewer = Depends(page_user),
    form: dict[str, str] = Depends(checked_form),
) -> Response:
    """Log a call, e-mail or meeting with a lead: it stops the speed-to-lead clock."""
    assert viewer.user is not None
    lead_id, kind = form.get("lead_id", ""), form.get("kind", "")
    if kind not in TOUCH_KINDS:
        raise PageError(422, f"kind: expected one of {', '.join(TOUCH_KINDS)}")
    service = service_of(request)
    try:
        add_touch(service, lead_id, kind, viewer.user.rep_id or viewer.user.email)
    except UnknownLead:
        raise PageError(404, "There is no such lead (any more).") from None
    back = form.get("back", "queue")
    if is_htmx(request) and back == "queue":
        lead = get_lead(service, lead_id, 100, 1, 1)
        assert lead is not None
        row = views.queue_row(lead, now_utc())
        return render(request, "_queue_row.html", {"row": row, "kinds": TOUCH_KINDS})
    if back == "lead":
        return redirect(request, "/lead?" + urlencode({"id": lead_id}))
    return redirect(request, "/queue")


# --- Leads ----------------------------------------------------------------------------


def _choices(request: Request) -> dict[str, Any]:
    """What the filters offer: temperatures, stages, the playbook's funnel, the reps."""
    service = service_of(request)
    _, book = service.read(service.playbooks.active)
    funnel = sorted(set(book.lifecycle.funnel.values()))
    return {
        "temperatures": [t.value for t in Temperature],
        "stages": [s.value for s in Stage],
        "funnels": funnel,
        "reps": [r.rep.id for r in list_reps(service)],
    }


FILTERS = ("temperature", "stage", "funnel", "owner", "source", "suppressed", "q", "sort")
SORTS = {
    "-score": "score, highest first",
    "score": "score, lowest first",
    "-last_activity": "latest activity first",
    "last_activity": "oldest activity first",
}


def _lead_query(params: dict[str, str], limit: int, cursor: str | None) -> LeadQuery:
    def one(name: str) -> tuple[str, ...]:
        value = params.get(name, "").strip()
        return (value,) if value else ()

    suppressed = {"yes": True, "no": False}.get(params.get("suppressed", ""))
    sort = params.get("sort", "-score")
    if sort not in SORTS:
        raise PageError(422, f"sort: expected one of {', '.join(SORTS)}")
    temperature, stage = one("temperature"), one("stage")
    if temperature and temperature[0] not in {t.value for t in Temperature}:
        raise PageError(422, f"temperature: no such temperature {temperature[0]!r}")
    if stage and stage[0] not in {s.value for s in Stage}:
        raise PageError(422, f"stage: no such stage {stage[0]!r}")
    return LeadQuery(
        temperature=temperature,
        stage=stage,
        funnel=one("funnel"),
        owner=one("owner"),
        source=one("source"),
        suppressed=suppressed,
        q=params.get("q", "").strip()[:200] or None,
        sort=sort,
        limit=limit,
        cursor=cursor,
    )


def _read_page(service: Service, query: LeadQuery) -> dict[str, Any]:
    try:
        return list_leads(service, query)
    except BadCursor:
        raise PageError(400, "That page link is out of date: start from the first page.") from None
    except BadFilter as exc:
        raise PageError(422, f"{exc.field}: {exc}") from None


@router.get("/leads")
def leads_page(request: Request, viewer: Viewer = Depends(page_user)) -> Response:
    params = {k: v for k, v in request.query_params.items() if k in FILTERS and v}
    cursor = request.query_params.get("cursor") or None
    page = _read_page(service_of(request), _lead_query(params, PAGE_SIZE, cursor))
    rows = [{**item, "name": views.display_name(item)} for item in page["items"]]
    following = None
    if page["next_cursor"]:
        following = "/leads?" + urlencode({**params, "cursor": page["next_cursor"]})
    return render(
        request,
        "leads.html",
        {
            "rows": rows,
            "params": params,
            "next_url": following,
            "first_url": "/leads?" + urlencode(params) if cursor else None,
            "csv_url": "/leads.csv?" + urlencode(params),
            "as_of": page["as_of"],
            "sorts": SORTS,
            **_choices(request),
        },
    )


@router.get("/leads.csv")
def leads_csv(request: Request, viewer: Viewer = Depends(page_user)) -> Response:
    """Every lead of the current filters (not only the page shown), one scoring time."""
    params = {k: v for k, v in request.query_params.items() if k in FILTERS and v}
    service = service_of(request)
    first = _read_page(service, _lead_query(params, 500, None))

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        page, sent = first, 0
        while True:
            for item in page["items"]:
                writer.writerow([_cell(item.get(c)) for c in CSV_COLUMNS])
                sent += 1
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if not page["next_cursor"] or sent >= CSV_LIMIT:
                return
            page = list_leads(service, _lead_query(params, 500, page["next_cursor"]))

    headers = {"Content-Disposition": 'attachment; filename="leads.csv"'}
    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8", headers=headers)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- One lead -------------------------------------------------------------------------


@router.get("/lead")
def lead_page(request: Request, id: str = "", viewer: Viewer = Depends(page_user)) -> Response:
    service = service_of(request)
    lead = get_lead(service, id, 1000, 50, 200) if id else None
    if lead is None:
        raise PageError(404, "There is no such lead.")
    models.annotate(service, [lead])  # p_convert and its factors, where a model is active
    _, book = service.read(service.playbooks.active)
    thresholds = {"hot": book.temperature.hot, "warm": book.temperature.warm}
    series = views.score_series(lead["ledger"], lead["fit"], book.decay, service.clock())
    ledger_total = round(sum(float(line["value"]) for line in lead["ledger"]), 2)
    return render(
        request,
        "lead.html",
        {
            "lead": lead,
            "name": views.display_name(lead),
            "clock": views.countdown(lead.get("assignment"), now_utc()),
            "ledger_total": ledger_total,
            "chart": views.line_chart(series, thresholds),
            "series": [(iso(t), v) for t, v in series[:: max(1, len(series) // 10)]],
            "thresholds": thresholds,
            "kinds": TOUCH_KINDS,
            "may_edit": viewer.may(Role.MANAGER),
            "may_move": _may_move(viewer, lead),
            "moves": lead_changes.SALES_STAGE_EVENTS,
        },
    )


@router.post("/lead/attributes")
def lead_attributes(
    request: Request,
    viewer: Viewer = Depends(page_user),
    form: dict[str, str] = Depends(checked_form),
) -> Response:
    """Managers and admins change a lead's attributes (fit is rescored); an emptied
    field removes the attribute. Values are read as YAML scalars: 250 is a number."""
    need(viewer, Role.MANAGER)
    assert viewer.user is not None
    lead_id = form.get("lead_id", "")
    changes: dict[str, Any] = {}
    for name, value in form.items():
        if name.startswith("attr:"):
            changes[name[5:]] = _scalar(value)
    new_key = form.get("new_key", "").strip()
    if new_key:
        changes[new_key] = _scalar(form.get("new_value", ""))
    try:
        lead_changes.update_lead(
            service_of(request), lead_id, attributes=changes, actor=f"user:{viewer.user.email}"
        )
    except lead_changes.UnknownLead:
        raise PageError(404, "There is no such lead.") from None
    except ValueError as exc:
        raise PageError(422, str(exc)) from None
    return redirect(request, "/lead?" + urlencode({"id": lead_id}))


def _may_move(viewer: Viewer, lead: dict[str, Any]) -> bool:
    """Managers and admins move any lead; a rep only a lead given to their routing rep."""
    if viewer.may(Role.MANAGER):
        return True
    rep = viewer.user.rep_id if viewer.user is not None else None
    return rep is not None and lead.get("owner") == rep


@router.post("/lead/stage")
def lead_stage(
    request: Request,
    viewer: Viewer = Depends(page_user),
    form: dict[str, str] = Depends(checked_form),
) -> Response:
    """Sales moves the lead (accepted, opportunity, won, lost...): a rep their own leads,
    managers and admins any lead. Recorded as the playbook's lifecycle event, as the API's
    ``POST /v1/leads/{id}/stage`` does."""
    assert viewer.user is not None
    lead_id, move = form.get("lead_id", ""), form.get("move", "")
    if move not in lead_changes.SALES_STAGE_EVENTS:
        raise PageError(422, f"move: expected one of {', '.join(lead_changes.SALES_STAGE_EVENTS)}")
    service = service_of(request)
    if not viewer.may(Role.MANAGER):
        lead = get_lead(service, lead_id, 1, 1, 1)
        if lead is None:
            raise PageError(404, "There is no such lead.")
        if not _may_move(viewer, lead):
            raise PageError(403, "A rep moves only their own leads; ask a manager.")
    try:
        lead_changes.move_stage(service, lead_id, move)
    except lead_changes.UnknownLead:
        raise PageError(404, "There is no such lead.") from None
    except lead_changes.NotInPlaybook as exc:
        raise PageError(422, str(exc)) from None
    return redirect(request, "/lead?" + urlencode({"id": lead_id}))


def _scalar(text: str) -> Any:
    text = text.strip()
    if not text:
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, str | int | float | bool) else text
