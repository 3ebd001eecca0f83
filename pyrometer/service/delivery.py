"""The delivery worker: sends the outbox's deliveries to their webhooks, with retries.

Ingest never waits on it. A write that queues notifications commits them with the
transition that caused them (:mod:`pyrometer.store.outbox`) and sets the ``outbox``
signal; this worker wakes on it (or polls every :attr:`DeliverySettings.poll` seconds,
for rows other processes wrote) and then:

1. claims due rows in one short write transaction, moving each past a lease
   (:func:`pyrometer.store.webhooks.claim_due`; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
   so workers in several processes share the queue without sending a row twice);
2. sends them outside any transaction, up to ``concurrency`` at a time, signed per the
   Standard Webhooks specification (``webhook-id`` is the delivery's message id, the same
   on every retry, so a receiver can drop a repeat);
3. records the outcomes with its next claim, in one transaction: 2xx is delivered;
   anything else is tried again after an exponential backoff with jitter, until
   ``max_attempts`` attempts, then the delivery is dead (``POST
   /v1/deliveries/{id}/retry`` queues it again).

A worker killed mid-send leaves its rows claimed until the lease ends; they are then due
again and sent again, with the same ``webhook-id``: delivery is at least once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from pyrometer.envconfig import seconds_from_env
from pyrometer.service.runtime import Service
from pyrometer.store import webhooks as store
from pyrometer.store.outbox import DEAD, DELIVERED, PENDING

log = logging.getLogger("pyrometer.webhooks")

MAX_ATTEMPTS_VARIABLE = "PYROMETER_WEBHOOK_MAX_ATTEMPTS"
BACKOFF_VARIABLE = "PYROMETER_WEBHOOK_BACKOFF"
MAX_BACKOFF_VARIABLE = "PYROMETER_WEBHOOK_MAX_BACKOFF"
CONCURRENCY_VARIABLE = "PYROMETER_WEBHOOK_CONCURRENCY"
ERROR_CHARS = 200


class BackgroundTask(Protocol):
    """What ``pyrometer worker`` (and the server's lifespan) starts and stops: this
    worker, and the other loops that run beside it (the SLA watcher)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def _int_from_env(variable: str, default: int) -> int:
    text = os.environ.get(variable)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{variable}: expected a whole number of 1 or more, got {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """How the worker sends. ``lease`` must outlast a send (``connect_timeout`` plus
    ``timeout``), or a slow send's row would be claimed again meanwhile."""

    max_attempts: int = 8
    backoff: float = 5.0  # seconds before the 2nd attempt; doubling after each failure
    max_backoff: float = 3600.0
    concurrency: int = 16  # sends in flight
    lease: float = 30.0
    poll: float = 0.5
    connect_timeout: float = 5.0
    timeout: float = 10.0  # the whole request, from the first byte sent

    @classmethod
    def from_env(cls, **overrides: Any) -> DeliverySettings:
        """Defaults, then ``PYROMETER_WEBHOOK_*`` variables, then ``overrides``; a bad
        variable is a ``ValueError`` naming it."""
        default = cls()
        settings = replace(
            default,
            max_attempts=_int_from_env(MAX_ATTEMPTS_VARIABLE, default.max_attempts),
            backoff=seconds_from_env(BACKOFF_VARIABLE, default.backoff),
            max_backoff=seconds_from_env(MAX_BACKOFF_VARIABLE, default.max_backoff),
            concurrency=_int_from_env(CONCURRENCY_VARIABLE, default.concurrency),
        )
        return replace(settings, **overrides)


def backoff_seconds(attempts: int, base: float, cap: float, rand: float) -> float:
    """The wait after ``attempts`` failed attempts (1 or more): ``base × 2^(attempts-1)``,
    capped at ``cap``, then scaled into its upper half by ``rand`` in [0, 1) ("equal
    jitter"), so that deliveries that failed together do not all come back together."""
    full = min(cap, base * 2.0 ** min(attempts - 1, 60))
    return full / 2 + full / 2 * rand


def short_error(text: str, url: str) -> str:
    """An error worth keeping on the row: one line, the URL left out (it may carry a
    token), at most :data:`ERROR_CHARS` characters."""
    one_line = " ".join(text.replace(url, "<url>").split())
    return one_line[:ERROR_CHARS]


def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"pyrometer/{version('pyrometer')}"
    except PackageNotFoundError:
        return "pyrometer/dev"


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one send came to: an HTTP status, or an error before one."""

    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class DeliveryWorker:
    """A daemon thread claiming due deliveries and a pool of threads sending them.

    ``run_once`` does one round (record what finished, claim what is due); the thread
    runs it whenever the ``outbox`` signal is set, a send finishes, or ``poll`` passes.
    """

    def __init__(
        self,
        service: Service,
        settings: DeliverySettings | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._service = service
        self.settings = settings if settings is not None else DeliverySettings.from_env()
        self._rand = rand
        self._wake = service.signal("outbox")
        self._stop = threading.Event()
        self._done: list[dict[str, Any]] = []  # outcomes not yet recorded
        self._done_lock = threading.Lock()
        self._in_flight = 0  # claimed and not yet recorded; the loop thread's alone
        self.attempts_made = 0  # sends this worker finished, whatever they came to
        # Daemon sender threads: a send stuck on a silent receiver never holds up exit.
        self._sends: queue.SimpleQueue[store.Claimed | None] = queue.SimpleQueue()
        self._senders: list[threading.Thread] = []
        self._sending = 0  # handed to a sender and not finished
        self._idle = threading.Condition(self._done_lock)
        self._thread = threading.Thread(target=self._run, name="pyrometer-webhooks", daemon=True)
        self._client: Any = None
        self._user_agent = _user_agent()

    def start(self) -> None:
        import httpx

        s = self.settings
        self._client = httpx.Client(
            timeout=httpx.Timeout(s.timeout, connect=s.connect_timeout),
            limits=httpx.Limits(
                max_connections=s.concurrency, max_keepalive_connections=s.concurrency
            ),
            follow_redirects=False,
            trust_env=False,  # a webhook goes where its URL says, not via a proxy variable
        )
        for n in range(s.concurrency):
            sender = threading.Thread(
                target=self._send_loop, name=f"pyrometer-send-{n}", daemon=True
            )
            sender.start()
            self._senders.append(sender)
        self._thread.start()

    def stop(self, grace: float = 5.0) -> None:
        """Stop claiming; give sends in flight ``grace`` seconds, record what finished.
        Sends cut short come due again when their lease ends."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        for _ in self._senders:
            self._sends.put(None)
        with self._idle:
            self._idle.wait_for(lambda: self._sending == 0, timeout=grace)
        with contextlib.suppress(Exception):
            self._record_only()
        if self._client is not None:
            self._client.close()

    def _send_loop(self) -> None:
        while (row := self._sends.get()) is not None:
            self._deliver(row)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                claimed, free = self.run_once()
            except Exception:  # a database blip must not end the worker for good
                log.warning("webhook delivery round failed; trying again", exc_info=True)
                claimed, free = 0, 0
            if claimed and claimed == free:
                continue  # perhaps more are due
            self._wake.wait(self.settings.poll)

    def _take_done(self) -> list[dict[str, Any]]:
        with self._done_lock:
            done, self._done = self._done, []
        return done

    def _give_back(self, done: list[dict[str, Any]]) -> None:
        with self._done_lock:
            self._done[:0] = done

    def _record_only(self) -> None:
        done = self._take_done()
        if done:
            self._service.write(lambda conn: store.record_attempts(conn, done))

    def run_once(self) -> tuple[int, int]:
        """Record finished sends and claim due deliveries (as many as there is room for)
        in one write transaction, then start sending them; (claimed, room)."""
        service, s = self._service, self.settings
        done = self._take_done()
        free = s.concurrency - (self._in_flight - len(done))
        now = service.clock()
        try:
            due = free > 0 and service.read(lambda conn: store.any_due(conn, now))
            if not done and not due:
                return 0, free

            def work(conn: Any) -> list[store.Claimed]:
                store.record_attempts(conn, done)
                if not due:
                    return []
                return store.claim_due(conn, now, int(s.lease * 1e6), free)

            claimed = service.write(work)
        except BaseException:
            self._give_back(done)
            raise
        self._in_flight += len(claimed) - len(done)
        with self._done_lock:
            self._sending += len(claimed)
        for row in claimed:
            self._sends.put(row)
        return len(claimed), free

    def _deliver(self, row: store.Claimed) -> None:
        try:
            attempt = self.send(row)
        except Exception as exc:  # never lose the outcome: record it as a failure
            attempt = Attempt(None, short_error(f"{type(exc).__name__}: {exc}", row.url))
        outcome = self.outcome(row, attempt, self._service.clock())
        with self._done_lock:
            self._done.append(outcome)
            self.attempts_made += 1
            self._sending -= 1
            self._idle.notify_all()
        self._wake.set()

    def outcome(self, row: store.Claimed, attempt: Attempt, now_us: int) -> dict[str, Any]:
        """The row's new state after ``attempt`` (see :func:`store.record_attempts`)."""
        s = self.settings
        attempts = row.attempts + 1
        values: dict[str, Any] = {
            "id": row.id,
            "attempts": attempts,
            "last_status": attempt.status,
            "last_error": attempt.error,
        }
        if attempt.ok:
            return {**values, "status": DELIVERED, "delivered_us": now_us}
        if attempts >= s.max_attempts:
            return {**values, "status": DEAD}
        wait = backoff_seconds(attempts, s.backoff, s.max_backoff, self._rand())
        return {**values, "status": PENDING, "next_attempt_us": now_us + int(wait * 1e6)}

    def send(self, row: store.Claimed) -> Attempt:
        """POST the payload, signed; at most ``timeout`` seconds once connected."""
        import httpx
        from standardwebhooks import Webhook

        sent_at = datetime.now(UTC)  # the signature's time: the receiver's clock checks it
        headers = {
            "webhook-id": row.message_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": Webhook(row.secret).sign(row.message_id, sent_at, row.payload),
            "content-type": "application/json",
            "user-agent": self._user_agent,
        }
        deadline = time.monotonic() + self.settings.connect_timeout + self.settings.timeout
        try:
            with self._client.stream(
                "POST", row.url, content=row.payload.encode(), headers=headers
            ) as response:
                excerpt = b""
                for chunk in response.iter_bytes():
                    excerpt += chunk  # the status decides; the body only explains a failure
                    if len(excerpt) >= ERROR_CHARS or time.monotonic() > deadline:
                        break
        except httpx.HTTPError as exc:
            name = type(exc).__name__
            return Attempt(None, short_error(f"{name}: {exc}" if str(exc) else name, row.url))
        if 200 <= response.status_code < 300:
            return Attempt(response.status_code, None)
        text = excerpt[:ERROR_CHARS].decode("utf-8", "replace")
        message = f"HTTP {response.status_code}" + (f": {text}" if text.strip() else "")
        return Attempt(response.status_code, short_error(message, row.url))
