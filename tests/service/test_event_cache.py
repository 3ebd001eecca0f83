"""With probability bands, a write counts each lead's event features from the events this
process keeps for it (:mod:`pyrometer.service.event_cache`) plus what it added. The
probability it stores must be the one the lead's stored events give, whatever happened
to the lead meanwhile: more writes, another process writing, a write that rolled back,
the lead erased and made again. Each is compared with the general (pandas) path over
the lead's events as stored. SQLite and PostgreSQL."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from pyrometer.core.playbook import default_playbook_text
from pyrometer.core.timeutil import from_us
from pyrometer.demo.synth import generate
from pyrometer.predictive.event_state import EventCounter, States
from pyrometer.service import actions, models, probability
from pyrometer.service.erasure import erase_lead
from pyrometer.service.event_cache import (
    CACHE_SIZE_ENV,
    ENTRY_OVERHEAD,
    HELD,
    MARKER,
    NOT_HELD,
    STALE,
    LeadEventCache,
)
from pyrometer.service.ingest import ingest
from pyrometer.service.inputs import Identify, Track
from pyrometer.service.rescore import publish
from pyrometer.service.runtime import Service
from pyrometer.store import models as store
from pyrometer.store.tables import lead_predictions, leads
from tests.service.conftest import Clock
from tests.service.helpers import identifies_of, tracks_of

DAY = 86_400_000_000
NAMES = ("page_view", "email_open", "pricing_page_view", "webinar_attended", "demo_request")
SETTINGS = "\nmodels:\n  horizon: 60d\n  cutoff: 7d\n  auto_activate: true\n"


def _banded(service: Service, clock: Clock) -> list[str]:
    """The demo company with probability bands, a model trained and active."""
    text = default_playbook_text()
    bands = "  hot: 50\n  warm: 20\n"
    assert bands in text
    banded = text.replace(bands, bands + "  probability: {hot: 0.3, warm: 0.1}\n", 1)
    publish(service, banded + SETTINGS)
    data = generate(500, seed=3, end=from_us(clock.now_us), days=180)
    ingest(service, tracks_of(data.events), identifies_of(data.leads, clock.now_us))
    result = models.run_training(service, models.create_job(service))
    assert result.get("activated") is True, result
    return [lead["lead_id"] for lead in data.leads]


def _stored(service: Service, lead_ids: list[str]) -> dict[str, tuple[float, str]]:
    """Each lead's probability as its last write stored it, and its temperature."""
    query = (
        sa.select(lead_predictions.c.lead_id, lead_predictions.c.p_convert, leads.c.temperature)
        .join(leads, leads.c.lead_id == lead_predictions.c.lead_id)
        .where(lead_predictions.c.lead_id.in_(lead_ids))
    )
    return service.read(lambda conn: {r[0]: (r[1], r[2]) for r in conn.execute(query)})


def _from_the_store(service: Service, lead_ids: list[str], now_us: int) -> dict[str, float]:
    """The probabilities the general path gives from the leads' stored events."""

    def work(conn: Any) -> dict[str, float]:
        _, model = models._active_model(service, conn)  # type: ignore[misc]
        rows = conn.execute(
            sa.select(leads.c.lead_id, leads.c.attributes).where(leads.c.lead_id.in_(lead_ids))
        ).all()
        items = [(r.lead_id, dict(r.attributes)) for r in rows]
        log = store.lead_event_rows(conn, lead_ids)
        fast, models.FAST_ROWS = models.FAST_ROWS, 0  # the pandas path: no row scorer
        try:
            found = models.probabilities(model, items, log, now_us)
        finally:
            models.FAST_ROWS = fast
        return {lead_id: p for (lead_id, _), p in zip(items, found, strict=True)}

    return service.read(work)


def _check(service: Service, lead_ids: list[str], now_us: int) -> None:
    stored = _stored(service, lead_ids)
    assert set(stored) == set(lead_ids)
    want = _from_the_store(service, lead_ids, now_us)
    for lead_id in lead_ids:
        assert stored[lead_id][0] == pytest.approx(want[lead_id], rel=1e-9, abs=1e-12), lead_id
        band = "hot" if want[lead_id] >= 0.3 else "warm" if want[lead_id] >= 0.1 else "cold"
        assert stored[lead_id][1] == band, lead_id


def test_writes_count_from_the_cache_what_the_stored_events_give(
    service: Service, clock: Clock
) -> None:
    """Batches and single events, late, out of order and future ones, new leads and
    changed attributes: each write's stored probability is the stored events' one, and
    after the first write of a lead the cache serves it."""
    lead_ids = _banded(service, clock)
    rng = random.Random(4)
    cache = service.event_cache
    n = 0
    for round_ in range(6):
        clock.advance(3600)
        now = clock.now_us
        chosen = rng.sample(lead_ids[:90], 60) + [f"new-{round_}-{i}" for i in range(3)]
        tracks = []
        for _ in range(150):
            n += 1
            age = rng.choice([0, DAY, 8 * DAY, 31 * DAY, 200 * DAY, -DAY])  # -DAY: future
            tracks.append(Track(f"c-{n}", rng.choice(NAMES), now - age, user_id=rng.choice(chosen)))
        traits = [
            Identify(
                f"t-{round_}-{i}", lead, now, traits={"industry": rng.choice(["retail", "saas"])}
            )
            for i, lead in enumerate(rng.sample(chosen, 5))
        ]
        ingest(service, tracks, traits if round_ % 2 else [])
        touched = sorted({t.user_id for t in tracks if t.user_id} | {t.user_id for t in traits})
        _check(service, touched if round_ % 2 else sorted({t.user_id for t in tracks}), now)
    # One event at a time (the general path's small writes).
    for lead in rng.sample(lead_ids, 5):
        clock.advance(1)
        ingest(service, [Track(f"one-{lead}", "pricing_page_view", clock.now_us, user_id=lead)], [])
        _check(service, [lead], clock.now_us)
    assert cache.hits > 200 and len(cache) > 80


def test_carried_features_follow_a_clock_that_jumps_over_edges_and_steps_back(
    service: Service, clock: Clock
) -> None:
    """Between writes the clock moves past events' window edges (7, 30 and 90 days), a
    future event falls due, and once the clock steps back (another process's clock, a
    corrected one): each write's probability is still the stored events' one. The
    carried features are recounted from the lead's live events when an edge is passed,
    and counted afresh from the store when the clock is behind them."""
    lead_ids = _banded(service, clock)
    leads_ = lead_ids[20:40]
    clock.advance(60)
    first = [
        Track(f"e-{i}", NAMES[i % len(NAMES)], clock.now_us - (i % 4) * 2 * DAY, user_id=lead)
        for i, lead in enumerate(leads_)
    ]
    first.append(Track("e-future", "demo_request", clock.now_us + 3 * DAY, user_id=leads_[0]))
    ingest(service, first, [])
    _check(service, leads_, clock.now_us)
    cache = service.event_cache
    for n, days in enumerate([1, 3, 6, 24, 61, 0.5, -2, 1]):
        clock.advance(days * 86_400)
        tracks = [
            Track(f"j-{n}-{i}", NAMES[(n + i) % len(NAMES)], clock.now_us - i * 3_600_000_000,
                  user_id=lead)
            for i, lead in enumerate(leads_[: 10 + n])
        ]  # fmt: skip
        hits = cache.hits
        ingest(service, tracks, [])
        _check(service, sorted({t.user_id for t in tracks if t.user_id}), clock.now_us)
        stamp = cache.stamp(leads_[0])
        assert stamp is not None and stamp.at_us == clock.now_us
        if days >= 0:  # (held as of a later moment, a lead is counted afresh)
            assert cache.hits == hits + len({t.user_id for t in tracks})


def test_a_write_without_events_sums_in_the_store_and_keeps_nothing(
    service: Service, clock: Clock
) -> None:
    """New attributes alone (as a rescore or a decay wake-up, a write that adds no
    events): the database's sums give the features, and the lead is not kept, so such
    sweeps over many leads do not fill the cache; its next event is read and kept."""
    lead_ids = _banded(service, clock)
    lead = lead_ids[11]
    clock.advance(60)
    ingest(service, [], [Identify("i-1", lead, clock.now_us, traits={"industry": "retail"})])
    _check(service, [lead], clock.now_us)
    assert service.event_cache.stamp(lead) is None
    ingest(service, [Track("i-2", "page_view", clock.now_us, user_id=lead)], [])
    _check(service, [lead], clock.now_us)
    held = service.event_cache.stamp(lead)
    assert held is not None and held.count == len(
        service.read(lambda conn: store.lead_event_rows(conn, [lead]))
    )


def _spy_on_sums(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The leads each call of the database's event sums is for, from now on."""
    summed: list[list[str]] = []
    sums = store.lead_event_sums
    monkeypatch.setattr(
        store,
        "lead_event_sums",
        lambda conn, ids, *a: summed.append(list(ids)) or sums(conn, ids, *a),
    )
    return summed


def test_another_process_writing_a_lead_is_caught_up_from_the_log(
    service: Service, store_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second service on the same store (another process, its own cache: ``serve``'s
    other scoring process) writes events of a lead this one holds, turn about with this
    one: each write here reads only the events stored since its entry was made (by their
    ``seq``), never the lead's whole history or the database's sums. An event that is
    not after that ``seq`` (events a merge moved in; a write that took its ``seq`` early
    and committed late) makes the count disagree: then the sums, and a marker."""
    lead_ids = _banded(service, clock)
    lead = lead_ids[7]
    clock.advance(60)
    ingest(service, [Track("a-1", "page_view", clock.now_us, user_id=lead)], [])
    _check(service, [lead], clock.now_us)
    summed = _spy_on_sums(monkeypatch)
    other = Service.open(store_url, clock)
    cache = service.event_cache
    try:
        other.write(lambda conn: models._active_model(other, conn))
        for turn in range(3):
            clock.advance(60)
            batch = [
                Track(f"b-{turn}-{i}", "demo_request", clock.now_us - i * DAY, user_id=lead)
                for i in range(4)
            ]
            ingest(other, batch, [])
            _check(other, [lead], clock.now_us)
            hits = cache.hits
            clock.advance(60)
            ingest(service, [Track(f"a-2-{turn}", "email_open", clock.now_us, user_id=lead)], [])
            _check(service, [lead], clock.now_us)
            assert cache.hits == hits + 1  # caught up from the log, not read again
            held = cache.stamp(lead)
            assert held is not None and not held.is_marker
    finally:
        other.close()
    assert lead not in {i for ids in summed for i in ids}
    # A visitor's events, stored before the mark, fold into the lead when it identifies.
    clock.advance(60)
    visit = [
        Track(f"v-{i}", "pricing_page_view", clock.now_us - i * DAY, anonymous_id="visitor-9")
        for i in range(3)
    ]
    ingest(service, visit, [])
    clock.advance(60)  # the lead's entry is made after them: they are before its mark
    ingest(service, [Track("a-3", "email_open", clock.now_us, user_id=lead)], [])
    _check(service, [lead], clock.now_us)
    assert not summed
    ingest(service, [], [Identify("v-id", lead, clock.now_us, anonymous_id="visitor-9")])
    _check(service, [lead], clock.now_us)
    assert summed and summed[-1] == [lead]  # the count disagreed: the sums
    assert (cache.stamp(lead) or pytest.fail()).is_marker
    # Nobody else wrote it since: read whole and held again, then carried.
    for n in (4, 5, 6):
        clock.advance(60)
        ingest(service, [Track(f"a-{n}", "page_view", clock.now_us, user_id=lead)], [])
        _check(service, [lead], clock.now_us)
    assert not (cache.stamp(lead) or pytest.fail()).is_marker


def test_a_lead_another_process_keeps_writing_is_held_not_left_to_the_sums(
    service: Service, store_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that adds events to a lead this process holds as a marker another process
    has passed since, or holds further behind than the log is read for, reads the lead's
    events and holds it again: counted from the sums instead, it stayed a marker, and
    every later write of it went to the sums as long as the other process kept writing
    it in between (``serve``'s second scoring process, which writes a lead seldom)."""
    lead_ids = _banded(service, clock)
    lead = lead_ids[9]
    clock.advance(60)
    ingest(service, [Track("k-1", "page_view", clock.now_us, user_id=lead)], [])
    summed = _spy_on_sums(monkeypatch)
    cache = service.event_cache
    # A marker (the count disagreed: a visitor's older events folded in) ...
    visit = [
        Track(f"kv-{i}", "pricing_page_view", clock.now_us - i * DAY, anonymous_id="visitor-k")
        for i in range(3)
    ]
    ingest(service, visit, [])
    clock.advance(60)
    ingest(service, [Track("k-2", "email_open", clock.now_us, user_id=lead)], [])
    ingest(service, [], [Identify("kv-id", lead, clock.now_us, anonymous_id="visitor-k")])
    assert (cache.stamp(lead) or pytest.fail()).is_marker
    summed.clear()
    other = Service.open(store_url, clock)
    try:
        other.write(lambda conn: models._active_model(other, conn))
        # ... passed by another process: the next write here reads the lead and holds it.
        clock.advance(60)
        ingest(other, [Track("k-3", "demo_request", clock.now_us, user_id=lead)], [])
        clock.advance(60)
        ingest(service, [Track("k-4", "page_view", clock.now_us, user_id=lead)], [])
        _check(service, [lead], clock.now_us)
        held = cache.stamp(lead)
        assert held is not None and not held.is_marker
        # Held, then further behind than the log is read for: read and held again.
        monkeypatch.setattr(probability, "MAX_BEHIND", 2)
        clock.advance(60)
        batch = [
            Track(f"k-5-{i}", "email_open", clock.now_us - i * DAY, user_id=lead) for i in range(4)
        ]
        ingest(other, batch, [])
        clock.advance(60)
        ingest(service, [Track("k-6", "page_view", clock.now_us, user_id=lead)], [])
        _check(service, [lead], clock.now_us)
        held = cache.stamp(lead)
        assert held is not None and not held.is_marker
        assert held.count == len(service.read(lambda conn: store.lead_event_rows(conn, [lead])))
    finally:
        other.close()
    assert not summed


def test_a_write_that_rolls_back_leaves_the_cache_as_it_was(
    service: Service, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    lead_ids = _banded(service, clock)
    lead = lead_ids[3]
    clock.advance(60)
    ingest(service, [Track("r-1", "page_view", clock.now_us, user_id=lead)], [])
    held = service.event_cache.stamp(lead)
    assert held is not None

    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the routing step failed")

    monkeypatch.setattr(actions, "act_on_changes", fail)
    with pytest.raises(RuntimeError):
        ingest(service, [Track("r-2", "demo_request", clock.now_us, user_id=lead)], [])
    assert service.event_cache.stamp(lead) == held  # nothing of the failed write
    monkeypatch.undo()
    # Another event takes the count the failed write would have given.
    clock.advance(60)
    ingest(service, [Track("r-3", "email_open", clock.now_us - 40 * DAY, user_id=lead)], [])
    _check(service, [lead], clock.now_us)
    assert (service.event_cache.stamp(lead) or pytest.fail()).count == held.count + 1


def test_a_lead_erased_and_made_again_starts_from_nothing(service: Service, clock: Clock) -> None:
    """Made again at the same moment with as many events (written while no model was
    active, so that nothing here saw them): the stamp alone could not tell the two
    apart, so erasing forgets the lead."""
    _banded(service, clock)
    version = service.read(store.active_version)
    clock.advance(60)
    now = clock.now_us
    first = [Track(f"x-{i}", "demo_request", now - i, user_id="twice") for i in range(3)]
    ingest(service, first, [])
    _check(service, ["twice"], now)
    erase_lead(service, "twice", "test")
    service.write(lambda conn: conn.execute(store.models.update().values(active=False)))
    again = [Track(f"y-{i}", "email_open", now - 300 * DAY - i, user_id="twice") for i in range(3)]
    ingest(service, again, [])
    service.write(lambda conn: store.activate(conn, version, now))
    ingest(service, [Track("y-3", "email_open", now - 301 * DAY, user_id="twice")], [])
    _check(service, ["twice"], now)


def _states(*counts: int) -> States:
    """Carried features of leads with these many live events each."""
    counter = EventCounter(2, [7], 30.0)
    lengths = list(counts)
    kinds = np.zeros(sum(lengths), dtype=np.int32)
    _, states = counter.start(lengths, kinds, np.full(sum(lengths), 10, np.int64), 100)
    return states


def _put(cache: LeadEventCache, owner: object, ids: list[str], count: int) -> None:
    """Hold these leads (created at 1) with ``count`` events each."""
    n = len(ids)
    cache.put(owner, ids, [1] * n, [count] * n, _states(*[count] * n))


def test_the_cache_holds_what_it_is_told_within_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    four = int(_states(4).nbytes[0]) + ENTRY_OVERHEAD
    cache = LeadEventCache(max_bytes=2 * four + four // 2)
    owner, other = object(), object()
    _put(cache, owner, ["a", "b"], 4)
    found = cache.get_many(owner, ["a", "a", "a", "c"], [1, 1, 2, 1], [4, 5, 4, 0])
    assert found.status == [
        HELD,
        STALE,  # held with another stamp: written elsewhere since
        STALE,
        NOT_HELD,
    ]
    assert found.states is not None and found.states.leads == 1
    assert [len(c[0][1]) for c in found.states.chunks] == [4]  # a's events, as put
    assert cache.get_many(other, ["a"], [1], [4]).status == [NOT_HELD]  # another model's
    _put(cache, owner, ["a"], 3)  # an older write published late: the newer is kept
    assert (cache.stamp("a") or pytest.fail()).count == 4
    _put(cache, owner, ["c"], 4)  # over the bound: the least recent goes
    assert cache.stamp("b") is None and cache.stamp("a") and cache.stamp("c")
    assert cache.size == 2 * four and len(cache) == 2
    _put(cache, owner, ["huge"], 10_000)  # more than the whole bound: not held
    assert cache.stamp("huge") is None
    cache.put(owner, ["m"], [1], [9], None)  # a marker: a stamp without events
    assert cache.get_many(owner, ["m"], [1], [9]).status == [MARKER]
    _put(cache, other, ["z"], 1)  # another model: the old codes are dropped
    assert len(cache) == 1 and cache.size == int(_states(1).nbytes[0]) + ENTRY_OVERHEAD
    cache.forget(["z"])
    assert len(cache) == 0 and cache.size == 0
    # Many leads: the slots grow, and each lead's own row comes back.
    many = [f"l{i}" for i in range(700)]
    big = LeadEventCache(max_bytes=10**9)
    lengths = [i % 5 for i in range(700)]
    counter = EventCounter(2, [7], 30.0)
    times = np.full(sum(lengths), 10, np.int64)
    _, states = counter.start(lengths, np.zeros(sum(lengths), np.int32), times, 100)
    big.put(owner, many, [1] * 700, lengths, states)
    back = big.get_many(owner, many[::-1], [1] * 700, lengths[::-1])
    assert back.status == [HELD] * 700 and back.states is not None
    assert [sum(len(t) for _, t in c) for c in back.states.chunks] == lengths[::-1]
    np.testing.assert_array_equal(back.states.features, states.features[::-1])
    # The bound from the environment, 0 holding nothing; a bad value names the variable.
    monkeypatch.setenv(CACHE_SIZE_ENV, "0")
    off = LeadEventCache()
    _put(off, owner, ["a"], 1)
    assert len(off) == 0
    monkeypatch.setenv(CACHE_SIZE_ENV, "lots")
    with pytest.raises(ValueError, match=CACHE_SIZE_ENV):
        LeadEventCache()


def test_a_record_with_another_temperature_is_replace_of_it() -> None:
    """:meth:`LeadRecord.with_temperature` builds the record field by field (the banded
    write's hot path): it must stay ``dataclasses.replace`` as fields are added."""
    from dataclasses import fields, replace

    from pyrometer.core.incremental import LeadState
    from pyrometer.store.records import LeadRecord

    values: dict[str, Any] = {f.name: f"value of {f.name}" for f in fields(LeadRecord)}
    values["state"] = LeadState(lead_id="lead")
    record = LeadRecord(**values)
    assert record.with_temperature("hot") == replace(record, temperature="hot")
