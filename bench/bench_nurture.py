"""Nurture: how fast due steps run, and what enrolment and the runner cost ingest.

In one process, on fresh stores (SQLite, or PostgreSQL with ``--stores postgres``):

1. enrolment's cost to ingest: batches of 500 ``whitepaper_download`` events from new
   leads into a store with the default playbook (each event enrols its lead in the
   ``educational`` sequence, in the ingest transaction) against the same batches into a
   store whose playbook has no sequences (the reference), alternating which goes first,
   the median of each;
2. the runner, unpaced: the first e-mail of every enrolled lead (``--leads`` of them) is
   due; steps per second to the dry-run sink (``PYROMETER_NURTURE_DRY_RUN``: each e-mail
   written to a folder as an ``.eml`` file);
3. the second e-mail of every lead comes due three days on: steps per second of ``--smtp``
   of them to a real SMTP server (aiosmtpd, in a process of its own, over one kept
   connection);
4. ingest of ``page_view`` batches (twice ``--leads`` events) while the background runner
   works through the rest (paced to ``--share`` of the time while events arrive, as
   ``PYROMETER_NURTURE_SHARE`` does in the server; to a mailer that takes each message at
   once, as a remote server costs this machine nothing), against ingest with the runner
   stopped, alternating phases of 4,000 events: events/s over all busy phases against all
   idle ones (and the medians of the phases).

Usage:

    python bench/bench_nurture.py [--leads 100000] [--smtp 20000] [--share 0.1]
                                  [--stores sqlite,postgres] [--enrolment-only]

``--enrolment-only`` runs step 1 alone (the others need its enrolments), e.g. several
times in a row to take the median of its ratios on a busy machine.

All of it runs with the garbage collector as a serving process has it
(:func:`pyrometer.service.collector.tuned_for_serving`), both sides of each ratio alike.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from stores import LABELS, fresh_store  # noqa: E402

from pyrometer.core.playbook import default_playbook_text  # noqa: E402
from pyrometer.core.timeutil import to_us  # noqa: E402
from pyrometer.service.collector import tuned_for_serving  # noqa: E402
from pyrometer.service.ingest import ingest  # noqa: E402
from pyrometer.service.inputs import Track  # noqa: E402
from pyrometer.service.nurture import (  # noqa: E402
    FolderMailer,
    NurtureSettings,
    Runner,
    SmtpMailer,
)
from pyrometer.service.runtime import Service  # noqa: E402

BATCH = 500
DAY = 86_400_000_000
SMTP_PORT = 8026


class Clock:
    """Real time from a working morning (no quiet hours), movable by days."""

    def __init__(self) -> None:
        self.base = to_us("2026-11-23T09:00:00Z")
        self.t0 = time.monotonic()

    def __call__(self) -> int:
        return self.base + int((time.monotonic() - self.t0) * 1e6)


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


class TakesAll:
    def send(self, message: Any, to: str) -> str:
        return "sent"


def without_sequences() -> str:
    book = yaml.safe_load(default_playbook_text())
    book["nurture"]["sequences"] = []
    return yaml.safe_dump(book, sort_keys=False, allow_unicode=True)


def smtp_server() -> subprocess.Popen[bytes]:
    """aiosmtpd in a process of its own (as a real server is), taking every message."""
    code = (
        "import time\n"
        "from aiosmtpd.controller import Controller\n"
        "class Sink:\n"
        "    async def handle_DATA(self, server, session, envelope):\n"
        "        return '250 OK'\n"
        f"c = Controller(Sink(), hostname='127.0.0.1', port={SMTP_PORT}, "
        "server_hostname='bench')\n"
        "c.start()\n"
        "print('ready', flush=True)\n"
        "time.sleep(10**6)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()
    return proc


def run(store: str, leads: int, smtp: int, share: float, enrolment_only: bool = False) -> None:
    label = LABELS.get(store, store)
    clock = Clock()
    with fresh_store(store, "nurture") as url, fresh_store(store, "plain") as plain_url:
        service = Service.open(url, clock)
        reference = Service.open(plain_url, clock)
        serving = contextlib.ExitStack()
        serving.enter_context(tuned_for_serving())  # as the server has it, from here on
        text = without_sequences()
        reference.write(lambda conn: reference.playbooks.publish(conn, text, clock()))
        ids = [f"lead{i}@example.com" for i in range(leads)]
        enrol, plain = batches("whitepaper_download", ids), batches("whitepaper_download", ids)
        enrol_rates, plain_rates, ratios = [], [], []
        for k in range(0, len(enrol), 2):  # pairs of two batches, which goes first alternating
            pair = [(service, enrol, enrol_rates), (reference, plain, plain_rates)]
            for target, groups, rates in pair if (k // 2) % 2 else pair[::-1]:
                rates.append(ingest_rate(target, groups[k : k + 2]))
            ratios.append(enrol_rates[-1] / plain_rates[-1])
        reference.close()
        e, p = statistics.median(enrol_rates), statistics.median(plain_rates)
        print(
            f"[{label}] 1. ingest enrolling every lead: {e:,.0f} events/s; the same events "
            f"without sequences: {p:,.0f} events/s (medians); ratio {e / p:.2f}, median of "
            f"{len(ratios)} side-by-side pairs {statistics.median(ratios):.2f} (load {load()})"
        )
        if enrolment_only:
            service.close()
            serving.close()
            return
        with tempfile.TemporaryDirectory() as folder:
            dry = Runner(service, NurtureSettings(mailer=FolderMailer(folder)))
            start = time.perf_counter()
            done = dry.run_due()
            took = time.perf_counter() - start
            files = len(os.listdir(folder))
        print(
            f"  2. runner, first e-mail of {done:,} leads to the dry-run folder: "
            f"{done / took:,.0f} steps/s ({took:.1f} s, {files:,} .eml files; load {load()})"
        )
        # The second e-mail of every lead comes due three days on.
        clock.base += 3 * DAY + 3_600_000_000
        server = smtp_server()
        try:
            mailer = SmtpMailer(f"smtp://127.0.0.1:{SMTP_PORT}")
            real = Runner(service, NurtureSettings(mailer=mailer))
            start = time.perf_counter()
            sent = real.run_due(limit=smtp)
            took = time.perf_counter() - start
            print(
                f"  3. runner over SMTP (aiosmtpd in its own process, one connection kept "
                f"open): {sent:,} second e-mails, {sent / took:,.0f} steps/s ({took:.1f} s; "
                f"load {load()})"
            )
            mailer.close()
            background(service, real, leads, share)
        finally:
            server.terminate()
            server.wait()
        service.close()
        serving.close()


def background(service: Service, runner: Runner, leads: int, share: float) -> None:
    """Phase 4: ingest beside the paced runner against ingest alone."""
    # A mailer that takes each message at once: a real SMTP server is elsewhere and costs
    # this machine nothing (aiosmtpd here would take CPU from ingest on two cores).
    runner.settings = NurtureSettings(mailer=TakesAll(), share=share)
    more_plain = batches("page_view", [f"late{i}@example.com" for i in range(2 * leads)])
    stop, go, working = threading.Event(), threading.Event(), threading.Event()
    ran = [0]

    def rest(seconds: float) -> bool:
        working.clear()
        done = stop.wait(seconds) or not go.is_set()
        if not done:
            working.set()
        return done

    def work() -> None:
        """The background runner's loop (paced to its share while events arrive), working
        while ``go`` is set: one thread for the whole phase, as in the server, so every
        busy phase sees it in its steady state, rests included."""
        while not stop.is_set():
            if go.wait(0.05):
                working.set()
                ran[0] += runner.run_due(rest=rest)
                working.clear()
                stop.wait(0.05)

    thread = threading.Thread(target=work)
    thread.start()
    busy, idle = [], []
    totals = {"busy": [0, 0.0], "idle": [0, 0.0]}  # events, seconds
    span = max(1, min(8, len(more_plain) // 4))  # batches of 500 per phase
    for k in range(0, len(more_plain) - 2 * span + 1, 2 * span):
        first, second = more_plain[k : k + span], more_plain[k + span : k + 2 * span]
        order = ("busy", "idle") if (k // (2 * span)) % 2 == 0 else ("idle", "busy")
        for phase, groups in zip(order, (first, second), strict=True):
            if phase == "busy":
                go.set()
            else:
                while working.is_set():  # the runner's batch in hand ends before idle
                    time.sleep(0.01)
            began = time.perf_counter()
            rate = ingest_rate(service, groups)
            totals[phase][0] += sum(len(g) for g in groups)
            totals[phase][1] += time.perf_counter() - began
            go.clear()
            (busy if phase == "busy" else idle).append(rate)
    stop.set()
    thread.join()
    b, i = statistics.median(busy), statistics.median(idle)
    pairs = statistics.median(x / y for x, y in zip(busy, idle, strict=True))
    tb, ti = totals["busy"][0] / totals["busy"][1], totals["idle"][0] / totals["idle"][1]
    print(
        f"  4. ingest while the runner (share {share}, mailer taking each message at once) "
        f"ran {ran[0]:,} due steps in {totals['busy'][1]:.1f} s "
        f"({ran[0] / totals['busy'][1]:,.0f} steps/s): {tb:,.0f} events/s; runner stopped: "
        f"{ti:,.0f} events/s; ratio {tb / ti:.2f} over all {len(busy)} phase pairs "
        f"(medians {b:,.0f} and {i:,.0f}: {b / i:.2f}; median of pair ratios {pairs:.2f}; "
        f"load {load()})"
    )


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--smtp", type=int, default=20_000)
    parser.add_argument("--share", type=float, default=NurtureSettings(mailer=None).share)
    parser.add_argument("--stores", default="sqlite")
    parser.add_argument("--enrolment-only", action="store_true", help="step 1 alone")
    args = parser.parse_args()
    for store in args.stores.split(","):
        run(store, args.leads, args.smtp, args.share, args.enrolment_only)


if __name__ == "__main__":
    main()
