"""The stitching of Segment identify and alias calls in a file (``core.stitching``), and
the file readers that apply it (``io.segment``): visitors folded into leads, never two
known leads merged, traits merged in file order with LEADS winning."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from pyrometer.cli.app import app
from pyrometer.core.stitching import IdentityCall, stitch


def test_a_visitor_is_folded_into_the_lead_that_identifies_it() -> None:
    calls = [IdentityCall(5, "ann", "v1", traits={"title": "CEO"})]
    out = stitch(calls, {})
    assert out.links == {"v1": "ann"}
    assert out.traits == {"ann": {"title": "CEO"}}
    assert out.linked == (True,)


def test_a_known_lead_is_never_folded_into_another() -> None:
    # bob was a message's userId at row 2, before carl's identify at row 7 names him.
    out = stitch([IdentityCall(7, "carl", "bob", traits={"title": "CEO"})], {"bob": 2})
    assert out.links == {}
    assert out.traits == {"carl": {"title": "CEO"}}
    assert out.linked == (False,)
    # Named only later: still a visitor when the call comes.
    assert stitch([IdentityCall(7, "carl", "bob")], {"bob": 9}).links == {"bob": "carl"}


def test_the_first_link_of_a_visitor_counts_and_alias_links_the_same_way() -> None:
    calls = [
        IdentityCall(3, "dan", "v2"),  # an alias: previousId v2 is dan
        IdentityCall(8, "eve", "v2", traits={"title": "CTO"}),
    ]
    out = stitch(calls, {})
    assert out.links == {"v2": "dan"}
    assert out.traits == {"eve": {"title": "CTO"}}


def test_traits_merge_in_file_order_and_a_visitor_brings_its_own() -> None:
    calls = [
        IdentityCall(9, "ann", traits={"title": "VP", "city": "Oslo"}),
        IdentityCall(2, "v1", named=False, traits={"title": "Intern", "phone": "1"}),
        IdentityCall(12, "ann", "v1", traits={"city": "Bergen", "phone": None}),
    ]
    out = stitch(calls, {"ann": 9})
    # File order: ann's own traits, then the visitor's (folded in at row 12), then row 12's.
    assert out.traits == {"ann": {"title": "Intern", "city": "Bergen"}}
    assert out.links == {"v1": "ann"}
    assert [c.row for c in out.calls] == [2, 9, 12]


ids = st.sampled_from(["a", "b", "c", "v1", "v2", "v3"])
call_lists = st.lists(st.tuples(ids, st.none() | ids, st.booleans()), min_size=0, max_size=12).map(
    lambda rows: [
        IdentityCall(row, lead, visitor, named) for row, (lead, visitor, named) in enumerate(rows)
    ]
)


@given(call_lists, st.dictionaries(ids, st.integers(0, 12)))
def test_links_only_visitors_not_yet_known_each_once(
    calls: list[IdentityCall], first_named: dict[str, int]
) -> None:
    out = stitch(calls, first_named)
    linking = [c for c, linked in zip(out.calls, out.linked, strict=True) if linked]
    assert len({c.visitor for c in linking}) == len(linking)  # a visitor is linked once
    for call in linking:
        assert call.named and call.visitor is not None and call.visitor != call.lead_id
        assert first_named.get(call.visitor, math.inf) > call.row  # not known before
        assert out.links[call.visitor] == call.lead_id
    assert set(out.links) == {c.visitor for c in linking}


def _write(path: Path, messages: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(m) + "\n" for m in messages))
    return path


def test_leads_file_values_win_over_identify_traits(tmp_path: Path) -> None:
    events = _write(
        tmp_path / "events.jsonl",
        [
            {"type": "track", "anonymousId": "v1", "event": "Demo Request", "messageId": "m1",
             "timestamp": "2026-11-20T09:00:00Z", "properties": {}},
            {"type": "identify", "userId": "ann", "anonymousId": "v1", "messageId": "m2",
             "timestamp": "2026-11-20T09:01:00Z",
             "traits": {"Job Title": "Student", "industry": "Software"}},
        ],
    )  # fmt: skip
    leads = tmp_path / "leads.csv"
    leads.write_text("lead_id,job_title,industry\nann,CEO,\n")
    runner = CliRunner()
    args = ["--as-of", "2026-11-21T00:00:00Z"]
    result = runner.invoke(app, ["explain", "ann", str(events), "--json", *args])
    assert result.exit_code == 0, result.output
    alone = json.loads(result.stdout)
    assert alone["events"] == 1  # the visitor's demo request is ann's
    assert {line["rule"] for line in alone["ledger"] if line["kind"] == "fit"} == {
        "student",
        "target_industry",
    }
    result = runner.invoke(
        app, ["explain", "ann", str(events), "--leads", str(leads), "--json", *args]
    )
    assert result.exit_code == 0, result.output
    both = json.loads(result.stdout)
    # LEADS says CEO (it wins); its empty industry leaves the trait's Software.
    assert {line["rule"] for line in both["ledger"] if line["kind"] == "fit"} == {
        "decision_maker",
        "target_industry",
    }
    result = runner.invoke(app, ["score", str(events), "--json", *args])
    assert [row["lead_id"] for row in json.loads(result.stdout)] == ["ann"]  # no visitor v1


def test_a_leads_file_of_identify_calls_merges_each_persons_calls(tmp_path: Path) -> None:
    """A Segment export has several identify calls per person: merged, not an error."""
    events = _write(
        tmp_path / "events.jsonl",
        [{"type": "track", "userId": "ann", "event": "Demo Request", "messageId": "m1",
          "timestamp": "2026-11-20T09:00:00Z", "properties": {}}],
    )  # fmt: skip
    leads = _write(
        tmp_path / "identify.jsonl",
        [
            {"type": "identify", "userId": "ann", "messageId": "i1",
             "timestamp": "2026-11-18T09:00:00Z", "traits": {"Job Title": "Student"}},
            {"type": "identify", "userId": "ann", "messageId": "i2",
             "timestamp": "2026-11-19T09:00:00Z",
             "traits": {"Job Title": "CEO", "industry": "Software"}},
        ],
    )  # fmt: skip
    result = CliRunner().invoke(
        app,
        ["explain", "ann", str(events), "--leads", str(leads), "--json",
         "--as-of", "2026-11-21T00:00:00Z"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    explained = json.loads(result.stdout)
    assert {line["rule"] for line in explained["ledger"] if line["kind"] == "fit"} == {
        "decision_maker",  # the later call's title
        "target_industry",
    }


def test_visitor_and_lead_ids_stitch_in_their_normal_form(tmp_path: Path) -> None:
    """A visitor spelled with spaces or a decomposed accent in one call and plainly in
    another is one visitor, as in the service, where every id is trimmed and NFC."""
    events = _write(
        tmp_path / "events.jsonl",
        [
            {"type": "track", "anonymousId": " vi\u0301 ", "event": "Demo Request",
             "messageId": "m1", "timestamp": "2026-11-20T09:00:00Z", "properties": {}},
            {"type": "identify", "userId": "  ann ", "anonymousId": "ví", "messageId": "m2",
             "timestamp": "2026-11-20T09:01:00Z", "traits": {"Job Title": "CEO"}},
        ],
    )  # fmt: skip
    result = CliRunner().invoke(
        app, ["score", str(events), "--json", "--as-of", "2026-11-21T00:00:00Z"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(row["lead_id"], row["events"]) for row in rows] == [("ann", 1)]
    assert rows[0]["fit"] == 8.0  # the identify's traits reached the normalised lead


def test_explain_of_a_stitched_visitor_names_its_lead(tmp_path: Path) -> None:
    """`explain anon-1` said the visitor had no events: they are its lead's now."""
    from typer.testing import CliRunner

    from pyrometer.cli.app import app

    events = _write(
        tmp_path / "s.jsonl",
        [
            {"type": "track", "anonymousId": "anon-1", "event": "demo_request",
             "messageId": "m1", "timestamp": "2026-11-20T09:00:00Z"},
            {"type": "identify", "anonymousId": "anon-1", "userId": "ann", "messageId": "m2",
             "timestamp": "2026-11-20T09:05:00Z"},
        ],
    )  # fmt: skip
    args = [str(events), "--as-of", "2026-11-22T00:00:00Z"]
    result = CliRunner().invoke(app, ["explain", "anon-1", *args])
    assert result.exit_code == 2
    assert "'anon-1' is an anonymous id of lead 'ann'" in result.stderr
    assert CliRunner().invoke(app, ["explain", "ann", *args]).exit_code == 0
