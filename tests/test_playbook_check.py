"""`playbook check`: typos and duplicate names at their line; unknown events are counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pyrometer.cli.app import app
from pyrometer.core.playbook import PlaybookError, default_playbook, default_playbook_text
from pyrometer.core.playbook_check import check_playbook, describe_unknown, unknown_events

runner = CliRunner()
AS_OF = "2026-11-23T00:00:00Z"


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _line(text: str, needle: str, after: int = 0) -> int:
    return text[: text.index(needle, after)].count("\n") + 1


def test_a_rule_on_a_typo_is_a_warning_with_the_nearest_name() -> None:
    text = default_playbook_text().replace("    event: product_page_view", "    event: pgae_view")
    book, warnings = check_playbook(text, "p.yaml")
    assert book.engagement[2].event == "pgae_view"
    line = _line(text, "    event: pgae_view")
    path, message = warnings[0]
    assert path == f"engagement[2].event (line {line})"
    assert "'pgae_view' is in no vocabulary" in message and "did you mean 'page_view'?" in message


def test_the_default_playbook_and_segment_names_give_no_warning() -> None:
    assert check_playbook(default_playbook_text(), "default")[1] == []
    text = default_playbook_text().replace("event: cart_add", "event: Product Added to Wishlist")
    text = text.replace("    cart_add: [Product Added, Checkout Started]\n", "")
    assert check_playbook(text, "p.yaml")[1] == []


def test_an_event_declared_in_the_aliases_is_known() -> None:
    text = default_playbook_text().replace("    event: product_page_view", "    event: pgae_view")
    text = text.replace(
        "    demo_request: [Demo Requested]",
        "    pgae_view: []\n    demo_request: [Demo Requested]",
    )
    warnings = check_playbook(text, "p.yaml")[1]
    assert not any("pgae_view" in message for _, message in warnings)


def test_a_duplicate_rule_name_is_reported_at_the_duplicate() -> None:
    text = default_playbook_text().replace("  - name: case_study", "  - name: whitepaper")
    with pytest.raises(PlaybookError) as caught:
        check_playbook(text, "p.yaml")
    first = _line(text, "  - name: whitepaper")
    second = _line(text, "  - name: whitepaper", text.index("  - name: whitepaper") + 1)
    assert caught.value.problems == [
        (
            f"engagement[4].name (line {second})",
            f"rule name 'whitepaper' is used twice (first at line {first})",
        )
    ]


def test_unknown_events_are_counted_by_normalised_name() -> None:
    book = default_playbook()
    counts = {"pgae_view": 10, "Foo": 1, "foo": 1, "Order Completed": 3, "demo_request": 2, None: 4}
    unknown = unknown_events(book, counts)
    assert dict(unknown) == {"pgae_view": 10, "foo": 2}
    assert describe_unknown(unknown) == "12 (pgae_view 10, foo 2)"


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "e.csv"
    path.write_text(
        "lead_id,event,timestamp\n"
        + "a,pgae_view,2026-11-22\n" * 10
        + "a,foo,2026-11-22\nb,Foo,2026-11-21\na,Order Completed,2026-11-22\n"
    )
    return path


def test_playbook_check_counts_a_samples_unknown_events(tmp_path: Path, sample: Path) -> None:
    playbook = tmp_path / "p.yaml"
    playbook.write_text(
        default_playbook_text().replace("event: product_page_view", "event: pgae_view")
    )
    code, out, err = run("playbook", "check", str(playbook), "--events", str(sample))
    assert code == 0, err
    assert "13 events; unknown events: 2 (foo 2)" in out  # pgae_view is the playbook's now
    assert "did you mean 'page_view'?" in err and "(line " in err
    code, out, _ = run("playbook", "check", str(playbook), "--events", str(sample), "--json")
    report = json.loads(out)
    assert report["events"] == 13 and report["unknown_events"] == {"foo": 2}
    assert report["warnings"][0]["path"].startswith("engagement[2].event (line ")


def test_score_reports_unknown_events(sample: Path) -> None:
    code, out, err = run("score", str(sample), "--as-of", AS_OF)
    assert code == 0, err
    assert "unknown events: 12 (pgae_view 10, foo 2)" in err
    code, out, err = run("score", str(sample), "--as-of", AS_OF, "--json")
    assert code == 0 and isinstance(json.loads(out), list)  # stdout stays one JSON array
    assert "unknown events: 12 (pgae_view 10, foo 2)" in err
    code, _, err = run("score", str(sample), "--as-of", AS_OF, "--strict")
    assert code == 2 and "unknown event 'pgae_view'" in err


def test_playbook_check_counts_a_repeated_event_id_once_as_score_does(tmp_path: Path) -> None:
    """The sample is counted as `score` counts it: an id seen twice is one event."""
    sample = tmp_path / "e.csv"
    sample.write_text(
        "event_id,lead_id,event,timestamp\n"
        "m1,a,foo,2026-11-22\nm1,a,foo,2026-11-22\nm1,b,foo,2026-11-22\n"
        ",a,foo,2026-11-22\n,a,foo,2026-11-22\nm2,a,demo_request,2026-11-22\n"
    )
    _, _, err = run("score", str(sample), "--as-of", AS_OF)
    assert "unknown events: 3 (foo 3)" in err
    playbook = tmp_path / "p.yaml"
    playbook.write_text(default_playbook_text())
    code, out, err = run("playbook", "check", str(playbook), "--events", str(sample), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["events"] == 4 and report["unknown_events"] == {"foo": 3}


def test_playbook_check_reads_a_sample_as_score_does_with_id_and_encoding(
    tmp_path: Path,
) -> None:
    """The error on a cp1252 sample says `--encoding`: `playbook check` takes it, and `--id`."""
    sample = tmp_path / "e.csv"
    text = "Contact Ref,event,timestamp\nMüller,foo,2026-11-22\nMüller,demo_request,2026-11-22\n"
    sample.write_bytes(text.encode("cp1252"))
    playbook = tmp_path / "p.yaml"
    playbook.write_text(default_playbook_text())
    code, _, err = run("playbook", "check", str(playbook), "--events", str(sample))
    assert code == 2 and "--encoding cp1252" in err
    code, out, err = run(
        "playbook",
        "check",
        str(playbook),
        "--events",
        str(sample),
        "--encoding",
        "cp1252",
        "--id",
        "Contact Ref",
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["events"] == 2 and report["unknown_events"] == {"foo": 1}
