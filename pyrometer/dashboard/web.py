"""What every dashboard page shares: templates, who is signed in, CSRF, roles, errors.

Pages are rendered on the server (Jinja2, autoescaped); routes are plain ``def`` so that
store reads and argon2 run in the thread pool, off the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from pyrometer.dashboard.sessions import Session, csrf_matches, read_session, write_session
from pyrometer.service.runtime import Service
from pyrometer.service.users import Role, User, at_least, get_user

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))


@dataclass(frozen=True, slots=True)
class Viewer:
    """The request's session and, once signed in, its user (None: signed out)."""

    session: Session
    user: User | None

    def may(self, role: Role) -> bool:
        return self.user is not None and at_least(self.user.role, role)


class PageError(Exception):
    """Answered as an HTML page with ``status`` (403, 404...) and ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Redirect(Exception):
    """Answered 303 to ``location`` (sign in first; change the password first)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def viewer_of(request: Request) -> Viewer:
    """Who is asking: a session whose user was removed or whose password changed since
    counts as signed out."""
    cached = getattr(request.state, "viewer", None)
    if cached is not None:
        return cached
    service = service_of(request)
    session = read_session(service, request)
    user = None
    if session.user_id is not None:
        user = get_user(service, session.user_id)
        if user is None or user.session_version != session.version:
            user, session = None, session.signed_out()
    found = Viewer(session, user)
    request.state.viewer = found
    return found


def page_user(request: Request) -> Viewer:
    """A dependency: a signed-in user who has set their own password."""
    viewer = viewer_of(request)
    if viewer.user is None:
        raise Redirect("/")
    if viewer.user.must_change:
        raise Redirect("/password")
    return viewer


def need(viewer: Viewer, role: Role) -> None:
    if not viewer.may(role):
        raise PageError(403, f"This page is for the {role.value} role and above.")


async def checked_form(request: Request) -> dict[str, str]:
    """The POSTed form, once its CSRF token (field ``csrf`` or header ``X-CSRF-Token``)
    matches the session's; 403 otherwise."""
    form = await request.form()
    viewer = viewer_of(request)
    presented = request.headers.get("x-csrf-token") or form.get("csrf")
    if not csrf_matches(viewer.session, presented if isinstance(presented, str) else None):
        raise PageError(403, "The form was out of date or not ours. Reload the page and retry.")
    return {k: v for k, v in form.items() if isinstance(v, str)}


# Every page: scripts, styles, fetches and forms only from this server (no CDN could be
# added by mistake and work), never framed by another site (clickjacking).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    status: int = 200,
    viewer: Viewer | None = None,
) -> HTMLResponse:
    viewer = viewer or viewer_of(request)
    response = templates.TemplateResponse(
        request, name, {"viewer": viewer, "Role": Role, **(context or {})}, status_code=status
    )
    write_session(service_of(request), request, response, viewer.session)
    response.headers.update(SECURITY_HEADERS)
    return response


def redirect(request: Request, location: str, session: Session | None = None) -> Response:
    response = RedirectResponse(location, status_code=303)
    if session is not None:
        write_session(service_of(request), request, response, session)
    return response


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def now_utc() -> datetime:
    return datetime.now(UTC)


def _when(value: str | None) -> str:
    """An ISO time as ``2026-11-23 09:00 UTC`` (the pages show UTC, as the API does)."""
    found = parse_iso(value)
    return found.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if found else "–"


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    number = round(float(value), digits)
    return f"{number:,.{digits}f}" if digits else f"{int(number):,}"


def _pct(value: Any) -> str:
    return "–" if value is None else f"{float(value) * 100:.1f} %"


templates.env.filters.update(when=_when, num=_num, pct=_pct)
templates.env.globals.update(num=_num, pct=_pct, count=lambda value: _num(value, 0))
