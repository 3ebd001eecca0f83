"""The lead list's filters as SQL conditions, the same on SQLite and PostgreSQL.

``q`` searches the lead id and the attributes' *values* (a key such as ``email`` is no
match), case-insensitively and in any Unicode normalisation form: both sides are
normalised to NFC and lower-cased (:func:`fold`; on SQLite by the ``pyro_fold`` function
the store registers on each connection, on PostgreSQL by ``normalize`` and ``lower``).

``suppressed`` is read from the scoring state (do-not-contact by an attribute or a
suppression event); ``open`` is what sales should still call: not a customer, not
disqualified, not suppressed.
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING

import sqlalchemy as sa

from pyrometer.core.playbook import Playbook, Stage
from pyrometer.store.tables import leads

if TYPE_CHECKING:
    from pyrometer.service.reads import LeadQuery

CLOSED_STAGES = (Stage.CUSTOMER.value, Stage.DISQUALIFIED.value)


class BadFilter(ValueError):
    """A filter value the playbook does not know (``field`` names the parameter)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def fold(text: str) -> str:
    """Text as ``q`` compares it: NFC, lower case (SQLite's ``pyro_fold``)."""
    return unicodedata.normalize("NFC", text).lower()


def lead_filters(book: Playbook, query: LeadQuery, dialect: str) -> list[sa.ColumnElement[bool]]:
    """The WHERE conditions of ``query`` (scores aside: they need the read time)."""
    out: list[sa.ColumnElement[bool]] = []
    for column, values in (
        (leads.c.temperature, query.temperature),
        (leads.c.stage, query.stage),
        (leads.c.owner, query.owner),
        (leads.c.source, query.source),
    ):
        if values:
            out.append(column.in_(sorted(set(values))))
    if query.funnel:
        known = set(book.lifecycle.funnel.values())
        unknown = sorted(set(query.funnel) - known)
        if unknown:
            raise BadFilter(
                "funnel",
                f"the playbook has no funnel stage {unknown[0]!r} "
                f"(it has: {', '.join(sorted(known))})",
            )
        stages = [str(s) for s, f in book.lifecycle.funnel.items() if f in query.funnel]
        out.append(leads.c.stage.in_(sorted(stages)))
    if query.suppressed is not None:
        out.append(suppressed_sql() if query.suppressed else sa.not_(suppressed_sql()))
    if query.open is not None:
        is_open = sa.and_(leads.c.stage.not_in(CLOSED_STAGES), sa.not_(suppressed_sql()))
        out.append(is_open if query.open else sa.not_(is_open))
    if query.q:
        out.append(search_sql(query.q, dialect))
    return out


def suppressed_sql() -> sa.ColumnElement[bool]:
    """Whether the lead is do-not-contact, from its stored scoring state."""
    state = leads.c.state
    return sa.or_(
        sa.func.coalesce(state["suppressed_by_attributes"].as_boolean(), sa.false()),
        state["suppressed_at_us"].as_string().is_not(None),
    )


def _like_pattern(text: str) -> str:
    escaped = fold(text).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# PostgreSQL cannot turn a JSON text with an escaped NUL or unpaired surrogate into
# values (an older version may have stored one: the input refuses them now), and one
# such row must not break every search: its raw text is searched instead.
_PG_UNREADABLE = "attributes::text ~ '\\\\u(0000|[dD][89abAB])'"
_VALUE_MATCH = {
    "sqlite": "EXISTS (SELECT 1 FROM json_tree(leads.attributes) AS t WHERE t.atom IS NOT NULL "
    "AND pyro_fold(CAST(t.atom AS BLOB)) LIKE :q_pattern ESCAPE '\\')",
    "postgresql": f"CASE WHEN {_PG_UNREADABLE} "
    "THEN lower(attributes::text) LIKE :q_pattern ESCAPE '\\' "
    "ELSE EXISTS (SELECT 1 FROM jsonb_path_query(leads.attributes::jsonb, 'strict $.**') "
    "AS v WHERE jsonb_typeof(v) IN ('string', 'number', 'boolean') "
    "AND lower(normalize(v #>> '{}', NFC)) LIKE :q_pattern ESCAPE '\\') END",
}


def search_sql(text: str, dialect: str) -> sa.ColumnElement[bool]:
    """``q``: the lead id or an attribute value (at any depth) contains ``text``."""
    pattern = _like_pattern(text)
    if dialect == "sqlite":
        lead_id = sa.func.pyro_fold(leads.c.lead_id)
    else:
        lead_id = sa.func.lower(sa.func.normalize(leads.c.lead_id, sa.text("NFC")))
    values = sa.text(_VALUE_MATCH[dialect]).bindparams(q_pattern=pattern)
    return sa.or_(lead_id.like(pattern, escape="\\"), values)
