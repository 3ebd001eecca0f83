"""Lead attributes as real UTF-8 JSON text, not ``\\u`` escapes.

Earlier versions wrote attributes with the standard library's default ``ensure_ascii``,
so ``Müller`` was stored as ``M\\u00fcller`` and ``GET /v1/leads?q=Müller`` could not find
it. Rows holding an escape are rewritten with the same JSON meaning; a row whose text
cannot be UTF-8 (an escaped unpaired surrogate) is left as it is.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_BATCH = 1000


def reencode_attributes(conn: Connection) -> int:
    """Rewrite the escaped rows; returns how many changed."""
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        select = (
            "SELECT lead_id, attributes::text FROM leads WHERE strpos(attributes::text, :n) > 0"
        )
        update = "UPDATE leads SET attributes = CAST(:a AS json) WHERE lead_id = :id"
    else:
        select = "SELECT lead_id, attributes FROM leads WHERE instr(attributes, :n) > 0"
        update = "UPDATE leads SET attributes = :a WHERE lead_id = :id"
    rows = conn.execute(sa.text(select), {"n": "\\u"}).all()
    changes = []
    for lead_id, text in rows:
        utf8 = json.dumps(json.loads(text), ensure_ascii=False)
        try:
            utf8.encode("utf-8")
        except UnicodeEncodeError:
            continue
        if utf8 != text:
            changes.append({"id": lead_id, "a": utf8})
    for start in range(0, len(changes), _BATCH):
        conn.execute(sa.text(update), changes[start : start + _BATCH])
    return len(changes)


def upgrade() -> None:
    reencode_attributes(op.get_bind())


def downgrade() -> None:
    pass  # escaped and unescaped text are the same JSON: nothing to undo
