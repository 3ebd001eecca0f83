"""The app as an import string, for ``pyrometer serve --workers N`` (one per process).

Each worker opens the store named by ``PYROMETER_DATABASE_URL``; migrations take a lock,
so workers starting together are safe, and one worker's decay scheduler runs at a time
(:class:`pyrometer.service.decay.SchedulerLock`). Each worker ends with the supervisor
that started it (:mod:`pyrometer.service.lifeline`), even one killed with SIGKILL.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from pyrometer.api.app import create_app
from pyrometer.api.logs import ACCESS_VARIABLE, FORMAT_VARIABLE, configure_logging
from pyrometer.service.lifeline import die_with_parent
from pyrometer.service.runtime import Service

SCORING_PROCESSES = 2  # per server process: Python runs one thread at a time in each
SCORING_VARIABLE = "PYROMETER_SCORING_PROCESSES"
SUPERVISOR_VARIABLE = "PYROMETER_SUPERVISOR_PID"


def app_from_env() -> FastAPI:
    supervisor = os.environ.get(SUPERVISOR_VARIABLE)
    if supervisor and int(supervisor) != os.getpid():  # a worker of ``serve --workers N``
        die_with_parent(int(supervisor))
    # Spawned workers start with no logging set up: the format ``serve`` was given.
    configure_logging(
        "json" if os.environ.get(FORMAT_VARIABLE) == "json" else "text",
        access_log=bool(os.environ.get(ACCESS_VARIABLE)),
    )
    processes = int(os.environ.get(SCORING_VARIABLE, SCORING_PROCESSES))
    return create_app(Service.open(), scoring_processes=processes)
