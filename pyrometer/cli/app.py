"""The ``pyrometer`` command: one Typer app, each group of commands in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="pyrometer",
    help="Score leads: fit, decaying engagement, cold/warm/hot, explained.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from pyrometer.cli import commands

    commands.register(app)
    try:
        from pyrometer.cli import predictive_commands
    except ImportError:  # the predictive extra is not installed
        return
    predictive_commands.register(app)


def main() -> None:
    _register()
    app()


if __name__ == "__main__":
    main()
