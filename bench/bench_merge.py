"""Time of one merge into a lead with a long history: an ``identify`` that folds an
anonymous visitor (a few events) into a lead with 50,000 events, on a fresh SQLite file
(and, with ``--stores sqlite postgres``, a fresh PostgreSQL schema).

The figure is the wall time of the whole ``ingest`` call (its one write transaction,
under the store's write lock), median of ``--repeat`` merges, each into the same big lead
with a new visitor. Meanwhile a thread stores single events of other leads, one after
the other, and their latencies while the merges run are reported too (p50, p99: what a
merge makes other writers wait). Usage:

    python bench/bench_merge.py [--events 50000] [--repeat 5] [--stores sqlite postgres]

``REPO=/path/to/checkout`` measures another checkout's code with this script (the API
it uses, ``ingest(service, tracks, identifies)``, is the same before and after).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(os.environ.get("REPO") or Path(__file__).resolve().parents[1])
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from stores import fresh_store  # noqa: E402

from pyrometer.service.ingest import ingest  # noqa: E402
from pyrometer.service.inputs import Identify, Track  # noqa: E402
from pyrometer.service.runtime import Service  # noqa: E402

NAMES = ("pricing_page_view", "case_study_download", "webinar_attended", "email_click")
DAY_US = 86_400 * 1_000_000


def _history(service: Service, lead: str, count: int, end_us: int) -> None:
    """``count`` events of ``lead`` over the year before ``end_us``, in batches."""
    step = 365 * DAY_US // count
    tracks = [
        Track(f"{lead}-{n}", NAMES[n % len(NAMES)], end_us - (count - n) * step, user_id=lead)
        for n in range(count)
    ]
    for start in range(0, count, 2000):
        ingest(service, tracks[start : start + 2000], [])


def _merge_once(service: Service, lead: str, now_us: int) -> float:
    visitor = f"visitor-{uuid.uuid4().hex[:8]}"
    visits = [
        Track(f"{visitor}-{n}", "pricing_page_view", now_us - n * 10**6, anonymous_id=visitor)
        for n in range(3)
    ]
    ingest(service, visits, [])
    link = Identify(f"id-{visitor}", lead, now_us, anonymous_id=visitor)
    started = time.perf_counter()
    ingest(service, [], [link])
    return time.perf_counter() - started


def run(url: str, events: int, repeat: int) -> tuple[list[float], list[float]]:
    """Merge times, and the latencies of other leads' single events meanwhile."""
    now_us = int(time.time() * 1_000_000)
    service = Service.open(url, lambda: now_us)
    latencies: list[float] = []
    stop = threading.Event()

    def others() -> None:
        n = 0
        while not stop.is_set():
            track = Track(f"other-{n}", "email_click", now_us - n, user_id=f"other-{n % 500}")
            started = time.perf_counter()
            ingest(service, [track], [])
            latencies.append(time.perf_counter() - started)
            n += 1
            time.sleep(0.002)

    try:
        _history(service, "big", events, now_us - DAY_US)
        writer = threading.Thread(target=others, daemon=True)
        writer.start()
        time.sleep(0.5)
        latencies.clear()  # only those while merges run
        times = [_merge_once(service, "big", now_us) for _ in range(repeat)]
        stop.set()
        writer.join()
        return times, latencies
    finally:
        service.close()


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--stores", nargs="+", default=["sqlite"], choices=["sqlite", "postgres"])
    args = parser.parse_args()
    print(f"merge of a 3-event visitor into a lead with {args.events:,} events ({REPO})")
    for store in args.stores:
        with fresh_store(store, "merge") as url:
            times, others = run(url, args.events, args.repeat)
        ms = [t * 1000 for t in times]
        print(
            f"{store:10} median {statistics.median(ms):8.1f} ms   "
            f"min {min(ms):8.1f} ms   max {max(ms):8.1f} ms   ({len(ms)} merges); "
            f"other leads' events meanwhile p50 {_p(others, 0.5):.1f} ms, "
            f"p99 {_p(others, 0.99):.1f} ms ({len(others)})"
        )


if __name__ == "__main__":
    main()
