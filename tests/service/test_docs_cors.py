"""``/docs`` works offline (its assets come from the installed package), the pages can be
turned off for production, and cross-origin requests are allowed only to origins named
in ``PYROMETER_CORS_ORIGINS``."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from pyrometer.api.app import create_app
from pyrometer.api.cors import CORS_VARIABLE, cors_origins_from_env
from pyrometer.api.docs import DOCS_VARIABLE
from pyrometer.service.runtime import Service
from service.conftest import Keys


def test_docs_reference_only_local_assets_that_answer(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), html
    assert "https://" not in html and "http://" not in html
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        answer = client.get(asset)
        assert answer.status_code == 200, asset
        assert len(answer.content) > 100, asset
    assert client.get("/openapi.json").json()["info"]["title"] == "Pyrometer"
    assert client.get("/redoc").status_code == 404  # redoc loads from a CDN: not offered


def test_docs_can_be_turned_off(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DOCS_VARIABLE, "off")
    with TestClient(create_app(service, background=False)) as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/openapi.json").status_code == 404
        assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 404
        assert client.get("/health").status_code == 200
    monkeypatch.setenv(DOCS_VARIABLE, "maybe")
    with pytest.raises(ValueError, match=DOCS_VARIABLE):
        create_app(service, background=False)


def _preflight(client: TestClient, origin: str) -> dict[str, str]:
    answer = client.options(
        "/v1/leads",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    return dict(answer.headers)


def test_cors_is_off_by_default(client: TestClient, keys: Keys) -> None:
    assert "access-control-allow-origin" not in _preflight(client, "https://evil.example")
    answer = client.get(
        "/v1/leads", headers={"Origin": "https://evil.example", **Keys.bearer(keys.read)}
    )
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers


def test_cors_allows_the_configured_origins(
    service: Service, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CORS_VARIABLE, "https://app.example.com, https://crm.example.com/")
    with TestClient(create_app(service, background=False)) as client:
        allowed = _preflight(client, "https://crm.example.com")
        assert allowed["access-control-allow-origin"] == "https://crm.example.com"
        assert "authorization" in allowed["access-control-allow-headers"].lower()
        assert "access-control-allow-origin" not in _preflight(client, "https://evil.example")
        answer = client.get(
            "/v1/leads", headers={"Origin": "https://app.example.com", **Keys.bearer(keys.read)}
        )
        assert answer.headers["access-control-allow-origin"] == "https://app.example.com"


def test_a_bad_cors_origin_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CORS_VARIABLE, "https://ok.example,app.example.com")
    with pytest.raises(ValueError, match=r"'app\.example\.com'"):
        cors_origins_from_env()
