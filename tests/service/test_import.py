"""``pyrometer import``: leads and events files into the store; a second import is a no-op."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from pyrometer.cli.app import app
from pyrometer.core.playbook import default_playbook
from pyrometer.service.reads import get_lead
from pyrometer.service.runtime import Service
from pyrometer.store.tables import events, leads, transitions
from service.conftest import Clock
from service.helpers import company, reference


def _snapshot(url: str) -> dict[str, object]:
    service = Service.open(url)
    try:
        return service.read(
            lambda conn: {
                t.name: conn.execute(sa.select(t).order_by(*t.primary_key.columns)).all()
                for t in (events, leads, transitions)
            }
        )
    finally:
        service.close()


def test_import_twice_changes_nothing_and_scores_match(
    store_url: str, tmp_path: Path, clock: Clock
) -> None:
    data = company(40, clock.now_us - 86_400_000_000)
    leads_csv, events_csv = data.write(tmp_path / "demo")
    runner = CliRunner()
    for path in (leads_csv, events_csv):
        result = runner.invoke(app, ["import", str(path), "--database", store_url])
        assert result.exit_code == 0, result.output
    assert f"imported {len(data.events)} new events" in result.output
    first = _snapshot(store_url)
    for path in (leads_csv, events_csv):
        again = runner.invoke(app, ["import", str(path), "--database", store_url])
        assert again.exit_code == 0, again.output
    assert f"({len(data.events)} already in the store)" in again.output
    assert _snapshot(store_url) == first

    service = Service.open(store_url, clock)
    expected = reference(default_playbook(), data, clock.now_us)
    for lead_id, ref in list(expected.items())[:15]:
        got = get_lead(service, lead_id)
        assert got is not None
        assert got["score"] == pytest.approx(round(ref.score, 4), abs=1e-4)
        assert (got["fit"], got["temperature"], got["stage"]) == (
            round(ref.fit, 4),
            str(ref.temperature),
            str(ref.stage),
        )
    service.close()


def test_bad_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "events.csv"
    bad.write_text("lead_id,event,timestamp\nann,demo_request,yesterday\n")
    result = CliRunner().invoke(
        app, ["import", str(bad), "--database", f"sqlite:///{tmp_path / 's.db'}"]
    )
    assert result.exit_code == 2
    assert "row 1, column 'timestamp'" in result.output
