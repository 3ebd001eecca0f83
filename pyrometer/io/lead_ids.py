"""Lead ids in their normal form, in DuckDB SQL: the twin of :mod:`pyrometer.core.ids` for
files, used by the readers and by the Segment stitching (a visitor's id in an ``identify``
call and in its ``track`` calls must name one visitor however each was spelled)."""

from __future__ import annotations

from pyrometer.core.ids import WHITESPACE
from pyrometer.engines.sql_conditions import quote_literal

__all__ = ["lead_id_sql"]


def lead_id_sql(text_sql: str) -> str:
    """:func:`pyrometer.core.ids.normalize_lead_id` in DuckDB SQL: NFC, then white space
    trimmed (an id that is only white space becomes ``''``, which the checks refuse).

    An id that starts and ends with printable ASCII (nearly all) has no white space to
    trim, even after NFC (which never makes white space and leaves a final ASCII character
    in place), so only the rest pays for the trim, about ten times the normalisation.
    """
    edges = f"ascii({text_sql}) BETWEEN 33 AND 126 AND ascii({text_sql}[-1]) BETWEEN 33 AND 126"
    normal = f"nfc_normalize({text_sql})"
    return f"CASE WHEN {edges} THEN {normal} ELSE trim({normal}, {quote_literal(WHITESPACE)}) END"
