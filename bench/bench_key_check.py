"""What checking a request's API key costs the server process, per request.

Keys are looked up in the store on every request (so a revocation counts at once, in
every process): this times :meth:`KeyChecker.scope_of_async`, as the auth dependency
calls it on the event loop (uvloop when installed, as ``serve`` runs), on a fresh SQLite
file and a fresh PostgreSQL schema. Wall time includes PostgreSQL's round trip; CPU is
this process's only. Usage:

    python bench/bench_key_check.py [--checks 5000] [--stores sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from stores import fresh_store

from pyrometer.service.keys import KeyChecker, Scope, create_key
from pyrometer.service.runtime import Service


def measure(url: str, checks: int) -> tuple[float, float]:
    """(wall µs, CPU µs) per key check."""
    service = Service.open(url)
    key = create_key(service, Scope.INGEST, "bench")
    checker = KeyChecker(service)

    async def run() -> tuple[float, float]:
        assert await checker.scope_of_async(key) == "ingest"
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(checks):
            await checker.scope_of_async(key)
        return (
            (time.perf_counter() - wall) / checks * 1e6,
            (time.process_time() - cpu) / checks * 1e6,
        )

    try:
        try:
            import uvloop

            return uvloop.run(run())
        except ImportError:
            return asyncio.run(run())
    finally:
        checker.close()
        service.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=5000)
    parser.add_argument("--stores", default="sqlite,postgres")
    args = parser.parse_args()
    for store in args.stores.split(","):
        with fresh_store(store, "keys") as url:
            wall, cpu = measure(url, args.checks)
        label = "SQLite" if store == "sqlite" else "PostgreSQL"
        print(f"{label:10s}  key check per request: {wall:6.1f} µs wall, {cpu:5.1f} µs CPU")


if __name__ == "__main__":
    main()
