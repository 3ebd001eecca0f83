"""Whether the server is stopping, so that open live streams end at once.

A stopping uvicorn waits for every open response to finish before it shuts down, and a
live queue stream only ends on its own after a while: Ctrl+C with a dashboard tab open
would wait that long. uvicorn catches SIGINT and SIGTERM with its own handlers; the
first stream wraps them (in the main thread, where signals are delivered) to also set
:func:`stopping`, then hands the signal on unchanged. Where the server runs elsewhere
(a test's thread) nothing is wrapped and streams end by their own time limit.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

_STOPPING = threading.Event()
_LOCK = threading.Lock()
_WRAPPED: list[bool] = []


def stopping() -> threading.Event:
    """Set once SIGINT or SIGTERM came; wraps the handlers the first time it is asked."""
    with _LOCK:
        if not _WRAPPED and threading.current_thread() is threading.main_thread():
            _WRAPPED.append(True)
            for number in (signal.SIGINT, signal.SIGTERM):
                _wrap(number)
    return _STOPPING


def _wrap(number: int) -> None:
    previous: Any = signal.getsignal(number)
    if not callable(previous):  # not a server's handler: leave the default alone
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        _STOPPING.set()
        previous(signum, frame)

    signal.signal(number, handler)
