"""Whether the store answers, known without waiting for it.

A database behind a partitioned network does not refuse a statement: it never answers,
and a request that asks it waits with it. The monitor asks for the service (``SELECT 1``
on a thread of its own, one probe at a time) and says *unreachable* as soon as a probe
has gone unanswered for ``timeout`` seconds, so liveness (``/health``) can report the
store cheaply, readiness (``/ready``) can wait a bounded time for a fresh answer, and the
API can answer 503 at once instead of piling more requests onto a dead connection. While
the store is unreachable it is probed again every ``interval`` seconds, and it is
*ok* again from the first probe that answers.
"""

from __future__ import annotations

import threading
import time
from enum import StrEnum

import sqlalchemy as sa

from pyrometer.service.runtime import Service


class StoreState(StrEnum):
    OK = "ok"
    UNREACHABLE = "unreachable"
    UNKNOWN = "unknown"  # not probed yet


class StoreMonitor:
    """Probes ``service``'s store on request (:meth:`probe`) and while it is down."""

    def __init__(self, service: Service, timeout: float, interval: float = 1.0) -> None:
        self._service = service
        self.timeout = timeout
        self._interval = interval
        self._cond = threading.Condition()
        self._wanted = 0  # probes asked for
        self._finished = 0  # probes answered (or failed), counted as asked
        self._running_since: float | None = None
        self._last_ok: bool | None = None
        self._stop = False
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> StoreState:
        with self._cond:
            since, last = self._running_since, self._last_ok
        if since is not None and time.monotonic() - since > self.timeout:
            return StoreState.UNREACHABLE  # the probe in flight is overdue
        if last is None:
            return StoreState.UNKNOWN
        return StoreState.OK if last else StoreState.UNREACHABLE

    @property
    def down(self) -> bool:
        return self.state is StoreState.UNREACHABLE

    def probe(self) -> int:
        """Ask for a fresh probe (without waiting); its number, for :meth:`answered`."""
        with self._cond:
            self._start()
            self._wanted += 1
            self._cond.notify_all()
            return self._wanted

    def answered(self, number: int) -> bool:
        with self._cond:
            return self._finished >= number

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pyrometer-probe", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and self._finished >= self._wanted:
                    if self._last_ok is False:  # down: look again after a while
                        self._cond.wait(self._interval)
                        if self._finished >= self._wanted:
                            self._wanted += 1
                        break
                    self._cond.wait()
                if self._stop:
                    return
                target = self._wanted
                self._running_since = time.monotonic()
            ok = self._ask()
            with self._cond:
                self._running_since = None
                self._last_ok = ok
                self._finished = max(self._finished, target)
                self._cond.notify_all()

    def _ask(self) -> bool:
        try:
            self._service.read(lambda conn: conn.execute(sa.text("SELECT 1")).scalar())
            return True
        except Exception:  # any failure to answer is "unreachable"; the next probe retries
            return False
