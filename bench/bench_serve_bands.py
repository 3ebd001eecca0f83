"""Whole process: two `pyrometer serve --demo` side by side, each with its own fresh demo
(same seed, same leads, the model trained and active), one on the points playbook and one
with ``temperature.probability`` bands published. Batches of 500 track events over HTTP
go to the two in turn, one by one, each timed alone, so a slow spell of the machine falls
on both alike (phases of seconds each, one server after another, moved the figure from
0.69x to 1.22x between rounds of one run).

Printed per server: the median events per second of its batches, and its CPU seconds
per thousand events over the whole measured stretch (the server and its scoring
processes, from /proc, background work such as the points server's sweep of
probabilities included: it counts the work, whatever else the machine is doing).
With ``--clients K`` each turn is K batches sent at once by K clients (a server under
load: both cores busy), timed together. Extra arguments go to both `serve` commands
(e.g. ``--scoring-processes 0``).

    python bench/bench_serve_bands.py [--batches N] [--clients K] [--scoring-processes N]
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from pyrometer.core.playbook import default_playbook_text

BANDED = default_playbook_text().replace(
    "  hot: 50\n  warm: 20\n", "  hot: 50\n  warm: 20\n  probability: {hot: 0.3, warm: 0.1}\n", 1
)
assert default_playbook_text() != BANDED


@dataclass
class Server:
    """One `serve --demo` in a data folder of its own (the demo keeps its store there: a
    restart in the same folder would serve the same leads with every event added)."""

    label: str
    port: int
    args: list[str]
    proc: subprocess.Popen[str] = field(init=False)
    admin: str = ""
    ingest: str = ""
    leads: list[str] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    cpu_at_start: float = 0.0
    sent: int = 0

    def start(self) -> None:
        folder = tempfile.mkdtemp()
        self.proc = subprocess.Popen(
            ["pyrometer", "serve", "--demo", "--port", str(self.port), *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=folder,
            env={**os.environ, "XDG_DATA_HOME": folder},
        )

    def wait_ready(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("admin key:"):
                self.admin = line.split()[-1]
            if line.startswith("ingest key:"):
                self.ingest = line.split()[-1]
            if line.startswith("Pyrometer on"):
                break
        # Its output is not read from now on: drain it so that a full pipe never
        # blocks the server.
        subprocess.Popen(["cat"], stdin=self.proc.stdout, stdout=subprocess.DEVNULL)
        for _ in range(100):
            try:
                if self.client.get("/").status_code < 500:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        leads: list[str] = []
        cursor = ""
        while True:
            resp = self.client.get(f"/v1/leads?limit=200{cursor}", headers=self.auth(self.admin))
            assert resp.status_code == 200, resp.text
            page = resp.json()
            leads += [r["lead_id"] for r in page["items"]]
            if not page.get("next_cursor"):
                break
            cursor = f"&cursor={page['next_cursor']}"
        self.leads = sorted(leads)

    @property
    def client(self) -> httpx.Client:
        if not hasattr(self, "_client"):
            self._client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)
        return self._client

    @staticmethod
    def auth(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def publish(self, yaml: str) -> None:
        """Publish and wait for its rescore of every lead (with bands, every lead's
        probability) to finish, then 2 s for the background sweep."""
        started = time.perf_counter()
        job = self.client.post(
            "/v1/playbook", json={"yaml": yaml}, headers=self.auth(self.admin)
        ).json()["job"]
        while job and job["status"] not in ("done", "failed"):
            time.sleep(0.1)
            job = self.client.get(f"/v1/jobs/{job['id']}", headers=self.auth(self.admin)).json()
        print(
            f"{self.label}: published, rescore job {job and job['status']} after "
            f"{time.perf_counter() - started:.1f} s"
        )
        time.sleep(2)

    def send(self, batches: list[list[dict[str, str]]], timed: bool) -> None:
        """The batches at once, one client each; their events per second together."""

        def post(items: list[dict[str, str]]) -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60) as client:
                resp = client.post(
                    "/v1/batch", json={"batch": items}, headers=self.auth(self.ingest)
                )
            assert resp.status_code < 300, resp.text

        started = time.perf_counter()
        if len(batches) == 1:
            resp = self.client.post(
                "/v1/batch", json={"batch": batches[0]}, headers=self.auth(self.ingest)
            )
            assert resp.status_code < 300, resp.text
        else:
            with ThreadPoolExecutor(len(batches)) as pool:
                list(pool.map(post, batches))
        events = sum(len(items) for items in batches)
        if timed:
            self.rates.append(events / (time.perf_counter() - started))
            self.sent += events

    def cpu_seconds(self) -> float:
        """User and system CPU of the server and every process under it, from /proc."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(entry) == self.proc.pid or int(fields[1]) == self.proc.pid:
                total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def batch(rng: random.Random, leads: list[str], prefix: str) -> list[dict[str, str]]:
    return [
        {
            "type": "track",
            "event": rng.choice(["Page View", "Email Open", "Webinar Attended"]),
            "userId": rng.choice(leads),
            "messageId": f"{prefix}-{i}",
        }
        for i in range(500)
    ]


def main() -> None:
    args = sys.argv[1:]
    options = {"--batches": 100, "--clients": 1}
    for name in options:
        if name in args:
            at = args.index(name)
            options[name] = int(args[at + 1])
            del args[at : at + 2]
    batches, clients = options["--batches"], options["--clients"]
    points = Server("points (model active, no bands)", 8941, args)
    bands = Server("probability bands (model active)", 8942, args)
    started = time.perf_counter()
    for server in (points, bands):
        server.start()
    try:
        for server in (points, bands):
            server.wait_ready()
        print(f"both serving after {time.perf_counter() - started:.1f} s")
        assert points.leads == bands.leads, "the two demos should hold the same leads"
        bands.publish(BANDED)
        rng = random.Random(1)
        warm_up = batches // 5
        for step in range(warm_up + batches):
            if step == warm_up:
                for server in (points, bands):
                    server.cpu_at_start = server.cpu_seconds()
            # Each server gets the same batch, in alternating order.
            turn = [batch(rng, points.leads, f"w-{step}-{k}") for k in range(clients)]
            pair = (points, bands) if step % 2 == 0 else (bands, points)
            for server in pair:
                server.send(turn, timed=step >= warm_up)
        time.sleep(1)  # what each started in the background (a sweep) is counted too
        per_thousand = {}
        for server in (points, bands):
            per_thousand[server.label] = (server.cpu_seconds() - server.cpu_at_start) / (
                server.sent / 1000
            )
            print(
                f"{server.label}: median {statistics.median(server.rates):,.0f} events/s over "
                f"{len(server.rates)} turns of {clients} batch(es), "
                f"{per_thousand[server.label] * 1000:.0f} ms CPU per 1,000 events"
            )
        speed = statistics.median(bands.rates) / statistics.median(points.rates)
        work = per_thousand[points.label] / per_thousand[bands.label]
        print(f"bands / points: {speed:.2f}x events per second, {work:.2f}x per CPU second")
    finally:
        for server in (points, bands):
            server.stop()


if __name__ == "__main__":
    main()
