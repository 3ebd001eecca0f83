"""Sales reps are stored and managed over the API (admin scope) and the CLI, on SQLite and
PostgreSQL; a bad territory, time zone, working hours or e-mail is refused naming the
field, and changes nothing stored."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import command
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from pyrometer.cli.app import app as cli
from pyrometer.service.reps import get_rep, list_reps
from pyrometer.service.runtime import Service
from pyrometer.store.engine import create_store_engine
from pyrometer.store.migrate import alembic_config, upgrade
from service.conftest import Keys

KIM: dict[str, Any] = {
    "id": "kim",
    "name": "Kim Lee",
    "email": "kim@example.com",
    "capacity": 40,
    "territory": {"country": ["LT", "LV", "EE"]},
    "timezone": "Europe/Vilnius",
    "hours": "09:00-17:00",
}


def test_reps_crud_over_the_api(service: Service, client: TestClient, keys: Keys) -> None:
    admin = Keys.bearer(keys.admin)
    assert client.get("/v1/reps", headers=admin).json() == {"items": []}

    made = client.post("/v1/reps", json=KIM, headers=admin)
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["territory"] == {"country": {"in": ["LT", "LV", "EE"]}}
    assert (body["hours"], body["timezone"], body["capacity"], body["away"]) == (
        "09:00-17:00",
        "Europe/Vilnius",
        40,
        False,
    )
    assert client.post("/v1/reps", json=KIM, headers=admin).status_code == 409

    small = {"id": "ana", "name": "Ana", "email": "ana@example.com"}
    assert client.post("/v1/reps", json=small, headers=admin).status_code == 201
    listed = client.get("/v1/reps", headers=admin).json()["items"]
    assert [rep["id"] for rep in listed] == ["ana", "kim"]
    assert listed[0]["capacity"] is None and listed[0]["territory"] is None

    away = client.patch("/v1/reps/kim", json={"away": True}, headers=admin)
    assert away.status_code == 200 and away.json()["away"] is True
    assert away.json()["email"] == "kim@example.com"  # a patch keeps the other fields
    stored = get_rep(service, "kim")
    assert stored is not None and stored.rep.away and stored.rep.covers({"country": "LV"})

    changed = client.patch(
        "/v1/reps/kim",
        json={"away": False, "capacity": None, "hours": "22:00-06:00"},
        headers=admin,
    ).json()
    assert (changed["away"], changed["capacity"], changed["hours"]) == (False, None, "22:00-06:00")
    assert client.get("/v1/reps/kim", headers=admin).json() == changed

    assert client.patch("/v1/reps/nobody", json={"away": True}, headers=admin).status_code == 404
    assert client.get("/v1/reps/nobody", headers=admin).status_code == 404
    assert client.delete("/v1/reps/kim", headers=admin).status_code == 200
    assert client.delete("/v1/reps/kim", headers=admin).status_code == 404
    assert [stored.rep.id for stored in list_reps(service)] == ["ana"]


def test_only_the_admin_scope_manages_reps(client: TestClient, keys: Keys) -> None:
    for key in (keys.read, keys.ingest):
        headers = Keys.bearer(key)
        assert client.get("/v1/reps", headers=headers).status_code == 403
        assert client.post("/v1/reps", json=KIM, headers=headers).status_code == 403
        assert client.patch("/v1/reps/kim", json={"away": True}, headers=headers).status_code == 403
        assert client.delete("/v1/reps/kim", headers=headers).status_code == 403
    assert client.get("/v1/reps").status_code == 401
    assert client.get("/v1/reps", headers=Keys.bearer(keys.admin)).json() == {"items": []}


def _error(answer: Any) -> tuple[list[Any], str]:
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"][0]
    return detail["loc"], detail["msg"]


def test_a_bad_rep_is_refused_naming_the_field(
    service: Service, client: TestClient, keys: Keys
) -> None:
    admin = Keys.bearer(keys.admin)
    cases = {
        "territory": {"company_size": {"gtx": 500}},
        "timezone": "Mars/Olympus",
        "hours": "25:00-17:00",
        "email": "kim at example",
    }
    for field, value in cases.items():
        loc, _msg = _error(client.post("/v1/reps", json={**KIM, field: value}, headers=admin))
        assert loc[:2] == ["body", field], (field, loc)
    mars = {**KIM, "timezone": "Mars/Olympus"}
    loc, msg = _error(client.post("/v1/reps", json=mars, headers=admin))
    assert "Mars/Olympus" in msg
    assert list_reps(service) == []  # nothing was stored

    assert client.post("/v1/reps", json=KIM, headers=admin).status_code == 201
    before = get_rep(service, "kim")
    for field, value in cases.items():
        loc, _msg = _error(client.patch("/v1/reps/kim", json={field: value}, headers=admin))
        assert loc[:2] == ["body", field], (field, loc)
    loc, _msg = _error(client.patch("/v1/reps/kim", json={"name": None}, headers=admin))
    assert loc == ["body", "name"]
    assert get_rep(service, "kim") == before  # a refused change changes nothing
    unknown = client.get("/v1/reps", params={"limt": "3"}, headers=admin)
    assert unknown.status_code == 400 and unknown.json()["detail"][0]["loc"] == ["query", "limt"]


def _cli(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def test_reps_from_the_cli(store_url: str) -> None:
    db = ("--database", store_url)
    added = _cli(
        "reps", "add", "kim", "--name", "Kim Lee", "--email", "kim@example.com",
        "--capacity", "40", "--territory", "{country: [LT, LV, EE]}",
        "--timezone", "Europe/Vilnius", "--hours", "09:00-17:00", *db,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    json_territory = '{"company_size": {"gte": 500}}'
    ana = ("reps", "add", "ana", "--name", "Ana", "--email", "ana@example.com")
    assert _cli(*ana, "--territory", json_territory, *db).exit_code == 0
    again = _cli(*ana, *db)
    assert again.exit_code == 2 and "already a rep 'ana'" in again.output

    assert _cli("reps", "away", "kim", *db).exit_code == 0
    listed = _cli("reps", "list", "--json", *db)
    reps = {rep["id"]: rep for rep in json.loads(listed.stdout)["items"]}
    assert reps["kim"]["away"] is True and reps["kim"]["capacity"] == 40
    assert reps["kim"]["territory"] == {"country": {"in": ["LT", "LV", "EE"]}}
    assert reps["ana"]["territory"] == {"company_size": {"gte": 500}}
    table = _cli("reps", "list", *db).stdout.splitlines()
    assert table[0].split()[:3] == ["id", "name", "email"] and len(table) == 3

    assert _cli("reps", "back", "kim", *db).exit_code == 0
    changed = _cli(
        "reps", "set", "kim", "--hours", "always", "--capacity", "10", "--territory", "{}", *db
    )
    assert changed.exit_code == 0, changed.output
    service = Service.open(store_url)
    try:
        kim = get_rep(service, "kim")
    finally:
        service.close()
    assert (
        kim is not None and not kim.rep.away and kim.rep.hours is None and kim.rep.territory is None
    )
    assert (kim.rep.capacity, kim.rep.email) == (10, "kim@example.com")

    assert _cli("reps", "remove", "ana", *db).exit_code == 0
    gone = _cli("reps", "remove", "ana", *db)
    assert gone.exit_code == 2 and "no rep 'ana'" in gone.output
    assert [
        rep["id"] for rep in json.loads(_cli("reps", "list", "--json", *db).stdout)["items"]
    ] == ["kim"]


def test_bad_cli_input_names_the_option(store_url: str) -> None:
    db = ("--database", store_url)
    add = ("reps", "add", "kim", "--name", "Kim", "--email", "kim@example.com")
    cases = {
        "--hours": ("--hours", "9-5"),
        "--timezone": ("--timezone", "Mars/Olympus"),
        "--territory": ("--territory", "{company_size: {gtx: 500}}"),
        "--capacity": ("--capacity", "0"),
    }
    for option, args in cases.items():
        answer = _cli(*add, *args, *db)
        assert answer.exit_code == 2, (option, answer.output)
        lines = [line for line in answer.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"error: {option}"), lines
    not_yaml = _cli(*add, "--territory", "[1", *db)
    assert not_yaml.exit_code == 2 and "--territory: not YAML or JSON" in not_yaml.output
    email = _cli("reps", "add", "kim", "--name", "Kim", "--email", "kim at home", *db)
    assert email.exit_code == 2 and "--email" in email.output
    assert json.loads(_cli("reps", "list", "--json", *db).stdout) == {"items": []}
    assert _cli(*add, *db).exit_code == 0
    bad_set = _cli("reps", "set", "kim", "--hours", "25:00-26:00", *db)
    assert bad_set.exit_code == 2 and "--hours" in bad_set.output
    nobody = _cli("reps", "away", "nobody", *db)
    assert nobody.exit_code == 2 and "no rep 'nobody'" in nobody.output


def test_migration_0008_adds_and_drops_the_reps_table(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        upgrade(engine)
        assert "reps" in sa.inspect(engine).get_table_names()
        config = alembic_config()
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0007")
        assert "reps" not in sa.inspect(engine).get_table_names()
        upgrade(engine)
        columns = {c["name"] for c in sa.inspect(engine).get_columns("reps")}
        assert columns == {"id", "rep", "created_us", "updated_us"}
    finally:
        engine.dispose()


def test_hostile_rep_input_is_refused_not_a_server_error(client: TestClient, keys: Keys) -> None:
    """PostgreSQL refuses NUL characters and unpaired surrogates: the API must refuse them
    first, naming the field, rather than fail in the store."""
    headers = {**Keys.bearer(keys.admin), "content-type": "application/json"}
    hostile = {
        "territory": [{"country": ["LT\x00"]}, {"country": "\ud800"}],
        "capacity": [2**70, 0],
    }
    for field, values in hostile.items():
        for value in values:
            body = json.dumps({**KIM, field: value})
            loc, _msg = _error(client.post("/v1/reps", content=body, headers=headers))
            assert loc[:2] == ["body", field]
    for path in ("/v1/reps/a%00b", "/v1/reps/" + "x" * 201):
        for method in ("GET", "PATCH", "DELETE"):
            answer = client.request(method, path, json={"away": True}, headers=headers)
            assert answer.status_code == 422, (method, path, answer.text)
