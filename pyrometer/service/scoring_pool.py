"""Scoring processes beside the server process: ingest's heavy work runs on other cores.

The server process parses and validates requests and groups them (see
:mod:`pyrometer.service.grouping`); a group of events that all name their lead by
``userId`` is then stored by a scoring process, whole, in one transaction of its own:
read the leads' committed rows, score ahead of the write, write under the locks
(:func:`pyrometer.service.ingest.store_ahead`). Python runs one thread at a time per
process, and the server process, which every request passes through, would otherwise do
all the writing too; this way it keeps only what cannot move, and the scoring and the
writes spread over the cores. Writers of several processes take turns on SQLite's
write lock, a lock on a file beside the database (:class:`WriterLock`), and lock the
leads they change on PostgreSQL, as the server process's own writers do. The group's
answer is the set of event ids that were new; the server process answers the requests.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from pyrometer.service.inputs import Track
from pyrometer.service.runtime import Service

_SERVICE: Service | None = None  # in the scoring process


def _start(url: str, parent: int) -> None:
    global _SERVICE
    from pyrometer.store.engine import create_store_engine

    _SERVICE = Service(create_store_engine(url))
    threading.Thread(target=_watch, args=(parent,), name="pyrometer-parent", daemon=True).start()


def _watch(parent: int) -> None:
    """End with the server process, however it ended (a SIGKILL leaves no time to say)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def _ready() -> bool:
    return _SERVICE is not None


def _store(tracks: Sequence[Track], now: int) -> set[str]:
    from pyrometer.service.ingest import store_ahead

    assert _SERVICE is not None
    return store_ahead(_SERVICE, tracks, now)


class ScoringPool:
    """``processes`` scoring processes for ``service``'s store (started at once)."""

    def __init__(self, service: Service, processes: int = 1) -> None:
        self._service = service
        self._url = service.engine.url.render_as_string(hide_password=False)
        self._processes = processes
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        executor = ProcessPoolExecutor(
            self._processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(self._url, os.getpid()),
        )
        for future in [executor.submit(_ready) for _ in range(self._processes)]:
            future.result(timeout=120)  # started and imported before serving
        return executor

    def store(self, tracks: Sequence[Track], now: int) -> set[str]:
        """:func:`store_ahead` of ``tracks`` (all with a ``userId``) in a scoring process;
        here if the pool broke (a scoring process died: its transaction, if it had not
        committed, is rolled back, and events it did commit count once however often
        they are stored)."""
        from pyrometer.service.ingest import store_ahead

        try:
            new_ids: set[str] = self._executor.submit(_store, tracks, now).result()
            return new_ids
        except BrokenProcessPool:
            self._executor = self._new_executor()  # for the next group
            return store_ahead(self._service, tracks, now)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
