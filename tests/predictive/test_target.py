from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrometer.predictive.target import (
    NEGATIVE_WORDS,
    POSITIVE_WORDS,
    TargetError,
    normalize_outcome,
    parse_target,
)

POS = sorted(w for w in POSITIVE_WORDS if " " not in w)
NEG = sorted(w for w in NEGATIVE_WORDS if " " not in w)


def _spell(word: str, data: st.DataObject) -> str:
    """The same word as an export might write it: any case, padded with spaces."""
    cased = "".join(c.upper() if data.draw(st.booleans()) else c for c in word)
    return " " * data.draw(st.integers(0, 2)) + cased + " " * data.draw(st.integers(0, 2))


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(POS),
    st.sampled_from(NEG),
    st.lists(st.booleans(), min_size=2, max_size=40).filter(lambda xs: any(xs) and not all(xs)),
    st.data(),
)
def test_recognised_pairs_map_to_the_right_side(
    pos: str, neg: str, outcomes: list[bool], data: st.DataObject
) -> None:
    values = pd.Series([_spell(pos if o else neg, data) for o in outcomes], dtype=object)
    y, known = parse_target(values, "t")
    assert known.all()
    assert y.tolist() == [int(o) for o in outcomes]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(["A", "B"]), min_size=2, max_size=30).filter(
        lambda xs: len(set(xs)) == 2
    )
)
def test_unrecognised_pair_is_ambiguous(values: list[str]) -> None:
    with pytest.raises(TargetError, match="ambiguous"):
        parse_target(pd.Series(values, dtype=object), "stage")


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(["New", "Qualified", "Closed"]), min_size=3).filter(
        lambda xs: len(set(xs)) == 3
    ),
    st.sampled_from(["New", "Qualified", "Closed"]),
)
def test_positive_names_the_value_among_several(values: list[str], positive: str) -> None:
    with pytest.raises(TargetError, match="--positive"):
        parse_target(pd.Series(values, dtype=object), "stage")
    y, _ = parse_target(pd.Series(values, dtype=object), "stage", positive=positive.upper())
    assert y.tolist() == [int(v == positive) for v in values]


def test_numbers_and_blanks() -> None:
    y, known = parse_target(pd.Series([1.0, 0.0, None, "1", "NA", 0], dtype=object), "c")
    assert known.tolist() == [True, True, False, True, False, True]
    assert y[known].tolist() == [1, 0, 1, 0]


def test_one_outcome_only_and_unknown_positive() -> None:
    with pytest.raises(TargetError, match="only one outcome"):
        parse_target(pd.Series(["yes", "yes"], dtype=object), "c")
    with pytest.raises(TargetError, match="does not occur"):
        parse_target(pd.Series(["a", "b"], dtype=object), "c", positive="c")


@given(st.integers(-1000, 1000))
def test_numbers_and_their_texts_are_one_outcome(number: int) -> None:
    spellings = [number, float(number), str(number), f"{number}.0", f" {number} "]
    assert len({normalize_outcome(s) for s in spellings}) == 1
