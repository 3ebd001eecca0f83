"""Store URLs: ``postgres://`` is PostgreSQL, an unsupported scheme is one clear line, and
every connection carries the configured time-outs."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from pyrometer.cli.app import app
from pyrometer.service.runtime import Service
from pyrometer.store.engine import (
    STATEMENT_TIMEOUT_VARIABLE,
    StoreTimeouts,
    UnsupportedURL,
    create_store_engine,
    parse_store_url,
)


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+psycopg"])
def test_postgres_schemes_use_psycopg(scheme: str) -> None:
    parsed = parse_store_url(f"{scheme}://app:secret@db.example:5433/pyrometer")
    assert parsed.drivername == "postgresql+psycopg"
    assert (parsed.host, parsed.port, parsed.database) == ("db.example", 5433, "pyrometer")


_SUPPORTED = {"sqlite", "sqlite+pysqlite", "postgres", "postgresql", "postgresql+psycopg"}


@given(st.from_regex(r"[a-z][a-z0-9]{1,10}(\+[a-z0-9]{1,8})?", fullmatch=True))
def test_any_other_scheme_names_the_supported_ones(scheme: str) -> None:
    if scheme in _SUPPORTED:
        return
    with pytest.raises(UnsupportedURL) as raised:
        parse_store_url(f"{scheme}://user@host/db")
    message = str(raised.value)
    assert repr(scheme) in message and "postgresql://" in message and "sqlite:///" in message
    assert "\n" not in message


def test_cli_refuses_an_unsupported_url_in_one_line(tmp_path) -> None:
    result = CliRunner().invoke(
        app, ["keys", "create", "--scope", "read", "--database", "mysql://root@localhost/crm"]
    )
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "'mysql'" in lines[0] and "postgres://" in lines[0] and "Traceback" not in lines[0]


def test_postgres_url_opens_the_store(store_url: str) -> None:
    if not store_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL URL")
    short = "postgres://" + store_url.split("://", 1)[1]
    service = Service.open(short)
    try:
        assert service.engine.dialect.name == "postgresql"
        assert service.read(lambda conn: conn.execute(sa.text("SELECT 1")).scalar()) == 1
    finally:
        service.close()


def test_connections_carry_the_statement_timeout(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATEMENT_TIMEOUT_VARIABLE, "7")
    engine = create_store_engine(store_url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "7s"
            else:
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 7000
    finally:
        engine.dispose()


def test_a_url_of_its_own_keeps_its_timeouts() -> None:
    url = parse_store_url("postgres://h/db?connect_timeout=9&options=-c%20statement_timeout%3D1s")
    engine = create_store_engine(url.render_as_string(False), StoreTimeouts(3, 20))
    try:
        query = engine.url.query
        assert query["connect_timeout"] == "9"
        assert query["options"] == "-c statement_timeout=1s"
        assert query["tcp_user_timeout"] == "20000"
    finally:
        engine.dispose()


def test_a_bad_timeout_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STATEMENT_TIMEOUT_VARIABLE, "soon")
    with pytest.raises(ValueError, match=STATEMENT_TIMEOUT_VARIABLE):
        StoreTimeouts.from_env()
