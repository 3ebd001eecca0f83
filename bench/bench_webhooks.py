"""Webhooks against a running ``pyrometer serve``: how soon a hot lead is announced, and
what a receiver that never answers costs ingest.

For each store the script starts the server itself on 127.0.0.1 with a fresh store (as
``bench_service.py`` does) and a receiver in this process, then measures:

1. hot → received: while background clients ingest about ``--rate`` events per second,
   a probe sends one ``/v1/batch`` that turns a new lead hot (two ``contact_sales``
   events: 50 points, hot in the default playbook) and times until the ``lead.hot``
   webhook reaches the receiver; p50 and p99 over ``--samples`` probes;
2. ingest throughput in batches of 500 without a webhook; with one for every event type
   (``*``: a delivery for each transition, written by ingest in its transaction) to a
   receiver that answers at once; and with the same to a receiver that accepts
   connections and never answers, so the worker's sends all hang until their timeout.
   All run on one server in alternating phases, the median of each: a stuck receiver
   must not slow ingest.

Usage:

    python bench/bench_webhooks.py [--stores sqlite,postgres] [--rate 1000] [--samples 200]
        [--seconds 5] [--clients 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_service import (  # noqa: E402
    Client,
    bench_batches,
    free_port,
    percentile,
    start_server,
)
from stores import LABELS, fresh_store  # noqa: E402

from pyrometer.service.keys import Scope, create_key  # noqa: E402
from pyrometer.service.runtime import Service  # noqa: E402
from pyrometer.service.webhooks import add_webhook, delete_webhook  # noqa: E402

BACKGROUND_EVENTS = ("page_view", "email_open", "product_page_view", "whitepaper_download")


class TimingReceiver:
    """Answers 200 and notes when each ``lead.hot`` for a lead arrived (perf_counter)."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                at = time.perf_counter()
                payload = json.loads(body)
                if payload["type"] == "lead.hot":
                    with receiver.cond:
                        receiver.arrived.setdefault(payload["data"]["lead"]["id"], at)
                        receiver.cond.notify_all()
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, lead: str, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        with self.cond:
            while lead not in self.arrived:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"no lead.hot for {lead} within {timeout} s")
                self.cond.wait(left)
            return self.arrived[lead]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SilentReceiver:
    """Accepts every connection and never reads or answers: each send waits out its
    timeout."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@contextmanager
def served(url: str, hook_url: str | None, events: list[str]) -> Iterator[tuple[int, str, int]]:
    """A server on a fresh store (with a webhook to ``hook_url``, if given): (port, key,
    the server's process id)."""
    service = Service.open(url)
    key = create_key(service, Scope.INGEST, "bench")
    if hook_url is not None:
        add_webhook(service, hook_url, events)
    service.close()
    port = free_port()
    server = start_server(url, port)
    try:
        yield port, key, server.pid
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def _event(lead: str, name: str) -> dict[str, object]:
    return {"type": "track", "userId": lead, "event": name, "messageId": uuid.uuid4().hex}


def bench_hot_latency(port: int, key: str, receiver: TimingReceiver, args: argparse.Namespace):
    """p50, p99 (ms) of hot → received, and the events per second sent meanwhile."""
    stop = threading.Event()
    sent = [0, 0]
    per_batch = 20
    interval = per_batch * 2 / args.rate  # two background clients

    def background(n: int) -> None:
        rng = random.Random(n)
        client = Client(port, key)
        next_at = time.perf_counter()
        while not stop.is_set():
            body = {
                "batch": [
                    _event(f"bg-{rng.randrange(20_000)}", rng.choice(BACKGROUND_EVENTS))
                    for _ in range(per_batch)
                ]
            }
            if client.post("/v1/batch", json.dumps(body).encode()) != 200:
                raise RuntimeError("background ingest failed")
            sent[n] += per_batch
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))

    load = [threading.Thread(target=background, args=(n,), daemon=True) for n in range(2)]
    start = time.perf_counter()
    for thread in load:
        thread.start()
    probe = Client(port, key)
    times: list[float] = []
    try:
        time.sleep(1.0)  # the load runs first
        for i in range(args.samples):
            lead = f"hot-{i}-{uuid.uuid4().hex[:6]}"
            body = json.dumps(
                {"batch": [_event(lead, "contact_sales"), _event(lead, "contact_sales")]}
            ).encode()
            began = time.perf_counter()
            if probe.post("/v1/batch", body) != 200:
                raise RuntimeError("probe ingest failed")
            times.append((receiver.wait(lead) - began) * 1000)
            time.sleep(0.02)
    finally:
        stop.set()
        for thread in load:
            thread.join()
    rate = (sum(sent) + 2 * len(times)) / (time.perf_counter() - start)
    return percentile(times, 50), percentile(times, 99), rate


def bench_store(name: str, kind: str, args: argparse.Namespace) -> None:
    receiver = TimingReceiver()
    try:
        with (
            fresh_store(kind, "webhooks") as url,
            served(url, receiver.url, ["lead.hot"]) as (port, key, _pid),
        ):
            p50, p99, rate = bench_hot_latency(port, key, receiver, args)
    finally:
        receiver.close()
    print(
        f"{name:10s} hot → webhook received, under {rate:,.0f} events/s of ingest: "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms ({args.samples} leads)",
        flush=True,
    )
    rates, cpu, queued = bench_receivers(kind, args)
    base = statistics.median(rates["none"])
    answering, silent = (statistics.median(rates[k]) for k in ("answering", "silent"))
    print(
        f"{name:10s} ingest, batches of 500: no webhook {base:,.0f} events/s; a webhook for * "
        f"that answers at once {answering:,.0f} ({answering / base:.3f}); one that never "
        f"answers {silent:,.0f} ({silent / base:.3f}; {silent / answering:.3f} of answering); "
        f"{queued:,} deliveries queued",
        flush=True,
    )
    cost = {k: statistics.median(v) for k, v in cpu.items()}
    print(
        f"{name:10s} server CPU per 1,000 events ingested: no webhook {cost['none']:.0f} ms; "
        f"answering {cost['answering']:.0f} ms; never answering {cost['silent']:.0f} ms "
        f"({cost['silent'] / cost['none']:.3f} of no webhook)",
        flush=True,
    )
    print(
        f"{name:10s} phases (events/s): "
        + "; ".join(f"{k}: " + ", ".join(f"{r:,.0f}" for r in v) for k, v in rates.items()),
        flush=True,
    )


def bench_receivers(
    kind: str, args: argparse.Namespace
) -> tuple[dict[str, list[float]], dict[str, list[float]], int]:
    """Batch ingest rates without a webhook, with one for ``*`` to a receiver that answers
    at once, and with one to a receiver that never answers. The phases run on one server,
    ordered none, answering, silent, silent, answering, none (``--rounds`` times, after a
    warm-up that is not counted), so that a growing store and a changing machine load
    weigh on each alike."""
    rates: dict[str, list[float]] = {"none": [], "answering": [], "silent": []}
    cpu: dict[str, list[float]] = {k: [] for k in rates}  # server CPU ms per 1,000 events
    silent, answering = SilentReceiver(), TimingReceiver()
    urls = {"answering": answering.url, "silent": silent.url}
    try:
        with fresh_store(kind, "webhooks") as url, served(url, None, []) as (port, key, pid):
            service = Service.open(url)
            try:
                cycle = ["none", "answering", "silent", "silent", "answering", "none"]
                for phase in ["warm-up", *cycle * args.rounds]:
                    hook = add_webhook(service, urls[phase], ["*"]) if phase in urls else None
                    before = cpu_seconds(pid)
                    rate = bench_batches(port, key, args.clients, args.seconds, args.max_batches)
                    used = cpu_seconds(pid) - before
                    if hook is not None:
                        delete_webhook(service, hook.webhook.id)
                    if phase in rates:
                        rates[phase].append(rate)
                        cpu[phase].append(used * 1e6 / (rate * args.seconds))
            finally:
                service.close()
            queued = _deliveries(url)
    finally:
        silent.close()
        answering.close()
    return rates, cpu, queued


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children so far (Linux /proc): the
    server's cost, which other load on the machine changes less than its throughput."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def _deliveries(url: str) -> int:
    import sqlalchemy as sa

    from pyrometer.store.tables import deliveries

    service = Service.open(url)
    try:
        query = sa.select(sa.func.count()).select_from(deliveries)
        return int(service.read(lambda conn: conn.execute(query).scalar() or 0))
    finally:
        service.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--rate", type=float, default=1000.0, help="Background events/s.")
    parser.add_argument("--samples", type=int, default=200, help="Hot leads timed.")
    parser.add_argument("--seconds", type=float, default=5.0, help="Per throughput phase.")
    parser.add_argument("--clients", type=int, default=4, help="Concurrent batch clients.")
    parser.add_argument("--max-batches", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2, help="Rounds of 6 phases.")
    args = parser.parse_args()
    print(
        f"pyrometer webhooks bench: {os.cpu_count()} cores, 1 server process, "
        f"{args.rate:,.0f} events/s background, {args.clients} batch clients, "
        f"{args.seconds:.0f} s per throughput phase",
        flush=True,
    )
    for kind in args.stores.split(","):
        bench_store(LABELS.get(kind, kind), kind, args)


if __name__ == "__main__":
    main()
