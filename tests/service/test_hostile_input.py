"""Input that must be refused (422 naming the field), not stored or crashed on (#10).

Times outside the accepted range, numbers JSON cannot carry (NaN, infinity, 1e400) and
unpaired surrogates get a 422 that names the field and shows only an excerpt of the
value; reads stay up when such a row is in the store already.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyrometer.api.errors import EXCERPT
from pyrometer.core.timeutil import to_us
from pyrometer.service.ingest import ingest
from pyrometer.service.inputs import Identify, Track
from pyrometer.service.runtime import Service
from service.conftest import Keys

YEAR_0 = "0001-01-01T00:00:00+14:00"  # valid text; year 0 in UTC
JSON = {"Content-Type": "application/json"}


def _raw(client: TestClient, key: str, method: str, path: str, body: str) -> Any:
    """A request with a body as written (json.dumps cannot write NaN or lone surrogates
    the way a hostile client does)."""
    return client.request(method, path, content=body.encode(), headers=Keys.bearer(key) | JSON)


def _locs(response: Any) -> list[list[str | int]]:
    return [error["loc"] for error in response.json()["detail"]]


def _track(**fields: Any) -> dict[str, Any]:
    return {"userId": "ann", "event": "demo_request", "messageId": "m1", **fields}


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/v1/track", _track(timestamp=YEAR_0), ["body", "timestamp"]),
        (
            "/v1/track",
            _track(originalTimestamp="1899-12-31T23:59:59Z"),
            ["body", "originalTimestamp"],
        ),
        ("/v1/page", {"anonymousId": "v", "sentAt": YEAR_0}, ["body", "sentAt"]),
        ("/v1/identify", {"userId": "ann", "receivedAt": YEAR_0}, ["body", "receivedAt"]),
        (
            "/v1/alias",
            {"userId": "ann", "previousId": "v", "timestamp": YEAR_0},
            ["body", "timestamp"],
        ),
        (
            "/v1/batch",
            {"batch": [{"type": "track", **_track(timestamp=YEAR_0)}]},
            ["body", "batch", 0, "track", "timestamp"],
        ),
    ],
)
def test_times_outside_the_range_are_refused_naming_the_field(
    client: TestClient, keys: Keys, path: str, body: dict[str, Any], loc: list[str | int]
) -> None:
    answer = client.post(path, json=body, headers=Keys.bearer(keys.admin))
    assert answer.status_code == 422, answer.text
    assert _locs(answer) == [loc]
    assert "1900-01-01T00:00:00Z to 2199-12-31T23:59:59.999999Z" in answer.text
    # Nothing was stored, and the list still reads.
    assert client.get("/v1/leads/ann", headers=Keys.bearer(keys.read)).status_code == 404
    assert client.get("/v1/leads", headers=Keys.bearer(keys.read)).status_code == 200


@pytest.mark.parametrize("field", ["timestamp", "originalTimestamp", "sentAt", "receivedAt"])
def test_a_time_too_far_in_the_future_names_the_field_that_was_sent(
    client: TestClient, keys: Keys, field: str
) -> None:
    """The time is the first of these fields that is set: the error names that one."""
    later = "2199-01-01T00:00:00Z"  # in the range, far past the day of slack
    for path, body, loc in [
        ("/v1/track", _track(**{field: later}), ["body", field]),
        ("/v1/identify", {"userId": "ann", field: later}, ["body", field]),
        (
            "/v1/batch",
            {"batch": [{"type": "page", "userId": "ann", field: later}]},
            ["body", "batch", 0, field],
        ),
    ]:
        answer = client.post(path, json=body, headers=Keys.bearer(keys.ingest))
        assert answer.status_code == 422, answer.text
        assert _locs(answer) == [loc] and "in the future" in answer.text


def test_a_stage_move_and_a_report_with_a_time_outside_the_range(
    client: TestClient, keys: Keys
) -> None:
    admin = Keys.bearer(keys.admin)
    assert client.post("/v1/track", json=_track(), headers=admin).status_code == 200
    moved = client.post("/v1/leads/ann/stage", json={"stage": "won", "at": YEAR_0}, headers=admin)
    assert moved.status_code == 422 and _locs(moved) == [["body", "at"]]
    assert client.get("/v1/leads/ann", headers=admin).json()["stage"] != "customer"
    for name in ("since", "until"):
        report = client.get("/v1/reports/summary", params={name: YEAR_0}, headers=admin)
        assert report.status_code == 422 and _locs(report) == [["query", name]]
    assert client.get("/v1/leads", headers=admin).status_code == 200


def test_rows_stored_out_of_range_before_still_read(
    service: Service, client: TestClient, keys: Keys
) -> None:
    """A store written before the range was enforced: every read answers, no 500."""
    year_0 = to_us(YEAR_0)
    times = {"y0": year_0, "far-past": -(9 * 10**18), "far-future": 9 * 10**18}
    for lead, ts in times.items():
        ingest(service, [Track(f"m-{lead}", "demo_request", ts, user_id=lead)], [])
    ingest(service, [], [Identify("i-y0", "y0", year_0, traits={"email": "a@b.example"})])
    read = Keys.bearer(keys.read)
    listed = client.get("/v1/leads", headers=read)
    assert listed.status_code == 200
    assert {item["lead_id"] for item in listed.json()["items"]} == set(times)
    page = client.get("/v1/leads/y0", headers=read)
    assert page.status_code == 200
    assert page.json()["last_activity"] == "0000-12-31T10:00:00Z"
    assert page.json()["events"][0]["timestamp"] == "0000-12-31T10:00:00Z"
    for lead in times:
        assert client.get(f"/v1/leads/{lead}", headers=read).status_code == 200
    since = {"since": "1900-01-01T00:00:00Z", "until": "2199-12-31T00:00:00Z"}
    assert client.get("/v1/reports/summary", params=since, headers=read).status_code == 200
    admin = Keys.bearer(keys.admin)
    moved = client.post("/v1/leads/y0/stage", json={"stage": "won"}, headers=admin)
    assert moved.status_code == 200 and moved.json()["stage"] == "customer"


BAD_VALUES = ["NaN", "Infinity", "-Infinity", "1e400", '"\\ud800"', '"a\\udfffb"']


@pytest.mark.parametrize("value", BAD_VALUES)
@pytest.mark.parametrize(
    ("path", "template", "loc"),
    [
        (
            "/v1/track",
            '{"userId": "ann", "event": "x", "properties": {"v": @}}',
            ["body", "properties"],
        ),
        (
            "/v1/track",
            '{"userId": "ann", "event": "x", "context": {"page": {"url": @}}}',
            ["body", "context"],
        ),
        ("/v1/track", '{"userId": "ann", "event": "x", "timestamp": @}', ["body", "timestamp"]),
        ("/v1/track", '{"userId": @, "event": "x"}', ["body", "userId"]),
        ("/v1/page", '{"anonymousId": @}', ["body", "anonymousId"]),
        ("/v1/identify", '{"userId": "ann", "traits": {"email": @}}', ["body", "traits"]),
        ("/v1/alias", '{"userId": "ann", "previousId": @}', ["body", "previousId"]),
        (
            "/v1/batch",
            '{"batch": [{"type": "identify", "userId": "ann", "traits": {"a": [@]}}]}',
            ["body", "batch", 0, "identify", "traits"],
        ),
    ],
)
def test_nan_infinity_and_lone_surrogates_are_a_422_naming_the_field(
    client: TestClient, keys: Keys, path: str, template: str, loc: list[str | int], value: str
) -> None:
    answer = _raw(client, keys.admin, "POST", path, template.replace("@", value))
    assert answer.status_code == 422, answer.text
    assert loc in _locs(answer)
    listed = client.get("/v1/leads", headers=Keys.bearer(keys.read)).json()["items"]
    assert listed == []  # nothing stored: no lead called "inf", "nan" or "ann"


@pytest.mark.parametrize("value", BAD_VALUES)
def test_a_patch_with_nan_or_a_lone_surrogate_is_a_422(
    client: TestClient, keys: Keys, value: str
) -> None:
    assert client.post("/v1/track", json=_track(), headers=Keys.bearer(keys.admin)).status_code
    for body, loc in (
        ('{"attributes": {"employees": @}}', ["body", "attributes"]),
        ('{"owner": @}', ["body", "owner"]),
        ('{"consent": @}', ["body", "consent"]),
    ):
        answer = _raw(client, keys.admin, "PATCH", "/v1/leads/ann", body.replace("@", value))
        assert answer.status_code == 422, answer.text
        assert _locs(answer) == [loc]


def test_a_userid_of_1e400_creates_no_lead_called_inf(client: TestClient, keys: Keys) -> None:
    answer = _raw(client, keys.ingest, "POST", "/v1/track", '{"userId": 1e400, "event": "x"}')
    assert answer.status_code == 422 and _locs(answer) == [["body", "userId"]]
    assert client.get("/v1/leads/inf", headers=Keys.bearer(keys.read)).status_code == 404
    # A finite number is still an id, as Segment libraries send it.
    fine = _raw(client, keys.ingest, "POST", "/v1/track", '{"userId": 42, "event": "x"}')
    assert fine.status_code == 200
    assert client.get("/v1/leads/42", headers=Keys.bearer(keys.read)).status_code == 200


def test_error_bodies_do_not_echo_the_input(client: TestClient, keys: Keys) -> None:
    auth = Keys.bearer(keys.ingest)
    huge = client.post("/v1/track", json=_track(userId="x" * 1_000_000), headers=auth)
    assert huge.status_code == 422 and _locs(huge) == [["body", "userId"]]
    assert len(huge.content) < 1000
    assert huge.json()["detail"][0]["input"].startswith("xxxx")
    assert len(huge.json()["detail"][0]["input"]) <= EXCERPT
    batch = {"batch": [{"type": "track", **_track(messageId=f"m{i}")} for i in range(2501)]}
    too_many = client.post("/v1/batch", json=batch, headers=auth)
    assert too_many.status_code == 422 and _locs(too_many) == [["body", "batch"]]
    assert len(too_many.content) < 1000
    # Every message wrong: the errors are listed up to a bound, then counted.
    bad = {"batch": [{"type": "track", **_track(event="")} for _ in range(2000)]}
    many = client.post("/v1/batch", json=bad, headers=auth)
    assert many.status_code == 422
    assert len(many.content) < 20_000
    assert many.json()["detail"][-1]["msg"] == "and 1950 more errors like these"


# JSON tokens as a hostile client writes them (json.dumps writes floats as NaN and
# Infinity too, and escapes lone surrogates as \\udXXX).
_TOKENS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(json.dumps),
    st.integers(min_value=-(2**70), max_value=2**70).map(json.dumps),
    st.text(st.characters(codec=None, blacklist_categories=()), max_size=30).map(json.dumps),
    st.sampled_from(["1e400", "-1e400", '"\\ud800"', '"\\udc00x"', "null", "true", "[]"]),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    field=st.sampled_from(
        ["userId", "anonymousId", "event", "messageId", "timestamp", "properties", "context"]
    ),
    token=_TOKENS,
)
def test_any_number_or_text_anywhere_is_never_a_500(
    client: TestClient, keys: Keys, field: str, token: str
) -> None:
    value = '{"k": @}'.replace("@", token) if field in {"properties", "context"} else token
    body = '{"event": "e", "timestamp": "2026-11-23T08:00:00Z", "userId": "u", "FIELD": @}'
    body = body.replace("FIELD", field).replace("@", value)
    answer = _raw(client, keys.ingest, "POST", "/v1/track", body)
    assert answer.status_code in {200, 422}, answer.text
    if answer.status_code == 422:
        assert answer.json()["detail"][0]["loc"][0] == "body"
    assert client.get("/v1/leads", headers=Keys.bearer(keys.read)).status_code == 200


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    template=st.sampled_from(
        [
            ("PATCH", "/v1/leads/ann", '{"attributes": {"k": @}}'),
            ("PATCH", "/v1/leads/ann", '{"owner": @, "consent": @}'),
            ("POST", "/v1/leads/ann/stage", '{"stage": "won", "at": @}'),
            ("POST", "/v1/identify", '{"userId": "ann", "traits": {"k": [@]}}'),
        ]
    ),
    token=_TOKENS,
)
def test_any_number_or_text_in_a_change_is_never_a_500(
    client: TestClient, keys: Keys, template: tuple[str, str, str], token: str
) -> None:
    admin = keys.admin
    assert _raw(client, admin, "POST", "/v1/track", '{"userId": "ann", "event": "x"}').is_success
    method, path, body = template
    answer = _raw(client, admin, method, path, body.replace("@", token))
    assert answer.status_code in {200, 422}, answer.text
    assert client.get("/v1/leads/ann", headers=Keys.bearer(keys.read)).status_code == 200
