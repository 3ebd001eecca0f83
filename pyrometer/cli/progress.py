"""A progress bar for long DuckDB work, fed by DuckDB's own query progress."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


@contextmanager
def duckdb_progress(
    con: duckdb.DuckDBPyConnection, console: Console, description: str
) -> Iterator[Progress]:
    """Show the running statement's progress on ``console`` (stderr) until the block ends.

    Off when the console is not a terminal, so pipes and CI logs stay clean.
    """
    con.execute("SET enable_progress_bar = true; SET enable_progress_bar_print = false")
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    task = progress.add_task(description, total=100)
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.2):
            value = con.query_progress()
            if value >= 0:
                progress.update(task, completed=value)

    thread = threading.Thread(target=poll, daemon=True)
    with progress:
        thread.start()
        try:
            yield progress
        finally:
            done.set()
            thread.join()
