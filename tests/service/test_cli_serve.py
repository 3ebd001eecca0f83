"""The README's path: ``pyrometer serve --demo`` answers with live demo leads, and a key
from ``pyrometer keys create`` (its last output line) works against it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from pyrometer.cli.app import app
from service.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


def test_serve_demo_and_keys_create(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYROMETER_DATABASE_URL": url}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pyrometer.cli.app",
            "serve",
            "--demo",
            "--demo-leads",
            "20",
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline() for _ in range(3)]
        admin = next(line.split()[-1] for line in lines if line.startswith("admin key:"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        leads = httpx.get(
            f"http://127.0.0.1:{port}/v1/leads",
            params={"limit": 100},
            headers={"Authorization": f"Bearer {admin}"},
        ).json()
        assert len(leads["items"]) == 20
        assert {"lead_id", "score", "temperature", "stage"} <= set(leads["items"][0])

        created = CliRunner().invoke(app, ["keys", "create", "--scope", "read", "--database", url])
        assert created.exit_code == 0, created.output
        key = created.output.strip().splitlines()[-1]
        lead_id = leads["items"][0]["lead_id"]
        one = httpx.get(
            f"http://127.0.0.1:{port}/v1/leads/{lead_id}",
            headers={"Authorization": f"Bearer {key}"},
        )
        assert one.status_code == 200 and one.json()["ledger"]
        # The demo's reps answered some of their older hot leads: the report measures them.
        speed = httpx.get(
            f"http://127.0.0.1:{port}/v1/reports/speed-to-lead",
            headers={"Authorization": f"Bearer {admin}"},
        ).json()["overall"]
        assert 1 <= speed["touched"] <= speed["routed"]
        assert speed["median_seconds_to_first_touch"] is not None
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
