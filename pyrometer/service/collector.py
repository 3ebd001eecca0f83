"""Python's garbage collector, tuned while a process serves.

A server process holds a large heap that lives as long as it does (the modules, the
playbook, SQLAlchemy's and FastAPI's objects, caches), and every full collection walks
all of it; with the default thresholds (a young collection every 700 new containers) a
batch of 500 events triggers several, and ingest paid about 6% of its time for them, more
when it enrols leads in nurture sequences (``bench/bench_nurture.py``: 3 µs an event of
the 6 µs enrolment cost). While serving, the heap made before is frozen (``gc.freeze``:
never walked again; nothing in it is freed by the collector, only by reference counts,
as before) and young collections come every 20,000 new containers. A process that
stops serving gets the collector back as it was; servings that overlap (two apps in one
process, as tests make) tune it once and restore it when the last stops.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SERVING_THRESHOLDS = (20_000, 20, 20)
"""New containers before a young collection, and young (then middle) collections before
the next older one."""

_lock = threading.Lock()
_serving = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def tuned_for_serving() -> Iterator[None]:
    """The collector tuned (see the module) while inside."""
    global _serving, _saved
    with _lock:
        _serving += 1
        if _serving == 1:
            _saved = gc.get_threshold()
            gc.collect()  # what is garbage now is not frozen with the rest
            gc.freeze()
            gc.set_threshold(*SERVING_THRESHOLDS)
    try:
        yield
    finally:
        with _lock:
            _serving -= 1
            if _serving == 0:
                gc.unfreeze()
                if _saved is not None:
                    gc.set_threshold(*_saved)
