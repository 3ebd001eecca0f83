"""Service commands: ``serve``, ``worker``, ``import``, ``erase`` and ``keys create|list|revoke``.

They all open the store named by ``--database`` or ``PYROMETER_DATABASE_URL`` (default:
``pyrometer.db`` here), migrating it to the newest schema first.

SQLAlchemy, FastAPI and uvicorn are imported when a command runs; without the
``service`` extra each command says which extra to install.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pyrometer.cli.commands import EncodingOpt, UserError, err, out, user_errors
from pyrometer.cli.extras import needs_extra
from pyrometer.service.scopes import Scope

if TYPE_CHECKING:
    from rich.progress import Progress

    from pyrometer.service.runtime import Service

DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="Store URL (sqlite:///file.db or postgresql://...); "
        "default: $PYROMETER_DATABASE_URL, else sqlite:///pyrometer.db.",
    ),
]


def _open(database: str | None) -> Service:
    from pyrometer.service.runtime import Service

    try:
        return Service.open(database)
    except Exception as exc:  # a bad URL or an unreachable server: one line, not a trace
        raise UserError(f"cannot open the store: {str(exc).splitlines()[0]}") from None


@contextmanager
def opened(database: str | None) -> Iterator[Service]:
    """The store, as :func:`_open` opens it, closed when the block ends however it ends."""
    service = _open(database)
    try:
        yield service
    finally:
        service.close()


def serve_command(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    database: DatabaseOpt = None,
    demo: Annotated[
        bool,
        typer.Option("--demo", help="Load a synthetic company into an empty store; print keys."),
    ] = False,
    demo_leads: Annotated[int, typer.Option("--demo-leads", min=10)] = 500,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Where --demo keeps its store and keys (default: $PYROMETER_DATA_DIR, "
            "else ~/.local/share/pyrometer).",
            show_default=False,
        ),
    ] = None,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request.")] = False,
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format",
            help="Log lines on stderr: text, or json (one object per line). "
            "Never a request's body, traits or properties.",
        ),
    ] = "text",
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
    no_docs: Annotated[
        bool,
        typer.Option("--no-docs", help="Serve no /docs or /openapi.json (PYROMETER_DOCS=off)."),
    ] = False,
    header_timeout: Annotated[
        float | None,
        typer.Option(
            "--header-timeout",
            min=0.1,
            help="Seconds a client may take to send a request's headers (default 10).",
        ),
    ] = None,
    body_timeout: Annotated[
        float | None,
        typer.Option(
            "--body-timeout",
            min=0.1,
            help="Seconds a client may take to send a request's body (default 30).",
        ),
    ] = None,
) -> None:
    """Run the REST API (OpenAPI at /docs) with the decay scheduler and webhook deliveries."""
    with needs_extra("service", "serve"):
        from pyrometer.api import server
        from pyrometer.api.docs import DOCS_VARIABLE
        from pyrometer.api.factory import SCORING_PROCESSES, SCORING_VARIABLE
        from pyrometer.api.logs import ACCESS_VARIABLE, FORMAT_VARIABLE, FORMATS, configure_logging
        from pyrometer.api.settings import check_settings
        from pyrometer.api.slow_clients import (
            BODY_TIMEOUT_VARIABLE,
            HEADER_TIMEOUT_VARIABLE,
            GuardedHttpToolsProtocol,
        )
        from pyrometer.cli import data_dir as data
        from pyrometer.service.openmp import sleep_between
        from pyrometer.store.engine import URL_VARIABLE, database_url

    sleep_between()  # OpenMP (LightGBM's predictions) in this process and its children
    if scoring_processes is None:
        scoring_processes = SCORING_PROCESSES
    # Settings travel in the environment, so that every worker process has them.
    if no_docs:
        os.environ[DOCS_VARIABLE] = "off"
    for variable, seconds in (
        (HEADER_TIMEOUT_VARIABLE, header_timeout),
        (BODY_TIMEOUT_VARIABLE, body_timeout),
    ):
        if seconds is not None:
            os.environ[variable] = str(seconds)

    with user_errors():
        if log_format not in FORMATS:
            raise UserError(f"--log-format: expected text or json, got {log_format!r}")
        docs = check_settings()  # a bad setting is one line now, not a worker's traceback
        sock = server.bind(host, port)  # before anything starts: a port in use stops here
        folder = None
        if demo and database is None and not os.environ.get(URL_VARIABLE):
            folder = data.prepare(data.data_dir(data_dir))
            database = data.demo_database_url(folder)
        service = _open(database)
        if demo:
            _load_demo(service, demo_leads)
            keys = data.demo_keys(
                service, folder or data.prepare(data.data_dir(data_dir)), database_url(database)
            )
            for scope, key in keys.items():
                out.print(f"{scope.value} key: {key}", highlight=False)
    where = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
    # Links in nurture e-mails start here unless PYROMETER_PUBLIC_URL says otherwise.
    os.environ.setdefault("PYROMETER_PUBLIC_URL", where)
    if demo:
        users = data.demo_users(
            service, folder or data.prepare(data.data_dir(data_dir)), database_url(database)
        )
        out.print(f"dashboard at {where}/ ; sign in as", highlight=False)
        for email, role, rep, password in users:
            who = f"{role}, {rep}'s queue" if rep else role
            out.print(f"  {email} ({who}), password: {password}", highlight=False)
    line = f"Pyrometer on {where}" + (" (API docs at /docs)" if docs else "")
    server.announce_when_ready(host, port, lambda: out.print(line, highlight=False))
    # Our handler and formats for every logger, uvicorn's too; requests are logged by
    # pyrometer.api.request_context (route templates, request ids), not uvicorn's access log.
    configure_logging("json" if log_format == "json" else "text", access_log)
    os.environ[FORMAT_VARIABLE] = log_format
    os.environ[ACCESS_VARIABLE] = "1" if access_log else ""
    options = {
        "access_log": False,
        "log_level": "info" if access_log else "warning",
        "log_config": None,
        "http": GuardedHttpToolsProtocol,
    }
    if workers == 1:
        from pyrometer.api.app import create_app

        app = create_app(service, scoring_processes=scoring_processes)
        server.run(app, sock, 1, **options)
        return
    service.close()
    os.environ[URL_VARIABLE] = database_url(database)
    os.environ[SCORING_VARIABLE] = str(scoring_processes)
    server.run("pyrometer.api.factory:app_from_env", sock, workers, factory=True, **options)


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
    _add_demo_reps(service)
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
    _demo_requests_now(service)
    routed = _routed_counts(service)
    if routed:
        err.print("hot leads routed: " + ", ".join(f"{rep} {n}" for rep, n in routed.items()))
    touched, fast = _demo_touches(service)
    if touched:
        err.print(f"first sales touches logged: {touched} ({fast} within 5 minutes)")
    _demo_model(service)


def _demo_model(service: Service) -> None:
    """Learn the demo company's conversion model from its own outcomes and switch it on,
    so lead reads carry p_convert and the reports page shows lift and calibration."""
    from pyrometer.service import models

    try:
        found = models.run_training(service, models.create_job(service))
    except Exception as exc:  # too few outcomes in a small demo: scores work without it
        err.print(f"no demo model: {exc}")
        return
    if found.get("model") is None:
        err.print(f"no demo model: {found.get('reason') or 'too few outcomes'}")
        return
    models.activate(service, found["model"])
    err.print(
        f"conversion model {found['model']} on: {found['outcomes']} outcomes, "
        f"ROC AUC {found['roc_auc']:.2f} on the newest"
    )


def _demo_touches(service: Service) -> tuple[int, int]:
    """The demo's reps answered most of their older hot leads: a third within 5 minutes,
    the rest minutes to a day later, a fifth never (drawn at random, independent of whether
    the lead bought), so the speed-to-lead report has something to measure. Clocks
    started in the last hour keep running for the queue."""
    import random

    import sqlalchemy as sa

    from pyrometer.service.touches import add_touch
    from pyrometer.store.tables import assignments

    now = service.clock()
    rows = service.read(
        lambda conn: conn.execute(
            sa.select(assignments.c.lead_id, assignments.c.rep_id, assignments.c.clock_us)
            .where(
                assignments.c.clock_us.is_not(None),
                assignments.c.rep_id.is_not(None),
                assignments.c.first_touch_us.is_(None),
                assignments.c.ended_us.is_(None),
                assignments.c.clock_us < now - 3_600_000_000,
            )
            .order_by(assignments.c.id)
        ).all()
    )
    rng = random.Random(7)
    touched = fast = 0
    for lead_id, rep, clock_us in rows:
        draw = rng.random()
        if draw < 0.2:
            continue
        seconds = rng.uniform(40, 300) if draw < 0.55 else rng.uniform(6 * 60, 86_400)
        at = clock_us + int(seconds * 1_000_000)
        if at >= now:
            continue
        kind = rng.choice(("call", "call", "email", "meeting"))
        add_touch(service, lead_id, kind, rep, at)
        touched += 1
        fast += seconds <= 300
    return touched, fast


def _demo_requests_now(service: Service, n: int = 2) -> None:
    """The two warmest leads ask for a demo as the server starts: they turn hot now, so
    the dashboard's queue opens on running speed-to-lead clocks, not only old ones."""
    from pyrometer.service.ingest import ingest
    from pyrometer.service.inputs import Track
    from pyrometer.service.reads import LeadQuery, list_leads

    warm = list_leads(service, LeadQuery(temperature=("warm",), min_score=30, limit=n))
    now = service.clock()
    tracks = [
        Track(f"demo-now-{lead['lead_id']}", "demo_request", now, user_id=lead["lead_id"])
        for lead in warm["items"]
    ]
    if tracks:
        ingest(service, tracks, [])


DEMO_REPS = (
    {
        "id": "kim",
        "name": "Kim Lee",
        "email": "kim@example.com",
        "capacity": 40,
        "territory": {"country": ["GB", "DE", "LT", "UA"]},
        "timezone": "Europe/Vilnius",
    },
    {"id": "sam", "name": "Sam Ortiz", "email": "sam@example.com", "timezone": "America/New_York"},
)


def _add_demo_reps(service: Service) -> None:
    """Two reps, so the demo's hot leads are routed: Kim takes the European territory,
    Sam the rest (and Kim's overflow)."""
    from pyrometer.service.reps import add_rep, list_reps

    if not list_reps(service):
        for rep in DEMO_REPS:
            add_rep(service, rep)


def _routed_counts(service: Service) -> dict[str, int]:
    import sqlalchemy as sa

    from pyrometer.store.tables import leads

    query = (
        sa.select(leads.c.owner, sa.func.count())
        .where(leads.c.owner.is_not(None))
        .group_by(leads.c.owner)
        .order_by(leads.c.owner)
    )
    return {owner: int(n) for owner, n in service.read(lambda conn: conn.execute(query).all())}


def _bar() -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

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
    encoding: EncodingOpt = None,
    id_column: Annotated[
        str | None,
        typer.Option("--id", help="The lead id column (as score's --id); default: lead_id…"),
    ] = None,
) -> None:
    """Load LEADS or EVENTS into the store; importing the same file again changes nothing."""
    with needs_extra("service", "import"):
        from pyrometer.service.importer import detect_kind, import_events, import_leads

    with user_errors():
        if kind not in ("auto", "leads", "events"):
            raise UserError(f"--kind: expected leads, events or auto, got {kind!r}")
        if not file.exists():
            raise UserError(f"{file}: no such file")
        service = _open(database)
        chosen = detect_kind(file, encoding, id_column) if kind == "auto" else kind
        with _bar() as bar:
            task = bar.add_task(f"Importing {chosen}", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            if chosen == "events":
                result = import_events(service, file, progress, encoding, id_column)
                out.print(
                    f"imported {result.accepted} new events from {file} "
                    f"({result.duplicates} already in the store)",
                    highlight=False,
                    soft_wrap=True,
                )
            else:
                rows = import_leads(service, file, progress, encoding, id_column)
                out.print(f"imported {rows} leads from {file}", highlight=False, soft_wrap=True)
        service.close()


def keys_create(
    scope: Annotated[Scope, typer.Option("--scope", help="ingest, read or admin.")],
    name: Annotated[str, typer.Option("--name", help="A note on who uses the key.")] = "",
    database: DatabaseOpt = None,
) -> None:
    """Create an API key; it is printed once, as the last line (only its hash is stored)."""
    with needs_extra("service", "keys create"):
        from pyrometer.service.keys import create_key

    with user_errors(), opened(database) as service:
        key = create_key(service, scope, name)
    err.print(f"created a {scope.value} key; store it now, it cannot be shown again:")
    print(key)


def keys_list(
    all_keys: Annotated[
        bool, typer.Option("--all/--active", help="Include revoked keys (default) or not.")
    ] = True,
    database: DatabaseOpt = None,
) -> None:
    """List the API keys: id, scope, name, first characters, created, last used, revoked.

    Never a key itself: only its hash is stored.
    """
    with needs_extra("service", "keys list"):
        from pyrometer.cli.keys_table import keys_table
        from pyrometer.service.keys import list_keys

    with user_errors(), opened(database) as service:
        infos = list_keys(service, include_revoked=all_keys)
    print(keys_table(infos))


def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="The key's id, from `pyrometer keys list`.")],
    database: DatabaseOpt = None,
) -> None:
    """Revoke a key: every server refuses it from its next request on."""
    with needs_extra("service", "keys revoke"):
        from pyrometer.service.keys import revoke_key

    with user_errors():
        with opened(database) as service:
            info = revoke_key(service, key_id)
        if info is None:
            raise UserError(f"KEY_ID: there is no key {key_id} (see `pyrometer keys list`)")
    out.print(
        f"revoked key {info.id} ({info.scope}, {info.name!r})",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    from pyrometer.cli import worker_command
    from pyrometer.cli.erase_command import erase_command

    app.command("serve")(serve_command)
    worker_command.register(app)
    app.command("import")(import_command)
    app.command("erase")(erase_command)
    keys_app = typer.Typer(help="API keys for the service.", no_args_is_help=True)
    keys_app.command("create")(keys_create)
    keys_app.command("list")(keys_list)
    keys_app.command("revoke")(keys_revoke)
    app.add_typer(keys_app, name="keys")
