"""``pyrometer reps add|list|set|away|back|remove``: the sales reps routing may give leads to.

The store is opened as by the other service commands (``--database`` or
``PYROMETER_DATABASE_URL``). SQLAlchemy is imported when a command runs, so ``pyrometer
--help`` stays light. A bad option is one line naming it, exit code 2, nothing stored.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pyrometer.cli.commands import UserError, out, user_errors
from pyrometer.cli.extras import needs_extra
from pyrometer.cli.output import aligned
from pyrometer.cli.service_commands import DatabaseOpt, opened

if TYPE_CHECKING:
    from pyrometer.routing.reps import RepError
    from pyrometer.service.reps import StoredRep

IdArg = Annotated[str, typer.Argument(help="The rep's id, e.g. kim.", show_default=False)]
CapacityOpt = Annotated[
    int | None, typer.Option("--capacity", help="Most new leads per window (playbook default).")
]
TerritoryOpt = Annotated[
    str | None,
    typer.Option(
        "--territory",
        help="A condition on lead attributes, YAML or JSON: '{country: [LT, LV, EE]}'; "
        "'{}' clears it.",
    ),
]
TimezoneOpt = Annotated[
    str | None, typer.Option("--timezone", help="IANA time zone, e.g. Europe/Vilnius (UTC).")
]
HoursOpt = Annotated[
    str | None,
    typer.Option("--hours", help="Local working hours, 09:00-17:00; 'always' clears them."),
]


def _territory(text: str) -> dict[str, Any] | None:
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        reason = str(exc).splitlines()[0]
        raise UserError(f"--territory: not YAML or JSON ({reason})") from None
    if value is None:
        return None
    if not isinstance(value, dict):
        raise UserError(
            f"--territory: expected a condition like {{country: [LT, LV]}}, got {text!r}"
        )
    return value


def _options(
    name: str | None,
    email: str | None,
    capacity: int | None,
    territory: str | None,
    timezone: str | None,
    hours: str | None,
) -> dict[str, Any]:
    """The fields given on the command line (those left out are not changed)."""
    data: dict[str, Any] = {}
    for field, value in (("name", name), ("email", email), ("capacity", capacity)):
        if value is not None:
            data[field] = value
    if territory is not None:
        data["territory"] = _territory(territory)
    if timezone is not None:
        data["timezone"] = timezone
    if hours is not None:
        data["hours"] = None if hours.strip().lower() == "always" else hours
    return data


def _named(exc: RepError) -> UserError:
    """A rep's field errors as the options that set them: ``--territory (country): ...``."""
    parts = []
    for field, message in exc.problems:
        head, _, rest = field.partition(".")
        option = "ID" if head == "id" else f"--{head}" if head else "rep"
        parts.append(f"{option}{f' ({rest})' if rest else ''}: {message}")
    return UserError("; ".join(parts))


def _print(stored: StoredRep, verb: str) -> None:
    rep = stored.rep
    out.print(f"{verb} rep {rep.id} ({rep.name} <{rep.email}>)", highlight=False, markup=False)


def reps_add(
    rep_id: IdArg,
    name: Annotated[str, typer.Option("--name", help="Full name.")],
    email: Annotated[str, typer.Option("--email", help="E-mail address.")],
    capacity: CapacityOpt = None,
    territory: TerritoryOpt = None,
    timezone: TimezoneOpt = None,
    hours: HoursOpt = None,
    database: DatabaseOpt = None,
) -> None:
    """Add a sales rep routing may give leads to."""
    with needs_extra("service", "reps add"):
        from pyrometer.routing.reps import RepError
        from pyrometer.service.reps import RepExists, add_rep

    with user_errors():
        data = {"id": rep_id, **_options(name, email, capacity, territory, timezone, hours)}
        with opened(database) as service:
            try:
                stored = add_rep(service, data)
            except RepError as exc:
                raise _named(exc) from None
            except RepExists:
                raise UserError(
                    f"ID: there is already a rep {rep_id!r} (change it with `pyrometer reps set`)"
                ) from None
    _print(stored, "added")


def reps_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
    database: DatabaseOpt = None,
) -> None:
    """List the reps: id, name, e-mail, capacity, territory, time zone, hours, away."""
    with needs_extra("service", "reps list"):
        from pyrometer.service.reps import list_reps

    with user_errors(), opened(database) as service:
        reps = [stored.rep.to_dict() for stored in list_reps(service)]
    if as_json:
        print(json.dumps({"items": reps}, ensure_ascii=False, indent=2))
        return
    header = ("id", "name", "email", "capacity", "territory", "timezone", "hours", "away")
    rows = [header] + [
        (
            rep["id"],
            rep["name"],
            rep["email"],
            "default" if rep["capacity"] is None else str(rep["capacity"]),
            "-" if rep["territory"] is None else json.dumps(rep["territory"], ensure_ascii=False),
            rep["timezone"],
            rep["hours"] or "always",
            "yes" if rep["away"] else "no",
        )
        for rep in reps
    ]
    print(aligned(rows))


def _change(rep_id: str, changes: dict[str, Any], database: str | None, command: str) -> None:
    with needs_extra("service", f"reps {command}"):
        from pyrometer.routing.reps import RepError
        from pyrometer.service.reps import update_rep

    with user_errors():
        with opened(database) as service:
            try:
                stored = update_rep(service, rep_id, changes)
            except RepError as exc:
                raise _named(exc) from None
        if stored is None:
            raise UserError(f"ID: there is no rep {rep_id!r} (see `pyrometer reps list`)")
    verb = {"away": "marked away", "back": "marked back"}.get(command, "changed")
    _print(stored, verb)


def reps_set(
    rep_id: IdArg,
    name: Annotated[str | None, typer.Option("--name", help="Full name.")] = None,
    email: Annotated[str | None, typer.Option("--email", help="E-mail address.")] = None,
    capacity: CapacityOpt = None,
    territory: TerritoryOpt = None,
    timezone: TimezoneOpt = None,
    hours: HoursOpt = None,
    database: DatabaseOpt = None,
) -> None:
    """Change the given fields of a rep; the others keep their value."""
    with user_errors():
        changes = _options(name, email, capacity, territory, timezone, hours)
        if not changes:
            raise UserError(
                "nothing to change: give --name, --email, --capacity, --territory, "
                "--timezone or --hours"
            )
    _change(rep_id, changes, database, "set")


def reps_away(rep_id: IdArg, database: DatabaseOpt = None) -> None:
    """Mark a rep away: routing gives them nothing new until `pyrometer reps back`."""
    _change(rep_id, {"away": True}, database, "away")


def reps_back(rep_id: IdArg, database: DatabaseOpt = None) -> None:
    """Mark a rep back from away."""
    _change(rep_id, {"away": False}, database, "back")


def reps_remove(rep_id: IdArg, database: DatabaseOpt = None) -> None:
    """Remove a rep."""
    with needs_extra("service", "reps remove"):
        from pyrometer.service.reps import remove_rep

    with user_errors():
        with opened(database) as service:
            removed = remove_rep(service, rep_id)
        if not removed:
            raise UserError(f"ID: there is no rep {rep_id!r} (see `pyrometer reps list`)")
    out.print(f"removed rep {rep_id}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    reps_app = typer.Typer(help="Sales reps that routing gives leads to.", no_args_is_help=True)
    reps_app.command("add")(reps_add)
    reps_app.command("list")(reps_list)
    reps_app.command("set")(reps_set)
    reps_app.command("away")(reps_away)
    reps_app.command("back")(reps_back)
    reps_app.command("remove")(reps_remove)
    app.add_typer(reps_app, name="reps")
