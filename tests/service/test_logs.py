"""Logs: no body, trait or property in any log line (a 500 included), a request id in
every answer, error body and log line, and ``serve --log-format json`` lines that parse."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from pyrometer.api.logs import JsonFormatter, TextFormatter, configure_logging
from pyrometer.api.request_context import request_id_from
from pyrometer.cli.app import app as cli
from pyrometer.service import rescore
from pyrometer.service.keys import Scope, create_key
from pyrometer.service.runtime import Service
from pyrometer.store.tables import jobs
from service.conftest import Keys, free_port

REPO = Path(__file__).resolve().parents[2]
EMAIL = "ann.private@secret-corp.example"
PHONE = "+44 7700 900123"
SANE = re.compile(r"[A-Za-z0-9._:=+/-]{1,128}")

# The server, with the store's ingest failing the way a database error does: its message
# holds the statement's parameters, which is the message itself (traits, properties).
FAILING_SERVER = """
import sys

import sqlalchemy as sa

import pyrometer.service.grouping as grouping


def failing_ingest_many(service, groups):
    rows = [
        (track.properties, identify.traits)
        for tracks, identifies in groups
        for track in tracks or [None]
        for identify in identifies or [None]
        for _ in [0]
    ]
    params = [repr(rows), repr(groups)]
    raise sa.exc.IntegrityError("INSERT INTO events VALUES (...)", params, ValueError(repr(groups)))


grouping.ingest_many = failing_ingest_many
from pyrometer.cli.app import app

app(sys.argv[1:], prog_name="pyrometer")
"""


def _messages() -> list[tuple[str, dict[str, object]]]:
    traits = {"email": EMAIL, "phone": PHONE, "Job Title": "VP Sales"}
    properties = {"url": f"https://example.com/?email={EMAIL}", "phone": PHONE}
    return [
        ("/v1/identify", {"userId": "lead-1", "messageId": "i1", "traits": traits}),
        ("/v1/track", {"userId": "lead-1", "event": "Demo Request", "properties": properties}),
        (
            "/v1/batch",
            {
                "batch": [
                    {"type": "identify", "userId": "lead-2", "traits": traits},
                    {"type": "track", "userId": "lead-2", "event": "x", "properties": properties},
                ]
            },
        ),
    ]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_failing_store_logs_no_personal_data_and_answers_with_a_request_id(
    store_url: str, tmp_path: Path, log_format: str
) -> None:
    setup = Service.open(store_url)
    key = create_key(setup, Scope.ADMIN)
    setup.close()
    script = tmp_path / "failing_server.py"
    script.write_text(FAILING_SERVER)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYROMETER_DATABASE_URL": store_url}
    command = [sys.executable, str(script), "serve", "--port", str(port)]
    command += ["--scoring-processes", "0", "--access-log", "--log-format", log_format]
    server = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    answers: list[httpx.Response] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth) as http:
            for path, body in _messages():
                answers.append(http.post(path, json=body))
            # Lead ids and searches are often e-mail addresses: not logged either.
            answers.append(http.get(f"/v1/leads/{EMAIL}"))
            answers.append(http.get("/v1/leads", params={"q": PHONE}))
    finally:
        server.send_signal(signal.SIGTERM)
        stdout, stderr = server.communicate(timeout=30)
    logs = stderr.decode() + stdout.decode()

    assert [answer.status_code for answer in answers] == [500, 500, 500, 404, 200]
    for answer in answers[:-1]:  # the errors; the search's 200 logs nothing
        request_id = answer.headers["x-request-id"]
        assert answer.json()["request_id"] == request_id
        assert request_id in logs  # the caller's id leads to the log lines
    assert answers[-1].headers["x-request-id"]
    assert answers[0].json()["detail"] == "internal server error"
    assert "IntegrityError" in logs  # what failed is said, by its type
    for secret in (EMAIL, PHONE, "VP Sales", "secret-corp"):
        assert secret not in logs
    assert "/v1/leads/{lead_id}" in logs

    if log_format == "json":
        lines = [json.loads(line) for line in stderr.decode().splitlines() if line.strip()]
        failed = [line for line in lines if line["level"] == "ERROR"]
        assert len(failed) == 3
        for line in failed:
            assert {"time", "level", "logger", "message", "request_id"} <= set(line)
            assert line["status"] == 500 and line["method"] == "POST"
            assert line["path"] in {"/v1/identify", "/v1/track", "/v1/batch"}
            assert line["duration_ms"] >= 0 and line["body_bytes"] > 0
        assert {line["request_id"] for line in failed} == {
            answer.headers["x-request-id"] for answer in answers[:3]
        }


def test_a_sane_incoming_request_id_is_kept_and_others_replaced(
    client: TestClient, keys: Keys
) -> None:
    auth = Keys.bearer(keys.read)
    kept = client.get("/v1/leads/nobody", headers={**auth, "X-Request-ID": "edge-7f3a:01"})
    assert kept.status_code == 404
    assert kept.headers["x-request-id"] == "edge-7f3a:01"
    assert kept.json() == {"detail": "lead 'nobody' not found", "request_id": "edge-7f3a:01"}
    for bad in ("has spaces", "x" * 129, 'quote"', "Müller".encode()):
        answer = client.get("/v1/leads", headers={**auth, "X-Request-ID": bad})
        assert answer.status_code == 200
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"])
    first = client.get("/health").headers["x-request-id"]
    assert first != client.get("/health").headers["x-request-id"]
    invalid = client.post("/v1/track", json={"event": "x"}, headers=Keys.bearer(keys.ingest))
    assert invalid.status_code == 422
    body = invalid.json()
    assert body["request_id"] == invalid.headers["x-request-id"] and body["detail"]


def test_a_500_in_process_logs_types_not_the_message(
    client: TestClient,
    keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def fail(*_args: object, **_kwargs: object) -> None:
        raise ValueError(f"cannot store traits {{'email': '{EMAIL}', 'phone': '{PHONE}'}}")

    monkeypatch.setattr("pyrometer.service.grouping.ingest_many", fail)
    caplog.set_level(logging.INFO)
    body = {"userId": "lead-1", "traits": {"email": EMAIL, "phone": PHONE}}
    answer = client.post("/v1/identify", json=body, headers=Keys.bearer(keys.ingest))
    assert answer.status_code == 500
    request_id = answer.headers["x-request-id"]
    assert answer.json() == {"detail": "internal server error", "request_id": request_id}
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].request_id == request_id  # type: ignore[attr-defined]
    rendered = [caplog.text]
    for formatter in (JsonFormatter(), TextFormatter()):
        rendered += [formatter.format(record) for record in caplog.records]
    for text in rendered:
        assert EMAIL not in text and PHONE not in text
    assert "ValueError" in TextFormatter().format(errors[0])
    assert json.loads(JsonFormatter().format(errors[0]))["error"] == "ValueError"


def test_formatters_never_print_an_exception_message() -> None:
    try:
        try:
            raise KeyError(EMAIL)
        except KeyError as inner:
            raise RuntimeError(PHONE) from inner
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    line = JsonFormatter().format(record)
    parsed = json.loads(line)
    assert "\n" not in line and parsed["message"] == "failed"
    assert "RuntimeError" in parsed["stack"] and "KeyError" in parsed["stack"]
    text = TextFormatter().format(record)
    for rendered in (line, text):
        assert EMAIL not in rendered and PHONE not in rendered


def test_an_uncaught_thread_exception_is_logged_without_its_message(
    capfd: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, threading.excepthook)
    try:
        configure_logging("json")

        def crash() -> None:
            raise ValueError(EMAIL)

        thread = threading.Thread(target=crash, name="worker-1")
        thread.start()
        thread.join()
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        threading.excepthook = saved[2]
    err = capfd.readouterr().err
    assert EMAIL not in err
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert any("worker-1" in line["message"] and "ValueError" in line["message"] for line in lines)


@given(st.binary(max_size=200))
def test_request_ids_are_always_sane(value: bytes) -> None:
    chosen = request_id_from([(b"x-request-id", value)])
    assert SANE.fullmatch(chosen)
    assert (chosen == value.decode("latin-1")) == bool(SANE.fullmatch(value.decode("latin-1")))


def test_an_unknown_log_format_is_one_clear_error(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'never.db'}"
    result = CliRunner().invoke(cli, ["serve", "--log-format", "xml", "--database", database])
    assert result.exit_code == 2
    assert "--log-format" in result.output and "xml" in result.output
    assert not (tmp_path / "never.db").exists()  # refused before anything was opened


def test_a_failed_job_keeps_and_logs_only_the_error_type(
    service: Service, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A rescore job's error is shown by ``GET /v1/jobs/{id}``: not the data either."""
    job_id = service.write(
        lambda conn: conn.execute(
            jobs.insert()
            .values(kind="rescore", status="running", done=0, total=1, created_us=1)
            .returning(jobs.c.id)
        ).scalar_one()
    )

    def fail(*_args: object) -> bool:
        params = [{"attributes": {"email": EMAIL, "phone": PHONE}}]
        raise sa.exc.IntegrityError("UPDATE leads SET ...", params, ValueError(EMAIL))

    monkeypatch.setattr(rescore, "rescore_step", fail)
    caplog.set_level(logging.INFO)
    rescore.run_job(service, job_id)
    row = service.read(lambda conn: conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).one())
    assert row.status == "failed"
    assert row.error == "sqlalchemy.exc.IntegrityError <- ValueError"
    rendered = [caplog.text] + [TextFormatter().format(record) for record in caplog.records]
    assert any("rescore job" in text and "IntegrityError" in text for text in rendered)
    for text in rendered:
        assert EMAIL not in text and PHONE not in text


def test_a_path_no_route_matches_is_logged_without_its_segments(
    client: TestClient, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    """A typo'd route, or a lead id holding ``/`` (``%2F`` is decoded before routing),
    matches no route template: its raw path, an e-mail address in it, must not be logged."""
    caplog.set_level(logging.INFO, logger="pyrometer.access")
    auth = Keys.bearer(keys.admin)
    for path in (
        f"/v1/lead/{EMAIL}",
        f"/v1/leads/{EMAIL.replace('@', '%2F@')}/export",
        f"/v1/leads/x/{EMAIL}",
    ):
        assert client.get(path, headers=auth).status_code == 404
    lines = [r for r in caplog.records if r.name == "pyrometer.access"]
    assert len(lines) == 3
    rendered = [caplog.text]
    for formatter in (JsonFormatter(), TextFormatter()):
        rendered += [formatter.format(record) for record in lines]
    assert not any(EMAIL.split("@")[0] in text for text in rendered)
    paths = [record.path for record in lines]  # type: ignore[attr-defined]
    assert paths == ["/v1/{?}/{?}", "/v1/leads/{?}/{?}/export", "/v1/leads/{?}/{?}"]
