"""Group commit: ingest requests that arrive together share one transaction.

Every request waits for its own commit before it is answered (so nothing acknowledged
can be lost), but a commit costs about as much for one event as for hundreds, and SQLite
has one writer at a time anyway. A writer thread takes whatever requests are waiting,
stores them in one transaction and wakes them all, so many single-event requests cost
about one commit between them. A group that fails is retried request by request, so one
request's problem is never another's: each is still accepted whole or rejected whole.

The queue is bounded (``max_queued`` messages waiting or being stored): past it a request
is refused at once with :class:`Overloaded` (the API answers 503 with ``Retry-After``)
rather than queued behind a store that has stopped answering.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pyrometer.service.ingest import ingest_many
from pyrometer.service.inputs import Identify, IngestResult, Track
from pyrometer.service.runtime import Service

MAX_GROUP_MESSAGES = 5000
MAX_QUEUED_MESSAGES = 50_000


class Overloaded(Exception):
    """The ingest queue is full: the request was not queued; send it again later."""


@dataclass
class _Pending:
    tracks: Sequence[Track]
    identifies: Sequence[Identify]
    done: threading.Event = field(default_factory=threading.Event)
    result: IngestResult | None = None
    error: BaseException | None = None
    on_done: Callable[[], None] | None = None  # besides ``done``: wakes an awaiting task

    def finish(self) -> None:
        self.done.set()
        if self.on_done is not None:
            self.on_done()

    @property
    def size(self) -> int:
        return len(self.tracks) + len(self.identifies)


class GroupCommitter:
    """``submit`` blocks until the request's messages are committed (or refused)."""

    def __init__(
        self, service: Service, writers: int = 1, max_queued: int = MAX_QUEUED_MESSAGES
    ) -> None:
        self._service = service
        self._writers = writers
        self._max_queued = max_queued
        self._queued = 0  # messages submitted and not yet answered
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the writer threads (``submit`` also does, on first use)."""
        with self._lock:
            if any(thread.is_alive() for thread in self._threads):
                return
            self._threads = [
                threading.Thread(target=self._run, name=f"pyrometer-ingest-{n}", daemon=True)
                for n in range(self._writers)
            ]
            for thread in self._threads:
                thread.start()

    def stop(self) -> None:
        """Finish what was submitted, then end the writer threads."""
        with self._lock:
            threads, self._threads = self._threads, []
            for _ in threads:
                self._queue.put(None)
        for thread in threads:
            thread.join(timeout=30)

    def submit(self, tracks: Sequence[Track], identifies: Sequence[Identify]) -> IngestResult:
        self.start()
        pending = _Pending(tracks, identifies)
        self._enqueue(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    async def submit_async(
        self, tracks: Sequence[Track], identifies: Sequence[Identify]
    ) -> IngestResult:
        """``submit`` for the event loop: waits without holding a thread."""
        self.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            loop.call_soon_threadsafe(lambda: future.done() or future.set_result(None))

        pending = _Pending(tracks, identifies, on_done=wake)
        self._enqueue(pending)
        await future
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    @property
    def queued(self) -> int:
        """Messages waiting for, or in, a commit."""
        return self._queued

    def _enqueue(self, pending: _Pending) -> None:
        with self._lock:
            if self._queued and self._queued + pending.size > self._max_queued:
                raise Overloaded(
                    f"{self._queued} messages are waiting to be stored (at most "
                    f"{self._max_queued}); send again later"
                )
            self._queued += pending.size
        self._queue.put(pending)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            size = first.size
            stopping = False
            while size < MAX_GROUP_MESSAGES:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:  # this thread's stop signal: finish the group, then leave
                    stopping = True
                    break
                group.append(more)
                size += more.size
            try:
                self._commit(group)
            finally:
                with self._lock:
                    self._queued -= size
            if stopping:
                return

    def _commit(self, group: list[_Pending]) -> None:
        try:
            results = ingest_many(self._service, [(p.tracks, p.identifies) for p in group])
        except Exception as exc:
            if len(group) == 1:
                group[0].error = exc
                group[0].finish()
            else:
                for pending in group:
                    self._commit([pending])
            return
        for pending, result in zip(group, results, strict=True):
            pending.result = result
            pending.finish()
