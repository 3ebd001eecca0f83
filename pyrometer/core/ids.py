"""Lead ids in their one normal form: Unicode NFC, without surrounding white space.

A CRM export, a Segment call and a sales rep typing a URL spell the same person as
``"ana@x.io "``, ``"ana@x.io"``, or with ``é`` as one code point or as ``e`` plus a
combining accent. Every path that takes a lead id (API ingest, identify and alias, lead
reads and changes by id, the CLI's files and arguments) calls :func:`normalize_lead_id`, so
they all name one lead. Files read in DuckDB use the same steps in SQL
(:func:`pyrometer.io.lead_ids.lead_id_sql`), built from :data:`WHITESPACE` here; a test
checks that both agree.
"""

from __future__ import annotations

import unicodedata

# Exactly the characters ``str.strip()`` removes (``str.isspace``; a test checks the list),
# spelled out so the SQL twin can name them.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
    "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


class EmptyLeadId(ValueError):
    """A lead id that is empty once white space is trimmed."""

    def __init__(self) -> None:
        super().__init__("a lead id must not be empty or only white space")


def normalize_lead_id(value: str) -> str:
    """``value`` in NFC with leading and trailing white space removed; never empty."""
    normal = unicodedata.normalize("NFC", value).strip(WHITESPACE)
    if not normal:
        raise EmptyLeadId()
    return normal
