"""Publishing a playbook: store the new version, then replay every lead under it.

The replay runs in a background thread in small transactions and its progress (done of
total) is a row in ``jobs``, readable through the API. Correctness does not wait for it:
any lead still scored under an older version is replayed on the spot when an event
arrives or someone reads it, so the job only does that work ahead of time.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.core.playbook import parse_playbook
from pyrometer.core.timeutil import iso
from pyrometer.service import actions
from pyrometer.service.playbooks import same_content
from pyrometer.service.probability import probability_temperatures
from pyrometer.service.redact import describe, safe_traceback, sqlstate
from pyrometer.service.runtime import Service
from pyrometer.service.scoring import replay
from pyrometer.store import repo
from pyrometer.store.tables import jobs, leads

CHUNK = 100
_log = logging.getLogger("pyrometer.error")


def publish(service: Service, text: str) -> dict[str, Any]:
    """Validate (raises ``PlaybookError``), store as the next version, create its job.

    A playbook whose content (parsed and normalised: comments, layout, key order and name
    spellings aside) is the one in force changes nothing: no version, no rescore; the
    answer is the version in force with ``changed: False`` and no job.
    """
    book = parse_playbook(text, source="playbook")
    now = service.clock()

    def work(conn: Connection) -> dict[str, Any]:
        current, in_force = service.playbooks.active(conn)
        if same_content(book, in_force):
            return {"version": current, "job_id": None, "changed": False}
        version = service.playbooks.publish(conn, text, now)
        total = conn.execute(sa.select(sa.func.count()).select_from(leads)).scalar_one()
        job_id = conn.execute(
            jobs.insert()
            .values(
                kind="rescore",
                status="running",
                playbook_version=version,
                done=0,
                total=total,
                created_us=now,
            )
            .returning(jobs.c.id)
        ).scalar_one()
        return {"version": version, "job_id": job_id, "changed": True}

    return service.write(work)


def rescore_step(service: Service, job_id: int) -> bool:
    """Replay up to :data:`CHUNK` stale leads; ``False`` once the job is over."""
    now = service.clock()

    def work(conn: Connection) -> bool:
        job = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).one()
        if job.status != "running":
            return False
        version, book = service.playbooks.active(conn)
        if version != job.playbook_version:
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(status="superseded", finished_us=now)
            )
            return False
        stale = list(
            conn.execute(
                sa.select(leads.c.lead_id)
                .where(leads.c.playbook_version != version)
                .order_by(leads.c.lead_id)
                .limit(CHUNK)
            ).scalars()
        )
        changes = [
            replay(book, version, record, repo.lead_events(conn, lead), now, f"playbook:v{version}")
            for lead, record in repo.lock_leads(conn, stale).items()
            if record.playbook_version != version
        ]
        changes = probability_temperatures(service, conn, book, changes, now)
        repo.save_changes(conn, changes, now)
        actions.act_on_changes(conn, book, changes, now)
        remaining = conn.execute(
            sa.select(sa.func.count()).select_from(leads).where(leads.c.playbook_version != version)
        ).scalar_one()
        values: dict[str, Any] = {"done": max(0, job.total - remaining)}
        if remaining == 0:
            values.update(status="done", finished_us=now, done=job.total)
        conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values))
        return remaining > 0

    return service.write(work)


def fail_job(
    service: Service, kind: str, job_id: int, message: str, exc: BaseException | None
) -> None:
    """Record a job as failed with ``message`` (what the API shows); with ``exc``, log it
    with its redacted stack first (``None``: an expected failure, not an error)."""
    if exc is not None:
        _log.error(
            "%s job %d failed: %s",
            kind,
            job_id,
            message,
            extra={"stack": safe_traceback(type(exc), exc, exc.__traceback__)},
        )
    service.write(
        lambda conn: conn.execute(
            jobs.update()
            .where(jobs.c.id == job_id)
            .values(status="failed", error=message, finished_us=service.clock())
        )
    )


def run_job(service: Service, job_id: int) -> None:
    try:
        while rescore_step(service, job_id):
            pass
    except Exception as exc:  # recorded for the API; the lazy replay keeps scores right
        # By type only: a database error's message holds the leads' data.
        message = describe(exc) + (f" (SQLSTATE {code})" if (code := sqlstate(exc)) else "")
        fail_job(service, "rescore", job_id, message, exc)


def start_job(service: Service, job_id: int) -> threading.Thread:
    thread = threading.Thread(
        target=run_job, args=(service, job_id), name=f"pyrometer-rescore-{job_id}", daemon=True
    )
    thread.start()
    return thread


def resume_jobs(service: Service) -> list[threading.Thread]:
    """After a restart, carry on with rescore jobs a stopped server left running (a
    backtest left running is marked failed: :mod:`pyrometer.service.backtest`)."""
    from pyrometer.service.backtest import abandon_running

    service.write(lambda conn: abandon_running(conn, service.clock()))
    ids = service.read(
        lambda conn: list(
            conn.execute(
                sa.select(jobs.c.id).where(jobs.c.status == "running", jobs.c.kind == "rescore")
            ).scalars()
        )
    )
    return [start_job(service, job_id) for job_id in ids]


def job_view(service: Service, job_id: int) -> dict[str, Any] | None:
    row = service.read(
        lambda conn: conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
    )
    if row is None:
        return None
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "playbook_version": row.playbook_version,
        "done": row.done,
        "total": row.total,
        "created": iso(row.created_us),
        "finished": iso(row.finished_us),
        "error": row.error,
        "result": row.result,
    }
