"""Scoring commands: ``score``, ``explain``, ``playbook check|show`` and ``demo``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import duckdb
import typer
import yaml
from rich.console import Console
from rich.table import Table

from pyrometer.cli.progress import duckdb_progress
from pyrometer.core.playbook import Playbook, PlaybookError, default_playbook_text, load_playbook
from pyrometer.core.timeutil import iso, parse_timestamp, to_us
from pyrometer.engines.duckdb_batch import DuckDBBatchScorer, EventTable, LeadTable, connect
from pyrometer.io.readers import InputError, open_events, open_leads
from pyrometer.io.writers import iso_sql, write_query

out = Console()
err = Console(stderr=True)

EventsArg = Annotated[
    Path,
    typer.Argument(
        help="Events: CSV, Parquet or JSON Lines (lead_id, event, timestamp, properties...).",
        show_default=False,
    ),
]
LeadsOpt = Annotated[Path | None, typer.Option("--leads", help="Leads: lead_id plus attributes.")]
PlaybookOpt = Annotated[
    Path | None, typer.Option("--playbook", help="Playbook YAML; default: the built-in one.")
]
AsOfOpt = Annotated[
    str | None, typer.Option("--as-of", help="Score as of this ISO-8601 time; default: now.")
]


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn input problems into one red line on stderr and exit code 2."""
    try:
        yield
    except (UserError, InputError, PlaybookError, ValueError, OSError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(code=2) from None
    except duckdb.Error as exc:
        err.print(f"[bold red]error:[/] {str(exc).splitlines()[0]}", highlight=False)
        raise typer.Exit(code=2) from None


def parse_as_of(text: str | None) -> int:
    if text is None:
        return to_us(datetime.now(UTC))
    try:
        return to_us(parse_timestamp(text))
    except ValueError:
        raise UserError(
            f"--as-of: {text!r} is not an ISO-8601 time such as 2026-11-23T10:00:00Z"
        ) from None


def _open(
    con: duckdb.DuckDBPyConnection,
    playbook: Playbook,
    events: Path,
    leads: Path | None,
    strict: bool,
) -> tuple[EventTable, LeadTable | None]:
    event_table = open_events(con, events, playbook.known_events if strict else None)
    lead_table = open_leads(con, leads) if leads is not None else None
    from pyrometer.io.segment import with_traits

    # Segment identify traits in EVENTS fill in what LEADS does not give.
    return event_table, with_traits(con, lead_table, event_table.traits)


def score_command(
    events: EventsArg,
    leads: LeadsOpt = None,
    playbook: PlaybookOpt = None,
    as_of: AsOfOpt = None,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Write every lead to .csv, .parquet, .json or .jsonl."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array on stdout.")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail on events the playbook does not know.")
    ] = False,
    top: Annotated[int, typer.Option("--top", help="Rows in the table.")] = 20,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", help="A model from `pyrometer train`: adds p_convert (needs --leads)."
        ),
    ] = None,
) -> None:
    """Score every lead in EVENTS (and LEADS) as of a time."""
    with user_errors():
        book = load_playbook(playbook)
        as_of_us = parse_as_of(as_of)
        con = connect()
        event_table, lead_table = _open(con, book, events, leads, strict)
        scorer = DuckDBBatchScorer(book, con)
        with duckdb_progress(con, err, "Scoring") as bar:
            relation = scorer.score_relation(
                event_table,
                lead_table,
                as_of_us,
                progress=lambda stage: bar.update(bar.task_ids[0], description=stage),
            )
            con.execute(f"CREATE OR REPLACE TEMP TABLE pyro_scored AS {relation.sql_query()}")
        if model is not None:
            _attach_model(con, book, model, leads, events)
        query = "SELECT * FROM pyro_scored ORDER BY score DESC, lead_id"
        if output is not None:
            write_query(con, query, output)
            err.print(f"wrote {_count(con)} leads to {output}")
        if as_json:
            rows = _dicts(con, query)
            sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        elif output is None:
            _print_summary(con, top, as_of_us)


def _attach_model(
    con: duckdb.DuckDBPyConnection, book: Playbook, model: Path, leads: Path | None, events: Path
) -> None:
    if leads is None:
        raise UserError("--model needs --leads: the model predicts from lead attributes")
    try:
        from pyrometer.predictive.attach import attach_predictions
    except ImportError:
        raise UserError(
            "--model needs the predictive extra: pip install 'pyrometer[predict]'"
        ) from None
    with err.status("Predicting p_convert..."):
        attach_predictions(con, "pyro_scored", book, model, leads, events)


def _count(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("SELECT count(*) FROM pyro_scored").fetchone()
    return int(row[0]) if row else 0


def _dicts(con: duckdb.DuckDBPyConnection, query: str) -> list[dict[str, Any]]:
    rel = con.sql(
        f"SELECT * REPLACE (round(score, 4) AS score, round(fit, 4) AS fit, "
        f"round(engagement, 4) AS engagement, {iso_sql('last_activity')} "
        f"AS last_activity) FROM ({query})"
    )
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


TEMPERATURE_STYLE = {"hot": "bold red", "warm": "yellow", "cold": "cyan"}


def _print_summary(con: duckdb.DuckDBPyConnection, top: int, as_of_us: int) -> None:
    counts = dict(con.sql("SELECT temperature, count(*) FROM pyro_scored GROUP BY ALL").fetchall())
    total = sum(counts.values())
    rows = _dicts(con, f"SELECT * FROM pyro_scored ORDER BY score DESC, lead_id LIMIT {int(top)}")
    predicted = bool(rows) and "p_convert" in rows[0]
    table = Table(title=f"Top {min(top, total)} of {total} leads as of {iso(as_of_us)}")
    numeric = {"score", "fit", "engagement", "p_convert"}
    columns = ["lead", "score", "fit", "engagement", *(["p_convert"] if predicted else [])]
    for column in [*columns, "temperature", "stage", "funnel", "last activity"]:
        table.add_column(column, justify="right" if column in numeric else "left")
    for row in rows:
        style = TEMPERATURE_STYLE.get(row["temperature"], "")
        probability = row.get("p_convert")
        table.add_row(
            row["lead_id"],
            f"{row['score']:.2f}",
            f"{row['fit']:.2f}",
            f"{row['engagement']:.2f}",
            *([f"{probability:.3f}" if probability is not None else "-"] if predicted else []),
            f"[{style}]{row['temperature']}[/]",
            row["stage"] + (" (suppressed)" if row["suppressed"] else ""),
            row["funnel"],
            (row["last_activity"] or "")[:16].replace("T", " "),
        )
    out.print(table)
    out.print(
        "  ".join(
            f"[{TEMPERATURE_STYLE[t]}]{t}[/]: {counts.get(t, 0)}" for t in ("hot", "warm", "cold")
        )
    )


def explain_command(
    lead_id: Annotated[str, typer.Argument(help="The lead to explain.", show_default=False)],
    events: EventsArg,
    leads: LeadsOpt = None,
    playbook: PlaybookOpt = None,
    as_of: AsOfOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the ledger as JSON.")] = False,
) -> None:
    """Show every point of one lead's score: which events and rules gave what."""
    with user_errors():
        book = load_playbook(playbook)
        as_of_us = parse_as_of(as_of)
        con = connect()
        event_table, lead_table = _open(con, book, events, leads, strict=False)
        found = DuckDBBatchScorer(book, con).explain(event_table, lead_table, as_of_us, [lead_id])
        if lead_id not in found:
            raise UserError(
                f"lead {lead_id!r} has no events at or before {iso(as_of_us)} in "
                f"{events}" + (f" and is not in {leads}" if leads else "")
            )
        lead = found[lead_id]
        if as_json:
            sys.stdout.write(
                json.dumps(
                    {**lead.to_dict(ledger=True), "as_of": iso(as_of_us)}, ensure_ascii=False
                )
                + "\n"
            )
            return
        style = TEMPERATURE_STYLE[str(lead.temperature)]
        out.print(
            f"[bold]{lead_id}[/]  score [bold]{lead.score:.2f}[/] = fit {lead.fit:.2f} + "
            f"engagement {lead.engagement:.2f}  [{style}]{lead.temperature}[/]  "
            f"stage {lead.stage} ({lead.funnel})"
            + ("  [red]suppressed[/]" if lead.suppressed else "")
            + f"  as of {iso(as_of_us)}",
            highlight=False,
        )
        table = Table(show_footer=True)
        for name, footer, justify in (
            ("rule", "", "left"),
            ("event", "", "left"),
            ("id", "", "left"),
            ("when (UTC)", "total", "left"),
            ("points", "", "right"),
            ("now worth", f"{lead.score:.2f}", "right"),
        ):
            table.add_column(name, footer=footer, justify=justify)  # type: ignore[arg-type]
        for fit_line in lead.fit_lines:
            table.add_row(
                fit_line.rule, "(fit)", "", "", f"{fit_line.points:+g}", f"{fit_line.points:.2f}"
            )
        for line in lead.engagement_lines:
            note = "" if line.points else " [dim](cap)[/]"
            when = (iso(line.ts_us) or "")[:16].replace("T", " ")
            table.add_row(
                line.rule,
                line.event,
                line.event_id,
                when,
                f"{line.points:+g}{note}",
                f"{line.value:.2f}",
            )
        out.print(table)


def playbook_check(
    file: Annotated[Path, typer.Argument(help="Playbook YAML to check.", show_default=False)],
) -> None:
    """Validate a playbook; errors name the path inside the file and its line."""
    with user_errors():
        book = load_playbook(file)
        out.print(
            f"{file}: ok — {len(book.engagement)} engagement rules, {len(book.fit)} fit "
            f"rules, hot at {book.temperature.hot:g}, warm at {book.temperature.warm:g}"
        )


def playbook_show(
    file: Annotated[
        Path | None, typer.Argument(help="A playbook; default: the built-in one.")
    ] = None,
) -> None:
    """Print a playbook as YAML (the built-in one, with its comments, by default)."""
    with user_errors():
        if file is None:
            sys.stdout.write(default_playbook_text())
        else:
            sys.stdout.write(yaml.safe_dump(load_playbook(file).to_yaml_dict(), sort_keys=False))


def register(app: typer.Typer) -> None:
    """Add the scoring commands to ``app``."""
    app.command("score")(score_command)
    app.command("explain")(explain_command)
    playbook_app = typer.Typer(help="Check and show playbooks.", no_args_is_help=True)
    playbook_app.command("check")(playbook_check)
    playbook_app.command("show")(playbook_show)
    app.add_typer(playbook_app, name="playbook")
    from pyrometer.cli.demo_command import demo_command

    app.command("demo")(demo_command)
