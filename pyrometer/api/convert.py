"""Segment messages → the service's :class:`Track` and :class:`Identify` inputs.

Checks that need more than one field or the clock happen here and raise
:class:`FieldErrors`, which the app answers like FastAPI's own validation errors (422,
each with ``loc`` and ``msg``), so a batch with one bad message is rejected whole.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pyrometer.api.schemas import AliasIn, IdentifyIn, OtherIn, PageIn, TrackIn
from pyrometer.core.conditions import normalize_name, normalize_record
from pyrometer.core.timeutil import to_us
from pyrometer.service.inputs import Identify, Track

FUTURE_SLACK_US = 24 * 3600 * 1_000_000  # clocks drift; a day ahead is a bug, not drift
_NAMES: dict[str, str] = {}  # normalize_name's answers: event and property names repeat


def _name(name: str) -> str:
    found = _NAMES.get(name)
    if found is None:
        found = normalize_name(name)
        if len(_NAMES) >= 10_000:
            _NAMES.clear()
        _NAMES[name] = found
    return found


def _record(record: dict[str, Any]) -> dict[str, Any]:
    """``normalize_record`` with the names' normal forms remembered."""
    return {_name(str(key)): value for key, value in record.items()}


Loc = tuple[str | int, ...]


class FieldErrors(ValueError):
    def __init__(self, errors: list[dict[str, Any]]):
        self.errors = errors
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))


_TIME_FIELDS = ("timestamp", "originalTimestamp", "sentAt", "receivedAt")  # first set wins


def _time(message: TrackIn | PageIn | IdentifyIn, now_us: int, loc: Loc) -> int:
    when: datetime | None = message.when
    if when is None:
        return now_us
    ts = to_us(when)
    if ts > now_us + FUTURE_SLACK_US:
        field = next(name for name in _TIME_FIELDS if getattr(message, name) is not None)
        raise FieldErrors(
            [
                {
                    "loc": [*loc, field],  # the field the time came from
                    "msg": "is more than a day in the future",
                    "type": "value_error",
                }
            ]
        )
    return ts


def _message_id(message: TrackIn | PageIn | IdentifyIn) -> str:
    # Segment's libraries always send one; without it the message cannot be deduplicated.
    return message.messageId or f"gen-{uuid.uuid4().hex}"


def to_track(message: TrackIn | PageIn, now_us: int, loc: Loc = ("body",)) -> Track:
    properties = _record(message.properties)
    if isinstance(message, PageIn):
        name = "page_view"
        if "url" not in properties and message.context:
            page = message.context.get("page")
            if isinstance(page, dict) and isinstance(page.get("url"), str):
                properties["url"] = page["url"]
        if message.name and "name" not in properties:
            properties["name"] = message.name
    else:
        name = _name(message.event)
        if not name:
            raise FieldErrors(
                [
                    {
                        "loc": [*loc, "event"],
                        "msg": "needs at least one letter or digit",
                        "type": "value_error",
                    }
                ]
            )
    return Track(
        message_id=_message_id(message),
        name=name,
        ts_us=_time(message, now_us, loc),
        user_id=message.userId,
        anonymous_id=message.anonymousId,
        properties=properties,
    )


def to_identify(message: IdentifyIn, now_us: int, loc: Loc = ("body",)) -> Identify:
    user = message.userId or message.anonymousId
    assert user is not None  # the schema requires one of them
    return Identify(
        message_id=_message_id(message),
        user_id=user,
        ts_us=_time(message, now_us, loc),
        anonymous_id=message.anonymousId if message.userId else None,
        traits=normalize_record(message.traits),
        anonymous=message.userId is None,
    )


def alias_to_identify(message: AliasIn, now_us: int) -> Identify:
    """An alias links the earlier id to the lead exactly as identify's ``anonymousId`` does
    (its time is not used: a link holds for all of the visitor's events)."""
    return Identify(
        message_id=message.messageId or f"gen-{uuid.uuid4().hex}",
        user_id=message.userId,
        ts_us=now_us,
        anonymous_id=message.previousId,
    )


def split_batch(
    items: Sequence[TrackIn | PageIn | IdentifyIn | AliasIn | OtherIn], now_us: int
) -> tuple[list[Track], list[Identify]]:
    """Every message converted, or :class:`FieldErrors` listing all that are wrong."""
    tracks: list[Track] = []
    identifies: list[Identify] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        loc: Loc = ("body", "batch", index)
        try:
            if isinstance(item, IdentifyIn):
                identifies.append(to_identify(item, now_us, loc))
            elif isinstance(item, AliasIn):
                identifies.append(alias_to_identify(item, now_us))
            elif isinstance(item, TrackIn | PageIn):
                tracks.append(to_track(item, now_us, loc))
        except FieldErrors as exc:
            errors.extend(exc.errors)
    if errors:
        raise FieldErrors(errors)
    return tracks, identifies
