"""Drive a running ``pyrometer serve`` over HTTP and print its speed, on SQLite and PostgreSQL.

For each store the script starts the server itself on 127.0.0.1 (loopback only), with a
fresh store (an SQLite file in a temporary folder; a new schema on PostgreSQL, dropped
afterwards), then measures from a concurrent client (threads, keep-alive connections,
bodies serialised before the clock starts):

1. events per second in ``/v1/batch`` requests of 500 events;
2. single-event ``/v1/track`` requests per second;
3. the time from sending an event to its score being readable (``POST /v1/track`` then
   ``GET /v1/leads/{id}`` until the lead shows the event), p50 and p99, while the
   single-event load of step 2 runs at the same time.

Every phase is bounded in requests and in seconds. Usage:

    python bench/bench_service.py [--stores sqlite,postgres] [--seconds 8] [--clients 4]
        [--single-clients 16] [--samples 400] [--workers 1]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pyrometer.service.keys import Scope, create_key  # noqa: E402
from pyrometer.service.runtime import Service  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stores import LABELS, fresh_store  # noqa: E402

EVENTS = (
    "page_view",
    "pricing_page_view",
    "email_open",
    "email_click",
    "whitepaper_download",
    "webinar_attended",
    "product_page_view",
    "form_submit",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Client:
    """One keep-alive HTTP/1.1 connection (the stdlib's: the client must stay cheap)."""

    def __init__(self, port: int, key: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def post(self, path: str, body: bytes) -> int:
        self.conn.request("POST", path, body=body, headers=self.headers)
        response = self.conn.getresponse()
        response.read()
        return response.status

    def get(self, path: str) -> tuple[int, bytes]:
        self.conn.request("GET", path, headers=self.headers)
        response = self.conn.getresponse()
        return response.status, response.read()


def _when(rng: random.Random) -> str:
    moment = datetime.now(UTC) - timedelta(seconds=rng.uniform(0, 60 * 86_400))
    return moment.isoformat().replace("+00:00", "Z")


def _track(rng: random.Random, lead: str) -> dict[str, object]:
    return {
        "type": "track",
        "userId": lead,
        "event": rng.choice(EVENTS),
        "messageId": uuid.uuid4().hex,
        "timestamp": _when(rng),
        "properties": {"url": rng.choice(["/pricing", "/blog/a", "/features"])},
    }


def run_threads(clients: int, work: Callable[[int], None]) -> float:
    threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def _post_all(
    port: int, key: str, clients: int, seconds: float, path: str, bodies: list[bytes], weight: int
) -> float:
    """``clients`` threads post ``bodies`` to ``path`` until time or bodies run out;
    returns ``weight`` (events per body) times bodies per second."""
    sent = [0] * clients
    deadline = time.perf_counter() + seconds
    lock = threading.Lock()
    index = [0]

    def work(n: int) -> None:
        client = Client(port, key)
        while time.perf_counter() < deadline:
            with lock:
                if index[0] >= len(bodies):
                    return
                body = bodies[index[0]]
                index[0] += 1
            status = client.post(path, body)
            if status != 200:
                raise RuntimeError(f"{path} answered {status}")
            sent[n] += weight

    elapsed = run_threads(clients, work)
    return sum(sent) / elapsed


def bench_batches(port: int, key: str, clients: int, seconds: float, max_batches: int) -> float:
    rng = random.Random(1)
    bodies = [
        json.dumps(
            {"batch": [_track(rng, f"lead-{rng.randrange(20_000)}") for _ in range(500)]}
        ).encode()
        for _ in range(max_batches)
    ]
    return _post_all(port, key, clients, seconds, "/v1/batch", bodies, 500)


def bench_singles(port: int, key: str, clients: int, seconds: float, max_requests: int) -> float:
    rng = random.Random(2)
    bodies = [
        json.dumps(_track(rng, f"single-{rng.randrange(5_000)}")).encode()
        for _ in range(max_requests)
    ]
    return _post_all(port, key, clients, seconds, "/v1/track", bodies, 1)


def bench_latency(port: int, ingest_key: str, read_key: str, samples: int) -> list[float]:
    """Send → readable, while background writers keep the server busy."""
    rng = random.Random(3)
    stop = threading.Event()

    def background(n: int) -> None:
        client = Client(port, ingest_key)
        while not stop.is_set():
            client.post("/v1/track", json.dumps(_track(rng, f"bg-{rng.randrange(5000)}")).encode())

    load = [threading.Thread(target=background, args=(n,)) for n in range(2)]
    for thread in load:
        thread.start()
    writer, reader = Client(port, ingest_key), Client(port, read_key)
    times = []
    try:
        for i in range(samples):
            lead = f"lat-{i}-{uuid.uuid4().hex[:6]}"
            body = json.dumps({**_track(rng, lead), "timestamp": None}).encode()
            start = time.perf_counter()
            writer.post("/v1/track", body)
            while True:
                status, payload = reader.get(f"/v1/leads/{lead}")
                if status == 200 and json.loads(payload)["event_count"] == 1:
                    break
            times.append((time.perf_counter() - start) * 1000)
    finally:
        stop.set()
        for thread in load:
            thread.join()
    return times


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def start_server(
    url: str, port: int, options: Sequence[str] = (), repo: Path = REPO
) -> subprocess.Popen[bytes]:
    """``pyrometer serve`` of the checkout ``repo`` on 127.0.0.1:``port`` with ``options``,
    once it answers ``/health``."""
    env = {**os.environ, "PYTHONPATH": str(repo), "PYROMETER_DATABASE_URL": url}
    command = [sys.executable, "-m", "pyrometer.cli.app", "serve", "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--port", str(port), *options],
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not start")


def bench_store(name: str, url: str, args: argparse.Namespace) -> dict[str, float]:
    service = Service.open(url)
    ingest_key = create_key(service, Scope.INGEST, "bench")
    read_key = create_key(service, Scope.READ, "bench")
    service.close()
    port = free_port()
    server = start_server(url, port, ["--workers", str(args.workers)])
    try:
        batch_rate = bench_batches(port, ingest_key, args.clients, args.seconds, args.max_batches)
        single_rate = bench_singles(
            port, ingest_key, args.single_clients, args.seconds, args.max_requests
        )
        latencies = bench_latency(port, ingest_key, read_key, args.samples)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    result = {
        "batch_events_per_s": batch_rate,
        "single_requests_per_s": single_rate,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
    }
    print(
        f"{name:9s} batches of 500: {batch_rate:9,.0f} events/s   single events: "
        f"{single_rate:7,.0f} requests/s   send→readable p50 {result['p50_ms']:.1f} ms, "
        f"p99 {result['p99_ms']:.1f} ms",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--seconds", type=float, default=8.0, help="Per throughput phase.")
    parser.add_argument("--clients", type=int, default=4, help="Concurrent batch clients.")
    parser.add_argument("--max-batches", type=int, default=400)
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=400, help="Latency samples.")
    parser.add_argument("--workers", type=int, default=1, help="Server processes.")
    parser.add_argument(
        "--single-clients", type=int, default=16, help="Concurrent single-event clients."
    )
    args = parser.parse_args()
    print(
        f"pyrometer service bench: {os.cpu_count()} cores, {args.clients} batch clients, "
        f"{args.single_clients} single-event clients, {args.seconds:.0f} s per phase, "
        f"{args.workers} server process(es)",
        flush=True,
    )
    for store in args.stores.split(","):
        with fresh_store(store) as url:
            bench_store(LABELS.get(store, store), url, args)


if __name__ == "__main__":
    main()
