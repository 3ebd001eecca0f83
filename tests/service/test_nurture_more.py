"""Nurture, continued: a do-not-contact block set by hand, ``points`` and ``stage`` steps.
A real SMTP server (aiosmtpd), a clock the test moves, SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from pyrometer.api.app import create_app
from pyrometer.core.playbook import default_playbook_text
from pyrometer.service.ingest import ingest
from pyrometer.service.inputs import Identify, Track
from pyrometer.service.reads import get_lead
from pyrometer.service.runtime import Service
from pyrometer.store.identity import visitors_among
from tests.service.conftest import Clock, Keys
from tests.service.test_nurture import DAY, runner, score, track

# An engagement rule the `points` steps record (the playbook's one definition of its
# points), and two sequences: one moves the stage to SQL and goes on (its exit is the
# customer stage only), the other keeps the default exits, so SQL ends it.
RULE = """  - name: nurture_bonus
    why: Finishing a nurture track.
    points: 5
    event: nurture_bonus
  - name: email_open
"""
SEQUENCES = """  sequences:
    - name: points-and-stage
      enrol: {event: Course Started}
      exit: {stages: [customer]}
      steps:
        - points: nurture_bonus
        - wait: 1d
        - stage: sales_accepted
        - points: Nurture Bonus
    - name: hand-over
      enrol: {event: course_extended}
      steps:
        - stage: sales_accepted
        - email: {subject: never sent, text: x}
"""


def publish_steps(service: Service, clock: Clock) -> None:
    text = default_playbook_text()
    text = text.replace("  - name: email_open\n", RULE, 1)
    text = text.replace("  sequences:\n", SEQUENCES, 1)
    service.write(lambda conn: service.playbooks.publish(conn, text, clock()))


def steps_of(service: Service, lead: str, sequence: str) -> dict[str, Any]:
    return next(e for e in nurture_of(service, lead)["enrolments"] if e["sequence"] == sequence)


def nurture_of(service: Service, lead: str) -> dict[str, Any]:
    found = get_lead(service, lead)
    assert found is not None
    return dict(found["nurture"])


def test_a_manual_block_ends_sequences_stops_enrolment_and_lifts_by_hand(
    service: Service, clock: Clock, keys: Keys, smtp: tuple[str, Any]
) -> None:
    url, inbox = smtp
    run = runner(service, url)
    track(service, "ed@example.com", "whitepaper_download")
    track(service, "fi@example.com", "page_view")
    run.run_due()
    assert len(inbox.messages) == 1
    admin = keys.bearer(keys.admin)
    with TestClient(create_app(service, background=False)) as client:
        path = "/v1/leads/ed@example.com/do-not-contact"
        refused = client.post(path, json={"channel": "email"}, headers=keys.bearer(keys.read))
        assert refused.status_code == 403
        bad = client.post(path, json={"channel": "sms"}, headers=admin)
        assert bad.status_code == 422 and "channel" in bad.text
        answer = client.post(path, json={"channel": "email"}, headers=admin)
        assert answer.status_code == 200, answer.text
        assert answer.json()["do_not_contact"] == {"email": "manual"}
        [ed] = nurture_of(service, "ed@example.com")["enrolments"]
        assert (ed["status"], ed["exit_reason"]) == ("exited", "manual")
        clock.advance(10 * DAY)
        run.run_due()
        assert len(inbox.messages) == 1  # the second e-mail never goes

        # Blocked before it enrols: a download starts nothing while the block stands.
        fi = "/v1/leads/fi@example.com/do-not-contact"
        assert client.post(fi, json={"channel": "*"}, headers=admin).status_code == 200
        track(service, "fi@example.com", "whitepaper_download")
        assert nurture_of(service, "fi@example.com")["enrolments"] == []
        lifted = client.delete(fi + "/*", headers=admin)
        assert lifted.status_code == 200 and lifted.json()["do_not_contact"] == {}
        assert client.delete(fi + "/*", headers=admin).status_code == 404
        track(service, "fi@example.com", "whitepaper_download")
        run.run_due()
        assert inbox.recipients[-1] == ["fi@example.com"]

        # The lead's own word or its mailbox's is not lifted by hand.
        client.post(
            "/v1/nurture/bounces",
            json={"type": "bounce", "lead_id": "fi@example.com"},
            headers=keys.bearer(keys.ingest),
        )
        kept = client.delete(fi + "/email", headers=admin)
        assert kept.status_code == 409 and "bounced" in kept.text
        assert nurture_of(service, "fi@example.com")["do_not_contact"] == {"email": "bounced"}
        nobody = client.post("/v1/leads/nobody/do-not-contact", json={}, headers=admin)
        assert nobody.status_code == 404


def test_points_and_stage_steps_go_through_the_playbook(
    service: Service, clock: Clock, smtp: tuple[str, Any]
) -> None:
    url, inbox = smtp
    publish_steps(service, clock)
    run = runner(service, url)
    track(service, "gi@example.com", "course_started")
    before = score(service, "gi@example.com")
    assert run.run_due() == 1
    assert score(service, "gi@example.com") == before + 5  # the rule's points, tracked
    assert run.run_due() == 0  # then a day's wait
    clock.advance(DAY)
    run.run_due()  # the stage step
    lead = get_lead(service, "gi@example.com")
    assert lead is not None and lead["stage"] == "sql"
    run.run_due()  # the second points step, due at once
    lead = get_lead(service, "gi@example.com")
    assert lead is not None
    bonus = [e for e in lead["ledger"] if e["rule"] == "nurture_bonus"]
    assert [(e["points"], e["event_id"].startswith("nurture-")) for e in bonus] == [(5.0, True)] * 2
    enrolment = steps_of(service, "gi@example.com", "points-and-stage")
    assert enrolment["status"] == "completed"
    kinds = [(s["kind"], s["status"]) for s in enrolment["steps"]]
    assert kinds == [("points", "done"), ("stage", "done"), ("points", "done")]

    # A visitor's points step is recorded under its anonymousId: it stays a visitor.
    ingest(service, [Track("anon-p", "course_started", clock(), None, "anon-9", {})], [])
    run.run_due()
    assert steps_of(service, "anon-9", "points-and-stage")["steps"][0]["status"] == "done"
    assert service.read(lambda conn: visitors_among(conn, ["anon-9"])) == {"anon-9"}

    # With the default exits, the stage a step moves to (SQL) ends the sequence at once.
    track(service, "ha@example.com", "course_extended")
    run.run_due()
    clock.advance(DAY)
    run.run_due()
    hand = steps_of(service, "ha@example.com", "hand-over")
    assert (hand["status"], hand["exit_reason"]) == ("exited", "stage:sql")
    assert inbox.messages == []


def test_a_points_step_cut_short_by_a_crash_counts_once(
    service: Service, clock: Clock, smtp: tuple[str, Any]
) -> None:
    url, _ = smtp
    publish_steps(service, clock)
    run = runner(service, url, lease=60.0)
    track(service, "jo@example.com", "course_started")
    before = score(service, "jo@example.com")
    now = clock()
    # Planned, then the event recorded, then killed before the step was marked done.
    claimed, [job] = service.write(lambda conn: run._claim_and_plan(conn, now))
    assert claimed == 1
    ingest(service, [Track(f"nurture-{job.key}", job.event, now, job.lead_id, None, {})], [])
    clock.advance(30)
    assert run.run_due() == 0  # still leased to the runner that died
    clock.advance(60)
    assert run.run_due() == 1
    assert score(service, "jo@example.com") == before + 5  # once, not twice
    assert [
        s["status"] for s in steps_of(service, "jo@example.com", "points-and-stage")["steps"]
    ] == ["done"]


def test_a_visitors_enrolment_and_block_follow_identify_and_merge(
    service: Service, clock: Clock, keys: Keys, smtp: tuple[str, Any]
) -> None:
    url, inbox = smtp
    run = runner(service, url)
    # A visitor downloads, then says who it is: the series goes on under the lead.
    ingest(service, [Track("v1", "whitepaper_download", clock(), None, "anon-1", {})], [])
    assert [e["sequence"] for e in nurture_of(service, "anon-1")["enrolments"]] == ["educational"]
    ingest(service, [], [Identify("v2", "kim@example.com", clock(), "anon-1", {})])
    [kim] = nurture_of(service, "kim@example.com")["enrolments"]
    assert (kim["sequence"], kim["status"]) == ("educational", "active")
    run.run_due()
    assert inbox.recipients == [["kim@example.com"]]

    admin = keys.bearer(keys.admin)
    with TestClient(create_app(service, background=False)) as client:
        # A visitor blocked by hand keeps its block when it turns out to be a lead.
        ingest(service, [Track("v3", "page_view", clock(), None, "anon-2", {})], [])
        blocked = client.post(
            "/v1/leads/anon-2/do-not-contact", json={"channel": "*"}, headers=admin
        )
        assert blocked.status_code == 200, blocked.text
        ingest(service, [], [Identify("v4", "kim@example.com", clock(), "anon-2", {})])
        assert nurture_of(service, "kim@example.com")["do_not_contact"] == {"*": "manual"}
        client.delete("/v1/leads/kim@example.com/do-not-contact/*", headers=admin)

        # Two leads in the same sequence merge: the one that began first goes on, the
        # other ends as merged; the steps both ran are the merged lead's.
        clock.advance(DAY)
        track(service, "kim2@example.com", "whitepaper_download")
        run.run_due()
        assert len(inbox.messages) == 2
        merged = client.post(
            "/v1/leads/kim@example.com/merge", json={"from": "kim2@example.com"}, headers=admin
        )
        assert merged.status_code == 200, merged.text
    found = nurture_of(service, "kim@example.com")["enrolments"]
    assert [(e["status"], e["exit_reason"]) for e in found] == [
        ("active", None),
        ("exited", "merged"),
    ]
    assert [len(e["steps"]) for e in found] == [1, 1]
    clock.advance(2 * DAY)
    run.run_due()  # kim's second e-mail is due; but the merged lead had two this week
    assert len(inbox.messages) == 2
    clock.advance(5 * DAY)
    run.run_due()
    run.run_due()
    assert len(inbox.messages) == 3  # sent once the week allows, once


UNTIL = """  sequences:
    - name: wait-for-open
      enrol: {event: course_started}
      steps:
        - email: {subject: "first", text: x}
        - until: {event: Email Opened, timeout: 3d}
        - email: {subject: "after", text: y}
    - name: open-or-leave
      enrol: {event: course_extended}
      steps:
        - until: {event: email_open, timeout: 2d, on_timeout: exit}
        - points: email_open
"""


def test_until_an_event_goes_on_at_the_event_or_at_the_time_out(
    service: Service, clock: Clock, smtp: tuple[str, Any]
) -> None:
    url, inbox = smtp
    text = default_playbook_text().replace("  sequences:\n", UNTIL, 1)
    service.write(lambda conn: service.playbooks.publish(conn, text, clock()))
    run = runner(service, url)
    for lead in ("ka@example.com", "lo@example.com"):
        track(service, lead, "course_started")
    run.run_due()
    assert inbox.subjects() == ["first", "first"]
    clock.advance(2 * 3600)
    track(service, "ka@example.com", "Email Opened")  # an alias of email_open
    ka = steps_of(service, "ka@example.com", "wait-for-open")
    assert ka["next_step"] == 2 and [s["status"] for s in ka["steps"]] == ["sent", "done"]
    clock.advance(DAY)  # one e-mail a day: the next goes the day after
    run.run_due()
    assert inbox.recipients[-1] == ["ka@example.com"] and inbox.subjects()[-1] == "after"
    assert len(inbox.messages) == 3
    lo = steps_of(service, "lo@example.com", "wait-for-open")
    assert lo["next_step"] == 1  # still waiting: no open, time-out not reached
    clock.advance(2 * DAY)
    run.run_due()
    run.run_due()
    lo = steps_of(service, "lo@example.com", "wait-for-open")
    assert [s["status"] for s in lo["steps"]] == ["sent", "timed_out", "sent"]
    assert lo["status"] == "completed" and len(inbox.messages) == 4

    # on_timeout: exit leaves the sequence; the event in time goes on.
    for lead in ("mi@example.com", "ne@example.com"):
        track(service, lead, "course_extended")
    track(service, "mi@example.com", "email_open")
    run.run_due()
    clock.advance(2 * DAY)
    run.run_due()
    mi = steps_of(service, "mi@example.com", "open-or-leave")
    ne = steps_of(service, "ne@example.com", "open-or-leave")
    assert (mi["status"], [s["kind"] for s in mi["steps"]]) == ("completed", ["until", "points"])
    assert (ne["status"], ne["exit_reason"]) == ("exited", "timeout:email_open")
