"""``pyrometer import`` reads what ``score`` reads: gzipped text and other encodings."""

from __future__ import annotations

import gzip
from pathlib import Path

from typer.testing import CliRunner

from pyrometer.cli.app import app
from pyrometer.service.reads import get_lead
from pyrometer.service.runtime import Service
from service.conftest import Clock


def test_import_a_gzipped_windows_1252_file_with_encoding(
    store_url: str, tmp_path: Path, clock: Clock
) -> None:
    events = tmp_path / "events.csv.gz"
    text = (
        "lead_id,event,timestamp,event_id\n"
        "Müller,demo_request,2026-11-20T10:00:00Z,e1\n"
        "Müller,pricing_page_view,2026-11-21T10:00:00Z,e2\n"
    )
    events.write_bytes(gzip.compress(text.encode("cp1252")))
    runner = CliRunner()
    refused = runner.invoke(app, ["import", str(events), "--database", store_url])
    assert refused.exit_code == 2
    assert "not UTF-8" in refused.output and "--encoding cp1252" in refused.output
    done = runner.invoke(
        app, ["import", str(events), "--database", store_url, "--encoding", "cp1252"]
    )
    assert done.exit_code == 0, done.output
    assert "imported 2 new events" in done.output
    service = Service.open(store_url, clock)
    try:
        lead = get_lead(service, "Müller")
        assert lead is not None and lead["engagement"] > 0
    finally:
        service.close()
