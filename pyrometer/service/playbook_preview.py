"""What a playbook not yet published would do to today's leads: hot, warm and cold now
and under it, by replaying every lead's log in memory (nothing is written).

It costs a replay per lead, so it runs only on request and only for stores up to
:data:`LIMIT` leads; beyond that publishing and its rescoring job are the way to see.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy.engine import Connection

from pyrometer.core.playbook import Temperature, parse_playbook
from pyrometer.service.runtime import Service
from pyrometer.service.scoring import classes_now, replay
from pyrometer.store import repo, scan

LIMIT = 20_000
_PAGE = 500


def preview(service: Service, text: str, limit: int = LIMIT) -> dict[str, Any]:
    """``before`` and ``after`` counts by temperature, and ``moved``: how many leads change
    temperature; ``too_many`` (and no counts) past ``limit`` leads. Raises
    ``PlaybookError`` for a playbook that does not parse."""
    book = parse_playbook(text, source="playbook")
    now = service.clock()

    def work(conn: Connection) -> dict[str, Any]:
        total = scan.lead_count(conn)
        if total > limit:
            return {"leads": total, "too_many": True, "limit": limit}
        version, _ = service.playbooks.active(conn)
        before: Counter[str] = Counter()
        after: Counter[str] = Counter()
        moved = 0
        last: str | None = None
        while ids := scan.lead_ids_after(conn, last, _PAGE):
            last = ids[-1]
            for lead_id, raw in repo.read_leads_raw(conn, ids, lock=False).items():
                record = repo.record_of_raw(raw)
                old_book = service.playbooks.get(conn, record.playbook_version)
                was, _ = classes_now(old_book, record.state, now)
                events = repo.lead_events(conn, lead_id)
                will = str(
                    replay(book, version + 1, record, events, now, "preview").record.temperature
                )
                before[was] += 1
                after[will] += 1
                moved += was != will
        names = [t.value for t in (Temperature.HOT, Temperature.WARM, Temperature.COLD)]
        return {
            "leads": total,
            "too_many": False,
            "before": {n: before[n] for n in names},
            "after": {n: after[n] for n in names},
            "moved": moved,
        }

    return service.read(work)
