"""What ``playbook check`` says beyond errors: names no vocabulary knows, unknown events.

A rule on ``pgae_view`` is valid YAML and a valid playbook, and silently never earns a
point. Errors stop a playbook; these are warnings, with the path, the line and the nearest
known name, so a team sees a typo before it costs a quarter of scores. The same counting
reports events in data that no rule knows (``score``, ``playbook check --events``, the
service's ``/v1/reports/unknown-events``), so an unmapped event is never silently worth 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from functools import cache

import yaml

from pyrometer.core.conditions import normalize_name
from pyrometer.core.playbook import (
    Playbook,
    _line_of,
    _Yaml12Loader,
    default_playbook,
    parse_playbook,
)
from pyrometer.core.vocabulary import SEGMENT_SPEC_EVENTS, nearest

Problem = tuple[str, str]  # (path with its line, message), as PlaybookError's problems


@cache
def _standard_vocabulary() -> frozenset[str]:
    """The default playbook's events (rules, lifecycle, suppression, aliases) and
    Segment's B2B SaaS, e-commerce and e-mail spec names."""
    book = default_playbook()
    return book.own_events | book.aliases.named_events() | SEGMENT_SPEC_EVENTS


def known_vocabulary(book: Playbook) -> frozenset[str]:
    """Every event name a rule may sensibly name: the standard vocabulary plus the
    events named in this playbook's ``aliases`` (where a team declares its own)."""
    return _standard_vocabulary() | book.aliases.named_events()


def _rule_events(book: Playbook) -> Iterable[tuple[list[str | int], str]]:
    """``(location in the YAML, normalised event name)`` of every event the playbook names."""
    for i, rule in enumerate(book.engagement):
        if rule.event is not None:
            yield ["engagement", i, "event"], rule.alternatives[0].event
        else:
            for j, alt in enumerate(rule.alternatives):
                yield ["engagement", i, "match", j, "event"], alt.event
    for name in book.lifecycle.events:
        yield ["lifecycle", "events", name], name
    for k, name in enumerate(book.suppression.events):
        yield ["suppression", "events", k], name


def _path(node: yaml.Node | None, loc: list[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    line = _line_of(node, loc)
    return f"{text} (line {line})" if line is not None else text


def vocabulary_warnings(book: Playbook, text: str | None = None) -> list[Problem]:
    """Events the playbook names that no vocabulary knows (probable typos), and aliases
    given for an event nothing in the playbook uses. ``text``: the YAML, for lines."""
    node = yaml.compose(text, Loader=_Yaml12Loader) if text is not None else None
    known = known_vocabulary(book)
    warnings: list[Problem] = []
    for loc, name in _rule_events(book):
        if name in known:
            continue
        guess = nearest(name, known)
        hint = f"; did you mean {guess!r}?" if guess else ""
        warnings.append(
            (
                _path(node, loc),
                f"event {name!r} is in no vocabulary (the default playbook's, Segment's "
                f"specs' or this playbook's aliases){hint} Declare it under aliases.events "
                "if it is meant.",
            )
        )
    for name, others in book.aliases.events.items():
        if others and name not in book.own_events:
            warnings.append(
                (
                    _path(node, ["aliases", "events", name]),
                    f"no rule, lifecycle or suppression event is {name!r}: "
                    "its aliases mean nothing",
                )
            )
    return warnings


def check_playbook(text: str, source: str) -> tuple[Playbook, list[Problem]]:
    """Parse (errors raise :class:`PlaybookError`) and list the warnings."""
    book = parse_playbook(text, source=source)
    return book, vocabulary_warnings(book, text)


def unknown_events(book: Playbook, counts: Mapping[str | None, int]) -> Counter[str]:
    """Events per normalised name that the playbook gives no meaning to (no rule, stage or
    suppression, directly or by an alias), from counts per name as spelled in the data."""
    out: Counter[str] = Counter()
    known = book.known_events
    for raw, count in counts.items():
        if raw is None:
            continue
        name = normalize_name(raw)
        if name and name not in known:
            out[name] += count
    return out


def describe_unknown(counts: Counter[str], shown: int = 5) -> str:
    """``12 (pgae_view 10, foo 2)``: the total, then the most frequent names."""
    top = ", ".join(f"{name} {n}" for name, n in counts.most_common(shown))
    more = f", {len(counts) - shown} more names" if len(counts) > shown else ""
    return f"{sum(counts.values())} ({top}{more})"
