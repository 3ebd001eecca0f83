"""A small sign-in throttle: too many wrong passwords from one address stop being checked.

Per e-mail and client address: 5 failures within 5 minutes block that pair until the
oldest failure is 5 minutes old; per client address alone, 30 (one office behind one
address may share it). A success clears the pair. Kept in this process's memory: a
restart or another worker starts afresh, which still keeps guessing at argon2's pace
slow; the point is to make online guessing a matter of years, not to count exactly.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 300.0
PER_PAIR = 5
PER_ADDRESS = 30
_MAX_KEYS = 100_000  # forget the oldest keys past this, so memory stays bounded


class Throttle:
    def __init__(
        self,
        window: float = WINDOW_SECONDS,
        per_pair: int = PER_PAIR,
        per_address: int = PER_ADDRESS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.per_pair = per_pair
        self.per_address = per_address
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def blocked_for(self, email: str, address: str) -> float:
        """Seconds until this e-mail may be tried from this address again (0: now)."""
        now = self._clock()
        with self._lock:
            waits = [0.0]
            for key, limit in ((_pair(email, address), self.per_pair), (address, self.per_address)):
                times = self._recent(key, now)
                if len(times) >= limit:
                    waits.append(times[len(times) - limit] + self.window - now)
            return max(waits)

    def failed(self, email: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._failures) > _MAX_KEYS:
                for key in list(self._failures)[: _MAX_KEYS // 10]:
                    del self._failures[key]
            for key in (_pair(email, address), address):
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, email: str, address: str) -> None:
        with self._lock:
            self._failures.pop(_pair(email, address), None)


def _pair(email: str, address: str) -> str:
    return f"{email.strip().lower()}\n{address}"
