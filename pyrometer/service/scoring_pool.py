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

A group goes to the lowest-numbered scoring process that is free (or, when none is, to
the one with the fewest groups waiting), not to whichever happens to take it first:
each process keeps the event features of the leads it wrote
(:mod:`pyrometer.service.event_cache`), and a lead the other process wrote since must
be caught up from the store. Under light load one process takes every group and its
cache stays current; the next takes groups only while the first is busy. With
probability bands, one client and two processes (``bench/bench_serve_bands.py``, batches
interleaved with a points server's), bands cost 0.84-0.86x the points' CPU per event
with groups taken by whichever process was free, 1.00-1.05x with them sent this way.
"""

from __future__ import annotations

import contextlib
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
_GROUPS = 0  # groups this scoring process stored
_SERVING = contextlib.ExitStack()  # in the scoring process: what it entered for good


def _start(url: str, parent: int) -> None:
    global _SERVICE
    from pyrometer.service.collector import tuned_for_serving
    from pyrometer.service.openmp import sleep_between
    from pyrometer.store.engine import create_store_engine

    sleep_between()  # before LightGBM's library loads (the variable is inherited too)
    _SERVICE = Service(create_store_engine(url))
    # The collector as the server process has it while it serves, for this process's life.
    _SERVING.enter_context(tuned_for_serving())
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

    global _GROUPS
    assert _SERVICE is not None
    _GROUPS += 1
    return store_ahead(_SERVICE, tracks, now)


def groups_stored() -> int:
    """How many groups this scoring process stored (run in it: where groups went)."""
    return _GROUPS


class ScoringPool:
    """``processes`` scoring processes for ``service``'s store (started at once)."""

    def __init__(self, service: Service, processes: int = 1) -> None:
        self._service = service
        self._url = service.engine.url.render_as_string(hide_password=False)
        self._lock = threading.Lock()
        self._executors = [self._new_executor() for _ in range(processes)]
        for ready in [executor.submit(_ready) for executor in self._executors]:
            ready.result(timeout=120)  # all started and imported before serving
        self._waiting = [0] * processes

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(self._url, os.getpid()),
        )

    def _take(self) -> int:
        """The process for the next group: the lowest-numbered with the fewest waiting."""
        with self._lock:
            chosen = min(range(len(self._waiting)), key=lambda i: (self._waiting[i], i))
            self._waiting[chosen] += 1
            return chosen

    def store(self, tracks: Sequence[Track], now: int) -> set[str]:
        """:func:`store_ahead` of ``tracks`` (all with a ``userId``) in a scoring process;
        here if that process died (its transaction, if it had not committed, is rolled
        back, and events it did commit count once however often they are stored)."""
        from pyrometer.service.ingest import store_ahead

        chosen = self._take()
        executor = self._executors[chosen]
        try:
            new_ids: set[str] = executor.submit(_store, tracks, now).result()
            return new_ids
        except BrokenProcessPool:
            self._replace(chosen, executor)
            return store_ahead(self._service, tracks, now)
        finally:
            self._done(chosen)

    def _replace(self, process: int, broken: ProcessPoolExecutor) -> None:
        """A new scoring process in place of one that died (once, whoever saw it die)."""
        with self._lock:
            if self._executors[process] is not broken:
                return
            fresh = self._executors[process] = self._new_executor()
        fresh.submit(_ready).result(timeout=120)

    def _done(self, process: int) -> None:
        with self._lock:
            self._waiting[process] -= 1

    def close(self) -> None:
        for executor in self._executors:
            executor.shutdown(wait=True, cancel_futures=True)
