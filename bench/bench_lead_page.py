"""The lead page of a lead with a long history, and what reading it does to ingest.

Starts ``pyrometer serve`` on 127.0.0.1 (a fresh SQLite file, or a fresh PostgreSQL
schema), gives one lead 50,000 events over a year through ``/v1/batch``, then measures:

1. ``GET /v1/leads/{id}`` of that lead: p50 and p99 over ``--samples`` reads, and the
   size of the answer;
2. the latency of single-event ``POST /v1/track`` requests for other leads (one client),
   p50 and p99, alone and while four clients read the heavy lead's page in a loop.

Usage (the server of another checkout with ``--repo PATH``):

    python bench/bench_lead_page.py [--stores sqlite,postgres] [--events 50000]
        [--samples 200] [--seconds 6] [--repo PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_service import (
    REPO,
    Client,
    free_port,
    percentile,
    start_server,
)
from stores import LABELS, fresh_store

HEAVY = "heavy@example.com"
NAMES = ("page_view", "pricing_page_view", "email_open", "email_click", "webinar_attended")


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def load_heavy_lead(port: int, key: str, count: int) -> None:
    """``count`` events of one lead, spread over the past year, 2,500 per batch."""
    rng = random.Random(7)
    client = Client(port, key)
    now = datetime.now(UTC)
    for start in range(0, count, 2500):
        batch = [
            {
                "type": "track",
                "userId": HEAVY,
                "event": rng.choice(NAMES),
                "messageId": f"h{n}",
                "timestamp": _iso(now - timedelta(seconds=rng.uniform(60, 365 * 86_400))),
                "properties": {"url": rng.choice(["/pricing", "/blog/a", "/features"])},
            }
            for n in range(start, min(count, start + 2500))
        ]
        status = client.post("/v1/batch", json.dumps({"batch": batch}).encode())
        if status != 200:
            raise RuntimeError(f"loading the heavy lead: HTTP {status}")


def lead_page_times(port: int, key: str, samples: int) -> tuple[list[float], int]:
    client = Client(port, key)
    times, size = [], 0
    for _ in range(samples):
        start = time.perf_counter()
        status, body = client.get(f"/v1/leads/{HEAVY}")
        times.append((time.perf_counter() - start) * 1000)
        if status != 200:
            raise RuntimeError(f"lead page: HTTP {status}")
        size = len(body)
    return times, size


def ingest_times(
    port: int, ingest_key: str, read_key: str, seconds: float, readers: int
) -> tuple[list[float], int]:
    """Single-event latencies for ``seconds``, with ``readers`` clients reading the
    heavy lead's page meanwhile; also how many pages they read."""
    stop = threading.Event()
    pages = [0] * readers

    def read(n: int) -> None:
        client = Client(port, read_key)
        while not stop.is_set():
            client.get(f"/v1/leads/{HEAVY}")
            pages[n] += 1

    threads = [threading.Thread(target=read, args=(n,)) for n in range(readers)]
    for thread in threads:
        thread.start()
    rng = random.Random(5)
    client = Client(port, ingest_key)
    times = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and len(times) < 20_000:
            body = {
                "userId": f"other-{rng.randrange(2000)}",
                "event": rng.choice(NAMES),
                "messageId": uuid.uuid4().hex,
            }
            payload = json.dumps(body).encode()
            start = time.perf_counter()
            client.post("/v1/track", payload)
            times.append((time.perf_counter() - start) * 1000)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return times, sum(pages)


def make_key(url: str, repo: str, scope: str) -> str:
    """A key made by the checkout under test (its own migrations create the store)."""
    env = {**os.environ, "PYTHONPATH": repo, "PYROMETER_DATABASE_URL": url}
    command = [sys.executable, "-m", "pyrometer.cli.app", "keys", "create", "--scope", scope]
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def bench_store(name: str, url: str, args: argparse.Namespace) -> None:
    ingest_key, read_key = make_key(url, args.repo, "ingest"), make_key(url, args.repo, "read")
    port = free_port()
    server = start_server(url, port, [], Path(args.repo))
    try:
        load_heavy_lead(port, ingest_key, args.events)
        page, size = lead_page_times(port, read_key, args.samples)
        alone, _ = ingest_times(port, ingest_key, read_key, args.seconds, 0)
        busy, read = ingest_times(port, ingest_key, read_key, args.seconds, 4)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    print(
        f"{name:10s} lead page of {args.events:,} events: p50 {percentile(page, 50):.1f} ms, "
        f"p99 {percentile(page, 99):.1f} ms, {size / 1024:,.0f} KiB\n"
        f"{'':10s} single-event ingest p50/p99: alone {percentile(alone, 50):.1f}/"
        f"{percentile(alone, 99):.1f} ms; with 4 readers {percentile(busy, 50):.1f}/"
        f"{percentile(busy, 99):.1f} ms ({read / args.seconds:,.0f} lead pages/s)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--repo", default=str(REPO), help="Checkout whose server to run.")
    args = parser.parse_args()
    for store in args.stores.split(","):
        with fresh_store(store) as url:
            bench_store(LABELS.get(store, store), url, args)


if __name__ == "__main__":
    main()
