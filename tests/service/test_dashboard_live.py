"""What the live queue's stream reads: transitions into and out of hot, by id, from the
store (so it sees every process's writes), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from pyrometer.service.decay import run_all_due
from pyrometer.service.ingest import ingest
from pyrometer.service.inputs import Track
from pyrometer.service.runtime import Service
from pyrometer.service.users import demo_user
from pyrometer.store.live import hot_changes_after, last_transition_id
from tests.service.conftest import Clock, free_port

COMMAND = (sys.executable, "-m", "pyrometer.cli.app", "serve")
HOT_EVENTS = ("demo_request", "webinar_attended", "form_submit", "case_study_download")


def test_turning_hot_and_cooling_are_both_read_after_the_last_id(
    service: Service, clock: Clock
) -> None:
    start = service.read(last_transition_id)
    warm = [Track("w-1", "demo_request", clock.now_us, user_id="warm")]
    ingest(service, warm, [])  # cold to warm: not the queue's business
    assert service.read(lambda c: hot_changes_after(c, start)) == []
    tracks = [
        Track(f"m-{i}", name, clock.now_us, user_id="ann") for i, name in enumerate(HOT_EVENTS)
    ]
    ingest(service, tracks, [])
    turned = service.read(lambda c: hot_changes_after(c, start))
    assert [lead for _, lead in turned] == ["ann"]
    seen = turned[-1][0]
    assert service.read(last_transition_id) >= seen
    clock.advance(120 * 86_400)  # months without a signal: she cools
    run_all_due(service)
    cooled = service.read(lambda c: hot_changes_after(c, seen))
    assert [lead for _, lead in cooled] == ["ann"]
    assert service.read(lambda c: hot_changes_after(c, cooled[-1][0])) == []


def test_a_stopping_server_ends_open_live_streams_at_once(tmp_path) -> None:
    """Ctrl+C with a queue tab open: the server exits in seconds, not after the stream's
    30-second lifetime (uvicorn waits for open responses)."""

    url = f"sqlite:///{tmp_path / 'store.db'}"
    setup = Service.open(url)
    demo_user(setup, "ann@example.com", "admin", None, "a long password")
    setup.close()
    port = free_port()
    server = subprocess.Popen(
        [*COMMAND, "--port", str(port), "--database", url, "--scoring-processes", "0"],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(base + "/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        client = httpx.Client(base_url=base, timeout=60)
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text)
        assert token is not None
        form = {"csrf": token.group(1), "email": "ann@example.com", "password": "a long password"}
        assert client.post("/sign-in", data=form).status_code in (200, 303)
        opened = threading.Event()
        ended = threading.Event()

        def listen() -> None:
            with client.stream("GET", "/queue/stream") as answer:
                for _ in answer.iter_lines():
                    opened.set()
            ended.set()

        threading.Thread(target=listen, daemon=True).start()
        assert opened.wait(10)
        started = time.monotonic()
        server.send_signal(signal.SIGINT)
        server.wait(timeout=25)
        assert time.monotonic() - started < 10
        assert ended.wait(5)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_a_lead_turned_hot_between_the_page_and_its_stream_is_announced(
    service: Service, clock: Clock, live_url: str
) -> None:
    """The queue page names the transition id it was rendered at; its stream starts after
    it, so a lead that turns hot before the browser opens the stream is not missed."""
    demo_user(service, "ann@example.com", "admin", None, "a long password")
    with httpx.Client(base_url=live_url, timeout=30) as client:
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text)
        assert token is not None
        form = {"csrf": token.group(1), "email": "ann@example.com", "password": "a long password"}
        assert client.post("/sign-in", data=form).status_code in (200, 303)
        page = client.get("/queue").text
        found = re.search(r'data-stream="([^"]+)"', page)
        assert found is not None
        stream = found.group(1).replace("&amp;", "&")
        assert stream == f"/queue/stream?after={service.read(last_transition_id)}"
        tracks = [
            Track(f"late-{i}", name, clock.now_us, user_id="bea")
            for i, name in enumerate(HOT_EVENTS)
        ]
        ingest(service, tracks, [])  # hot now, before the stream opens
        announced: list[str] = []
        with client.stream("GET", stream) as answer:
            for line in answer.iter_lines():
                if line.startswith("data: "):
                    announced += json.loads(line[len("data: ") :])["leads"]
                    break
        assert announced == ["bea"]
