"""Service commands: ``serve``, ``import``, ``erase`` and ``keys create``.

They all open the store named by ``--database`` or ``PYROMETER_DATABASE_URL`` (default:
``pyrometer.db`` here), migrating it to the newest schema first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pyrometer.cli.commands import UserError, err, out, user_errors
from pyrometer.service.keys import Scope, create_key
from pyrometer.service.runtime import Service
from pyrometer.store.engine import URL_VARIABLE, database_url

DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="Store URL (sqlite:///file.db or postgresql://...); "
        "default: $PYROMETER_DATABASE_URL, else sqlite:///pyrometer.db.",
    ),
]


def _open(database: str | None) -> Service:
    try:
        return Service.open(database)
    except Exception as exc:  # a bad URL or an unreachable server: one line, not a trace
        raise UserError(f"cannot open the store: {str(exc).splitlines()[0]}") from None


def serve_command(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    database: DatabaseOpt = None,
    demo: Annotated[
        bool,
        typer.Option("--demo", help="Load a synthetic company into an empty store; print keys."),
    ] = False,
    demo_leads: Annotated[int, typer.Option("--demo-leads", min=10)] = 500,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request.")] = False,
    workers: Annotated[
        int,
        typer.Option("--workers", min=1, help="Server processes (on 2 cores, 1 is fastest)."),
    ] = 1,
    scoring_processes: Annotated[
        int | None,
        typer.Option(
            "--scoring-processes",
            min=0,
            help="Processes per server process that score ingested events ahead of their "
            "write, on other cores (default 2; 0: score in the server process).",
        ),
    ] = None,
) -> None:
    """Run the REST API (OpenAPI at /docs) with the decay scheduler."""
    import uvicorn

    from pyrometer.api.app import create_app
    from pyrometer.api.factory import SCORING_PROCESSES, SCORING_VARIABLE

    if scoring_processes is None:
        scoring_processes = SCORING_PROCESSES

    with user_errors():
        service = _open(database)
        if demo:
            _load_demo(service, demo_leads)
            for scope in (Scope.ADMIN, Scope.INGEST):
                out.print(
                    f"{scope.value} key: {create_key(service, scope, 'demo')}", highlight=False
                )
        out.print(f"Pyrometer on http://{host}:{port} (API docs at /docs)", highlight=False)
    log_level = "info" if access_log else "warning"
    if workers == 1:
        uvicorn.run(
            create_app(service, scoring_processes=scoring_processes),
            host=host,
            port=port,
            access_log=access_log,
            log_level=log_level,
        )
        return
    service.close()
    os.environ[URL_VARIABLE] = database_url(database)
    os.environ[SCORING_VARIABLE] = str(scoring_processes)
    uvicorn.run(
        "pyrometer.api.factory:app_from_env",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        access_log=access_log,
        log_level=log_level,
    )


def _load_demo(service: Service, n_leads: int) -> None:
    from pyrometer.core.conditions import normalize_name, normalize_record
    from pyrometer.core.timeutil import from_us, to_us
    from pyrometer.demo.synth import generate
    from pyrometer.service.ingest import ingest
    from pyrometer.service.inputs import Identify, Track
    from pyrometer.service.reads import LeadQuery, list_leads

    if list_leads(service, LeadQuery(limit=1))["items"]:
        err.print("the store already has leads; demo data not loaded again")
        return
    now = service.clock()
    company = generate(n_leads, seed=7, end=from_us(now), days=120)
    identifies = [
        Identify(
            message_id=f"demo-{lead['lead_id']}",
            user_id=lead["lead_id"],
            ts_us=now,
            traits=normalize_record({k: v for k, v in lead.items() if k != "lead_id"}),
        )
        for lead in company.leads
    ]
    tracks = [
        Track(
            message_id=row["event_id"],
            name=normalize_name(row["event"]),
            ts_us=to_us(row["timestamp"]),
            user_id=row["lead_id"],
            properties={"url": row["url"]} if row["url"] else {},
        )
        for row in company.events
    ]
    with _bar() as bar:
        task = bar.add_task("Loading demo", total=len(identifies) + len(tracks))
        for start in range(0, len(identifies), 500):
            ingest(service, [], identifies[start : start + 500])
            bar.advance(task, len(identifies[start : start + 500]))
        for start in range(0, len(tracks), 1000):
            ingest(service, tracks[start : start + 1000], [])
            bar.advance(task, len(tracks[start : start + 1000]))
    err.print(f"loaded {len(identifies)} demo leads and {len(tracks)} events")


def _bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def import_command(
    file: Annotated[
        Path,
        typer.Argument(help="Leads or events: CSV, Parquet or JSON Lines.", show_default=False),
    ],
    kind: Annotated[
        str,
        typer.Option("--kind", help="leads, events, or auto (events if it has an event column)."),
    ] = "auto",
    database: DatabaseOpt = None,
) -> None:
    """Load LEADS or EVENTS into the store; importing the same file again changes nothing."""
    from pyrometer.service.importer import detect_kind, import_events, import_leads

    with user_errors():
        if kind not in ("auto", "leads", "events"):
            raise UserError(f"--kind: expected leads, events or auto, got {kind!r}")
        if not file.exists():
            raise UserError(f"{file}: no such file")
        service = _open(database)
        chosen = detect_kind(file) if kind == "auto" else kind
        with _bar() as bar:
            task = bar.add_task(f"Importing {chosen}", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            if chosen == "events":
                result = import_events(service, file, progress)
                out.print(
                    f"imported {result.accepted} new events from {file} "
                    f"({result.duplicates} already in the store)",
                    highlight=False,
                    soft_wrap=True,
                )
            else:
                rows = import_leads(service, file, progress)
                out.print(f"imported {rows} leads from {file}", highlight=False, soft_wrap=True)
        service.close()


def keys_create(
    scope: Annotated[Scope, typer.Option("--scope", help="ingest, read or admin.")],
    name: Annotated[str, typer.Option("--name", help="A note on who uses the key.")] = "",
    database: DatabaseOpt = None,
) -> None:
    """Create an API key; it is printed once, as the last line (only its hash is stored)."""
    with user_errors():
        service = _open(database)
        key = create_key(service, scope, name)
        service.close()
    err.print(f"created a {scope.value} key; store it now, it cannot be shown again:")
    print(key)


def register(app: typer.Typer) -> None:
    from pyrometer.cli.erase_command import erase_command

    app.command("serve")(serve_command)
    app.command("import")(import_command)
    app.command("erase")(erase_command)
    keys_app = typer.Typer(help="API keys for the service.", no_args_is_help=True)
    keys_app.command("create")(keys_create)
    app.add_typer(keys_app, name="keys")
