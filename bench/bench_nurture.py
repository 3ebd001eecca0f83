"""Nurture: how fast due steps run, and what enrolment and the runner cost ingest.

In one process, on a fresh store (SQLite, or PostgreSQL with ``--stores postgres``):

1. ingest rate of batches of 500 ``whitepaper_download`` events from new leads (each
   enrols the lead in the default playbook's ``educational`` sequence, in the ingest
   transaction), against the reference: the same batches of ``page_view`` events (no
   sequence cares), alternating, the median of each;
2. the runner: every enrolled lead's first step (an e-mail) is due; steps per second to a
   mailer that takes each message at once (what the runner costs: plan, render, record),
   and to a real SMTP server (aiosmtpd in this process) for ``--smtp`` of them;
3. ingest of ``page_view`` batches while the runner works through the second e-mail of
   every lead (due three days later) as the background runner does (paced to
   ``NurtureSettings.share`` of the time), against ingest with the runner stopped,
   alternating phases, the median of each.

Usage:

    python bench/bench_nurture.py [--leads 100000] [--smtp 1000] [--stores sqlite,postgres]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from stores import LABELS, fresh_store  # noqa: E402

from pyrometer.core.timeutil import to_us  # noqa: E402
from pyrometer.service.ingest import ingest  # noqa: E402
from pyrometer.service.inputs import Track  # noqa: E402
from pyrometer.service.nurture import NurtureSettings, Runner, SmtpMailer  # noqa: E402
from pyrometer.service.runtime import Service  # noqa: E402

BATCH = 500
DAY = 86_400_000_000


class Clock:
    """Real time from a working morning (no quiet hours), movable by days."""

    def __init__(self) -> None:
        self.base = to_us("2026-11-23T09:00:00Z")
        self.t0 = time.monotonic()

    def __call__(self) -> int:
        return self.base + int((time.monotonic() - self.t0) * 1e6)


class TakesAll:
    def send(self, message: Any, to: str) -> str:
        return "sent"


_seq = 0


def batches(name: str, leads: list[str]) -> list[list[Track]]:
    global _seq
    out = []
    for i in range(0, len(leads), BATCH):
        chunk = []
        for lead in leads[i : i + BATCH]:
            _seq += 1
            chunk.append(Track(f"b{_seq}", name, 0, lead))
        out.append(chunk)
    return out


def ingest_rate(service: Service, groups: list[list[Track]]) -> float:
    now = service.clock()
    start = time.perf_counter()
    n = 0
    for group in groups:
        ingest(service, [t._replace(ts_us=now) for t in group], [])
        n += len(group)
    return n / (time.perf_counter() - start)


def run(store: str, leads: int, smtp: int) -> None:
    clock = Clock()
    with fresh_store(store) as url:
        service = Service.open(url, clock)
        ids = [f"lead{i}@example.com" for i in range(leads)]
        others = [f"visitor{i}@example.com" for i in range(leads)]
        enrol, plain = batches("whitepaper_download", ids), batches("page_view", others)
        enrol_rates, plain_rates = [], []
        for k in range(0, len(enrol), 4):  # alternating slices of ten batches
            enrol_rates.append(ingest_rate(service, enrol[k : k + 4]))
            plain_rates.append(ingest_rate(service, plain[k : k + 4]))
        e, p = statistics.median(enrol_rates), statistics.median(plain_rates)
        print(
            f"[{LABELS.get(store, store)}] ingest, enrolling each lead: {e:,.0f} events/s; "
            f"reference (no sequence): {p:,.0f} events/s; ratio {e / p:.2f}"
        )
        settings = NurtureSettings(mailer=TakesAll(), public_url="http://127.0.0.1:8000")
        runner = Runner(service, settings)
        start = time.perf_counter()
        done = runner.run_due()
        took = time.perf_counter() - start
        print(
            f"  runner, first e-mail of {done:,} leads: {done / took:,.0f} steps/s ({took:.1f} s)"
        )
        if smtp:
            from aiosmtpd.controller import Controller

            class Sink:
                count = 0

                async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                    Sink.count += 1
                    return "250 OK"

            controller = Controller(Sink(), hostname="127.0.0.1", port=8026)
            controller.start()
            try:
                more = [f"smtp{i}@example.com" for i in range(smtp)]
                ingest_rate(service, batches("whitepaper_download", more))
                real = Runner(service, NurtureSettings(mailer=SmtpMailer("smtp://127.0.0.1:8026")))
                start = time.perf_counter()
                sent = real.run_due()
                took = time.perf_counter() - start
                print(
                    f"  runner over SMTP (aiosmtpd in this process, one connection kept open): "
                    f"{sent / took:,.0f} steps/s ({Sink.count} received)"
                )
            finally:
                controller.stop()
        # The second e-mail of every lead comes due three days on.
        clock.base += 3 * DAY + 3_600_000_000
        more_plain = batches("page_view", [f"late{i}@example.com" for i in range(leads)])
        stop, go = threading.Event(), threading.Event()
        ran = [0]
        busy_seconds = [0.0]

        def work() -> None:
            """The background runner's loop (paced to its share), working while ``go`` is
            set: one thread for the whole phase, as in the server, so every busy phase
            sees it in its steady state, rests included."""
            while not stop.is_set():
                if go.wait(0.05):
                    ran[0] += runner.run_due(rest=lambda s: stop.wait(s) or not go.is_set())
                    stop.wait(0.05)

        thread = threading.Thread(target=work)
        thread.start()
        busy, idle = [], []
        span = max(1, min(8, len(more_plain) // 4))  # batches of 500 per phase
        for k in range(0, len(more_plain) - 2 * span + 1, 2 * span):
            go.set()
            began = time.perf_counter()
            busy.append(ingest_rate(service, more_plain[k : k + span]))
            busy_seconds[0] += time.perf_counter() - began
            go.clear()
            idle.append(ingest_rate(service, more_plain[k + span : k + 2 * span]))
        stop.set()
        thread.join()
        b, i = statistics.median(busy), statistics.median(idle)
        print(
            f"  ingest while the runner (share {runner.settings.share}) ran {ran[0]:,} due "
            f"steps in {busy_seconds[0]:.1f} s ({ran[0] / busy_seconds[0]:,.0f} steps/s): "
            f"{b:,.0f} events/s; runner stopped: {i:,.0f} events/s; ratio {b / i:.2f}"
        )
        service.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--smtp", type=int, default=1000)
    parser.add_argument("--stores", default="sqlite")
    args = parser.parse_args()
    for store in args.stores.split(","):
        run(store, args.leads, args.smtp)


if __name__ == "__main__":
    main()
