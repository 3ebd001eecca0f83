"""CPU per event of ``pyrometer serve``'s batch ingest, per process: the server process,
its scoring processes, PostgreSQL's own, and this client.

Throughput on a shared 2-core machine moves with whatever else runs; the CPU time each
process spends per event moves much less, so changes are compared by it (same machine,
same moment, A and B one after the other). Drives the server exactly as
``bench_service.py``'s batch phase does (4 clients, batches of 500 events over 20,000
leads, the same bodies), reading user+system time from ``/proc`` (Linux) before and
after. PostgreSQL's share is every ``postgres`` process on the machine. Usage:

    python bench/bench_service_cpu.py sqlite|postgres [--batches 160]
        [--scoring-processes N] [--workers N] [--clients 4] [--label TEXT]

``REPO=/path/to/checkout`` measures another checkout's code with this script.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

REPO = Path(os.environ.get("REPO") or Path(__file__).resolve().parents[1])
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_service as bs  # noqa: E402
from stores import fresh_store  # noqa: E402

from pyrometer.service.keys import Scope, create_key  # noqa: E402
from pyrometer.service.runtime import Service  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def cpu_seconds(pid: int) -> float:
    fields = _stat(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / TICK


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def children(pid: int) -> list[int]:
    return [p for p in _pids() if (fields := _stat(p)) is not None and int(fields[1]) == pid]


def postgres_pids() -> list[int]:
    found = []
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "postgres":
                    found.append(pid)
        except FileNotFoundError:
            continue
    return found


def snapshot(server: int, workers: int) -> dict[str, float]:
    """CPU seconds so far; with ``workers`` > 1 the server processes are uvicorn's
    supervisor and its workers, and the scoring processes are the workers' children."""
    servers = [server] if workers == 1 else [server, *children(server)]
    scoring = [pid for parent in servers for pid in children(parent) if pid not in servers]
    return {
        "server": sum(cpu_seconds(pid) for pid in servers),
        "scoring": sum(cpu_seconds(pid) for pid in scoring),
        "postgres": sum(cpu_seconds(pid) for pid in postgres_pids()),
        "client": sum(os.times()[:2]),
    }


def measure(url: str, args: argparse.Namespace) -> None:
    service = Service.open(url)
    key = create_key(service, Scope.INGEST, "bench")
    service.close()
    port = bs.free_port()
    options = ["--workers", str(args.workers)]
    if args.scoring_processes is not None:
        options += ["--scoring-processes", str(args.scoring_processes)]
    server = bs.start_server(url, port, options, repo=REPO)
    try:
        rng = random.Random(1)  # bench_service.py's batch bodies
        bodies = [
            json.dumps(
                {"batch": [bs._track(rng, f"lead-{rng.randrange(20_000)}") for _ in range(500)]}
            ).encode()
            for _ in range(args.batches)
        ]
        before = snapshot(server.pid, args.workers)
        start = time.perf_counter()
        rate = bs._post_all(port, key, args.clients, 1e9, "/v1/batch", bodies, 500)
        after = snapshot(server.pid, args.workers)
        wall = time.perf_counter() - start
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    events = args.batches * 500
    us = {name: (after[name] - before[name]) / events * 1e6 for name in before}
    total = us["server"] + us["scoring"] + us["postgres"]
    print(
        f"{args.label:10s} {args.store:8s} CPU µs/event: server {us['server']:5.1f}  "
        f"scoring {us['scoring']:5.1f}  postgres {us['postgres']:5.1f}  = {total:5.1f}  "
        f"(client {us['client']:.1f})   {rate:,.0f} events/s in {wall:.1f} s, "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", choices=["sqlite", "postgres"])
    parser.add_argument("--batches", type=int, default=160)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--scoring-processes", type=int, default=None)
    parser.add_argument("--workers", type=int, default=1, help="Server processes.")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    with fresh_store(args.store) as url:
        measure(url, args)


if __name__ == "__main__":
    main()
