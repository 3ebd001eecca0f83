"""Tables on stdout that never cut a value when stdout is not a terminal.

Rich fits a table to the terminal's width and, with no terminal (a pipe, a file), to 80
columns, wrapping or cutting rule names, event ids and times. Into a pipe or a file a
table is printed at its natural width instead: every value whole, on one line per row.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

UNLIMITED = 1_000_000


def stdout_console() -> Console:
    """The console for results on stdout; into a pipe or a file a long line stays one
    line (no newline is inserted at column 80), as tables stay whole."""
    console = Console()
    console.soft_wrap = not console.is_terminal
    return console


def print_table(console: Console, table: Table) -> None:
    """``table`` on ``console``: fitted to a terminal; at its natural width otherwise."""
    if console.is_terminal:
        console.print(table)
        return
    natural = Measurement.get(console, console.options.update_width(UNLIMITED), table).maximum
    saved = console.width
    console.width = max(natural, 1)
    try:
        console.print(table, crop=False)
    finally:
        console.width = saved


def aligned(rows: Sequence[Sequence[str]]) -> str:
    """``rows`` (the first is the header) as plain text in aligned columns, nothing cut:
    listings meant to be piped or grepped (``keys list``, ``reps list``)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
