"""Conditions mean the same in Python and in the SQL the batch engine runs."""

from __future__ import annotations

import unicodedata
from typing import Any

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyrometer.core.conditions import Condition, Where, as_number, normalize_name
from pyrometer.engines.sql_conditions import condition_sql

MISSING = ("", "select", "na", "n/a", "-", "null", "none", "nan")


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ({"equals": "Student"}, " student ", True),
        ({"equals": "Student"}, "students", False),
        ({"contains": "/pricing"}, "https://x.io/Pricing?plan=pro", True),
        ({"contains": ["vp", "head"]}, "Head of Sales", True),
        ({"in": ["DE", "LT"]}, "lt", True),
        ({"regex": r"\bceo\b"}, "Founder & CEO", True),
        ({"regex": r"\bceo\b"}, "ceography", False),
        ({"gte": 50, "lte": 5000}, "250", True),
        ({"gte": 50, "lte": 5000}, "5001", False),
        ({"gte": 50}, "fifty", False),
        ({"equals": 10}, "10.0", True),
        ({"equals": True}, "Yes", True),
        ({"equals": True}, "No", False),
        ({"missing": True}, "Select", True),
        ({"missing": True}, None, True),
        ({"missing": True}, "Engineer", False),
        ({"not": {"contains": "student"}}, None, True),
        ({"not": {"contains": "student"}}, "PhD Student", False),
        ({"contains": "student"}, "Select", False),
    ],
)
def test_condition_examples(spec: dict[str, Any], value: Any, expected: bool) -> None:
    assert Condition.model_validate(spec).matches(value, MISSING) is expected


def test_shorthands_and_field_names() -> None:
    where = Where.model_validate({"Job Title": "CEO", "Country": ["DE", "LT"], "Phone": None})
    assert set(where.fields) == {"job_title", "country", "phone"}
    assert where.matches({"job_title": "ceo", "country": "de"}, MISSING)
    assert not where.matches({"job_title": "ceo", "country": "de", "phone": "+370"}, MISSING)


@pytest.mark.parametrize(
    "spec",
    [{}, {"regex": "(?<=a)b"}, {"regex": "("}, {"contains": ""}, {"equals": 1, "bogus": 2}],
)
def test_bad_conditions_are_rejected(spec: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Condition.model_validate(spec)


TEXT = st.text(alphabet="aAbB019 .-_/%NnSsLlEeCcTtUuDd\t", max_size=8)
VALUES = st.one_of(
    st.none(),
    TEXT,
    st.sampled_from(["Select", " n/a ", "NULL", "-", "1e3", "+4.5", ".5", "7."]),
    st.integers(-100, 100).map(str),
    st.floats(-1e4, 1e4, allow_nan=False).map(repr),
)
SCALARS = st.one_of(
    TEXT, st.integers(-50, 50), st.booleans(), st.floats(-100, 100, allow_nan=False)
)


@st.composite
def conditions(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for key in draw(
        st.sets(
            st.sampled_from(
                ["equals", "in", "contains", "regex", "gt", "gte", "lt", "lte", "missing", "not"]
            ),
            min_size=1,
            max_size=3,
        )
    ):
        if key == "equals":
            spec[key] = draw(SCALARS)
        elif key == "in":
            spec[key] = draw(st.lists(SCALARS, min_size=1, max_size=3))
        elif key == "contains":
            spec[key] = draw(st.lists(TEXT.filter(bool), min_size=1, max_size=2))
        elif key == "regex":
            spec[key] = draw(st.sampled_from(["^a", "b$", r"\d+", "[ab]{2}", "s.l", r"\bd"]))
        elif key == "missing":
            spec[key] = draw(st.booleans())
        elif key == "not":
            if depth < 1:
                spec[key] = draw(conditions(depth + 1))
        else:
            spec[key] = draw(st.floats(-200, 200, allow_nan=False))
    return spec or {"missing": False}


@given(spec=conditions(), values=st.lists(VALUES, min_size=1, max_size=8))
def test_python_and_sql_agree(spec: dict[str, Any], values: list[Any]) -> None:
    cond = Condition.model_validate(spec)
    con = duckdb.connect()
    sql = condition_sql(cond, "v", MISSING)
    rows = con.execute(
        f"SELECT k, {sql} FROM (SELECT * FROM unnest(?) WITH ORDINALITY AS t(v, k)) ORDER BY k",
        [values],
    ).fetchall()
    for (_, got), value in zip(rows, values, strict=True):
        assert got is cond.matches(value, MISSING), (spec, value, sql)


@given(st.text(max_size=12))
def test_number_parsing_agrees_with_duckdb(text: str) -> None:
    expected = as_number(text)
    con = duckdb.connect()
    cond = Condition.model_validate({"gte": -1e300})
    got = con.execute(
        f"SELECT {condition_sql(cond, 'v', ())} FROM (SELECT ? AS v)", [text]
    ).fetchone()[0]
    assert got is (expected is not None)


@given(st.text(max_size=20))
def test_normalized_names_are_idempotent(name: str) -> None:
    once = normalize_name(name)
    assert normalize_name(once) == once
    # Letters, digits and marks of any script (tests/test_unicode_names.py), joined by "_".
    assert all(ch.isalnum() or ch == "_" or unicodedata.category(ch)[0] == "M" for ch in once)
