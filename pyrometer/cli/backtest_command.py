"""``pyrometer backtest``: what one or more playbooks would have done on past events."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pyrometer.cli.commands import (
    EncodingOpt,
    EventsArg,
    IdOpt,
    LeadsOpt,
    UserError,
    err,
    out,
    parse_as_of,
    user_errors,
)
from pyrometer.cli.output import print_table

if TYPE_CHECKING:
    import duckdb

    from pyrometer.backtest.metrics import Outcome
    from pyrometer.backtest.run import Result
    from pyrometer.core.playbook import Playbook
    from pyrometer.io.history import History

DAY_US = 86_400_000_000
DEFAULT_AS_OF_TIMES = 180
_CAPACITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(\w+))?\s*$")
_PER = {"day": 1.0, "d": 1.0, "week": 1 / 7, "w": 1 / 7, "hour": 24.0, "h": 24.0}


def parse_capacity(text: str | None) -> float | None:
    """``"40/day"``, ``"40"`` (per day), ``"200/week"``, ``"3/hour"``: leads per day."""
    if text is None:
        return None
    found = _CAPACITY.match(text)
    unit = (found.group(2) or "day").lower() if found else ""
    if found is None or unit not in _PER:
        raise UserError(f"--capacity: {text!r} is not N/day (e.g. 40/day, 200/week)")
    return float(found.group(1)) * _PER[unit]


def _duration(text: str, option: str) -> int:
    from pyrometer.core.timeutil import parse_duration_us

    try:
        value = parse_duration_us(text)
    except ValueError:
        raise UserError(f"{option}: {text!r} is not a duration such as 1d, 12h, 30d") from None
    if value <= 0:
        raise UserError(f"{option}: must be positive")
    return value


def backtest_command(
    events: EventsArg,
    leads: LeadsOpt = None,
    outcomes: Annotated[
        Path | None,
        typer.Option(
            "--outcomes",
            help="lead_id, outcome (won/lost), at. Default: the events' own purchase, won "
            "and lost events.",
        ),
    ] = None,
    playbooks: Annotated[
        list[Path] | None,
        typer.Option(
            "--playbook",
            help="Playbook YAML; repeat to compare ('default': the built-in one, also the "
            "default).",
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help="First as-of time; default: 180 steps before --to."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            "--to", help="Last as-of time; default: the last day a whole horizon follows."
        ),
    ] = None,
    every: Annotated[str, typer.Option("--every", help="Step between as-of times.")] = "1d",
    horizon: Annotated[
        str, typer.Option("--horizon", help="A win counts if it comes within this.")
    ] = "30d",
    capacity: Annotated[
        str | None,
        typer.Option("--capacity", help="New hot leads the team can answer: N/day."),
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write an HTML report with plots.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    id_column: IdOpt = None,
    encoding: EncodingOpt = None,
) -> None:
    """Backtest playbooks on past events: at each as-of time, every open lead's temperature
    from the events up to then, against the wins that came after it."""
    from pyrometer.backtest import report as report_mod
    from pyrometer.backtest.sweep import as_of_grid
    from pyrometer.core.playbook import load_playbook
    from pyrometer.engines.duckdb_backtest import run_sql
    from pyrometer.engines.duckdb_batch import connect
    from pyrometer.io.history import open_history, read_outcomes

    with user_errors():
        paths: list[Path | None] = [
            None if str(p) == "default" and not p.exists() else p for p in playbooks or [None]
        ]
        books = [(str(p.stem) if p else "default", load_playbook(p)) for p in paths]
        names = [name for name, _ in books]
        for i, name in enumerate(names):  # two files called a.yaml in two folders
            if names.count(name) > 1:
                books[i] = (str(paths[i]), books[i][1])
        every_us = _duration(every, "--every")
        horizon_us = _duration(horizon, "--horizon")
        per_day = parse_capacity(capacity)
        con = connect()
        with err.status("Reading..."):
            history = open_history(con, books[0][1], events, leads, id_column, encoding)
            outcome_rows = read_outcomes(con, outcomes, id_column, encoding) if outcomes else None
        last = history.last_us
        if outcome_rows:
            last = max(last, max(o.at_us for o in outcome_rows))
        end_us = (
            parse_as_of(end, "--to") if end is not None else (last - horizon_us) // DAY_US * DAY_US
        )
        start_us = (
            parse_as_of(start, "--from")
            if start is not None
            else max(
                end_us - (DEFAULT_AS_OF_TIMES - 1) * every_us,
                history.first_us // DAY_US * DAY_US + DAY_US,
            )
        )
        if end_us < start_us:
            raise UserError(
                f"no as-of time: --from {start or start_us} is after --to {end or end_us} "
                "(by default --to is the last day a whole --horizon of data follows)"
            )
        times = as_of_grid(start_us, end_us, every_us)
        # All as-of times in one SQL pass; the Python sweep where that cannot go.
        with err.status(f"Backtesting {len(times)} as-of times...") as status:
            result = run_sql(
                con,
                books,
                history.events,
                history.attributes,
                outcome_rows,
                times,
                horizon_us,
                per_day,
                progress=lambda stage: status.update(f"{stage}..."),
                per_lead=history.per_lead,
                proven=history.proven,
            )
        if result is None:
            result = _run_python(con, books, history, outcome_rows, times, horizon_us, per_day)
        if report is not None:
            command = "pyrometer backtest " + " ".join(sys.argv[2:])
            report.write_text(report_mod.render(result, command), encoding="utf-8")
            err.print(f"wrote {report}", highlight=False)
        if as_json:
            sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
            return
        _print(result)


def _run_python(
    con: duckdb.DuckDBPyConnection,
    books: list[tuple[str, Playbook]],
    history: History,
    outcome_rows: list[Outcome] | None,
    times: list[int],
    horizon_us: int,
    per_day: float | None,
) -> Result:
    """The Python sweep, lead by lead (as-of times not evenly spaced, or very long)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from pyrometer.backtest.run import run
    from pyrometer.io.history import iter_leads

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task(f"Backtesting {len(times)} as-of times", total=history.leads)
        return run(
            books,
            iter_leads(con, history),
            history.attributes,
            outcome_rows,
            times,
            horizon_us,
            per_day,
            on_lead=lambda: progress.advance(task),
        )


def _print(result: object) -> None:
    from pyrometer.backtest.report import ROWS, best, fmt
    from pyrometer.backtest.run import Result
    from pyrometer.core.timeutil import iso

    assert isinstance(result, Result)
    times = result.as_of_times
    table = Table(
        title=f"{len(times)} as-of times {(iso(times[0]) or '')[:10]} … "
        f"{(iso(times[-1]) or '')[:10]}, horizon {result.horizon_us / DAY_US:g} d: "
        f"{result.leads:,} leads, {result.events:,} events (outcomes from "
        f"{result.outcomes_from})"
    )
    table.add_column("")
    for name in result.names:
        table.add_column(name, justify="right")
    for row in ROWS:
        values = [row.value(m) for m in result.metrics]
        if row.label == "days over capacity" and all(v is None for v in values):
            continue
        winners = best(values, row.better)
        table.add_row(
            row.label,
            *(
                f"[bold green]{fmt(v, row.fmt)}[/]" if i in winners else fmt(v, row.fmt)
                for i, v in enumerate(values)
            ),
        )
    print_table(out, table)
    err.print(f"{result.seconds:.1f} s", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("backtest")(backtest_command)
