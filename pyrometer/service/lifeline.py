"""A child process that ends with its parent, however the parent ended.

``serve --workers N`` runs a supervisor process and N server processes (each with its
scoring processes). A supervisor killed with SIGKILL cannot tell its children anything,
and orphaned server processes would go on serving the port, so a new ``serve`` on it
fails with "Address already in use". Each server process therefore asks the kernel to
send it ``SIGTERM`` when its parent dies (Linux's ``prctl(PR_SET_PDEATHSIG)``; it then
shuts down as on any SIGTERM, and its scoring processes follow it), and a watchdog
thread, on every platform, notices the parent is gone within half a second, sends the
same signal, and ends the process outright if it is still there ``grace`` seconds later.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
POLL_SECONDS = 0.5


def _set_parent_death_signal(sig: int) -> bool:
    """Linux: have the kernel send ``sig`` to this process when its parent ends."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(parent: int, sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
    """End this process when process ``parent`` (its parent now) ends."""
    _set_parent_death_signal(sig)
    if os.getppid() != parent:  # it ended before the kernel was asked
        os.kill(os.getpid(), sig)
    threading.Thread(
        target=_watch, args=(parent, sig, grace), name="pyrometer-lifeline", daemon=True
    ).start()


def _watch(parent: int, sig: int, grace: float) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    os.kill(os.getpid(), sig)  # a graceful end first (a no-op if the kernel sent it)
    time.sleep(grace)
    os._exit(1)
