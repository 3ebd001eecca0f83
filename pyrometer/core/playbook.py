"""The playbook: a team's scoring policy in one YAML file, validated on load.

Everything the engines do is driven by a :class:`Playbook`; nothing about points, decay,
thresholds or stages is hard-coded elsewhere. The default playbook
(``pyrometer/playbooks/default.yaml``) encodes the source documents' numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from enum import StrEnum
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pyrometer.core.conditions import DEFAULT_MISSING_VALUES, Condition, Where, normalize_name
from pyrometer.core.nurture_spec import Nurture
from pyrometer.core.timeutil import format_duration_us, parse_duration_us
from pyrometer.core.vocabulary import Aliases, flatten_record


class Stage(StrEnum):
    """Lifecycle stages, in the order a lead normally moves through them."""

    LEAD = "lead"
    MQL = "mql"
    SQL = "sql"
    OPPORTUNITY = "opportunity"
    CUSTOMER = "customer"
    DISQUALIFIED = "disqualified"


class Temperature(StrEnum):
    COLD = "cold"
    WARM = "warm"
    HOT = "hot"


class Metric(StrEnum):
    """What lifecycle conditions may test: the two axes and their sum."""

    SCORE = "score"
    FIT = "fit"
    ENGAGEMENT = "engagement"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _duration(value: Any) -> int:
    return parse_duration_us(value)


def _event_name(value: str) -> str:
    name = normalize_name(value)
    if not name:
        raise ValueError("an event name needs at least one letter or digit")
    return name


class Alternative(_Strict):
    """One way an event can match a rule: its name and, optionally, conditions on properties."""

    event: str
    where: Where = Field(default_factory=Where)

    @field_validator("event")
    @classmethod
    def _normalize(cls, value: str) -> str:
        return _event_name(value)


class Cap(_Strict):
    """The most points (in absolute value) a rule may give one lead per window."""

    points: float = Field(gt=0)
    per_us: int | None = Field(default=None, alias="per")

    @field_validator("per_us", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in {"ever", "lead"}):
            return None
        return _duration(value)


class EngagementRule(_Strict):
    """Points for an event (what the lead did); they fade with the playbook's half-life."""

    name: str
    points: float
    why: str | None = None
    event: str | None = None
    where: Where | None = None
    match: tuple[Alternative, ...] | None = None
    once: bool = False
    cap: Cap | None = None

    @field_validator("points")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("points must be a finite number")
        return value

    @field_validator("event")
    @classmethod
    def _normal_event(cls, value: str | None) -> str | None:
        """Kept as matched (``Demo Request`` is ``demo_request``), as in ``match``."""
        return None if value is None else _event_name(value)

    @model_validator(mode="after")
    def _one_way_to_match(self) -> EngagementRule:
        if (self.event is None) == (self.match is None):
            raise ValueError("give either 'event' (with optional 'where') or 'match', not both")
        if self.where is not None and self.event is None:
            raise ValueError("'where' goes with 'event'; inside 'match' each entry has its own")
        if self.match is not None and not self.match:
            raise ValueError("'match' needs at least one entry")
        if self.once and self.cap is not None:
            raise ValueError("'once' and 'cap' cannot both be set: once is a cap of one event")
        return self

    @cached_property
    def alternatives(self) -> tuple[Alternative, ...]:
        if self.match is not None:
            return self.match
        assert self.event is not None
        return (Alternative(event=self.event, where=self.where or Where()),)

    @cached_property
    def limited(self) -> bool:
        return self.once or self.cap is not None

    @cached_property
    def cap_points(self) -> float:
        """Absolute points this rule may give per window (``once`` gives one event's worth)."""
        if self.cap is not None:
            return self.cap.points
        return abs(self.points) if self.once else math.inf

    @cached_property
    def window_us(self) -> int | None:
        """Cap window length; ``None`` is the lead's whole life."""
        return self.cap.per_us if self.cap is not None else None

    @cached_property
    def slots(self) -> int:
        """How many events of one window can get points: the rest of the window gets 0."""
        if not self.limited:
            return 0
        if self.points == 0:
            return 1
        return max(1, math.ceil(self.cap_points / abs(self.points) - 1e-12))

    def points_at_rank(self, rank: int) -> float:
        """Points the ``rank``-th (0-based, in time order) event of a window gets."""
        if not self.limited:
            return self.points
        size = abs(self.points)
        given = max(0.0, min(size, self.cap_points - rank * size))
        return math.copysign(given, self.points) if given else 0.0


class FitRule(_Strict):
    """Points for who the lead is; fit does not fade."""

    name: str
    points: float
    where: Where
    why: str | None = None


class Decay(_Strict):
    """Engagement halves every ``half_life``, counted in whole ``step``s.

    With ``step: 1d`` points keep their full value on the UTC day they were earned and fade
    from the next day on, so temperature changes by decay at most once a day.
    """

    half_life_us: int = Field(alias="half_life")
    step_us: int = Field(default=86_400_000_000, alias="step")

    @field_validator("half_life_us", "step_us", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return _duration(value)

    @model_validator(mode="after")
    def _step_fits(self) -> Decay:
        if self.step_us > self.half_life_us:
            raise ValueError("step must not be longer than half_life")
        return self

    @cached_property
    def half_life_steps(self) -> float:
        return self.half_life_us / self.step_us

    def step_of(self, ts_us: int) -> int:
        """The decay clock: which step a timestamp falls in."""
        return ts_us // self.step_us

    def factor(self, steps: int | float) -> float:
        """How much of a point is left after ``steps`` steps."""
        return 2.0 ** (-steps / self.half_life_steps)


class ProbabilityBands(_Strict):
    """Temperature by predicted probability of converting (``pyrometer score --model``)."""

    hot: float = Field(gt=0, le=1)
    warm: float = Field(ge=0, lt=1)

    @model_validator(mode="after")
    def _ordered(self) -> ProbabilityBands:
        if not self.warm < self.hot:
            raise ValueError(f"warm ({self.warm}) must be below hot ({self.hot})")
        return self


class Thresholds(_Strict):
    """Temperature by total score: ``hot`` at or above ``hot``, ``warm`` at or above ``warm``.

    With ``probability`` bands and a model, the temperature follows ``p_convert`` instead.
    """

    hot: float
    warm: float
    probability: ProbabilityBands | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if not self.warm < self.hot:
            raise ValueError(f"warm ({self.warm}) must be below hot ({self.hot})")
        return self


DEFAULT_FUNNEL: dict[Stage, str] = {
    Stage.LEAD: "tofu",
    Stage.MQL: "mofu",
    Stage.SQL: "bofu",
    Stage.OPPORTUNITY: "bofu",
    Stage.CUSTOMER: "customer",
    Stage.DISQUALIFIED: "none",
}


Bound = float | None
ScoreBounds = tuple[Metric, Bound, Bound, Bound, Bound]  # metric, gt, gte, lt, lte


class Lifecycle(_Strict):
    """Stages: ``mql`` from scores; sales stages from explicit events; funnel from stage."""

    mql: dict[Metric, Condition]
    events: dict[str, Stage]
    funnel: dict[Stage, str] = Field(default_factory=lambda: dict(DEFAULT_FUNNEL))

    @field_validator("events")
    @classmethod
    def _normalize(cls, value: dict[str, Stage]) -> dict[str, Stage]:
        return {normalize_name(name): stage for name, stage in value.items()}

    @field_validator("mql")
    @classmethod
    def _numeric_only(cls, value: dict[Metric, Condition]) -> dict[Metric, Condition]:
        allowed = {"gt", "gte", "lt", "lte"}
        for metric, cond in value.items():
            extra = set(cond.tests()) - allowed
            if extra:
                raise ValueError(f"{metric}: only gt, gte, lt, lte apply to scores, not {extra}")
        return value

    @field_validator("funnel")
    @classmethod
    def _complete(cls, value: dict[Stage, str]) -> dict[Stage, str]:
        return {**DEFAULT_FUNNEL, **value}

    @cached_property
    def mql_bounds(self) -> tuple[ScoreBounds, ...]:
        """``mql`` as ``(metric, gt, gte, lt, lte)`` rows: classifying is the incremental
        scorer's inner loop, and reading the conditions' fields each time cost more than
        the comparisons."""
        return tuple((m, c.gt, c.gte, c.lt, c.lte) for m, c in self.mql.items())


class Suppression(_Strict):
    """What makes a lead do-not-contact: an event it sent, or an attribute it has."""

    events: tuple[str, ...] = ()
    attributes: tuple[Where, ...] = ()

    @field_validator("events")
    @classmethod
    def _normalize(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(normalize_name(name) for name in value)


class OnBreach(StrEnum):
    """What happens when a routed lead is not touched within the SLA."""

    NOTIFY = "notify"
    REASSIGN = "reassign"


class RouteWhen(_Strict):
    """One transition that routes a lead: ``{temperature: hot}`` or ``{stage: sql}``.

    One key per entry, so a list reads as "any of these", the way a sales manager says it.
    """

    temperature: Temperature | None = None
    stage: Stage | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> RouteWhen:
        if (self.temperature is None) == (self.stage is None):
            raise ValueError("give one of 'temperature' or 'stage', e.g. {temperature: hot}")
        return self


def _default_when() -> tuple[RouteWhen, ...]:
    return (RouteWhen(temperature=Temperature.HOT), RouteWhen(stage=Stage.SQL))


class Routing(_Strict):
    """Who gets a lead when it turns hot, and how fast they must answer (issue #12).

    The defaults are the documents' (DOMAIN.md): a hot lead is assigned to a rep at once,
    work is spread evenly, answered within 5 minutes; 30 leads per 30 days is Odoo's
    default capacity. The decisions themselves live in :mod:`pyrometer.routing`.
    """

    when: tuple[RouteWhen, ...] = Field(default_factory=_default_when)
    sla_us: int = Field(default=300_000_000, alias="sla")
    sla_working_hours: bool = False
    on_breach: OnBreach = OnBreach.NOTIFY
    capacity_window_us: int = Field(default=30 * 86_400_000_000, alias="capacity_window")
    default_capacity: int = Field(default=30, ge=1)

    @field_validator("sla_us", "capacity_window_us", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return _duration(value)


DAY_US = 86_400_000_000


class Models(_Strict):
    """How the service learns a conversion model from its own outcomes (issue #14).

    A lead that reached ``customer`` is a positive; one ``disqualified``, or that received
    one of ``lost_events``, or stayed open longer than ``horizon``, is a negative. Its
    features are its attributes and its events as of ``cutoff``: its first N days
    (``cutoff: 7d``) or the moment it turned MQL (``cutoff: mql``); leads decided before
    their cut-off are left out. ``retrain`` (off unless set) retrains on that schedule once at least
    ``min_new_outcomes`` outcomes are new since the last model; a new model replaces the
    active one only with ``auto_activate`` and only if it is at least as good on the same
    recent outcomes.
    """

    horizon_us: int = Field(default=90 * DAY_US, alias="horizon")
    cutoff: str = "7d"
    retrain_us: int | None = Field(default=None, alias="retrain")
    min_new_outcomes: int = Field(default=50, ge=1)
    auto_activate: bool = False
    lost_events: tuple[str, ...] = ("lost",)
    holdout: float = Field(default=0.2, gt=0, lt=0.5)

    @field_validator("horizon_us", "retrain_us", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return None if value is None else _duration(value)

    @field_validator("cutoff")
    @classmethod
    def _cutoff(cls, value: str) -> str:
        if value.strip().lower() == "mql":
            return "mql"
        _duration(value)
        return value.strip()

    @field_validator("lost_events")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_event_name(v) for v in value)

    @property
    def cutoff_us(self) -> int | None:
        """The first-N-days window, or ``None`` when the cut-off is the MQL moment."""
        return None if self.cutoff == "mql" else _duration(self.cutoff)


class Playbook(_Strict):
    """A team's whole scoring policy."""

    name: str = "playbook"
    description: str | None = None
    decay: Decay
    missing_values: tuple[str, ...] = DEFAULT_MISSING_VALUES
    engagement: tuple[EngagementRule, ...]
    fit: tuple[FitRule, ...] = ()
    temperature: Thresholds
    lifecycle: Lifecycle
    suppression: Suppression = Field(default_factory=Suppression)
    aliases: Aliases = Field(default_factory=Aliases)
    routing: Routing = Field(default_factory=Routing)
    nurture: Nurture = Field(default_factory=Nurture)
    models: Models = Field(default_factory=Models)

    @field_validator("missing_values")
    @classmethod
    def _lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(item.strip(" ").lower() for item in value)

    @model_validator(mode="after")
    def _unique_names(self) -> Playbook:
        for section, rules in (("engagement", self.engagement), ("fit", self.fit)):
            seen: set[str] = set()
            for rule in rules:
                if rule.name in seen:
                    raise ValueError(f"{section}: rule name {rule.name!r} is used twice")
                seen.add(rule.name)
        return self

    @model_validator(mode="after")
    def _aliases_are_other_names(self) -> Playbook:
        used = self.own_events
        for alias, name in self.aliases.event_map.items():
            if alias in used:
                raise ValueError(
                    f"aliases.events: {alias!r} is named by the playbook's own rules, so it "
                    f"cannot also be another name for {name!r}"
                )
        return self

    @model_validator(mode="after")
    def _nurture_events_mean_something(self) -> Playbook:
        """A ``points`` step names an event the engagement rules score, a ``stage`` step a
        lifecycle event: a step that records an event nothing reads is a mistake."""
        scored = {alt.event for rule in self.engagement for alt in rule.alternatives}
        for s, seq in enumerate(self.nurture.sequences):
            for i, step in enumerate(seq.steps):
                where = f"nurture.sequences[{s}] ({seq.name}).steps[{i}]"
                if step.points is not None and self.event_name(step.points) not in scored:
                    raise ValueError(
                        f"{where}.points: no engagement rule scores the event {step.points!r}"
                    )
                if step.stage is not None and self.stage_event(step.stage) is None:
                    raise ValueError(
                        f"{where}.stage: {step.stage!r} is not a lifecycle event "
                        f"(the playbook has: {', '.join(sorted(self.lifecycle.events))})"
                    )
        return self

    @cached_property
    def own_events(self) -> frozenset[str]:
        """The event names rules, lifecycle and suppression name (aliases not included)."""
        names = {alt.event for rule in self.engagement for alt in rule.alternatives}
        return frozenset(names | set(self.lifecycle.events) | set(self.suppression.events))

    @cached_property
    def known_events(self) -> frozenset[str]:
        """Every event name the playbook gives meaning to, aliases included: an event with
        another name earns nothing and moves nothing (``--strict`` refuses it)."""
        own = self.own_events
        return own | {alias for alias, name in self.aliases.event_map.items() if name in own}

    def event_name(self, name: str) -> str:
        """What a normalised event name means here: the name its alias stands for, or itself.

        Every engine matches events through this (or the lookups below, which include the
        aliases), so ``Order Completed`` is a purchase in all of them.
        """
        return self.aliases.event_map.get(name, name)

    @cached_property
    def _stage_events(self) -> dict[str, Stage]:
        stages = dict(self.lifecycle.events)
        for alias, name in self.aliases.event_map.items():
            if name in stages:
                stages[alias] = stages[name]
        return stages

    @cached_property
    def _suppressing_events(self) -> frozenset[str]:
        return frozenset(
            name for name in self.known_events if self.event_name(name) in self.suppression.events
        )

    def stage_event(self, name: str) -> Stage | None:
        """The stage a (normalised) event name moves a lead to, if it is a lifecycle event."""
        return self._stage_events.get(name)

    def suppresses(self, name: str) -> bool:
        """Whether a (normalised) event name makes the lead do-not-contact."""
        return name in self._suppressing_events

    def lead_attributes(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """A lead's attributes as the rules read them: names normalised, nested objects
        flattened (``company.industry`` → ``company_industry``), aliases resolved."""
        return self.aliases.resolve_attributes(flatten_record(record))

    @cached_property
    def _rules_by_event(self) -> dict[str, tuple[tuple[EngagementRule, tuple[Where, ...]], ...]]:
        index: dict[str, list[tuple[EngagementRule, tuple[Where, ...]]]] = {}
        for rule in self.engagement:
            by_name: dict[str, list[Where]] = {}
            for alt in rule.alternatives:
                by_name.setdefault(alt.event, []).append(alt.where)
            for name, wheres in by_name.items():
                index.setdefault(name, []).append((rule, tuple(wheres)))
        for alias, name in self.aliases.event_map.items():
            if name in index:
                index[alias] = index[name]
        return {name: tuple(rules) for name, rules in index.items()}

    @cached_property
    def _missing_set(self) -> frozenset[str]:
        return frozenset(self.missing_values)

    def rules_matching(
        self, event_name: str, properties: Mapping[str, Any]
    ) -> list[EngagementRule]:
        """The engagement rules an event (normalised name and properties) earns points from.

        A rule counts once per event even when several of its ``match`` entries fit; an
        alias earns what the name it stands for earns.
        """
        return [
            rule
            for rule, wheres in self._rules_by_event.get(event_name, ())
            if any(where.matches(properties, self._missing_set) for where in wheres)
        ]

    def to_yaml_dict(self) -> dict[str, Any]:
        """A plain structure that :func:`parse_playbook` reads back to an equal playbook."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        data["decay"] = {
            "half_life": format_duration_us(self.decay.half_life_us),
            "step": format_duration_us(self.decay.step_us),
        }
        for rule, dumped in zip(self.engagement, data["engagement"], strict=True):
            if rule.cap is not None:
                per = rule.cap.per_us
                dumped["cap"] = {
                    "points": rule.cap.points,
                    "per": format_duration_us(per) if per else "ever",
                }
        data["routing"]["sla"] = format_duration_us(self.routing.sla_us)
        data["routing"]["capacity_window"] = format_duration_us(self.routing.capacity_window_us)
        for seq, dumped in zip(self.nurture.sequences, data["nurture"]["sequences"], strict=True):
            for step, out in zip(seq.steps, dumped["steps"], strict=True):
                if step.wait_us is not None:
                    out["wait"] = format_duration_us(step.wait_us)
                if step.task is not None:
                    out["task"]["due"] = format_duration_us(step.task.due_us)
                if step.until is not None:
                    out["until"]["timeout"] = format_duration_us(step.until.timeout_us)
        data["models"]["horizon"] = format_duration_us(self.models.horizon_us)
        if self.models.retrain_us is not None:
            data["models"]["retrain"] = format_duration_us(self.models.retrain_us)
        return _unwrap_where(data)


def _unwrap_where(data: Any) -> Any:
    if isinstance(data, dict):
        if set(data) == {"fields"}:
            return _unwrap_where(data["fields"])
        return {key: _unwrap_where(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_unwrap_where(item) for item in data]
    return data


class PlaybookError(ValueError):
    """A playbook that cannot be used; ``problems`` are ``(path, message)`` pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        lines = [
            f"{source}: {path}: {message}" if path else f"{source}: {message}"
            for path, message in problems
        ]
        super().__init__("\n".join(lines))


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only ``true`` and ``false``.

    PyYAML follows YAML 1.1, where ``NO``, ``yes``, ``on`` and ``off`` are booleans too, so
    ``{country: NO}`` (Norway) would silently mean ``equals: false``.
    """


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def parse_playbook(text: str, source: str = "<playbook>") -> Playbook:
    """Parse and validate playbook YAML; errors name ``source``, the path and the line."""
    try:
        node = yaml.compose(text, Loader=_Yaml12Loader)
        data = yaml.load(text, Loader=_Yaml12Loader)  # a SafeLoader subclass: safe
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise PlaybookError(source, [(where, f"not valid YAML: {exc}")]) from None
    if not isinstance(data, dict):
        raise PlaybookError(source, [("", "a playbook must be a mapping of sections")])
    duplicates = _duplicate_names(data, node)
    try:
        book = Playbook.model_validate(data)
    except ValidationError as exc:
        problems = list(duplicates)
        for error in exc.errors():
            if duplicates and _DUPLICATE in error["msg"]:
                continue  # already named above, at the duplicate's line
            loc = [part for part in error["loc"] if part not in ("fields",)]
            path = _format_loc(loc)
            line = _line_of(node, loc)
            if line is not None:
                path = f"{path} (line {line})" if path else f"line {line}"
            message = error["msg"].removeprefix("Value error, ")
            problems.append((path, message))
        raise PlaybookError(source, problems) from None
    if duplicates:
        raise PlaybookError(source, duplicates)
    return book


_DUPLICATE = "is used twice"


def _duplicate_names(data: Mapping[str, Any], node: yaml.Node | None) -> list[tuple[str, str]]:
    """Each rule whose name an earlier rule of its section already has, at its own line
    (the model's check cannot say where: it sees the parsed rules, not the file)."""
    problems = []
    for section in ("engagement", "fit"):
        rules = data.get(section)
        if not isinstance(rules, list):
            continue
        first: dict[str, int] = {}
        for i, rule in enumerate(rules):
            name = rule.get("name") if isinstance(rule, dict) else None
            if not isinstance(name, str):
                continue
            if name not in first:
                first[name] = i
                continue
            loc: list[Any] = [section, i, "name"]
            line = _line_of(node, loc)
            earlier = _line_of(node, [section, first[name], "name"])
            path = _format_loc(loc) + (f" (line {line})" if line is not None else "")
            where = f" (first at line {earlier})" if earlier is not None else ""
            problems.append((path, f"rule name {name!r} {_DUPLICATE}{where}"))
    return problems


def load_playbook(path: str | Path | None = None) -> Playbook:
    """The playbook in ``path``, or the default one shipped with Pyrometer."""
    if path is None:
        return default_playbook()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlaybookError(str(file), [("", f"cannot read: {exc.strerror or exc}")]) from None
    return parse_playbook(text, source=str(file))


def default_playbook_text() -> str:
    return resources.files("pyrometer.playbooks").joinpath("default.yaml").read_text("utf-8")


def default_playbook() -> Playbook:
    return parse_playbook(default_playbook_text(), source="default playbook")


_ALIASES = {
    "per_us": "per",
    "half_life_us": "half_life",
    "step_us": "step",
    "sla_us": "sla",
    "capacity_window_us": "capacity_window",
    "in_": "in",
    "not_": "not",
}


def _format_loc(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = _ALIASES.get(str(part), str(part))
            out += f".{name}" if out else name
    return out


def _line_of(node: yaml.Node | None, loc: list[Any]) -> int | None:
    """The 1-based line of the deepest YAML node ``loc`` reaches."""
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            key = _ALIASES.get(str(part), str(part))
            node = next(
                (v for k, v in node.value if k.value == key or normalize_name(str(k.value)) == key),
                None,
            )
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
        else:
            node = None
    if node is not None:
        line = node.start_mark.line + 1
    return line
