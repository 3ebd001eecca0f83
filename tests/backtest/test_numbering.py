"""Rows numbered by their lead's hash: the rank among the leads' hashes, or not found."""

from __future__ import annotations

import numpy as np
import pytest

from pyrometer.backtest.numbering import HashNumbers


@pytest.mark.parametrize("leads", [0, 1, 2, 37, 5_000])
def test_a_rows_number_is_its_hashs_rank_among_the_leads(leads: int) -> None:
    rng = np.random.default_rng(leads)
    keys = np.unique(rng.integers(0, 2**63, leads, dtype=np.uint64) * np.uint64(2))
    # Leads crowded into a few leading-bits buckets, and hashes at the ends of the range.
    crowded = np.arange(50, dtype=np.uint64) + np.uint64(1 << 62)
    ends = np.array([0, 2**64 - 1], dtype=np.uint64)
    keys = np.unique(np.concatenate([keys, crowded, ends])) if leads else keys
    absent = keys[:-1] + np.uint64(1) if len(keys) > 1 else np.array([7], dtype=np.uint64)
    absent = np.setdiff1d(absent, keys)
    rows = np.concatenate([keys[rng.integers(0, len(keys), 3 * len(keys))], absent])
    rng.shuffle(rows)
    number, found = HashNumbers(keys).numbers(rows)
    assert found.tolist() == np.isin(rows, keys).tolist()
    assert (keys[number[found]] == rows[found]).all()
    assert number[found].tolist() == np.searchsorted(keys, rows[found]).tolist()


def test_hashes_must_be_sorted_and_distinct() -> None:
    with pytest.raises(ValueError):
        HashNumbers(np.array([3, 2], dtype=np.uint64))
    with pytest.raises(ValueError):
        HashNumbers(np.array([2, 2], dtype=np.uint64))
