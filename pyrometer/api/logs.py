"""The server's log lines: text or JSON, each with the request id, none with personal data.

What a lead sent (bodies, traits, properties) must never reach a log: logs are kept
longer and read by more people than the store. Two rules make sure of it:

- The server's own lines (:mod:`pyrometer.api.request_context`) carry only ids, types,
  sizes and times: the request id, method, route template (``/v1/leads/{lead_id}``, not
  the lead's id, which is often an e-mail address), status and duration.
- An exception is written as its types and stack frames only
  (:mod:`pyrometer.service.redact`), never its message: a database error's message holds the
  statement's parameters, which is the event itself. This holds for every logger that
  goes through the handler set up here (uvicorn's included) and for uncaught exceptions
  in threads.

``configure_logging("json")`` writes one JSON object per line (``time``, ``level``,
``logger``, ``message``, ``request_id``, and for requests ``method``, ``path``,
``status``, ``duration_ms``), for log collectors; ``"text"`` is for people.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from pyrometer.service.redact import describe, safe_traceback

LogFormat = Literal["text", "json"]
FORMATS: tuple[LogFormat, ...] = ("text", "json")
FORMAT_VARIABLE = "PYROMETER_LOG_FORMAT"  # how ``serve --workers N`` tells its workers
ACCESS_VARIABLE = "PYROMETER_ACCESS_LOG"

# The request being served, for every log line written while serving it.
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "pyrometer_request_id", default=None
)
# Fields a record may carry (``logger.info(..., extra={...})``), in this order.
REQUEST_FIELDS = ("method", "path", "status", "duration_ms", "body_bytes", "error", "sqlstate")
ACCESS_LOGGER = "pyrometer.access"
ERROR_LOGGER = "pyrometer.error"


def _time(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line; an exception as ``stack`` (types and frames only)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or REQUEST_ID.get(),
        }
        for field in REQUEST_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        stack = getattr(record, "stack", None)
        if record.exc_info:
            stack = safe_traceback(*record.exc_info)
        if stack:
            entry["stack"] = stack
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER [REQUEST_ID] message key=value ...`` for people."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get() or "-"
        parts = [_time(record), record.levelname, record.name, f"[{request_id}]"]
        parts.append(record.getMessage())
        for field in REQUEST_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                parts.append(f"{field}={value}")
        text = " ".join(parts)
        stack = getattr(record, "stack", None)
        if record.exc_info:
            stack = safe_traceback(*record.exc_info)
        if stack:
            text += "\n" + stack
        return text


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    """An uncaught exception in a thread: logged by type and frames, not printed whole."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    stack = safe_traceback(args.exc_type, args.exc_value, args.exc_traceback)
    kind = describe(args.exc_value) if args.exc_value is not None else args.exc_type.__name__
    logging.getLogger(ERROR_LOGGER).error(
        "uncaught exception in thread %s: %s", name, kind, extra={"stack": stack}
    )


def configure_logging(log_format: LogFormat = "text", access_log: bool = False) -> None:
    """Send every log line of this process to stderr in ``log_format``.

    Replaces the root logger's handlers (uvicorn is started with ``log_config=None``, so
    its loggers come here too). ``access_log``: a line per request on
    ``pyrometer.access``; errors are logged either way.
    """
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {log_format!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("pyrometer").setLevel(logging.INFO)
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO if access_log else logging.WARNING)
    threading.excepthook = _thread_excepthook
