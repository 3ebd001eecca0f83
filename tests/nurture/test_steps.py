"""``points`` and ``stage`` steps in the playbook: what ``playbook check`` accepts and
refuses (naming the field), and where the decisions put them."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from pyrometer.core.nurture_spec import Step
from pyrometer.core.playbook import PlaybookError, default_playbook_text, parse_playbook
from pyrometer.nurture import plan
from pyrometer.nurture.consent import contact_refusal

SEQ = """  sequences:
    - name: extra
      enrol: {event: course_started}
      steps:
STEPS
"""


def book_with(steps: str) -> str:
    text = default_playbook_text()
    return text.replace("  sequences:\n", SEQ.replace("STEPS", steps), 1)


def test_points_and_stage_steps_name_events_the_playbook_reads() -> None:
    book = parse_playbook(
        book_with(
            "        - points: Email Link Clicked\n"  # an alias of a scored event
            "        - wait: 1d\n"
            "        - stage: sales_accepted"
        )
    )
    seq = book.nurture.sequence("extra")
    assert seq is not None
    assert [s.kind for s in seq.steps] == ["points", "wait", "stage"]
    assert seq.steps[0].event == "email_link_clicked"
    assert seq.steps[2].event == "sales_accepted"
    # Actions at once, the wait in between: the decisions treat them as any other action.
    assert plan.start(seq, 0) == plan.Position(0, 0)
    assert plan.after(seq, 0, 0) == plan.Position(2, 86_400_000_000)
    assert plan.after(seq, 2, 5) == plan.Position(None, None)


@pytest.mark.parametrize(
    ("step", "field", "says"),
    [
        ("points: nothing_scores_this", "steps[0].points", "no engagement rule scores"),
        ("stage: sql", "steps[0].stage", "not a lifecycle event"),
        ("stage: unsubscribe", "steps[0].stage", "not a lifecycle event"),
    ],
)
def test_playbook_check_refuses_a_step_event_nothing_reads(
    step: str, field: str, says: str
) -> None:
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(book_with(f"        - {step}"))
    text = str(caught.value)
    assert field in text and says in text and "extra" in text


def test_a_step_is_one_thing() -> None:
    with pytest.raises(ValidationError, match="'points' or 'stage'"):
        Step.model_validate({"points": "email_click", "stage": "won"})
    with pytest.raises(ValidationError):
        Step.model_validate({})


def test_a_manual_block_on_every_channel_refuses_tasks_and_email() -> None:
    blocks = {"*": "manual"}
    for channel in ("email", "any"):
        refusal = contact_refusal(
            channel, suppressed=False, consent=True, blocks=blocks, address="a@b.co"
        )
        assert refusal == "manual"
    email_only = {"email": "manual"}
    assert contact_refusal("any", suppressed=False, consent=True, blocks=email_only) is None


def test_until_waits_for_its_event_at_most_the_time_out() -> None:
    book = parse_playbook(
        book_with(
            "        - email: {subject: a, text: x}\n"
            "        - wait: 1d\n"
            "        - until: {event: Email Opened, timeout: 3d}\n"
            "        - until: {event: email_click, timeout: 1d, on_timeout: exit}\n"
            "        - task: {title: call}"
        )
    )
    seq = book.nurture.sequence("extra")
    assert seq is not None
    day = 86_400_000_000
    # After the e-mail: the day's wait, then it sits at the until step until its time-out.
    assert plan.after(seq, 0, 0) == plan.Position(2, 4 * day)
    assert plan.waiting_for(seq, 2) == "email_opened"
    assert book.event_name("email_opened") == "email_open"
    assert plan.on_event(seq, 2, "email_opened", 5) == plan.Position(3, 5 + day)
    assert plan.on_event(seq, 2, "email_click", 5) is None  # not what it waits for
    assert plan.on_event(seq, 0, "email_opened", 5) is None  # not at a waiting step
    assert plan.timed_out(seq, 2, 7) == plan.Position(3, 7 + day)
    assert plan.timed_out(seq, 3, 7) == "timeout:email_click"
    # Written back as it was read.
    again = parse_playbook(yaml.safe_dump(book.to_yaml_dict(), sort_keys=False))
    assert again.nurture.sequence("extra") == seq


@pytest.mark.parametrize(
    ("until", "says"),
    [
        ("{event: email_open}", "timeout"),
        ("{event: email_open, timeout: 1d, on_timeout: stop}", "on_timeout"),
        ("{event: email_open, timeout: soon}", "timeout"),
    ],
)
def test_playbook_check_names_a_bad_until_field(until: str, says: str) -> None:
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(book_with(f"        - until: {until}"))
    assert f"steps[0].until.{says}" in str(caught.value)
