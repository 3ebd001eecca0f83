"""Signing in and out, and the password change a new user must make first.

A wrong e-mail and a wrong password get the same message (no list of accounts for a
guesser), and too many failures from one address stop being checked for a while
(:mod:`pyrometer.dashboard.throttle`).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from pyrometer.dashboard.web import (
    checked_form,
    redirect,
    render,
    service_of,
    viewer_of,
)
from pyrometer.service.users import MIN_PASSWORD, UserError, authenticate, change_password

router = APIRouter(include_in_schema=False)
WRONG = "That e-mail and password do not match an account."
THROTTLED = "Too many failed attempts. Wait a few minutes, then try again."


@router.get("/")
def sign_in_page(request: Request) -> Response:
    viewer = viewer_of(request)
    if viewer.user is not None:
        return redirect(request, "/password" if viewer.user.must_change else "/queue")
    return render(request, "sign_in.html", {"email": ""})


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/sign-in")
def sign_in(request: Request, form: dict[str, str] = Depends(checked_form)) -> Response:
    email = form.get("email", "").strip()[:320]
    password = form.get("password", "")
    throttle = request.app.state.sign_in_throttle
    address = _address(request)
    if throttle.blocked_for(email, address) > 0:
        return render(request, "sign_in.html", {"email": email, "error": THROTTLED}, 429)
    user = authenticate(service_of(request), email, password)
    if user is None:
        throttle.failed(email, address)
        return render(request, "sign_in.html", {"email": email, "error": WRONG}, 401)
    throttle.succeeded(email, address)
    session = viewer_of(request).session.signed_in(user.id, user.session_version)
    return redirect(request, "/password" if user.must_change else "/queue", session)


@router.post("/sign-out")
def sign_out(request: Request, _form: dict[str, str] = Depends(checked_form)) -> Response:
    return redirect(request, "/", viewer_of(request).session.signed_out())


@router.get("/password")
def password_page(request: Request) -> Response:
    viewer = viewer_of(request)
    if viewer.user is None:
        return redirect(request, "/")
    return render(request, "password.html", {"min_length": MIN_PASSWORD})


@router.post("/password")
def password_change(request: Request, form: dict[str, str] = Depends(checked_form)) -> Response:
    viewer = viewer_of(request)
    if viewer.user is None:
        return redirect(request, "/")
    new = form.get("new", "")
    context: dict[str, object] = {"min_length": MIN_PASSWORD}
    if new != form.get("repeat", ""):
        context["error"] = "The two new passwords differ."
        return render(request, "password.html", context, 422)
    try:
        user = change_password(service_of(request), viewer.user.id, form.get("current", ""), new)
    except UserError as exc:
        label = {"current": "Current password", "new": "New password"}.get(exc.field, exc.field)
        context["error"] = f"{label} {exc.message}."
        return render(request, "password.html", context, 422)
    return redirect(request, "/queue", viewer.session.with_version(user.session_version))
