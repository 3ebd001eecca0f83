"""Rows numbered by their lead: a 64-bit hash of the lead id looked up among the leads'.

A backtest sums every event's points into a leads × as-of times matrix, so each of
millions of rows needs its lead's number. Joining the rows to the leads in SQL probes a
hash table per row; here the engine gives each row its lead id's hash and the leads are
numbered in hash order, so a row's number is its hash's rank among the leads' hashes:
found through a table of where each leading-bits bucket starts (one gather per row, and
a check), with a binary search only for the rows whose bucket holds several leads.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Hashes = npt.NDArray[np.uint64]
MIN_BITS, MAX_BITS, SPARE_BITS = 8, 24, 3  # buckets: ~8 per lead, at most 16 M (64 MB)


class HashNumbers:
    """The numbers of ``hashes`` (sorted, distinct): a hash's number is its position."""

    def __init__(self, hashes: Hashes) -> None:
        keys = np.asarray(hashes, dtype=np.uint64)
        if len(keys) > 1 and not bool(np.all(keys[1:] > keys[:-1])):
            raise ValueError("lead hashes must be sorted and distinct")
        self.keys = keys
        bits = min(MAX_BITS, max(MIN_BITS, len(keys).bit_length() + SPARE_BITS))
        self.shift = np.uint64(64 - bits)
        buckets = (keys >> self.shift).astype(np.int64)
        starts = np.zeros((1 << bits) + 1, dtype=np.int64)
        np.cumsum(np.bincount(buckets, minlength=1 << bits), out=starts[1:])
        # A bucket's first lead; one past the last lead for an empty bucket at the end.
        self.starts = starts[:-1].astype(np.int32 if len(keys) < 1 << 31 else np.int64)

    def numbers(self, hashes: Hashes) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Each hash's number, and whether it is one of the leads' (else its number is
        meaningless)."""
        rows = np.asarray(hashes, dtype=np.uint64)
        if not len(self.keys):
            return np.zeros(len(rows), dtype=np.int64), np.zeros(len(rows), dtype=bool)
        last = len(self.keys) - 1
        number = self.starts[rows >> self.shift].astype(np.int64)
        np.minimum(number, last, out=number)
        found = self.keys[number] == rows
        # Not the bucket's first lead (or no lead): the rank among all, by binary search.
        miss = np.flatnonzero(~found)
        if len(miss):
            again = np.minimum(np.searchsorted(self.keys, rows[miss]), last)
            number[miss] = again
            found[miss] = self.keys[again] == rows[miss]
        return number, found
