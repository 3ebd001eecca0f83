"""Lead ids have one normal form (NFC, trimmed), in Python and in the file readers' SQL."""

from __future__ import annotations

import sys
import unicodedata

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrometer.core.ids import WHITESPACE, EmptyLeadId, normalize_lead_id
from pyrometer.io.readers import lead_id_sql


def test_whitespace_is_exactly_what_str_strip_removes() -> None:
    assert "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()) == WHITESPACE


def test_trimmed_and_composed() -> None:
    assert normalize_lead_id("  ana@x.io\t") == "ana@x.io"
    assert normalize_lead_id("Jose\u0301") == "Jos\u00e9"  # e + combining acute: é
    assert normalize_lead_id("\u3000M\u00fcller\u00a0") == "M\u00fcller"
    for empty in ("", "   ", "\t\n", "\u3000\u2003"):
        with pytest.raises(EmptyLeadId, match="empty or only white space"):
            normalize_lead_id(empty)


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


# Text built around the characters that matter (white space of every kind, combining
# marks, letters that compose) plus any other code point a stable Unicode version knows.
_PARTS = st.sampled_from([*WHITESPACE, "e", "\u0301", "\u0308", "a", "A", "\u00e9", "1", "-"])
_ANY = st.characters(
    blacklist_categories=("Cs", "Cn", "Co"), max_codepoint=0x2FFF, blacklist_characters="\x00"
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_PARTS, _ANY), max_size=12).map("".join))
def test_the_sql_twin_agrees_with_the_python(con: duckdb.DuckDBPyConnection, text: str) -> None:
    row = con.execute(f"SELECT {lead_id_sql('CAST($1 AS VARCHAR)')}", [text]).fetchone()
    assert row is not None
    try:
        expected = normalize_lead_id(text)
    except EmptyLeadId:
        expected = ""
    assert row[0] == expected
    assert unicodedata.is_normalized("NFC", row[0])
