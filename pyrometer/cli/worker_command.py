"""``pyrometer worker``: the background loops without the API, in a process of their own.

``pyrometer serve`` runs the same loops in each server process; a separate worker lets
webhook deliveries (and, beside them, other loops such as the SLA watcher) run apart from
the API, or more of them on PostgreSQL, where workers share the queue without sending a
delivery twice. It runs until SIGINT or SIGTERM, then stops each loop in turn.
"""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Annotated

import typer

from pyrometer.cli.commands import UserError, err, user_errors
from pyrometer.cli.extras import needs_extra
from pyrometer.cli.service_commands import DatabaseOpt, opened

if TYPE_CHECKING:
    from pyrometer.service.delivery import BackgroundTask
    from pyrometer.service.runtime import Service


def background_tasks(service: Service, max_attempts: int | None) -> list[BackgroundTask]:
    """The loops a worker runs, in the order they start (and the reverse of their stop)."""
    from pyrometer.service.delivery import DeliverySettings, DeliveryWorker
    from pyrometer.service.nurture import NurtureRunner, NurtureSettings
    from pyrometer.service.sla_watch import SlaWatcher

    overrides = {} if max_attempts is None else {"max_attempts": max_attempts}
    return [
        DeliveryWorker(service, DeliverySettings.from_env(**overrides)),
        # One watcher per store leads (a lock), whether in serve or here.
        SlaWatcher(service),
        # Nurture sequences: due steps, e-mail over $PYROMETER_SMTP_URL (one process leads).
        NurtureRunner(service, NurtureSettings.from_env()),
    ]


def worker_command(
    database: DatabaseOpt = None,
    max_attempts: Annotated[
        int | None,
        typer.Option(
            "--max-attempts",
            min=1,
            help="Attempts before a delivery is dead (default $PYROMETER_WEBHOOK_MAX_ATTEMPTS, "
            "else 8).",
        ),
    ] = None,
) -> None:
    """Send webhook deliveries and watch speed-to-lead SLAs (the loops `serve` also runs),
    until stopped."""
    with needs_extra("service", "worker"):
        import sqlalchemy  # noqa: F401  (the extra, checked before the store opens)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with user_errors(), opened(database) as service:
        try:
            tasks = background_tasks(service, max_attempts)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        for task in tasks:
            task.start()
        err.print(
            "pyrometer worker: sending webhook deliveries, watching SLAs, running nurture "
            "sequences; stop with Ctrl-C"
        )
        try:
            while not stop.wait(1.0):
                pass
        finally:
            for task in reversed(tasks):
                task.stop()


def register(app: typer.Typer) -> None:
    app.command("worker")(worker_command)
