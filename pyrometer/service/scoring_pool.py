"""A scoring process beside the server process: ingest's scoring runs on another core.

The server process parses requests, validates them and writes; scoring groups of events
ahead of their write (:func:`pyrometer.service.ingest.score_ahead`, the bulk of the
work) is handed to a process of its own, which reads the leads' committed rows itself
and hands back plain rows. Python runs one thread at a time per process, so this is
what lets one server process use two cores. It only reads: everything is still written
(and checked under the locks) by the server process, in one transaction per group.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

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


def _score(rows: Sequence[dict[str, Any]], now: int) -> Any:
    from pyrometer.service.ingest import score_ahead

    assert _SERVICE is not None
    return score_ahead(_SERVICE, rows, now)


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

    def score(self, rows: Sequence[dict[str, Any]], now: int) -> Any:
        """:func:`score_ahead` in the scoring processes, the group's leads shared out
        among them (here, if one died)."""
        from pyrometer.service.ingest import ScoredAhead, score_ahead

        parts: list[list[dict[str, Any]]] = [[] for _ in range(self._processes)]
        for row in rows:  # all of a lead's events to the same process
            parts[hash(row["lead_id"]) % self._processes].append(row)
        try:
            futures = [self._executor.submit(_score, part, now) for part in parts if part]
            results = [future.result() for future in futures]
        except BrokenProcessPool:
            self._executor = self._new_executor()  # for the next group
            return score_ahead(self._service, rows, now)
        if any(r is None for r in results) or len({r.version for r in results}) != 1:
            return None  # a part needs the general path, or a publish came between
        merged = ScoredAhead(results[0].version, {}, {}, {})
        for result in results:
            merged.seen.update(result.seen)
            merged.rows.update(result.rows)
            merged.transitions.update(result.transitions)
        return merged

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
