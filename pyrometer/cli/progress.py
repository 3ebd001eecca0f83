"""One progress bar for a whole run, fed by DuckDB's own query progress.

A run (reading, scoring events, stages and caps, fit, classifying) is several SQL
statements, and DuckDB's progress starts again at 0 % with each of them. The bar here
gives each phase of the run its share of one bar; the statement running in a phase fills
that phase's share, and the bar never moves back, so it fills once from 0 to 100 %.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb
    from rich.console import Console

_SLICE = re.compile(r"^(?P<name>.*?) \((?P<k>\d+)/(?P<n>\d+)\)$")  # "Scoring events (2/3)"


class PhaseBar:
    """Where the bar stands: the phase running, its share, and the furthest point shown."""

    def __init__(self, phases: Mapping[str, float]) -> None:
        total = sum(phases.values()) or 1.0
        self.starts: dict[str, float] = {}
        self.shares: dict[str, float] = {}
        start = 0.0
        for name, weight in phases.items():
            self.starts[name], self.shares[name] = start, 100.0 * weight / total
            start += self.shares[name]
        self.base, self.share, self.shown = 0.0, 0.0, 0.0
        self.description = next(iter(phases), "")

    def enter(self, phase: str) -> None:
        """A phase begins (a name of ``phases``, possibly with a slice: ``name (k/n)``);
        phases that were skipped count as done. An unknown name only relabels the bar."""
        self.description = phase
        match = _SLICE.match(phase)
        name, k, n = (match["name"], int(match["k"]), int(match["n"])) if match else (phase, 1, 1)
        if name not in self.starts:
            return
        self.share = self.shares[name] / max(n, 1)
        self.base = max(self.base, self.starts[name] + (k - 1) * self.share)
        self.shown = max(self.shown, self.base)

    def at(self, statement_percent: float) -> float:
        """The bar's position while the running statement is ``statement_percent`` done."""
        if statement_percent >= 0:
            self.shown = max(self.shown, self.base + self.share * min(statement_percent, 100) / 100)
        return self.shown


@contextmanager
def phased_progress(
    con: duckdb.DuckDBPyConnection, console: Console, phases: Mapping[str, float]
) -> Iterator[Callable[[str], None]]:
    """One bar on ``console`` (stderr) across ``phases`` (name → share of the time, in
    order); the block calls the yielded function with each phase's name as it begins.

    Off when the console is not a terminal, so pipes and CI logs stay clean.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    con.execute("SET enable_progress_bar = true; SET enable_progress_bar_print = false")
    state = PhaseBar(phases)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    task = progress.add_task(state.description, total=100)
    done = threading.Event()

    def enter(phase: str) -> None:
        state.enter(phase)
        progress.update(task, description=state.description, completed=state.shown)

    def poll() -> None:
        while not done.wait(0.2):
            progress.update(task, completed=state.at(con.query_progress()))

    thread = threading.Thread(target=poll, daemon=True)
    with progress:
        thread.start()
        try:
            yield enter
        finally:
            done.set()
            thread.join()
