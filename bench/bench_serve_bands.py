"""Whole process: `pyrometer serve --demo`, batches of 500 track events over HTTP, the
points playbook (model active, no bands) against the same with temperature.probability
bands, then points again. Extra arguments go to `serve` (e.g. --scoring-processes 0).

    python bench/bench_serve_bands.py [--scoring-processes N]
"""

import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

from pyrometer.core.playbook import default_playbook_text

port = 8941
folder = tempfile.mkdtemp()
proc = subprocess.Popen(
    ["pyrometer", "serve", "--demo", "--port", str(port), *sys.argv[1:]],
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
    cwd=folder,
    # A fresh demo each run: its store is kept in the data folder, and a restart serves
    # the same leads (with every event earlier runs added).
    env={**os.environ, "XDG_DATA_HOME": folder},
)
admin = ingest = None
started = time.perf_counter()
for line in proc.stdout:
    if line.startswith("admin key:"):
        admin = line.split()[-1]
    if line.startswith("ingest key:"):
        ingest = line.split()[-1]
    if line.startswith("Pyrometer on"):
        break
c = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
for _ in range(100):
    try:
        if c.get("/").status_code < 500:
            break
    except httpx.HTTPError:
        time.sleep(0.1)
print(f"serving after {time.perf_counter() - started:.1f} s")
resp = c.get("/v1/leads?limit=200", headers={"Authorization": f"Bearer {admin}"})
assert resp.status_code == 200, resp.text
leads = [r["lead_id"] for r in resp.json()["items"]]
rng = random.Random(1)
n = 0


def run(label, batches=40):
    global n
    rates = []
    for b in range(batches):
        items = []
        for _ in range(500):
            n += 1
            items.append(
                {
                    "type": "track",
                    "event": rng.choice(["Page View", "Email Open", "Webinar Attended"]),
                    "userId": rng.choice(leads),
                    "messageId": f"w-{n}",
                }
            )
        t = time.perf_counter()
        r = c.post(
            "/v1/batch", json={"batch": items}, headers={"Authorization": f"Bearer {ingest}"}
        )
        assert r.status_code < 300, r.text
        if b >= 5:
            rates.append(500 / (time.perf_counter() - t))
    print(f"{label}: median {statistics.median(rates):,.0f} events/s over {len(rates)} batches")
    return statistics.median(rates)


text = default_playbook_text()
banded = text.replace(
    "  hot: 50\n  warm: 20\n", "  hot: 50\n  warm: 20\n  probability: {hot: 0.3, warm: 0.1}\n", 1
)


def publish(yaml: str) -> None:
    """Publish and wait for its rescore of every lead to finish (with bands it computes
    every lead's probability), then 2 s for the background sweep: a phase timed while
    that job still ran measured the job, not ingest."""
    auth = {"Authorization": f"Bearer {admin}"}
    started = time.perf_counter()
    job = c.post("/v1/playbook", json={"yaml": yaml}, headers=auth).json()["job"]
    while job and job["status"] not in ("done", "failed"):
        time.sleep(0.1)
        job = c.get(f"/v1/jobs/{job['id']}", headers=auth).json()
    print(
        f"publish: rescore job {job and job['status']} after {time.perf_counter() - started:.1f} s"
    )
    time.sleep(2)


a = run("points (model active, no bands)")
publish(banded)
b = run("probability bands (model active)")
publish(text)
a2 = run("points again")
print(f"bands / points: {b / statistics.mean([a, a2]):.2f}x")
proc.terminate()
proc.wait()
