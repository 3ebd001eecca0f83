"""Nurture end to end: a real SMTP server (aiosmtpd), a clock the test moves, SQLite and
PostgreSQL."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from pyrometer.api.app import create_app
from pyrometer.service import nurture
from pyrometer.service.ingest import ingest
from pyrometer.service.inputs import Identify, Track
from pyrometer.service.nurture import NurtureSettings, Runner, SmtpMailer
from pyrometer.service.reads import get_lead
from pyrometer.service.runtime import Service
from pyrometer.store.tables import nurture_steps
from tests.service.conftest import Clock, Keys

DAY = 86_400
PUBLIC = "http://testserver"
_n = 0


def track(service: Service, lead: str, name: str, **props: Any) -> None:
    global _n
    _n += 1
    ingest(service, [Track(f"m{_n}", name, service.clock(), lead, None, props)], [])


def person(service: Service, lead: str, **traits: Any) -> None:
    global _n
    _n += 1
    ingest(service, [], [Identify(f"i{_n}", lead, service.clock(), None, traits)])


def runner(service: Service, url: str, **overrides: Any) -> Runner:
    settings = NurtureSettings(
        mailer=SmtpMailer(url),
        public_url=PUBLIC,
        postal_address="Pyrometer Ltd, 1 Example Street, Vilnius",
        **overrides,
    )
    return Runner(service, settings)


def score(service: Service, lead: str) -> float:
    found = get_lead(service, lead)
    assert found is not None
    return float(found["score"])


def links_in(message: Any) -> list[str]:
    body = message.get_body(("plain",)).get_content()
    return re.findall(r"https?://\S+", body)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_a_download_starts_the_series_and_the_next_email_waits(
    service: Service, clock: Clock, smtp: tuple[str, Any]
) -> None:
    url, inbox = smtp
    run = runner(service, url)
    person(service, "ada@example.com", first_name="Ada", company="Acme")
    track(service, "ada@example.com", "whitepaper_download")
    assert run.run_due() == 1
    assert inbox.subjects() == ["Ada, here is your download"]
    first = inbox.messages[0]
    assert inbox.recipients[0] == ["ada@example.com"]
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert str(first["List-Unsubscribe"]).strip().startswith(f"<{PUBLIC}/nurture/unsubscribe/")
    text = first.get_body(("plain",)).get_content()
    assert "Pyrometer Ltd, 1 Example Street, Vilnius" in text
    assert first.get_body(("html",)) is not None
    clock.advance(1 * DAY)
    assert run.run_due() == 0  # the wait is three days
    clock.advance(2 * DAY)
    run.run_due()
    assert len(inbox.messages) == 2
    assert inbox.subjects()[1] in (
        "Ada, three ideas from the whitepaper",
        "Three ideas you can use this week",
    )
    lead = get_lead(service, "ada@example.com")
    assert lead is not None
    [enrolment] = lead["nurture"]["enrolments"]
    assert enrolment["sequence"] == "educational"
    assert [s["status"] for s in enrolment["steps"]] == ["sent", "sent"]
    assert enrolment["next_step"] == 4  # the call task, after a 4-day wait


def test_a_lead_that_turns_hot_leaves_and_gets_nothing_more(
    service: Service, clock: Clock, smtp: tuple[str, Any]
) -> None:
    url, inbox = smtp
    run = runner(service, url)
    track(service, "bo@example.com", "whitepaper_download")
    run.run_due()
    assert len(inbox.messages) == 1
    clock.advance(DAY)
    for name in ("demo_request", "contact_sales", "pricing_page_view"):
        track(service, "bo@example.com", name)
    lead = get_lead(service, "bo@example.com")
    assert lead is not None and lead["temperature"] == "hot"
    # On the way it turned warm (the drip enrolled it); hot ends both sequences.
    ended = {(e["sequence"], e["status"], e["exit_reason"]) for e in lead["nurture"]["enrolments"]}
    assert ("educational", "exited", "temperature:hot") in ended
    assert all(e["status"] == "exited" for e in lead["nurture"]["enrolments"])
    clock.advance(10 * DAY)
    run.run_due()
    assert len(inbox.messages) == 1


def test_unsubscribed_leads_get_nothing_even_a_step_already_due(
    service: Service, clock: Clock, smtp: tuple[str, Any]
) -> None:
    url, inbox = smtp
    run = runner(service, url)
    for lead in ("cy@example.com", "di@example.com"):
        track(service, lead, "whitepaper_download")
    run.run_due()
    assert len(inbox.messages) == 2
    clock.advance(3 * DAY)  # the second e-mail of both is due now
    # cy clicks the unsubscribe link of the first e-mail; di's do-not-contact attribute is set.
    mine = next(
        m for m, r in zip(inbox.messages, inbox.recipients, strict=True) if r == ["cy@example.com"]
    )
    unsubscribe = str(mine["List-Unsubscribe"]).strip().strip("<>")
    with TestClient(create_app(service, background=False)) as client:
        page = client.get(path_of(unsubscribe))
    assert page.status_code == 200 and "Unsubscribed" in page.text
    person(service, "di@example.com", do_not_contact=True)
    run.run_due()
    assert len(inbox.messages) == 2  # nothing more to either
    for lead, reason in (("cy@example.com", "unsubscribed"), ("di@example.com", "suppressed")):
        found = get_lead(service, lead)
        assert found is not None
        [enrolment] = found["nurture"]["enrolments"]
        assert (enrolment["status"], enrolment["exit_reason"]) == ("exited", reason)
    found = get_lead(service, "cy@example.com")
    assert found is not None and found["nurture"]["do_not_contact"] == {"email": "unsubscribed"}
    # A new download does not enrol a suppressed lead again.
    track(service, "cy@example.com", "whitepaper_download")
    clock.advance(7 * DAY)
    run.run_due()
    assert len(inbox.messages) == 2


def test_one_click_unsubscribe_post_suppresses_the_lead(
    service: Service, smtp: tuple[str, Any]
) -> None:
    url, inbox = smtp
    track(service, "ed@example.com", "whitepaper_download")
    runner(service, url).run_due()
    header = str(inbox.messages[0]["List-Unsubscribe"]).strip().strip("<>")
    with TestClient(create_app(service, background=False)) as client:
        answer = client.post(
            path_of(header),
            content="List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert answer.status_code == 200
        forged = client.post(path_of(header)[:-3] + "xyz")
        assert forged.status_code == 404
    found = get_lead(service, "ed@example.com")
    assert found is not None and found["suppressed"] is True
    assert found["nurture"]["enrolments"][0]["exit_reason"] == "unsubscribed"


def test_a_tracked_click_records_an_event_and_raises_the_score(
    service: Service, clock: Clock, smtp: tuple[str, Any]
) -> None:
    url, inbox = smtp
    run = runner(service, url)
    track(service, "fa@example.com", "whitepaper_download")
    run.run_due()
    clock.advance(3 * DAY)
    run.run_due()
    second = inbox.messages[1]
    tracked = [u for u in links_in(second) if "/nurture/click/" in u]
    assert tracked, "the link in the body is tracked"
    before = score(service, "fa@example.com")
    with TestClient(create_app(service, background=False), follow_redirects=False) as client:
        answer = client.get(path_of(tracked[0]))
        assert answer.status_code == 302
        assert answer.headers["location"] == f"{PUBLIC}/ideas"
        pixel = re.search(r'src="([^"]+\.gif)"', second.get_body(("html",)).get_content())
        assert pixel is not None
        assert client.get(path_of(pixel.group(1))).headers["content-type"] == "image/gif"
    assert score(service, "fa@example.com") > before
    found = get_lead(service, "fa@example.com")
    assert found is not None
    names = [e["event"] for e in found["events"]]
    assert "email_click" in names and "email_open" in names
    assert found["nurture"]["enrolments"][0]["steps"][1]["clicked_at"] is not None


def test_frequency_caps_hold_across_three_sequences(
    service: Service, clock: Clock, smtp: tuple[str, Any]
) -> None:
    """educational (download), warm-drip (warm) and re-engagement (warm → cold) each want
    an e-mail at once; the caps allow one a day and two a week."""
    url, inbox = smtp
    run = runner(service, url)
    lead = "gu@example.com"
    track(service, lead, "whitepaper_download")  # educational
    run.run_due()
    track(service, lead, "form_submit")
    track(service, lead, "webinar_attended")  # 25 points: warm → warm-drip
    run.run_due()
    found = get_lead(service, lead)
    assert found is not None and found["temperature"] == "warm"
    assert len(inbox.messages) == 1  # the drip's first e-mail waits for tomorrow
    sent_at: list[int] = [clock.now_us]
    for _ in range(14 * 24):  # two weeks, hour by hour
        clock.advance(3600)
        if run.run_due():
            pass
        while len(sent_at) < len(inbox.messages):
            sent_at.append(clock.now_us)
    assert len(inbox.messages) >= 3
    day, week = 86_400_000_000, 7 * 86_400_000_000
    for t in sent_at:
        assert sum(1 for u in sent_at if t - day < u <= t) <= 1
        assert sum(1 for u in sent_at if t - week < u <= t) <= 2


def test_a_kill_between_planning_and_sending_sends_exactly_once(
    service: Service, clock: Clock, smtp: tuple[str, Any]
) -> None:
    """The planning transaction commits, then the process dies before the SMTP call: the
    enrolment stays claimed until its lease ends, then one runner sends it, once."""
    url, inbox = smtp
    track(service, "ha@example.com", "whitepaper_download")

    class Killed(BaseException):  # not an Exception: nothing records it, as with SIGKILL
        pass

    class DiesBeforeSending(SmtpMailer):
        def send(self, message: Any, to: str) -> str:
            raise Killed()

    dying = Runner(
        service, NurtureSettings(mailer=DiesBeforeSending(url), public_url=PUBLIC, lease=60)
    )
    with pytest.raises(Killed):
        dying.run_due()
    assert inbox.messages == []
    restarted = runner(service, url, lease=60)
    assert restarted.run_due() == 0  # still claimed by the dead runner
    clock.advance(61)
    assert restarted.run_due() == 1
    clock.advance(61)
    restarted.run_due()
    assert len(inbox.messages) == 1
    with service.engine.connect() as conn:
        rows = conn.execute(sa.select(nurture_steps.c.key, nurture_steps.c.status)).all()
    assert [r.status for r in rows] == ["sent"]


def test_a_failed_send_is_retried(service: Service, clock: Clock, smtp: tuple[str, Any]) -> None:
    url, inbox = smtp
    run = runner(service, url, backoff=30)
    track(service, "io@example.com", "whitepaper_download")
    inbox.refuse = True
    run.run_due()
    assert inbox.messages == []
    inbox.refuse = False
    clock.advance(31)
    run.run_due()
    assert len(inbox.messages) == 1
    found = get_lead(service, "io@example.com")
    assert found is not None
    assert found["nurture"]["enrolments"][0]["steps"][0]["status"] == "sent"


def test_without_smtp_email_steps_are_recorded_as_skipped(service: Service) -> None:
    track(service, "jo@example.com", "whitepaper_download")
    Runner(service, NurtureSettings(mailer=None, public_url=PUBLIC)).run_due()
    found = get_lead(service, "jo@example.com")
    assert found is not None
    assert found["nurture"]["enrolments"][0]["steps"][0]["status"] == "skipped"


def test_dry_run_writes_eml_files(service: Service, tmp_path: Any) -> None:
    track(service, "ka@example.com", "whitepaper_download")
    settings = NurtureSettings(mailer=nurture.FolderMailer(tmp_path / "out"), public_url=PUBLIC)
    Runner(service, settings).run_due()
    [written] = list((tmp_path / "out").glob("*.eml"))
    assert b"Subject: Hello, here is your download" in written.read_bytes()


def test_bounce_report_blocks_the_lead_and_sequence_counts(
    service: Service, keys: Keys, smtp: tuple[str, Any]
) -> None:
    url, inbox = smtp
    run = runner(service, url)
    for lead in ("la@example.com", "mo@example.com"):
        track(service, lead, "whitepaper_download")
    run.run_due()
    bounced = next(
        m for m, r in zip(inbox.messages, inbox.recipients, strict=True) if r == ["la@example.com"]
    )
    with TestClient(create_app(service, background=False)) as client:
        answer = client.post(
            "/v1/nurture/bounces",
            json={"type": "bounce", "message_id": str(bounced["Message-ID"])},
            headers=keys.bearer(keys.ingest),
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["lead_id"] == "la@example.com"
        report = client.get("/v1/sequences/educational", headers=keys.bearer(keys.read)).json()
        assert client.get("/v1/sequences/nope", headers=keys.bearer(keys.read)).status_code == 404
    assert report["enrolled"] == 2
    assert report["exits"] == {"bounced": 1}
    assert report["steps"][0]["variants"][0]["sends"] == 2
    found = get_lead(service, "la@example.com")
    assert found is not None and found["nurture"]["do_not_contact"] == {"email": "bounced"}


def test_the_call_task_reaches_the_owner_as_a_webhook(
    service: Service, clock: Clock, smtp: tuple[str, Any]
) -> None:
    from pyrometer.service.webhooks import add_webhook
    from pyrometer.store.tables import deliveries

    url, inbox = smtp
    add_webhook(service, "http://127.0.0.1:9/hook", ["nurture.task"])
    run = runner(service, url)
    track(service, "ne@example.com", "whitepaper_download")
    run.run_due()
    clock.advance(3 * DAY)
    run.run_due()
    clock.advance(4 * DAY)
    run.run_due()
    assert len(inbox.messages) == 2
    with service.engine.connect() as conn:
        [row] = conn.execute(sa.select(deliveries.c.event_type, deliveries.c.payload)).all()
    assert row.event_type == "nurture.task"
    assert "Call after the e-mail introduction" in row.payload
    found = get_lead(service, "ne@example.com")
    assert found is not None
    [enrolment] = found["nurture"]["enrolments"]
    assert enrolment["status"] == "completed"
    assert [s["kind"] for s in enrolment["steps"]] == ["email", "email", "task"]


def test_a_reply_ends_the_sequence_even_in_the_same_batch(service: Service) -> None:
    now = service.clock()
    ingest(
        service,
        [
            Track("r1", "whitepaper_download", now, "ol@example.com"),
            Track("r2", "email_reply", now, "ol@example.com"),
            Track("r3", "whitepaper_download", now, "pa@example.com"),
        ],
        [],
    )
    track(service, "pa@example.com", "email_reply")
    for lead in ("ol@example.com", "pa@example.com"):
        found = get_lead(service, lead)
        assert found is not None
        [enrolment] = found["nurture"]["enrolments"]
        assert (enrolment["status"], enrolment["exit_reason"]) == ("exited", "event:email_reply")


def test_the_background_runner_rests_between_batches_to_keep_its_share(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While events arrive, between two full batches the runner rests (1 - share) / share
    times as long as the batch took, so it takes at most its share of the writer; while
    none arrive it goes on at once; a stop during a rest ends it."""

    def downloads(prefix: str) -> None:
        tracks = [
            Track(f"{prefix}{i}", "whitepaper_download", service.clock(), f"{prefix}{i}@ex.com")
            for i in range(45)
        ]
        ingest(service, tracks, [])

    downloads("p")
    settings = NurtureSettings(mailer=None, public_url=PUBLIC, batch=20, share=0.25)
    rests: list[float] = []
    quiet = Runner(service, settings)
    assert quiet.run_due(rest=lambda s: rests.append(s) or False) == 45
    assert rests == []  # no ingest meanwhile: full speed
    downloads("q")
    ticks = iter(range(0, 1000, 2))  # every batch "takes" 2 seconds by this clock

    def busy_timer() -> float:
        track(service, "busy@example.com", "page_view")  # ingest goes on meanwhile
        return float(next(ticks))

    paced = Runner(service, settings)
    paced.timer = busy_timer
    ran = paced.run_due(rest=lambda s: rests.append(s) or False)
    assert ran == 45 and rests == [6.0, 6.0]  # 2 s of work, then 6 s of rest: a quarter
    downloads("v")
    stopped = Runner(service, settings)
    stopped.timer = busy_timer
    assert stopped.run_due(rest=lambda s: True) == 20  # stopped in a rest
    monkeypatch.setenv(nurture.SHARE, "0")
    with pytest.raises(ValueError, match="PYROMETER_NURTURE_SHARE"):
        NurtureSettings.from_env()


def test_a_kill_mid_batch_sends_no_message_twice(
    service: Service, clock: Clock, smtp: tuple[str, Any]
) -> None:
    """Twelve e-mails go out, then the runner dies before the thirteenth, long before the
    batch's outcomes are recorded: after the lease, the other 18 go out and none of the
    twelve goes again."""
    url, inbox = smtp
    leads = [f"kb{i:02d}@example.com" for i in range(30)]
    for lead in leads:
        track(service, lead, "whitepaper_download")

    class Killed(BaseException):  # not an Exception: nothing records it, as with SIGKILL
        pass

    class DiesAtThe13th(SmtpMailer):
        sent = 0

        def send(self, message: Any, to: str) -> str:
            if self.sent == 12:
                raise Killed()
            self.sent += 1
            return super().send(message, to)

    dying = Runner(service, NurtureSettings(mailer=DiesAtThe13th(url), public_url=PUBLIC, lease=60))
    with pytest.raises(Killed):
        dying.run_due()
    assert len(inbox.messages) == 12
    restarted = runner(service, url, lease=60)
    clock.advance(61)
    restarted.run_due()
    received = sorted(message["To"] for message in inbox.messages)
    assert received == sorted(leads)  # each lead once: nobody twice, nobody left out
    with service.engine.connect() as conn:
        statuses = conn.execute(sa.select(nurture_steps.c.status)).scalars().all()
    assert sorted(statuses) == ["sent"] * 30
    for lead in leads[:3]:
        found = get_lead(service, lead)
        assert found is not None
        [enrolment] = found["nurture"]["enrolments"]
        # Moved on past the e-mail, the twelve included.
        assert enrolment["status"] != "active" or enrolment["next_step"] > 0
