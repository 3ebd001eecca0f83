"""``pyrometer demo``: a synthetic company, scored, with proof that temperature predicts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pyrometer.cli.commands import TEMPERATURE_STYLE, err, out, parse_as_of, user_errors
from pyrometer.cli.output import print_table
from pyrometer.cli.progress import phased_progress
from pyrometer.core.timeutil import from_us, iso, to_us

if TYPE_CHECKING:
    import duckdb


def demo_command(
    folder: Annotated[Path, typer.Option("--dir", help="Where to write the demo files.")] = Path(
        "pyrometer-demo"
    ),
    leads: Annotated[int, typer.Option("--leads", min=10, help="How many leads.")] = 3000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 7,
    end: Annotated[
        str | None, typer.Option("--end", help="Last day of the data (ISO-8601); default: now.")
    ] = None,
    playbook: Annotated[Path | None, typer.Option("--playbook", help="Playbook YAML.")] = None,
    horizon: Annotated[
        int,
        typer.Option(
            "--horizon",
            min=1,
            help="Days after the snapshot in which a purchase counts as conversion.",
        ),
    ] = 30,
) -> None:
    """Generate a synthetic company, score it, and show conversion by temperature."""
    from pyrometer.core.playbook import load_playbook
    from pyrometer.demo.synth import generate
    from pyrometer.engines.duckdb_batch import DuckDBBatchScorer, connect
    from pyrometer.io.readers import open_events, open_leads
    from pyrometer.io.writers import write_query

    with user_errors():
        book = load_playbook(playbook)
        end_us = parse_as_of(end, "--end")
        with err.status(f"Generating {leads} leads..."):
            company = generate(leads, seed=seed, end=from_us(end_us))
            leads_path, events_path = company.write(folder)
        err.print(
            f"wrote {len(company.leads)} leads to {leads_path} and "
            f"{len(company.events)} events to {events_path}"
        )

        con = connect()
        events = open_events(con, events_path)
        lead_table = open_leads(con, leads_path)
        scorer = DuckDBBatchScorer(book, con)
        snapshot_us = to_us(from_us(end_us) - timedelta(days=horizon))
        before = f"Scoring {horizon} days ago"
        with phased_progress(con, err, {"Scoring now": 1, before: 1}) as phase:
            phase("Scoring now")
            now = scorer.score_relation(events, lead_table, end_us)
            con.execute(f"CREATE TEMP TABLE demo_now AS {now.sql_query()}")
            phase(before)
            then = scorer.score_relation(events, lead_table, snapshot_us)
            con.execute(f"CREATE TEMP TABLE demo_then AS {then.sql_query()}")
        scores_path = folder / "scores.csv"
        write_query(con, "SELECT * FROM demo_now ORDER BY score DESC, lead_id", scores_path)

        counts = dict(con.sql("SELECT temperature, count(*) FROM demo_now GROUP BY ALL").fetchall())
        out.print(
            f"\n[bold]Scored {sum(counts.values())} leads as of {iso(end_us)}[/] "
            f"(written to {scores_path}):  "
            + "  ".join(
                f"[{TEMPERATURE_STYLE[t]}]{t}[/] {counts.get(t, 0)}"
                for t in ("hot", "warm", "cold")
            )
        )
        rows = con.sql(f"""
            SELECT t.temperature, count(*) AS leads,
                   count(*) FILTER (WHERE p.lead_id IS NOT NULL) AS converted
            FROM demo_then t LEFT JOIN (
                SELECT DISTINCT lead_id FROM pyro_events
                WHERE event = 'purchase' AND ts_us > {snapshot_us} AND ts_us <= {end_us}) p
              ON p.lead_id = t.lead_id
            WHERE NOT t.stage IN ('customer', 'disqualified')
            GROUP BY ALL
        """).fetchall()
        by_temp = {row[0]: row[1:] for row in rows}
        table = Table(
            title=f"Temperature on {iso(snapshot_us)[:10]} → purchase in the next "
            f"{horizon} days (open leads)"
        )
        for column in ("temperature", "leads", "converted", "conversion"):
            table.add_column(column, justify="left" if column == "temperature" else "right")
        for temp in ("hot", "warm", "cold"):
            n, converted = by_temp.get(temp, (0, 0))
            rate = f"{converted / n:.1%}" if n else "-"
            table.add_row(f"[{TEMPERATURE_STYLE[temp]}]{temp}[/]", str(n), str(converted), rate)
        print_table(out, table)
        out.print(
            f"Next: pyrometer explain {_hottest(con)} {events_path} --leads {leads_path} "
            f"--as-of {iso(end_us)}",
            highlight=False,
            soft_wrap=True,  # a command to copy: never broken over two lines
        )


def _hottest(con: duckdb.DuckDBPyConnection) -> str:
    row = con.execute(
        "SELECT lead_id FROM demo_now ORDER BY score DESC, lead_id LIMIT 1"
    ).fetchone()
    return str(row[0]) if row else "LEAD_ID"
