"""Scoring commands: score, explain, playbook, demo."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the scoring commands to ``app``."""
