"""A `page` call's URL counts the same in a file as sent live.

`/v1/page` takes the URL from `context.page.url` when `properties` has none (as
analytics.js sends it); the file reader read only `properties.url`, so the same pricing
visit earned +10 live and +1 (a plain page view) in `score`, `explain` and `import`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from pyrometer.cli.app import app
from pyrometer.core.timeutil import iso
from service.conftest import START, Keys

PAGE: dict[str, Any] = {
    "type": "page",
    "userId": "ann@acme.example",
    "name": "Pricing",
    "messageId": "p-1",
    "timestamp": iso(START - 3600 * 10**6),
    "context": {"page": {"url": "https://acme.example/pricing", "title": "Pricing"}},
    "properties": {"title": "Pricing"},
}


def _rules(ledger: list[dict[str, Any]]) -> list[tuple[str, float]]:
    return [(line["rule"], line["points"]) for line in ledger if line["kind"] == "engagement"]


def test_a_page_calls_context_url_counts_in_a_file_as_live(
    client: TestClient, keys: Keys, tmp_path: Path
) -> None:
    response = client.post("/v1/page", json=PAGE, headers=Keys.bearer(keys.ingest))
    assert response.status_code == 200, response.text
    live = client.get("/v1/leads/ann@acme.example", headers=Keys.bearer(keys.read)).json()
    assert _rules(live["ledger"]) == [("pricing_page", 10.0)]

    track = {"type": "track", "userId": "bob", "event": "demo_request", "messageId": "t-1"}
    track["timestamp"] = PAGE["timestamp"]
    for name, lines in {"pages.jsonl": [PAGE], "mixed.jsonl": [PAGE, track]}.items():
        events = tmp_path / name  # a file of page calls alone, and one with track calls
        events.write_text("".join(json.dumps(m) + "\n" for m in lines))
        result = CliRunner().invoke(
            app, ["explain", "ann@acme.example", str(events), "--as-of", iso(START), "--json"]
        )
        assert result.exit_code == 0, result.stderr
        assert _rules(json.loads(result.stdout)["ledger"]) == _rules(live["ledger"]), name
