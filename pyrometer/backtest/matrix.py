"""Bands and counts for many leads at once: a lead × as-of time matrix, vectorised.

The same meaning as :func:`pyrometer.backtest.sweep.sweep_lead` and
:meth:`pyrometer.backtest.metrics.Tally.add`, for a block of leads at a time, so a
backtest over a million leads and 180 as-of times runs at array speed. Its input is what
an engine computes once for all as-of times (:mod:`pyrometer.engines.duckdb_backtest`):
each lead's first as-of time, its fit, and its earned points summed per as-of stretch,
scaled to the last as-of time's decay step. No SQL and no files here.

Decay factorises: a point earned in step ``s`` is worth ``2 ** (-(S_k - s) / H)`` at
as-of step ``S_k``, which is ``2 ** ((s - S_n) / H) * 2 ** ((S_n - S_k) / H)`` for the last
step ``S_n``. So the engagement at as-of time ``k`` is the running sum (over stretches up to
``k``) of the first factor's sums, times the second factor: one cumulative sum per lead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from pyrometer.backtest.metrics import DAY_US, Tally
from pyrometer.core.classify import CLASSIFY_DECIMALS

HOT, WARM, COLD = 0, 1, 2  # band codes in the matrix, in metrics.BANDS order
CODES_TO_BANDS = "hwc"  # a code's letter in a Timeline's bands
NO_TIME = np.iinfo(np.int64).max  # a lead without a win, or not closed
MAX_SPAN_HALF_LIVES = 500.0  # beyond it 2 ** (span / H) loses precision: not used then

ROUND_BY = 10.0**CLASSIFY_DECIMALS

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


def scales(as_of_steps: Sequence[int], half_life_steps: float) -> Floats:
    """``2 ** ((S_n - S_k) / H)`` per as-of time ``k``: from the last step's scale to each."""
    steps = np.asarray(as_of_steps, dtype=np.float64)
    return np.asarray(np.exp2((steps[-1] - steps) / half_life_steps), dtype=np.float64)


def gains(cells: npt.NDArray[np.integer], values: Floats, leads: int, n: int) -> Floats:
    """Earned values summed per cell ``lead * n + k`` (cells may repeat: they add up, in
    row order), as a ``leads`` × ``n`` matrix for :func:`bands`."""
    return np.bincount(cells, weights=values, minlength=leads * n).reshape(leads, n)


def bands(
    first: Ints,
    fit: Floats,
    gained: Floats,
    scale: Floats,
    hot: float,
    warm: float,
) -> npt.NDArray[np.int8]:
    """Band codes (:data:`HOT`, :data:`WARM`, :data:`COLD`), one row per lead, one column
    per as-of time; columns before the lead's ``first`` are meaningless (mask them).

    ``gained``: per lead and as-of time ``k``, the earned points of the stretch ending at
    ``k`` (the events after as-of time ``k - 1``, up to ``k``) times
    ``2 ** ((s - S_n) / H)`` (:func:`gains`).
    """
    score = np.cumsum(gained, axis=1, dtype=np.float64)
    score *= scale
    score += fit[:, None]
    # As classify rounds: np.round(score, CLASSIFY_DECIMALS), the same steps in place.
    rounded = score
    np.multiply(rounded, ROUND_BY, out=rounded)
    np.rint(rounded, out=rounded)
    np.divide(rounded, ROUND_BY, out=rounded)
    codes = np.full(rounded.shape, COLD, dtype=np.int8)
    codes[rounded >= warm] = WARM
    codes[rounded >= hot] = HOT
    return codes


def tally_bands(
    tally: Tally, first: Ints, codes: npt.NDArray[np.int8], won: Ints, closed: Ints
) -> None:
    """Add a block of leads to ``tally``, exactly as :meth:`Tally.add` adds each one.

    ``first``: each lead's first as-of time (index); ``won`` and ``closed``: its first
    win and close, :data:`NO_TIME` for none."""
    m, n = codes.shape
    if m == 0:
        return
    times = np.asarray(tally.as_of_times, dtype=np.int64)
    ks = np.arange(n)
    close_k = np.searchsorted(times, closed, "left")
    valid = (ks >= first[:, None]) & (ks < close_k[:, None])
    seen = valid.any(axis=1)
    has_win = won != NO_TIME
    lo = np.searchsorted(times, np.where(has_win, won - tally.horizon_us, NO_TIME), "left")
    hi = np.searchsorted(times, won, "left")
    converted = valid & (ks >= lo[:, None]) & (ks < hi[:, None]) & has_win[:, None]
    for code, band in enumerate(("hot", "warm", "cold")):
        in_band = valid & (codes == code)
        count = int(in_band.sum())
        if count:
            tally.obs[band] += count
            tally.band_leads[band] += int(in_band.any(axis=1).sum())
            tally.conv[band] += int((in_band & converted).sum())
    hot = valid & (codes == HOT)
    rows = np.arange(m)
    at_first = np.clip(first, 0, n - 1)
    starts = seen & (first > 0) & hot[rows, at_first]
    new_hot = np.bincount(first[starts], minlength=n)
    both = valid[:, 1:] & valid[:, :-1]
    new_hot[1:] += (both & hot[:, 1:] & (codes[:, :-1] != HOT)).sum(axis=0)
    for k, count in enumerate(new_hot.tolist()):
        tally.new_hot[k] += count
    tally.pairs += int(valid.sum()) - int(seen.sum())
    tally.changes += int((both & (codes[:, 1:] != codes[:, :-1])).sum())
    tally.leads += int(seen.sum())
    won_seen = seen & has_win & (won <= times[-1] + tally.horizon_us)
    tally.won_leads += int(won_seen.sum())
    won_hot = won_seen & hot.any(axis=1)
    tally.won_hot += int(won_hot.sum())
    first_hot = hot.argmax(axis=1)[won_hot]
    tally.lead_times.extend(((won[won_hot] - times[first_hot]) / DAY_US).tolist())
