"""The playbook's ``nurture:`` section: sequences, frequency caps and quiet hours (issue #17).

Validated on load like the rest of the playbook, so a bad sequence is refused by
``playbook check`` and on publish, with the field named. The decisions that use it (what
is due, when a lead may be e-mailed, when it leaves) are :mod:`pyrometer.nurture`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pyrometer.core.conditions import Condition, Where, normalize_name
from pyrometer.core.timeutil import parse_duration_us


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class OnTransition(_Strict):
    """A recorded move: ``{kind: temperature, from: warm, to: cold}``; ``from`` optional."""

    kind: str = "temperature"
    from_: str | None = Field(default=None, alias="from")
    to: str

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in ("temperature", "stage"):
            raise ValueError("kind is 'temperature' or 'stage'")
        return value


class LeadCondition(_Strict):
    """A standing condition on the lead as it is now, e.g. "cold and fit ≥ 5":
    ``{temperature: [cold], fit: {gte: 5}}``. ``temperature`` and ``stage``: any of them;
    ``fit``: a test on the lead's fit points; ``where``: on its attributes. All given
    must hold."""

    temperature: tuple[str, ...] = ()
    stage: tuple[str, ...] = ()
    fit: Condition | None = None
    where: Where | None = None

    @field_validator("fit", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {"gte": value}  # ``fit: 5`` is "fit of at least 5"
        return value


class Enrol(_Strict):
    """When a lead enters: on an event, on a transition, or while a standing
    ``condition`` on the lead holds (checked whenever the lead changes, and over every
    lead when the playbook is published); ``temperature`` and ``where`` (on the lead's
    attributes) narrow any of them, e.g. "cold and in Germany"."""

    event: str | None = None
    transition: OnTransition | None = None
    condition: LeadCondition | None = None
    temperature: tuple[str, ...] = ()
    where: Where | None = None

    @field_validator("event")
    @classmethod
    def _event(cls, value: str | None) -> str | None:
        return None if value is None else normalize_name(value)

    @model_validator(mode="after")
    def _one_trigger(self) -> Enrol:
        given = [self.event, self.transition, self.condition]
        if sum(v is not None for v in given) != 1:
            raise ValueError("give one of 'event', 'transition' or 'condition'")
        return self


class Email(_Strict):
    """An e-mail: Jinja2 templates (sandboxed) for the subject, text and HTML parts.

    ``subjects`` (two or more) runs a subject-line test: leads are split between them, and
    the step keeps the winner once a two-proportion test at 95% is clear after
    ``min_sends`` sends of each (:mod:`pyrometer.nurture.variants`)."""

    subject: str | None = None
    subjects: tuple[str, ...] = ()
    text: str
    html: str | None = None
    min_sends: int = Field(default=200, ge=10)

    @model_validator(mode="after")
    def _subject(self) -> Email:
        if (self.subject is None) == (not self.subjects):
            raise ValueError("give 'subject', or 'subjects' (two or more variants)")
        if self.subjects and len(self.subjects) < 2:
            raise ValueError("'subjects' needs two or more variants")
        _check_templates(self)
        return self

    @property
    def variants(self) -> tuple[str, ...]:
        return self.subjects or (self.subject or "",)


def _check_templates(email: Email) -> None:
    """Templates that do not parse are refused with the playbook (when Jinja2, of the
    ``service`` extra, is installed; it renders them)."""
    try:
        from jinja2 import TemplateSyntaxError
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:  # pragma: no cover - the core alone does not render e-mail
        return
    env = ImmutableSandboxedEnvironment()
    parts = [(f"subjects[{i}]", s) for i, s in enumerate(email.subjects)]
    parts += [("subject", email.subject), ("text", email.text), ("html", email.html)]
    for name, source in parts:
        if source is None:
            continue
        try:
            env.parse(source)
        except TemplateSyntaxError as exc:
            raise ValueError(
                f"{name}: template error on line {exc.lineno}: {exc.message}"
            ) from None


class Task(_Strict):
    """A to-do for the lead's owner (``call``), due ``due`` after the step runs; announced
    as the ``nurture.task`` webhook."""

    title: str
    due_us: int = Field(default=86_400_000_000, alias="due")

    @field_validator("due_us", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return parse_duration_us(value)


class Until(_Strict):
    """Wait until the lead does ``event`` (it moves on at once), at most ``timeout``; then
    ``on_timeout``: ``continue`` with the next step, or ``exit`` the sequence."""

    event: str
    timeout_us: int = Field(alias="timeout")
    on_timeout: str = "continue"

    @field_validator("event")
    @classmethod
    def _event(cls, value: str) -> str:
        return normalize_name(value)

    @field_validator("timeout_us", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return parse_duration_us(value)

    @field_validator("on_timeout")
    @classmethod
    def _then(cls, value: str) -> str:
        if value not in ("continue", "exit"):
            raise ValueError("on_timeout is 'continue' or 'exit'")
        return value


class Step(_Strict):
    """One step: exactly one of ``wait``, ``until``, ``email``, ``task``, ``webhook``,
    ``points`` or ``stage``.

    ``points`` names an event the playbook's engagement rules score, and ``stage`` a
    lifecycle event (``sales_accepted``...): the step records that event for the lead, so
    the points (added or removed) and the stage come from the playbook's one definition,
    as if the event had been tracked."""

    wait_us: int | None = Field(default=None, alias="wait")
    until: Until | None = None
    email: Email | None = None
    task: Task | None = None
    webhook: str | None = None
    points: str | None = None
    stage: str | None = None

    @field_validator("wait_us", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return None if value is None else parse_duration_us(value)

    @field_validator("points", "stage")
    @classmethod
    def _event(cls, value: str | None) -> str | None:
        return None if value is None else normalize_name(value)

    @model_validator(mode="after")
    def _exactly_one(self) -> Step:
        given = [self.wait_us, self.until, self.email, self.task, self.webhook]
        if sum(v is not None for v in [*given, self.points, self.stage]) != 1:
            raise ValueError(
                "a step is one of 'wait', 'until', 'email', 'task', 'webhook', 'points' or 'stage'"
            )
        return self

    @property
    def event(self) -> str | None:
        """The event a ``points`` or ``stage`` step records."""
        return self.points if self.points is not None else self.stage

    @property
    def kind(self) -> str:
        for name in ("until", "email", "task", "webhook", "points", "stage"):
            if getattr(self, name) is not None:
                return name
        return "wait"


def _sales_stages() -> tuple[str, ...]:
    return ("sql", "opportunity", "customer", "disqualified")


class Exit(_Strict):
    """When a lead leaves. The defaults encode the documents: a nurture sequence never keeps
    e-mailing a lead that sales now works (hot, routed; SQL and later) or that replied.
    Suppression, unsubscribe, bounce and complaint always end every sequence."""

    temperatures: tuple[str, ...] = ("hot",)
    stages: tuple[str, ...] = Field(default_factory=_sales_stages)
    events: tuple[str, ...] = ("email_reply",)

    @field_validator("events")
    @classmethod
    def _events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(normalize_name(v) for v in value)


class Sequence(_Strict):
    name: str = Field(min_length=1, max_length=80, pattern=r"^[a-z0-9_\-]+$")
    description: str | None = None
    enrol: Enrol
    reentry: bool = False
    steps: tuple[Step, ...] = Field(min_length=1)
    exit: Exit = Field(default_factory=Exit)


class Caps(_Strict):
    """At most ``per_day`` and ``per_week`` e-mails to one lead, across all sequences."""

    per_day: int | None = Field(default=1, ge=1)
    per_week: int | None = Field(default=2, ge=1)


class QuietHours(_Strict):
    """No e-mail between ``start`` and ``end`` (``"20:00"``–``"08:00"``) in the lead's time
    zone: the ``timezone`` attribute (IANA name), else ``default_timezone``."""

    start: str = "20:00"
    end: str = "08:00"
    timezone_attribute: str = "timezone"
    default_timezone: str = "UTC"

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        hours, _, minutes = value.partition(":")
        if not (hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60):
            raise ValueError(f"expected a time like '20:00', got {value!r}")
        return f"{int(hours):02d}:{int(minutes):02d}"

    @field_validator("default_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)
        except Exception as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    def minutes(self, text: str) -> int:
        hours, _, minutes = text.partition(":")
        return int(hours) * 60 + int(minutes)


class Nurture(_Strict):
    sequences: tuple[Sequence, ...] = ()
    caps: dict[str, Caps] = Field(default_factory=lambda: {"email": Caps()})
    quiet_hours: QuietHours | None = Field(default_factory=QuietHours)

    @model_validator(mode="after")
    def _unique(self) -> Nurture:
        seen: set[str] = set()
        for seq in self.sequences:
            if seq.name in seen:
                raise ValueError(f"sequences: name {seq.name!r} is used twice")
            seen.add(seq.name)
        return self

    def sequence(self, name: str) -> Sequence | None:
        return next((s for s in self.sequences if s.name == name), None)
