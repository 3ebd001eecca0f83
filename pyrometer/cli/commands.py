"""Scoring commands: ``score``, ``explain``, ``playbook check|show`` and ``demo``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pyrometer.cli.output import print_table, stdout_console
from pyrometer.core.ids import EmptyLeadId, normalize_lead_id
from pyrometer.core.timeutil import TimeRangeError, iso, parse_time_us, to_us

if TYPE_CHECKING:  # imported where used: `pyrometer --help` loads neither DuckDB nor pydantic
    import duckdb

    from pyrometer.core.playbook import Playbook
    from pyrometer.engines.duckdb_batch import EventTable, LeadTable

out = stdout_console()
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
IdOpt = Annotated[
    str | None,
    typer.Option("--id", help="The lead id column of EVENTS and LEADS; default: lead_id, user_id…"),
]
LeadsStrOpt = Annotated[
    str | None,
    typer.Option("--leads", help="Leads: lead_id plus attributes (with --engine spark: Parquet)."),
]


class Engine(StrEnum):
    DUCKDB = "duckdb"
    SPARK = "spark"


EngineOpt = Annotated[
    Engine,
    typer.Option(
        "--engine",
        help="duckdb (this machine) or spark (a cluster; needs pip install 'pyrometer[spark]').",
    ),
]
MasterOpt = Annotated[
    str,
    typer.Option("--master", help="With --engine spark: local[N], spark://HOST:7077 or yarn."),
]
ConfOpt = Annotated[
    list[str] | None,
    typer.Option("--conf", help="With --engine spark: a Spark setting KEY=VALUE (repeatable)."),
]
EncodingOpt = Annotated[
    str | None,
    typer.Option(
        "--encoding", help="Text encoding of CSV / JSON Lines input (e.g. cp1252); default: UTF-8."
    ),
]


# The phases of `score`, in order, with their share of the time (one bar across them).
SCORE_PHASES = {
    "Reading": 0.25,
    "Scoring events": 0.45,
    "Stages and caps": 0.15,
    "Scoring fit": 0.05,
    "Classifying": 0.10,
}


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn input problems into one red line on stderr and exit code 2."""
    try:
        yield
    except BrokenPipeError:  # the reader left (`| head`): click ends quietly (exit 1)
        raise
    except (UserError, ValueError, OSError) as exc:  # InputError, PlaybookError: ValueErrors
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    except Exception as exc:
        duckdb = sys.modules.get("duckdb")  # loaded by the command if it got that far
        if duckdb is None or not isinstance(exc, duckdb.Error):
            raise
        err.print(f"[bold red]error:[/] {str(exc).splitlines()[0]}", highlight=False)
        raise typer.Exit(code=2) from None


def parse_as_of(text: str | None, option: str = "--as-of") -> int:
    """The time ``option`` gives (default: now), in the accepted range of times."""
    if text is None:
        return to_us(datetime.now(UTC))
    try:
        return parse_time_us(text)
    except TimeRangeError as exc:
        raise UserError(f"{option}: {text!r} {exc}") from None
    except ValueError:
        raise UserError(
            f"{option}: {text!r} is not an ISO-8601 time such as 2026-11-23T10:00:00Z"
        ) from None


def lead_argument(text: str, argument: str = "LEAD") -> str:
    """A lead id given on the command line, in the normal form the files' ids take."""
    try:
        return normalize_lead_id(text)
    except EmptyLeadId as exc:
        raise UserError(f"{argument}: {exc}") from None


def _open(
    con: duckdb.DuckDBPyConnection,
    playbook: Playbook,
    events: Path | None,
    leads: Path | None,
    strict: bool,
    id_column: str | None = None,
    encoding: str | None = None,
) -> tuple[EventTable | None, LeadTable | None]:
    from pyrometer.io.readers import open_events, open_leads

    event_table = (
        open_events(
            con,
            events,
            playbook.known_events if strict else None,
            lead_id_column=id_column,
            encoding=encoding,
        )
        if events is not None
        else None
    )
    lead_table = (
        open_leads(con, leads, lead_id_column=id_column, encoding=encoding)
        if leads is not None
        else None
    )
    from pyrometer.io.segment import with_traits

    # Segment identify traits in EVENTS fill in what LEADS does not give.
    traits = event_table.traits if event_table is not None else None
    return event_table, with_traits(con, lead_table, traits)


def score_command(
    events: Annotated[
        str | None,
        typer.Argument(
            metavar="EVENTS",
            help="Events: CSV, Parquet or JSON Lines (lead_id, event, timestamp, properties...); "
            "without it, LEADS are scored on fit alone. With --engine spark: any path Spark "
            "reads Parquet from (a folder, a glob, hdfs://, s3a://).",
            show_default=False,
        ),
    ] = None,
    leads: LeadsStrOpt = None,
    playbook: PlaybookOpt = None,
    as_of: AsOfOpt = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Write every lead to .csv, .parquet, .json or .jsonl (.csv.gz, .jsonl.gz "
            "compressed); '-' writes CSV to stdout.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array on stdout.")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail on events the playbook does not know.")
    ] = False,
    top: Annotated[int, typer.Option("--top", help="Rows in the table.", min=0)] = 20,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", help="A model from `pyrometer train`: adds p_convert (needs --leads)."
        ),
    ] = None,
    trust_pickle: Annotated[
        bool,
        typer.Option(
            "--trust-pickle",
            help="Load an old --model folder stored as a pickle (it can run code): only "
            "for a folder you trust.",
        ),
    ] = False,
    id_column: IdOpt = None,
    encoding: EncodingOpt = None,
    engine: EngineOpt = Engine.DUCKDB,
    master: MasterOpt = "local[*]",
    conf: ConfOpt = None,
) -> None:
    """Score every lead in EVENTS (and LEADS) as of a time."""
    from pyrometer.cli.progress import phased_progress
    from pyrometer.core.playbook import load_playbook
    from pyrometer.engines.duckdb_batch import DuckDBBatchScorer, connect
    from pyrometer.io.writers import write_query

    with user_errors():
        if events is None and leads is None:
            raise UserError("give EVENTS, --leads LEADS, or both")
        if as_json and output is not None and str(output) == "-":
            raise UserError("-o - and --json both write to stdout: give one of them")
        book = load_playbook(playbook)
        as_of_us = parse_as_of(as_of)
        if engine == "spark":
            unsupported = [
                name
                for name, given in (
                    ("--model", model),
                    ("--strict", strict),
                    ("--encoding", encoding),
                )
                if given
            ]
            if unsupported:
                raise UserError(f"{', '.join(unsupported)}: not with --engine spark")
            from pyrometer.cli.spark_commands import score_on_spark

            score_on_spark(
                book, events, leads, as_of_us, output, as_json, top, id_column, master, conf or []
            )
            return
        events_path = Path(events) if events is not None else None
        leads_path = Path(leads) if leads is not None else None
        if model is not None and leads is None:  # before scoring, not after
            raise UserError("--model needs --leads: the model predicts from lead attributes")
        con = connect()
        with phased_progress(con, err, SCORE_PHASES) as phase:
            phase("Reading")
            event_table, lead_table = _open(
                con, book, events_path, leads_path, strict, id_column, encoding
            )
            scorer = DuckDBBatchScorer(book, con)
            relation = scorer.score_relation(event_table, lead_table, as_of_us, progress=phase)
            con.execute(f"CREATE OR REPLACE TEMP TABLE pyro_scored AS {relation.sql_query()}")
        if model is not None and leads_path is not None:
            _attach_model(con, book, model, leads_path, events_path, id_column, trust_pickle)
        query = "SELECT * FROM pyro_scored ORDER BY score DESC, lead_id"
        if output is not None:
            write_query(con, query, output)
            err.print(f"wrote {_count(con)} leads to {'stdout' if str(output) == '-' else output}")
        if as_json:
            rows = _dicts(con, query)
            sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        elif output is None:
            _print_summary(con, top, as_of_us)
        _warn_unknown(book, scorer.last_name_counts)


def _warn_unknown(book: Playbook, counts: dict[str | None, int]) -> None:
    """Events no rule knows are worth 0: say how many, never silently (stderr, so that
    ``--json`` and ``-o -`` stay one JSON array)."""
    from pyrometer.core.playbook_check import describe_unknown, unknown_events

    unknown = unknown_events(book, counts)
    if unknown:
        err.print(
            f"unknown events: {describe_unknown(unknown)}: no rule, stage or suppression "
            "knows them (map them under aliases.events; see `pyrometer playbook check "
            "PLAYBOOK --events EVENTS`)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def _attach_model(
    con: duckdb.DuckDBPyConnection,
    book: Playbook,
    model: Path,
    leads: Path,
    events: Path | None,
    id_column: str | None = None,
    trust_pickle: bool = False,
) -> None:
    try:
        from pyrometer.predictive.attach import attach_predictions
    except ImportError:
        raise UserError(
            "--model needs the predictive extra: pip install 'pyrometer[predict]'"
        ) from None
    with err.status("Predicting p_convert..."):
        attach_predictions(con, "pyro_scored", book, model, leads, events, id_column, trust_pickle)


def _count(con: duckdb.DuckDBPyConnection) -> int:
    # fetchall, not fetchone: DuckDB 2 keeps a result open until a fetch returns no rows,
    # and refuses the next `con.sql` while it is (`-o FILE --json` stopped there).
    rows = con.execute("SELECT count(*) FROM pyro_scored").fetchall()
    return int(rows[0][0]) if rows else 0


def _dicts(con: duckdb.DuckDBPyConnection, query: str) -> list[dict[str, Any]]:
    from pyrometer.io.writers import iso_sql

    rel = con.sql(
        f"SELECT * REPLACE (round(score, 4) AS score, round(fit, 4) AS fit, "
        f"round(engagement, 4) AS engagement, {iso_sql('last_activity')} "
        f"AS last_activity) FROM ({query})"
    )
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


TEMPERATURE_STYLE = {"hot": "bold red", "warm": "yellow", "cold": "cyan"}


def _print_summary(con: duckdb.DuckDBPyConnection, top: int, as_of_us: int) -> None:
    counts = dict(con.sql("SELECT temperature, count(*) FROM pyro_scored GROUP BY ALL").fetchall())
    rows = _dicts(con, f"SELECT * FROM pyro_scored ORDER BY score DESC, lead_id LIMIT {int(top)}")
    print_summary(rows, counts, top, as_of_us)


def print_summary(
    rows: list[dict[str, Any]], counts: dict[str, int], top: int, as_of_us: int
) -> None:
    """The top leads (``rows``, best first, as :func:`_dicts` gives them) and how many leads
    each temperature has."""
    total = sum(counts.values())
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
    print_table(out, table)
    out.print(
        "  ".join(
            f"[{TEMPERATURE_STYLE[t]}]{t}[/]: {counts.get(t, 0)}" for t in ("hot", "warm", "cold")
        )
    )


def explain_command(
    lead_id: Annotated[str, typer.Argument(help="The lead to explain.", show_default=False)],
    events: Annotated[
        str,
        typer.Argument(
            help="Events: CSV, Parquet or JSON Lines (lead_id, event, timestamp, "
            "properties...); with --engine spark, any path Spark reads Parquet from.",
            show_default=False,
        ),
    ],
    leads: LeadsStrOpt = None,
    playbook: PlaybookOpt = None,
    as_of: AsOfOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the ledger as JSON.")] = False,
    id_column: IdOpt = None,
    encoding: EncodingOpt = None,
    engine: EngineOpt = Engine.DUCKDB,
    master: MasterOpt = "local[*]",
    conf: ConfOpt = None,
) -> None:
    """Show every point of one lead's score: which events and rules gave what."""
    from pyrometer.core.playbook import load_playbook
    from pyrometer.engines.duckdb_batch import DuckDBBatchScorer, connect

    with user_errors():
        book = load_playbook(playbook)
        as_of_us = parse_as_of(as_of)
        lead_id = lead_argument(lead_id)
        event_table = None
        if engine == "spark":
            if encoding:
                raise UserError("--encoding: not with --engine spark")
            from pyrometer.cli.spark_commands import explain_on_spark

            found = explain_on_spark(
                book, events, leads, as_of_us, lead_id, id_column, master, conf or []
            )
        else:
            con = connect()
            event_table, lead_table = _open(
                con, book, Path(events), Path(leads) if leads else None, False, id_column,
                encoding,
            )  # fmt: skip
            found = DuckDBBatchScorer(book, con).explain(
                event_table, lead_table, as_of_us, [lead_id]
            )
        if lead_id not in found:
            stitched = event_table.identities if event_table is not None else None
            if stitched is not None and lead_id in stitched.links:
                owner = stitched.links[lead_id]  # an identify or alias folded the visitor in
                raise UserError(
                    f"{lead_id!r} is an anonymous id of lead {owner!r} (an identify or alias "
                    f"call in {events} links them): its events count for that lead; "
                    f"run explain {owner!r}"
                )
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
            soft_wrap=True,
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
        print_table(out, table)


def playbook_check(
    file: Annotated[Path, typer.Argument(help="Playbook YAML to check.", show_default=False)],
    events: Annotated[
        Path | None,
        typer.Option(
            "--events", help="A sample of events: count those no rule, stage or alias knows."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    id_column: IdOpt = None,
    encoding: EncodingOpt = None,
) -> None:
    """Validate a playbook; errors name the path inside the file and its line.

    Warnings (exit code 0): events in no vocabulary (probable typos, with the nearest known
    name), aliases of events nothing uses; with --events, the sample's unknown events.
    """
    from pyrometer.core.playbook_check import (
        check_playbook,
        describe_unknown,
        unknown_events,
    )
    from pyrometer.engines.duckdb_batch import DuckDBBatchScorer, connect
    from pyrometer.io.readers import open_events

    with user_errors():
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"{file}: cannot read: {exc.strerror or exc}") from None
        book, warnings = check_playbook(text, str(file))
        counts: dict[str | None, int] | None = None
        if events is not None:
            con = connect()
            sample = open_events(con, events, lead_id_column=id_column, encoding=encoding)
            if sample.diagnose is not None:
                sample.diagnose()  # a row `score` would stop at, named as `score` names it
            counts = DuckDBBatchScorer(book, con).name_counts(sample)
        unknown = unknown_events(book, counts or {})
        if as_json:
            report: dict[str, Any] = {
                "file": str(file),
                "valid": True,
                "warnings": [{"path": path, "message": msg} for path, msg in warnings],
            }
            if counts is not None:
                report["events"] = sum(counts.values())
                report["unknown_events"] = dict(unknown.most_common())
            sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")
            return
        for path, message in warnings:
            err.print(
                f"[yellow]warning:[/] {file}: {path}: {message}",
                highlight=False,
                soft_wrap=True,
            )
        out.print(
            f"{file}: ok — {len(book.engagement)} engagement rules, {len(book.fit)} fit "
            f"rules, hot at {book.temperature.hot:g}, warm at {book.temperature.warm:g}",
            highlight=False,
        )
        if counts is not None:
            total = sum(counts.values())
            found = f"unknown events: {describe_unknown(unknown)}" if unknown else "all known"
            out.print(f"{events}: {total} events; {found}", highlight=False, soft_wrap=True)


def playbook_show(
    file: Annotated[
        Path | None, typer.Argument(help="A playbook; default: the built-in one.")
    ] = None,
) -> None:
    """Print a playbook as YAML (the built-in one, with its comments, by default)."""
    import yaml

    from pyrometer.core.playbook import default_playbook_text, load_playbook

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
