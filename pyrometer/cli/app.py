"""The ``pyrometer`` command: one Typer app, each group of commands in its own module."""

from __future__ import annotations

import typer

from pyrometer.cli import commands

app = typer.Typer(
    name="pyrometer",
    help="Score leads: fit, decaying engagement, cold/warm/hot, explained.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
commands.register(app)
try:
    from pyrometer.cli import predictive_commands
except ImportError:  # the predictive extra (scikit-learn, LightGBM) is not installed
    predictive_commands = None  # type: ignore[assignment]
if predictive_commands is not None:
    predictive_commands.register(app)
try:
    from pyrometer.cli import service_commands
except ImportError:  # the service extra (SQLAlchemy, FastAPI...) is not installed
    service_commands = None  # type: ignore[assignment]
if service_commands is not None:
    service_commands.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
