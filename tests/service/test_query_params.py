"""Every read route refuses a query parameter it does not take, as the lead routes do.

``GET /v1/reports/summary?sinse=2026-01-01`` used to answer the last 30 days as if the
period had been applied: a typo must be a ``400`` naming it, not a wrong report.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from service.conftest import Keys


def test_a_typo_in_a_query_parameter_is_named_on_every_read_route(
    client: TestClient, keys: Keys
) -> None:
    admin = Keys.bearer(keys.admin)
    good = client.get("/v1/reports/summary", params={"since": "2026-01-01"}, headers=admin)
    assert good.status_code == 200
    for path, typo in [
        ("/v1/reports/summary", "sinse"),
        ("/v1/reports/unknown-events", "limt"),
        ("/v1/playbook", "version"),
        ("/v1/playbook/versions", "limit"),
        ("/v1/playbook/versions/1", "format"),
        ("/v1/keys", "active"),
        ("/v1/leads/nobody/audit", "limit"),
    ]:
        answer = client.get(path, params={typo: "1"}, headers=admin)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["detail"][0]["loc"] == ["query", typo]
    unknown = client.get("/v1/reports/summary", params={"x": "1"}, headers=Keys.bearer(keys.read))
    assert "since" in unknown.json()["detail"][0]["msg"]  # it lists what the route takes
    # Keys are checked first: no answer about parameters to a caller without a key.
    assert client.get("/v1/keys", params={"active": "1"}).status_code == 401
