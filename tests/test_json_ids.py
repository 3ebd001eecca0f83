"""Ids in JSON Lines are text whatever JSON type a message gives them.

Segment's `userId` is often a number (`"userId": 12345`). DuckDB read a field holding
numbers and strings as `JSON`, whose text kept a string's quotes (the lead `abc` became
`"abc"`), and a field of numbers only as `BIGINT`, which could not meet the text
`anonymousId` (a DuckDB binder error instead of scores, in `score` and `import`).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from pyrometer.cli.app import app

AS_OF = "2026-11-22T00:00:00Z"
runner = CliRunner()


def _write(path: Path, messages: list[dict]) -> Path:
    path.write_text("".join(json.dumps(m) + "\n" for m in messages))
    return path


def _scores(path: Path) -> dict[str, dict]:
    result = runner.invoke(app, ["score", str(path), "--as-of", AS_OF, "--json"])
    assert result.exit_code == 0, result.stderr
    return {row["lead_id"]: row for row in json.loads(result.stdout)}


def test_a_lead_id_given_as_number_and_as_text_is_read_as_text(tmp_path: Path) -> None:
    ts = "2026-11-20T10:00:00Z"
    events = _write(
        tmp_path / "e.jsonl",
        [
            {"lead_id": 123, "event": "demo_request", "timestamp": ts, "event_id": 1},
            {"lead_id": "abc", "event": "demo_request", "timestamp": ts, "event_id": "1"},
            {"lead_id": "abc", "event": "demo_request", "timestamp": ts, "event_id": "2"},
        ],
    )
    scored = _scores(events)
    # event id 1 and "1" are one id: the second row is a repeat of the first.
    assert set(scored) == {"123", "abc"}
    assert scored["123"]["events"] == 1 and scored["abc"]["events"] == 1


def test_a_numeric_segment_user_id_stitches_its_visitor(tmp_path: Path) -> None:
    events = _write(
        tmp_path / "s.jsonl",
        [
            {"type": "track", "anonymousId": "v-1", "event": "Pricing Page View",
             "messageId": "m1", "timestamp": "2026-11-20T09:00:00Z"},
            {"type": "identify", "anonymousId": "v-1", "userId": 12345, "messageId": "m2",
             "timestamp": "2026-11-20T09:06:00Z", "traits": {"title": "CTO"}},
            {"type": "track", "userId": 12345, "event": "Demo Requested", "messageId": "m3",
             "timestamp": "2026-11-20T09:07:00Z"},
        ],
    )  # fmt: skip
    scored = _scores(events)
    assert list(scored) == ["12345"]
    assert scored["12345"]["events"] == 2 and scored["12345"]["fit"] == 8.0

    database = tmp_path / "s.db"
    result = runner.invoke(app, ["import", str(events), "--database", f"sqlite:///{database}"])
    assert result.exit_code == 0, result.stderr
    with sqlite3.connect(database) as con:
        leads = {row[0] for row in con.execute("SELECT lead_id FROM events")}
    assert leads == {"12345"}


def test_each_segment_message_takes_the_first_time_it_has(tmp_path: Path) -> None:
    """As `/v1/track` reads it: `timestamp`, else `originalTimestamp`, `sentAt`,
    `receivedAt`, per message (a file took the first field any message had, and a message
    without it stopped the run as "timestamp is empty")."""
    track = {"type": "track", "userId": "u", "event": "demo_request"}
    events = _write(
        tmp_path / "t.jsonl",
        [
            {**track, "messageId": "a", "originalTimestamp": "2026-11-20T09:00:00Z"},
            {**track, "messageId": "b", "timestamp": "2026-11-20T10:00:00+02:00",
             "sentAt": "2026-11-20T12:00:00Z"},
            {**track, "messageId": "c", "sentAt": 1795172400},
        ],
    )  # fmt: skip
    result = runner.invoke(app, ["explain", "u", str(events), "--as-of", AS_OF, "--json"])
    assert result.exit_code == 0, result.stderr
    times = {line["event_id"]: line["timestamp"] for line in json.loads(result.stdout)["ledger"]}
    assert times == {
        "a": "2026-11-20T09:00:00Z",
        "b": "2026-11-20T08:00:00Z",
        "c": "2026-11-20T11:00:00Z",
    }
