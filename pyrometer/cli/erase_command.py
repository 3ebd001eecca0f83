"""``pyrometer erase LEAD``: a person's right to erasure, from the command line."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from pyrometer.cli.commands import UserError, out, user_errors


def erase_command(
    lead: Annotated[str, typer.Argument(help="The lead's id.", show_default=False, metavar="LEAD")],
    by: Annotated[
        str | None,
        typer.Option("--by", help="Who asked (a name or ticket); default: your user name."),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            help="Store URL; default: $PYROMETER_DATABASE_URL, else sqlite:///pyrometer.db.",
        ),
    ] = None,
) -> None:
    """Erase LEAD: its row, events, linked anonymous ids and history, in one transaction.

    A tombstone keeps the time, who asked and how many rows went, not who the lead was.
    A later event for the same id starts a new lead."""
    from pyrometer.cli.commands import lead_argument
    from pyrometer.cli.extras import needs_extra
    from pyrometer.cli.service_commands import opened

    with needs_extra("service", "erase"):
        from pyrometer.service.erasure import erase_lead
        from pyrometer.service.leads import UnknownLead

    with user_errors():
        # The id as the store keeps it: trimmed, in NFC (`" Jose\u0301"` is `José`).
        lead = lead_argument(lead)
        with opened(database) as service:
            try:
                tombstone = erase_lead(service, lead, by or f"cli: {_user()}")
            except UnknownLead:
                raise UserError(f"no lead {lead!r} in the store") from None
    removed = tombstone.removed
    out.print(
        f"erased lead {lead!r}: {removed.events} events, {removed.identities} linked ids, "
        f"{removed.transitions} transitions (tombstone {tombstone.id})",
        highlight=False,
        soft_wrap=True,
    )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return "unknown"
