"""Backtesting a playbook not yet published on the stored events, as a job.

The counting is :mod:`pyrometer.backtest` (pure); this module only reads the store, one
page of leads at a time in its own read transaction, and records progress (done of total
leads) and the result (JSON) in ``jobs``. The playbook in force and the proposed one are
swept side by side; outcomes are the leads' stored lifecycle events (``purchase``,
``won``, ``lost``...). A backtest job left running by a stopped server is not resumed: it
is marked failed, to be asked again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from pyrometer.backtest.run import run
from pyrometer.backtest.sweep import as_of_grid
from pyrometer.core.model import Event
from pyrometer.core.playbook import Playbook, parse_playbook
from pyrometer.service.redact import describe
from pyrometer.service.rescore import fail_job
from pyrometer.service.runtime import Service
from pyrometer.store import repo, scan
from pyrometer.store.tables import jobs

DAY_US = 86_400_000_000
PAGE = 200
MAX_AS_OF_TIMES = 1000


@dataclass(frozen=True)
class Request:
    """What to backtest: the proposed playbook and the as-of times."""

    book: Playbook
    as_of_times: tuple[int, ...]
    horizon_us: int
    capacity_per_day: float | None


def plan(
    service: Service,
    text: str,
    start_us: int | None,
    end_us: int | None,
    every_us: int,
    horizon_us: int,
    capacity_per_day: float | None,
) -> Request:
    """Validate (``PlaybookError``, ``ValueError`` naming the field) and fix the as-of
    times: by default daily up to the last day a whole horizon has passed, 180 of them."""
    book = parse_playbook(text, source="playbook")
    if every_us <= 0:
        raise ValueError("every: must be a positive duration")
    if horizon_us <= 0:
        raise ValueError("horizon: must be a positive duration")
    end = end_us if end_us is not None else (service.clock() - horizon_us) // DAY_US * DAY_US
    start = start_us if start_us is not None else end - 179 * every_us
    if end < start:
        raise ValueError("from: must not be after to")
    times = as_of_grid(start, end, every_us)
    if len(times) > MAX_AS_OF_TIMES:
        raise ValueError(f"every: {len(times)} as-of times; at most {MAX_AS_OF_TIMES}")
    return Request(book, tuple(times), horizon_us, capacity_per_day)


def create_job(service: Service, request: Request) -> int:
    now = service.clock()

    def work(conn: Connection) -> int:
        version, _ = service.playbooks.active(conn)
        return int(
            conn.execute(
                jobs.insert()
                .values(
                    kind="backtest",
                    status="running",
                    playbook_version=version,
                    done=0,
                    total=scan.lead_count(conn),
                    created_us=now,
                )
                .returning(jobs.c.id)
            ).scalar_one()
        )

    return service.write(work)


def _histories(
    service: Service, job_id: int, attributes: dict[str, Any]
) -> Iterator[tuple[str, list[Event]]]:
    """Every stored lead's events, a page of leads per read transaction; progress after
    each page. Fills ``attributes`` as it goes (read per lead when the lead is swept)."""
    last: str | None = None
    done = 0
    while True:

        def page(conn: Connection, after: str | None = last) -> list[tuple[str, Any, list]]:
            ids = scan.lead_ids_after(conn, after, PAGE)
            raw = repo.read_leads_raw(conn, ids, lock=False)
            return [
                (lead, repo.record_of_raw(raw[lead]).attributes, repo.lead_events(conn, lead))
                for lead in ids
                if lead in raw
            ]

        rows = service.read(page)
        if not rows:
            return
        for lead_id, lead_attributes, events in rows:
            attributes[lead_id] = lead_attributes
            yield lead_id, events
        last = rows[-1][0]
        done += len(rows)
        service.write(
            lambda conn, done=done: conn.execute(
                jobs.update().where(jobs.c.id == job_id).values(done=done)
            )
        )


def run_job(service: Service, job_id: int, request: Request) -> None:
    """Sweep, tally, store the result; a failure is recorded on the job, by type only."""
    try:
        in_force = service.read(lambda conn: service.playbooks.active(conn)[1])
        attributes: dict[str, Any] = {}
        result = run(
            [("in force", in_force), ("proposed", request.book)],
            _histories(service, job_id, attributes),
            attributes,
            None,
            request.as_of_times,
            request.horizon_us,
            request.capacity_per_day,
        )
        figures = result.to_dict()
        service.write(
            lambda conn: conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(
                    status="done", result=figures, finished_us=service.clock(), done=jobs.c.total
                )
            )
        )
    except Exception as exc:
        fail_job(service, "backtest", job_id, describe(exc), exc)


def start_job(service: Service, job_id: int, request: Request) -> threading.Thread:
    thread = threading.Thread(
        target=run_job,
        args=(service, job_id, request),
        name=f"pyrometer-backtest-{job_id}",
        daemon=True,
    )
    thread.start()
    return thread


def abandon_running(conn: Connection, now_us: int) -> None:
    """Backtest jobs a stopped server left running: failed, to be asked again."""
    conn.execute(
        jobs.update()
        .where(jobs.c.kind == "backtest", jobs.c.status == "running")
        .values(status="failed", error="the server stopped during the backtest", finished_us=now_us)
    )


def result_of(row: Any) -> dict[str, Any] | None:
    found = getattr(row, "result", None)
    return found if isinstance(found, dict) else None
