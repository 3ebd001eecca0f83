"""Commands that need an optional extra say which one to install when it is missing.

Every command is registered whatever is installed, so ``pyrometer serve`` on the base
install names ``pip install 'pyrometer[service]'`` instead of "No such command". The
heavy libraries of an extra are imported inside the command that uses them, never when
the command line is built: ``pyrometer --help`` imports none of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape

# The top-level modules each extra brings (pyproject.toml's optional dependencies).
EXTRA_MODULES: dict[str, frozenset[str]] = {
    "service": frozenset(
        {
            "sqlalchemy",
            "alembic",
            "fastapi",
            "starlette",
            "uvicorn",
            "httptools",
            "uvloop",
            "psycopg",
            "orjson",
            "httpx",
            "standardwebhooks",
            "argon2",
            "jinja2",
            "itsdangerous",
            "multipart",
            "python_multipart",
        }
    ),
    "predict": frozenset({"sklearn", "lightgbm", "pandas", "scipy", "numpy"}),
}


def missing_extra_message(extra: str, command: str, module: str) -> str:
    return (
        f"`pyrometer {command}` needs the {extra} extra ({module} is not installed): "
        f"pip install 'pyrometer[{extra}]'"
    )


@contextmanager
def needs_extra(extra: str, command: str) -> Iterator[None]:
    """Run the block; a module of ``extra`` that cannot be imported ends the command with
    one line naming the extra to install (exit code 2). Other import errors propagate."""
    try:
        yield
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in EXTRA_MODULES[extra]:
            raise
        Console(stderr=True).print(
            f"[bold red]error:[/] {escape(missing_extra_message(extra, command, top))}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=2) from None
