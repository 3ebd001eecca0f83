"""Exceptions described without what they carry: types, SQLSTATE and stack frames.

An exception's message often holds the data that caused it: a database error's message
has the statement's parameters, which are an event's properties or a lead's traits. What
is logged, or stored for the API to show (a failed job), is only what is said here, so
no personal data leaves through an error.
"""

from __future__ import annotations

import traceback
from types import TracebackType

MAX_CHAIN = 8


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes (``raise ... from``, raised while handling, or a
    SQLAlchemy error's ``orig``, the driver's own error)."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < MAX_CHAIN:
        seen.add(id(current))
        chain.append(current)
        orig = getattr(current, "orig", None)
        cause = current.__cause__ or current.__context__
        if cause is None and isinstance(orig, BaseException):
            cause = orig
        current = cause
    return chain


def type_name(exc: BaseException) -> str:
    kind = type(exc)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def describe(exc: BaseException) -> str:
    """An exception by its types only, root cause last: ``IntegrityError <- UniqueViolation``."""
    return " <- ".join(type_name(item) for item in _chain(exc))


def sqlstate(exc: BaseException) -> str | None:
    """A database error's SQLSTATE code (safe to show, and says what went wrong)."""
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return str(code) if code else None


def safe_traceback(
    kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
) -> str:
    """Where an exception went, frame by frame (file, line, function), with each
    exception's type but never its message, source line or variables."""
    if exc is None:
        return ""
    lines: list[str] = []
    for depth, item in enumerate(reversed(_chain(exc))):
        if depth:
            lines.append("which led to:")
        lines.append(f"{type_name(item)} (message withheld)")
        for frame in traceback.extract_tb(item.__traceback__):
            lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}')
    return "\n".join(lines)
