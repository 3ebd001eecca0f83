"""One parser for the durations the service reads from its environment."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyrometer.envconfig import seconds_from_env

VARIABLE = "PYROMETER_TEST_SECONDS"


@given(
    text=st.text(
        alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
        max_size=12,
    )
)
def test_any_text_is_a_positive_finite_number_or_an_error_naming_the_variable(text: str) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv(VARIABLE, text)
        for allow_zero in (False, True):
            try:
                value = seconds_from_env(VARIABLE, 7.0, allow_zero=allow_zero)
            except ValueError as exc:
                assert VARIABLE in str(exc) and repr(text) in str(exc)
                continue
            if not text:
                assert value == 7.0
            else:
                assert math.isfinite(value) and (value > 0 or (allow_zero and value == 0))
                assert value == float(text)


@pytest.mark.parametrize("text", ["0", "-1", "inf", "nan", "soon"])
def test_zero_only_where_it_means_no_limit(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VARIABLE, text)
    with pytest.raises(ValueError, match=VARIABLE):
        seconds_from_env(VARIABLE, 1.0)
    if text == "0":
        assert seconds_from_env(VARIABLE, 1.0, allow_zero=True) == 0.0
