"""`pyrometer backtest` on files: the same figures as the pure backtest of the same rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pyrometer.backtest.run import run as run_backtest
from pyrometer.backtest.sweep import as_of_grid
from pyrometer.cli.app import app
from pyrometer.core.model import Event
from pyrometer.core.playbook import default_playbook, default_playbook_text
from pyrometer.core.timeutil import from_us, parse_time_us, to_us
from pyrometer.demo.synth import generate

END = "2026-11-23T00:00:00Z"
FROM, TO = "2026-08-01T00:00:00Z", "2026-10-20T00:00:00Z"
DAY_US = 86_400_000_000
runner = CliRunner()


def cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict], Path]:
    folder = tmp_path_factory.mktemp("company")
    made = generate(400, seed=11, end=from_us(to_us(END)))
    leads, events = made.write(folder)
    # The outcomes the events record, as a separate file (as a CRM export would give them).
    outcomes = folder / "outcomes.csv"
    with outcomes.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["lead_id", "outcome", "at"])
        for row in made.events:
            kind = {"purchase": "won", "lost": "lost", "disqualified": "lost"}.get(row["event"])
            if kind:
                writer.writerow([row["lead_id"], kind, row["timestamp"]])
    return leads, events, made.events, outcomes


def test_json_equals_the_pure_backtest_of_the_same_rows(company) -> None:
    leads, events, rows, _ = company
    code, out, err = cli(
        "backtest", str(events), "--leads", str(leads), "--from", FROM, "--to", TO, "--json"
    )
    assert code == 0, err
    got = json.loads(out)
    book = default_playbook()
    by_lead: dict[str, list[Event]] = {}
    for row in rows:
        props = {"url": row["url"]} if row["url"] else {}
        event = Event.create(row["lead_id"], row["event"], row["timestamp"], row["event_id"], props)
        by_lead.setdefault(event.lead_id, []).append(event)
    with leads.open() as handle:
        attributes = {
            r["lead_id"]: {k: v for k, v in r.items() if v != ""} for r in csv.DictReader(handle)
        }
    times = as_of_grid(parse_time_us(FROM), parse_time_us(TO), DAY_US)
    want = run_backtest(
        [("default", book)], sorted(by_lead.items()), attributes, None, times, 30 * DAY_US
    ).to_dict()
    assert got["as_of"] == want["as_of"] and got["as_of"]["count"] == 81
    assert got["events"] == len(rows) and got["leads"] == len(by_lead)
    mine, theirs = got["playbooks"][0], want["playbooks"][0]
    assert mine == theirs
    assert mine["won_leads"] > 5 and mine["observations"] > 10_000
    hot, cold = mine["bands"][0], mine["bands"][2]
    assert hot["conversion_rate"] > mine["base_rate"] > cold["conversion_rate"]


def test_an_outcomes_file_gives_what_the_events_gave(company) -> None:
    leads, events, _, outcomes = company
    common = ("backtest", str(events), "--leads", str(leads), "--from", FROM, "--to", TO)
    code, from_events, err = cli(*common, "--json")
    assert code == 0, err
    code, from_file, err = cli(*common, "--outcomes", str(outcomes), "--json")
    assert code == 0, err
    a, b = json.loads(from_events), json.loads(from_file)
    assert (a["outcomes_from"], b["outcomes_from"]) == ("events", "file")
    assert a["playbooks"] == b["playbooks"]


def test_two_playbooks_side_by_side_with_a_report(company, tmp_path: Path) -> None:
    leads, events, _, _ = company
    strict = tmp_path / "strict.yaml"
    strict.write_text(default_playbook_text().replace("hot: 50", "hot: 80"), encoding="utf-8")
    report = tmp_path / "report.html"
    code, out, err = cli(
        "backtest", str(events), "--leads", str(leads), "--from", FROM, "--to", TO,
        "--playbook", "default", "--playbook", str(strict), "--capacity", "3/day",
        "--report", str(report),
    )  # fmt: skip
    assert code == 0, err
    assert (
        "default" in out
        and "strict" in out
        and "hot precision" in out
        and "days over capacity" in out
    )
    page = report.read_text(encoding="utf-8")
    assert page.count("<svg") == 3 and "<script" not in page and "http" not in page
    code, out, _ = cli(
        "backtest", str(events), "--leads", str(leads), "--from", FROM, "--to", TO,
        "--playbook", str(strict), "--playbook", str(strict), "--json",
    )  # fmt: skip
    assert code == 0
    assert [p["name"] for p in json.loads(out)["playbooks"]] == [str(strict), str(strict)]
    # A higher hot threshold: fewer hot lead-days, never more new hot leads on any day.
    code, base_out, _ = cli(
        "backtest", str(events), "--leads", str(leads), "--from", FROM, "--to", TO, "--json"
    )
    base, high = json.loads(base_out)["playbooks"][0], json.loads(out)["playbooks"][0]
    assert high["bands"][0]["observations"] < base["bands"][0]["observations"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--capacity", "lots"), "--capacity: 'lots' is not N/day"),
        (("--every", "soon"), "--every: 'soon' is not a duration"),
        (("--from", "2026-10-01", "--to", "2026-09-01"), "no as-of time"),
    ],
)
def test_bad_options_are_named(company, args, message) -> None:
    leads, events, _, _ = company
    code, _, err = cli("backtest", str(events), "--leads", str(leads), *args)
    assert code == 2 and message in err


def test_a_bad_outcome_word_names_its_row(company, tmp_path: Path) -> None:
    _, events, _, _ = company
    bad = tmp_path / "bad.csv"
    bad.write_text("lead_id,outcome,at\nL00001,won,2026-10-01\nL00002,maybe,2026-10-02\n")
    code, _, err = cli("backtest", str(events), "--outcomes", str(bad))
    assert code == 2
    assert "row 2" in err and "'maybe' is neither won nor lost" in err


def test_tune_writes_a_playbook_that_loads_and_says_what_it_kept(company, tmp_path: Path) -> None:
    from pyrometer.core.playbook import load_playbook

    leads, events, _, _ = company
    tuned = tmp_path / "tuned.yaml"
    code, out, err = cli(
        "tune", str(events), "--leads", str(leads), "--capacity", "4/day", "-o", str(tuned),
        "--from", "2026-06-01", "--to", "2026-10-20", "--json",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    book = load_playbook(tuned)
    text = tuned.read_text(encoding="utf-8")
    assert text.startswith("# Tuned by `pyrometer tune`")
    assert f"Kept: {summary['kept']}" in text
    if summary["kept"] == "thresholds tuned":
        assert book.temperature.hot == summary["thresholds"]["hot"]
        assert {r.name: r.points for r in book.engagement} == {
            r.name: r.points for r in default_playbook().engagement
        }
    else:
        assert book.temperature.hot == summary["learned_thresholds"]["hot"]
    merits = summary["merit_later"]
    assert (
        max(merits["thresholds tuned"], merits["points learned"])
        == merits["points learned" if summary["kept"] == "points learned" else "thresholds tuned"]
    )
    curve = summary["curve"]
    assert [p["hot"] for p in curve] == sorted(p["hot"] for p in curve)
    # Higher thresholds: never more hot lead-days (the trade-off is monotone).
    days = [p["hot_lead_days"] for p in curve]
    assert days == sorted(days, reverse=True)


def test_tune_needs_one_target(company, tmp_path: Path) -> None:
    _, events, _, _ = company
    code, _, err = cli("tune", str(events), "-o", str(tmp_path / "x.yaml"))
    assert code == 2 and "--capacity N/day or --precision P" in err


def test_the_python_sweep_the_cli_falls_back_to_gives_the_same_json(company, monkeypatch) -> None:
    leads, events, _, outcomes = company
    args = ("backtest", str(events), "--leads", str(leads), "--outcomes", str(outcomes))
    args += ("--from", FROM, "--to", TO, "--capacity", "3/day", "--json")
    code, fast, err = cli(*args)
    assert code == 0, err
    import pyrometer.backtest.run as run_module
    from pyrometer.engines import duckdb_backtest

    swept: list[int] = []

    def counted_run(*a, **k):
        swept.append(1)
        return run_backtest(*a, **k)

    monkeypatch.setattr(duckdb_backtest, "supported", lambda books, times: False)
    monkeypatch.setattr(run_module, "run", counted_run)
    code, slow, err = cli(*args)
    assert code == 0, err
    assert swept == [1]  # the fallback ran
    fast_json, slow_json = json.loads(fast), json.loads(slow)
    fast_json.pop("seconds")
    slow_json.pop("seconds")
    assert fast_json["playbooks"][0]["observations"] > 0
    assert fast_json == slow_json


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (["   ", "page_view", "2026-09-01T10:00:00Z"], "lead"),
        (["b", "!!!", "2026-09-01T10:00:00Z"], "letter or digit"),
        (["b", "page_view", "yesterday"], "not a timestamp"),
    ],
)
def test_a_bad_row_is_named_as_score_names_it(tmp_path: Path, bad: list[str], message) -> None:
    events = tmp_path / "events.csv"
    with events.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["lead_id", "event", "timestamp"])
        writer.writerow(["a", "page_view", "2026-08-30T10:00:00Z"])
        writer.writerow(bad)
        writer.writerow(["a", "demo_request", "2026-09-02T10:00:00Z"])
    code, _, err = cli("backtest", str(events), "--from", FROM, "--to", TO, "--json")
    assert code != 0
    assert "row 2" in err and message in err, err
    code, _, _ = cli("score", str(events), "-o", str(tmp_path / "scores.csv"))
    assert code != 0
