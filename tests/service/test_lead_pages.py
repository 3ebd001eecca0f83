"""A lead's ledger and events a page at a time, without replaying its event log."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrometer.core.incremental import apply_event, new_state
from pyrometer.core.model import Event, Transition
from pyrometer.core.playbook import default_playbook
from pyrometer.core.reference import score_lead_reference
from pyrometer.service.ingest import ingest
from pyrometer.service.inputs import Track
from pyrometer.service.lead_pages import LedgerOfEvents
from pyrometer.service.runtime import Service
from pyrometer.store import pages, repo
from service.conftest import Clock, Keys

DAY_US = 86_400_000_000
NAMES = (
    "page_view",
    "pricing_page_view",
    "newsletter_signup",
    "email_open",
    "email_click",
    "demo_request",
    "video_play",  # no rule gives points for it
)


def _history(clock: Clock, count: int, seed: int = 11) -> list[Track]:
    """Many events on few days, so that caps and ``once`` decide points."""
    rng = random.Random(seed)
    tracks = []
    for n in range(count):
        name = rng.choice(NAMES)
        props = {"url": rng.choice(["/pricing", "/blog", "/about"])} if name == "page_view" else {}
        ts = clock.now_us - rng.randrange(20) * DAY_US - rng.randrange(10**6) * 60
        tracks.append(Track(f"e{n:05d}", name, ts, user_id="ann", properties=props))
    return tracks


def _load(service: Service, tracks: list[Track]) -> None:
    shuffled = list(tracks)
    random.Random(3).shuffle(shuffled)  # arrival out of order
    for start in range(0, len(shuffled), 97):
        ingest(service, shuffled[start : start + 97], [])


def _reference(tracks: list[Track], now_us: int) -> Any:
    events = [Event("ann", t.name, t.ts_us, t.message_id, t.properties) for t in tracks]
    return score_lead_reference(default_playbook(), "ann", events, {}, now_us)


def _walk(client: TestClient, keys: Keys, path: str, limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10_000):
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        page = client.get(path, params=params, headers=Keys.bearer(keys.read))
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= limit or path.endswith("/ledger")
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the cursor never ended")


def test_ledger_pages_add_up_to_the_reference_ledger(
    service: Service, client: TestClient, keys: Keys, clock: Clock
) -> None:
    tracks = _history(clock, 700)
    _load(service, tracks)
    clock.advance(3600)
    expected = _reference(tracks, clock.now_us)
    lead = client.get("/v1/leads/ann", headers=Keys.bearer(keys.read)).json()
    assert lead["score"] == pytest.approx(round(expected.score, 4), abs=1e-4)
    # The first page is bounded, and says where the rest is.
    assert len(lead["events"]) == 200 and lead["events_next"]
    assert len([x for x in lead["ledger"] if x["kind"] == "engagement"]) <= 200
    assert lead["ledger_next"]

    ledger = _walk(client, keys, "/v1/leads/ann/ledger", 37)
    lines = [x for x in ledger if x["kind"] == "engagement"]
    assert sorted((x["rule"], x["event_id"], x["points"]) for x in lines) == sorted(
        (x.rule, x.event_id, x.points) for x in expected.engagement_lines
    )
    assert sum(x["value"] for x in ledger) == pytest.approx(expected.score, abs=1e-6)
    # Newest event first, each event's lines on one page.
    order = [(x["timestamp"], x["event_id"]) for x in lines]
    assert order == sorted(order, reverse=True)
    assert any(x["capped"] for x in lines) and any(not x["capped"] for x in lines)

    shown = _walk(client, keys, "/v1/leads/ann/events", 64)
    assert [e["event_id"] for e in shown] == [
        t.message_id for t in sorted(tracks, key=lambda t: (t.ts_us, t.message_id), reverse=True)
    ]


def test_a_lead_page_reads_no_whole_event_log(
    service: Service, client: TestClient, keys: Keys, clock: Clock, monkeypatch: Any
) -> None:
    _load(service, _history(clock, 300))

    def whole_log(*_: object) -> None:
        raise AssertionError("the lead page read the whole event log")

    monkeypatch.setattr(repo, "lead_events", whole_log)
    small = client.get(
        "/v1/leads/ann",
        params={"ledger_limit": 5, "events_limit": 3},
        headers=Keys.bearer(keys.read),
    )
    assert small.status_code == 200, small.text
    body = small.json()
    assert len(body["events"]) == 3
    assert len([x for x in body["ledger"] if x["kind"] == "engagement"]) <= 5


def test_ranks_from_the_windows_events_when_the_state_has_none(
    service: Service, clock: Clock
) -> None:
    """A state without cap windows (a version that bounds them) gives the same ledger."""
    _load(service, _history(clock, 250, seed=5))
    book = default_playbook()

    def both(conn: Any) -> tuple[list[Any], list[Any]]:
        record = repo.read_lead(conn, "ann")
        assert record is not None and record.state.windows
        log = pages.events_before(conn, "ann", 10_000)
        stored = LedgerOfEvents(conn, book, record.state)
        bare = LedgerOfEvents(conn, book, replace(record.state, windows={}))
        return (
            [line for e in log for line in stored.lines(e)],
            [line for e in log for line in bare.lines(e)],
        )

    with_windows, without = service.read(both)
    assert with_windows == without and any(line.points == 0 for line in without)


def test_a_cursor_of_one_kind_is_refused_by_the_other(
    service: Service, client: TestClient, keys: Keys, clock: Clock
) -> None:
    _load(service, _history(clock, 30))
    lead = client.get(
        "/v1/leads/ann", params={"events_limit": 2}, headers=Keys.bearer(keys.read)
    ).json()
    wrong = client.get(
        "/v1/leads/ann/ledger",
        params={"cursor": lead["events_next"]},
        headers=Keys.bearer(keys.read),
    )
    assert wrong.status_code == 400 and wrong.json()["detail"][0]["loc"] == ["query", "cursor"]
    # Page cursors are signed like the list's: an edited one is refused, never read.
    forged = lead["events_next"][:-3] + (
        "AAA" if not lead["events_next"].endswith("AAA") else "BBB"
    )
    for route in ("ledger", "events", "transitions"):
        tampered = client.get(
            f"/v1/leads/ann/{route}", params={"cursor": forged}, headers=Keys.bearer(keys.read)
        )
        assert tampered.status_code == 400, (route, tampered.text)
        assert tampered.json()["detail"][0]["loc"] == ["query", "cursor"]
    gone = client.get("/v1/leads/nobody/events", headers=Keys.bearer(keys.read))
    assert gone.status_code == 404


def test_a_cursor_of_one_lead_is_refused_on_another(
    service: Service, client: TestClient, keys: Keys, clock: Clock
) -> None:
    """A page cursor continues one lead's walk: on another lead it would start that
    lead's pages at a foreign position and time, so it is a 400 like an edited one."""
    tracks = _history(clock, 30)
    _load(
        service,
        tracks + [t._replace(user_id="bob", message_id=f"b-{t.message_id}") for t in tracks],
    )
    read = Keys.bearer(keys.read)
    limits = {"events_limit": 2, "ledger_limit": 2, "transitions_limit": 1}
    ann = client.get("/v1/leads/ann", params=limits, headers=read).json()
    for route, name in (
        ("ledger", "ledger_next"),
        ("events", "events_next"),
        ("transitions", "transitions_before"),
    ):
        assert ann[name] is not None, name
        own = client.get(f"/v1/leads/ann/{route}", params={"cursor": ann[name]}, headers=read)
        assert own.status_code == 200, (route, own.text)
        other = client.get(f"/v1/leads/bob/{route}", params={"cursor": ann[name]}, headers=read)
        assert other.status_code == 400, (route, other.text)
        assert other.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_transitions_come_latest_first_a_page_at_a_time(
    service: Service, client: TestClient, keys: Keys, clock: Clock
) -> None:
    _load(service, _history(clock, 5))
    made = [
        Transition("ann", clock.now_us - (400 - n) * 60_000_000, "temperature", "a", "b", f"t{n}")
        for n in range(330)
    ]
    service.write(lambda conn: repo.append_transitions(conn, made, clock.now_us))
    stored = service.read(lambda conn: repo.lead_transitions(conn, "ann"))
    lead = client.get(
        "/v1/leads/ann", params={"transitions_limit": 100}, headers=Keys.bearer(keys.read)
    ).json()
    assert [t["cause"] for t in lead["transitions"]] == [t.cause for t in stored[-100:]]
    pages = [lead["transitions"]]
    cursor = lead["transitions_before"]
    while cursor:
        page = client.get(
            "/v1/leads/ann/transitions",
            params={"cursor": cursor, "limit": 70},
            headers=Keys.bearer(keys.read),
        ).json()
        pages.append(page["items"])
        cursor = page["next_cursor"]
    walked = [t["cause"] for page in reversed(pages) for t in page]
    assert walked == [t.cause for t in stored] and len(walked) == len(stored) >= 330


_STEP = 3_600_000_000  # an hour: events fall on a few days, so caps decide


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from((*NAMES, "social_follow", "unsubscribe")),
            st.integers(0, 96),
            st.sampled_from(["/pricing", "/blog", "/pricing/b"]),
        ),
        min_size=1,
        max_size=60,
    ),
    st.randoms(use_true_random=False),
)
def test_ledger_of_events_is_the_reference_ledger_in_any_arrival_order(
    rows: list[tuple[str, int, str]], rng: random.Random
) -> None:
    """Each event's lines from the state's windows alone are the reference's lines."""
    book = default_playbook()
    log = [
        Event("ann", name, hour * _STEP, f"e{n:03d}", {"url": url} if name == "page_view" else {})
        for n, (name, hour, url) in enumerate(rows)
    ]
    arrival = list(log)
    rng.shuffle(arrival)
    state = new_state("ann")
    for event in arrival:
        state = apply_event(book, state, event).state
    derive = LedgerOfEvents(None, book, state)  # type: ignore[arg-type]  # no SQL needed
    got = sorted((x.rule, x.event_id, x.points) for e in log for x in derive.lines(e))
    expected = score_lead_reference(book, "ann", log, {}, 200 * _STEP)
    assert got == sorted((x.rule, x.event_id, x.points) for x in expected.engagement_lines)
