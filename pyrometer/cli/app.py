"""The ``pyrometer`` command: one Typer app, each group of commands in its own module.

Building the app imports no heavy library (DuckDB, pandas, scikit-learn, LightGBM,
SQLAlchemy, FastAPI): each command imports what it uses when it runs, so ``--help`` and
``--version`` start at once, and a command whose extra is not installed is still listed
and says which extra to install (:mod:`pyrometer.cli.extras`).
"""

from __future__ import annotations

from typing import Annotated

import typer

from pyrometer.cli import (
    backtest_command,
    commands,
    models_commands,
    predictive_commands,
    reps_commands,
    service_commands,
    tune_command,
    users_commands,
)

app = typer.Typer(
    name="pyrometer",
    help="Score leads: fit, decaying engagement, cold/warm/hot, explained.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"pyrometer {version('pyrometer')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            typer.echo("pyrometer (not installed)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Score leads: fit, decaying engagement, cold/warm/hot, explained."""


commands.register(app)
backtest_command.register(app)
tune_command.register(app)
predictive_commands.register(app)
service_commands.register(app)
reps_commands.register(app)
models_commands.register(app)
users_commands.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
