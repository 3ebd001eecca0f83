"""``pyrometer keys list`` as plain text: one line per key, columns aligned, nothing cut.

Plain ``print`` rather than a rich table, so a piped or redirected listing keeps every
value whole whatever the terminal's width (names are free text).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyrometer.cli.output import aligned
from pyrometer.core.timeutil import iso
from pyrometer.service.keys import KeyInfo

HEADER = ("id", "scope", "name", "prefix", "created", "last_used", "revoked")


def keys_table(infos: Sequence[KeyInfo]) -> str:
    """The listing; a key's secret is not in :class:`KeyInfo`, so it cannot be printed."""
    rows = [HEADER] + [
        (
            str(info.id),
            info.scope,
            _one_line(info.name),
            info.prefix + "…",
            iso(info.created_us),
            "never" if info.last_used_us is None else iso(info.last_used_us),
            "yes" if info.revoked else "no",
        )
        for info in infos
    ]
    return aligned(rows)


def _one_line(text: str) -> str:
    """A name with a line break or tab would break the columns: show those escaped."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
