"""``pyrometer users add|list|remove``: the people who sign in to the dashboard.

The store is opened as by the other service commands. SQLAlchemy and argon2 are imported
when a command runs, so ``pyrometer --help`` stays light.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from pyrometer.cli.commands import UserError, out, user_errors
from pyrometer.cli.extras import needs_extra
from pyrometer.cli.output import aligned
from pyrometer.cli.service_commands import DatabaseOpt, opened

EmailArg = Annotated[str, typer.Argument(help="The user's e-mail address.", show_default=False)]


def users_add(
    email: EmailArg,
    role: Annotated[str, typer.Option("--role", help="rep, manager or admin.")],
    rep: Annotated[
        str | None,
        typer.Option("--rep", help="The routing rep id whose queue a rep user sees."),
    ] = None,
    database: DatabaseOpt = None,
) -> None:
    """Add a dashboard user; their generated password is the last word of the last line
    (shown once; they choose a new one at first sign-in)."""
    with needs_extra("service", "users add"):
        from pyrometer.service.users import UserError as BadUser
        from pyrometer.service.users import add_user

    with user_errors(), opened(database) as service:
        try:
            user, password = add_user(service, email, role, rep)
        except BadUser as exc:
            raise UserError(str(exc)) from None
    linked = f", rep {user.rep_id}" if user.rep_id else ""
    out.print(f"added {user.role} {user.email}{linked}", highlight=False, markup=False)
    print(f"password (change it at first sign-in): {password}")


def users_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
    database: DatabaseOpt = None,
) -> None:
    """List the users: e-mail, role, rep, whether the password must change, last sign-in."""
    with needs_extra("service", "users list"):
        from pyrometer.service.users import list_users

    with user_errors(), opened(database) as service:
        users = list_users(service)
    if as_json:
        items = [{**u.as_json(), "must_change_password": u.must_change} for u in users]
        print(json.dumps({"items": items}, ensure_ascii=False, indent=2))
        return
    rows = [("email", "role", "rep", "must_change", "last_sign_in")]
    for u in users:
        last = "never"
        if u.last_sign_in_us is not None:
            last = datetime.fromtimestamp(u.last_sign_in_us / 1e6, UTC).strftime("%Y-%m-%dT%H:%MZ")
        rows.append((u.email, u.role, u.rep_id or "-", "yes" if u.must_change else "no", last))
    print(aligned(rows))


def users_remove(email: EmailArg, database: DatabaseOpt = None) -> None:
    """Remove a user: their sessions end at their next request."""
    with needs_extra("service", "users remove"):
        from pyrometer.service.users import remove_user

    with user_errors():
        with opened(database) as service:
            removed = remove_user(service, email)
        if not removed:
            raise UserError(f"EMAIL: there is no user {email!r} (see `pyrometer users list`)")
    out.print(f"removed user {email.strip().lower()}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    users_app = typer.Typer(help="People who sign in to the dashboard.", no_args_is_help=True)
    users_app.command("add")(users_add)
    users_app.command("list")(users_list)
    users_app.command("remove")(users_remove)
    app.add_typer(users_app, name="users")
