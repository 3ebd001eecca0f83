"""The playbook's ``routing:`` section: defaults, round trip, errors at their path and line."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from typer.testing import CliRunner

from pyrometer.cli.app import app
from pyrometer.core.playbook import (
    OnBreach,
    RouteWhen,
    Stage,
    Temperature,
    default_playbook,
    default_playbook_text,
    parse_playbook,
)

runner = CliRunner()
ROUTING_BLOCK = re.compile(r"^routing:\n(?:(?:[ #].*)?\n)*", re.MULTILINE)


def _line(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def test_the_default_playbook_routes_hot_and_sql_leads_within_5_minutes() -> None:
    routing = default_playbook().routing
    assert routing.when == (RouteWhen(temperature=Temperature.HOT), RouteWhen(stage=Stage.SQL))
    assert routing.sla_us == 5 * 60 * 1_000_000
    assert routing.sla_working_hours is False
    assert routing.on_breach is OnBreach.NOTIFY
    assert routing.capacity_window_us == 30 * 86_400 * 1_000_000
    assert routing.default_capacity == 30
    assert "routing:" in default_playbook_text()


def test_a_playbook_without_a_routing_section_loads_with_the_defaults() -> None:
    text = default_playbook_text()
    old = ROUTING_BLOCK.sub("", text, count=1)
    assert "routing:" not in old and "sla:" not in old
    assert parse_playbook(old).routing == default_playbook().routing


def test_a_changed_routing_section_round_trips_through_yaml() -> None:
    text = default_playbook_text().replace("  sla: 5m\n", "  sla: 90s\n", 1)
    text = text.replace("on_breach: notify", "on_breach: reassign", 1)
    text = text.replace("    - {stage: sql}\n", "    - {stage: opportunity}\n", 1)
    book = parse_playbook(text)
    assert book.routing.sla_us == 90 * 1_000_000
    assert book.routing.on_breach is OnBreach.REASSIGN
    dumped = book.to_yaml_dict()["routing"]
    assert dumped["sla"] == "90s" and dumped["capacity_window"] == "30d"
    assert dumped["when"] == [{"temperature": "hot"}, {"stage": "opportunity"}]
    assert parse_playbook(yaml.safe_dump(book.to_yaml_dict())) == book


def _check(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["playbook", "check", str(path)])
    return result.exit_code, result.stdout + result.stderr


def test_bad_routing_values_are_errors_at_their_path_and_line(tmp_path: Path) -> None:
    text = default_playbook_text()
    text = text.replace("on_breach: notify", "on_breach: shout", 1)
    text = text.replace("  sla: 5m\n", "  sla: soon\n", 1)
    text = text.replace("    - {stage: sql}\n", "    - {stage: sql, temperature: hot}\n", 1)
    text = text.replace("default_capacity: 30", "default_capacity: 0", 1)
    code, out = _check(tmp_path, text)
    assert code != 0
    assert f"routing.on_breach (line {_line(text, 'on_breach: shout')})" in out
    assert "'notify' or 'reassign'" in out
    assert f"routing.sla (line {_line(text, 'sla: soon')})" in out
    assert "expected a duration" in out
    assert f"routing.when[1] (line {_line(text, '{stage: sql, temperature')})" in out
    assert "give one of 'temperature' or 'stage'" in out
    assert f"routing.default_capacity (line {_line(text, 'default_capacity: 0')})" in out


def test_an_unknown_routing_key_is_an_error(tmp_path: Path) -> None:
    text = default_playbook_text().replace("  sla: 5m\n", "  sla: 5m\n  sla_hours: 5m\n", 1)
    code, out = _check(tmp_path, text)
    assert code != 0
    assert f"routing.sla_hours (line {_line(text, 'sla_hours')})" in out
