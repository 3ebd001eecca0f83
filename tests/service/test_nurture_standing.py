"""Nurture enrolment on a standing condition on the lead ("cold and fit ≥ 5"), without an
event or a transition: when the lead changes (ingest, edits, decay, rescore) and by the
sweep after a publish; once at a time, never a suppressed, blocked or ``consent: false``
lead, never twice under concurrency. SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from pyrometer.core.playbook import default_playbook_text
from pyrometer.service import decay, nurture, rescore
from pyrometer.service import ingest as ingest_module
from pyrometer.service.ingest import ingest
from pyrometer.service.inputs import Identify, Track
from pyrometer.service.leads import update_lead
from pyrometer.service.nurture import NurtureSettings, Runner
from pyrometer.service.runtime import Service
from pyrometer.store import nurture as store
from pyrometer.store.tables import jobs, nurture_enrolments
from tests.service.conftest import Clock
from tests.service.test_nurture import DAY, PUBLIC, runner

STANDING = """  sequences:
    - name: cold-fit
      enrol: {condition: {temperature: [cold], fit: {gte: 5}}}
      steps:
        - email: {subject: "Hello {{ first_name or 'there' }}", text: "For people like you."}
        - wait: 2d
        - email: {subject: "Still there?", text: "More for you."}
"""
REENTRY = """  sequences:
    - name: cold-any
      enrol: {condition: {temperature: [cold], stage: [lead]}}
      reentry: true
      steps:
        - task: {title: "Look at this cold lead"}
"""

_n = 0


def _next() -> str:
    global _n
    _n += 1
    return f"s{_n}"


def person(service: Service, lead: str, **traits: Any) -> None:
    ingest(service, [], [Identify(_next(), lead, service.clock(), None, traits)])


def track(service: Service, lead: str, name: str) -> None:
    ingest(service, [Track(_next(), name, service.clock(), lead, None, {})], [])


def playbook(extra: str) -> str:
    return default_playbook_text().replace("  sequences:\n", extra, 1)


def publish_now(service: Service, clock: Clock, extra: str) -> None:
    """Published without a rescore job: for leads made after it."""
    text = playbook(extra)
    service.write(lambda conn: service.playbooks.publish(conn, text, clock()))


def enrolments(service: Service, sequence: str | None = None) -> list[Any]:
    query = sa.select(nurture_enrolments).order_by(nurture_enrolments.c.id)
    if sequence is not None:
        query = query.where(nurture_enrolments.c.sequence == sequence)
    return service.read(lambda conn: list(conn.execute(query).all()))


def enrolled(service: Service, sequence: str = "cold-fit") -> list[str]:
    return sorted(r.lead_id for r in enrolments(service, sequence))


def test_a_lead_that_comes_to_satisfy_the_condition_is_enrolled_and_emailed(
    service: Service, clock: Clock, smtp: tuple[str, Any]
) -> None:
    url, inbox = smtp
    publish_now(service, clock, STANDING)
    person(service, "ceo@acme.example", first_name="Ines", job_title="CEO")  # fit 8
    person(service, "intern@acme.example", job_title="Intern")  # fit 0
    assert enrolled(service) == ["ceo@acme.example"]
    [row] = enrolments(service)
    assert (row.cause, row.status, row.step) == ("condition", "active", 0)
    run = runner(service, url)
    assert run.run_due() == 1
    assert inbox.subjects() == ["Hello Ines"]
    # An edit that raises fit enrols the other lead; nothing happens to the first.
    update_lead(service, "intern@acme.example", {"company_size": 120})  # fit 6
    assert enrolled(service) == ["ceo@acme.example", "intern@acme.example"]
    # More changes to a lead in the sequence: still one enrolment (once at a time) ...
    person(service, "ceo@acme.example", company_size=300)
    track(service, "ceo@acme.example", "page_view")
    assert enrolled(service).count("ceo@acme.example") == 1
    clock.advance(2 * DAY + 60)
    run.run_due()
    run.run_due()
    completed = {r.lead_id: r.status for r in enrolments(service)}
    assert completed["ceo@acme.example"] == "completed"
    # ... and, without re-entry, none again after it completed.
    person(service, "ceo@acme.example", company_size=400)
    assert enrolled(service).count("ceo@acme.example") == 1


def test_suppressed_blocked_and_no_consent_leads_are_not_enrolled(
    service: Service, clock: Clock
) -> None:
    publish_now(service, clock, STANDING)
    person(service, "off@acme.example", job_title="CEO", do_not_contact=True)
    person(service, "no@acme.example", job_title="CEO")
    assert enrolled(service) == ["no@acme.example"]
    nurture.set_block(service, "no@acme.example", "email")
    person(service, "later@acme.example", job_title="Founder")
    update_lead(service, "later@acme.example", consent=False)
    person(service, "blocked@acme.example")
    nurture.set_block(service, "blocked@acme.example", "*")
    person(service, "blocked@acme.example", job_title="CEO")
    person(service, "nope@acme.example")
    update_lead(service, "nope@acme.example", {"job_title": "CTO"}, consent=False)
    rows = {r.lead_id: r for r in enrolments(service)}
    assert set(rows) == {"no@acme.example", "later@acme.example"}
    assert rows["no@acme.example"].exit_reason == "manual"  # the block ended it
    assert rows["later@acme.example"].status == "active"  # consent came after it entered


def test_the_fast_ingest_path_and_decay_enrol_too(
    service: Service, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    cold_any = REENTRY.replace("  sequences:\n", "").replace("reentry: true", "reentry: false")
    publish_now(service, clock, STANDING + cold_any)
    seen: list[str] = []
    write_ahead = ingest_module._write_scored_ahead

    def spy(service: Service, conn: Any, now: int, rows: Any, by_lead: Any, ahead: Any) -> Any:
        seen.extend(by_lead)
        return write_ahead(service, conn, now, rows, by_lead, ahead)

    monkeypatch.setattr(ingest_module, "_write_scored_ahead", spy)
    # A group of 64 tracks naming leads by userId is scored ahead of its transaction:
    # new cold leads enter cold-any there; the warm one enters nothing.
    group = [Track(_next(), "pricing_page_view", clock(), "warm@acme.example", None, {})] * 1
    group += [
        Track(_next(), "pricing_page_view", clock(), "warm@acme.example", None, {})
        for _ in range(2)
    ]
    group += [
        Track(_next(), "page_view", clock(), f"v{i:02d}@x.example", None, {}) for i in range(61)
    ]
    ingest(service, group, [])
    assert "warm@acme.example" in seen and "v00@x.example" in seen  # the fast path
    assert enrolled(service, "cold-any") == [f"v{i:02d}@x.example" for i in range(61)]
    # Fit 8 while warm: not cold, so not enrolled in cold-fit, until decay cools it.
    person(service, "warm@acme.example", job_title="CEO")
    assert enrolled(service, "cold-fit") == []
    clock.advance(120 * DAY)
    while decay.run_due(service):
        pass
    assert enrolled(service, "cold-fit") == ["warm@acme.example"]


def test_publishing_sweeps_existing_leads_with_progress(
    service: Service, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(25):
        title = "CEO" if i % 2 == 0 else "Intern"
        person(service, f"p{i:02d}@acme.example", job_title=title)
    person(service, "gone@acme.example", job_title="CEO", unsubscribed=True)
    created = rescore.publish(service, playbook(STANDING))
    # The rescoring job replays every lead; its changes enrol them as an edit does.
    rescore.run_job(service, created["job_id"])
    want = [f"p{i:02d}@acme.example" for i in range(0, 25, 2)]
    assert enrolled(service) == want
    # The runner's sweep (pages of 4 here) finds nothing more to do, and says so.
    run = Runner(service, NurtureSettings(mailer=None, public_url=PUBLIC, sweep_page=4))
    while run.sweep():
        pass
    assert enrolled(service) == want
    # Without the rescoring job's hook (as for leads it never replays), the sweep alone
    # enrols them, in pages, once, and the job row shows its progress.
    monkeypatch.setattr(nurture, "on_changes", lambda *a, **k: None)
    created = rescore.publish(service, playbook(STANDING.replace("cold-fit", "fit-cold")))
    rescore.run_job(service, created["job_id"])
    assert enrolled(service, "fit-cold") == []
    assert run.sweep(pages=2) is True
    job = service.read(
        lambda conn: conn.execute(sa.select(jobs).where(jobs.c.kind == "nurture_sweep")).all()
    )
    latest = max(job, key=lambda j: j.id)
    assert (latest.status, latest.done, latest.total) == ("running", 8, 26)
    while run.sweep():
        pass
    assert enrolled(service, "fit-cold") == want
    latest = service.read(
        lambda conn: conn.execute(sa.select(jobs).where(jobs.c.id == latest.id)).one()
    )
    assert (latest.status, latest.done, latest.result["enrolled"]) == ("done", 26, len(want))
    report = nurture.sequence_report(service, "fit-cold")
    assert report is not None
    assert report["sweep"] == {
        "job_id": latest.id,
        "playbook_version": latest.playbook_version,
        "status": "done",
        "done": 26,
        "total": 26,
    }
    assert report["by_status"] == {"active": len(want)}
    assert run.sweep() is False


def test_reentry_lets_a_lead_in_again_after_it_finished(service: Service, clock: Clock) -> None:
    publish_now(service, clock, REENTRY)
    person(service, "re@acme.example")
    Runner(service, NurtureSettings(mailer=None, public_url=PUBLIC)).run_due()
    assert [r.status for r in enrolments(service, "cold-any")] == ["completed"]
    person(service, "re@acme.example", company="Acme")
    assert [r.status for r in enrolments(service, "cold-any")] == ["completed", "active"]
    person(service, "re@acme.example", company="Acme 2")
    assert len(enrolments(service, "cold-any")) == 2  # once at a time


def test_two_writers_enrolling_one_lead_make_one_enrolment(service: Service, clock: Clock) -> None:
    """The unique index on active enrolments: the second insert does nothing, whether
    it comes after the first or races it from another connection."""
    person(service, "race@acme.example")
    row = store.enrolment_row("race@acme.example", "cold-fit", 0, clock(), "condition", clock())
    service.write(lambda conn: store.enrol_many(conn, [row]))
    service.write(lambda conn: store.enrol_many(conn, [row, row]))
    assert len(enrolments(service, "cold-fit")) == 1
    other = store.enrolment_row("race@acme.example", "other", 0, clock(), "condition", clock())
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def enrol() -> None:
        try:
            barrier.wait()
            service.write(lambda conn: store.enrol_many(conn, [other]))
        except BaseException as exc:  # pragma: no cover - the failure this test looks for
            errors.append(exc)

    threads = [threading.Thread(target=enrol) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(enrolments(service, "other")) == 1


@pytest.mark.parametrize("group", [1, 64])
def test_four_ingests_racing_to_create_one_lead_enrol_it_once(service: Service, group: int) -> None:
    """Enrolments of leads a transaction created skip the conflict check: four requests
    racing to create one new lead with a download (alone, or in groups of 64 scored
    ahead of the write) make one enrolment, and none fails."""
    now = service.clock()
    batches = []
    for k in range(4):
        tracks = [Track(_next(), "whitepaper_download", now, "new@acme.example", None, {})]
        tracks += [
            Track(_next(), "page_view", now, f"k{k}-{i}@x.example", None, {})
            for i in range(group - 1)
        ]
        batches.append(tracks)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def send(tracks: list[Track]) -> None:
        try:
            barrier.wait()
            ingest(service, tracks, [])
        except BaseException as exc:  # pragma: no cover - the failure this test looks for
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    made = [r for r in enrolments(service, "educational") if r.lead_id == "new@acme.example"]
    assert [r.status for r in made] == ["active"]


AGAIN = """  sequences:
    - name: again
      enrol: {event: whitepaper_download}
      reentry: true
      steps:
        - task: {title: "Follow up"}
"""


def test_one_batch_enrols_exits_and_enrols_again_in_order(service: Service, clock: Clock) -> None:
    """The messages of one batch act in order on the enrolments the batch itself made: a
    download enrols, a reply ends that enrolment, the next download (re-entry) makes a
    second one, and the next reply ends the second, not the first again."""
    publish_now(service, clock, AGAIN)
    now = clock()
    names = ["whitepaper_download", "email_reply", "whitepaper_download", "email_reply"]
    tracks = [Track(_next(), name, now, "twice@acme.example", None, {}) for name in names]
    tracks += [Track(_next(), name, now, "back@acme.example", None, {}) for name in names[:3]]
    ingest(service, tracks, [])
    got = sorted((r.lead_id, r.status, r.exit_reason) for r in enrolments(service, "again"))
    assert got == [
        ("back@acme.example", "active", None),
        ("back@acme.example", "exited", "event:email_reply"),
        ("twice@acme.example", "exited", "event:email_reply"),
        ("twice@acme.example", "exited", "event:email_reply"),
    ]


def test_new_leads_of_one_batch_are_enrolled_by_what_each_is(service: Service) -> None:
    """A batch of downloads from leads it creates: what a lead enters is decided once per
    trigger, temperature, stage and suppression, and each lead gets its own: the cold ones
    enter ``educational``; not one that its own traits suppress, nor one whose demo
    request in the same batch made it hot (two messages: taken one by one, in order)."""
    now = service.clock()
    fresh = [f"new{i}@acme.example" for i in range(5)]
    tracks = [Track(_next(), "whitepaper_download", now, lead, None, {}) for lead in fresh]
    tracks.append(Track(_next(), "whitepaper_download", now, "quiet@acme.example", None, {}))
    tracks += [
        Track(_next(), name, now, "keen@acme.example", None, {})
        for name in ("demo_request", "pricing_page_view", "whitepaper_download")
    ]
    quiet = Identify(_next(), "quiet@acme.example", now, None, {"do_not_contact": True})
    ingest(service, tracks, [quiet])
    rows = enrolments(service, "educational")
    assert sorted(r.lead_id for r in rows) == fresh
    assert {(r.status, r.step, r.cause) for r in rows} == {
        ("active", 0, "event:whitepaper_download")
    }
    # Later batches: a lead seen before takes the general path, and is not enrolled twice.
    ingest(service, [Track(_next(), "whitepaper_download", now, fresh[0], None, {})], [])
    assert sorted(r.lead_id for r in enrolments(service, "educational")) == fresh
