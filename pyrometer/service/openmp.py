"""OpenMP's threads told to sleep, not spin, between a serving process's predictions.

LightGBM predicts a write's few hundred rows on two OpenMP threads
(:data:`pyrometer.predictive.fast_score.PARALLEL_ROWS`). After each parallel region
libgomp's threads spin by default, waiting for the next one: a training loop gains from
that, a server that predicts once per write does not, and on a small machine the
spinning takes the core the other process (the server process, the other scoring
process, PostgreSQL) needed. In ``bench/bench_models.py``'s interleaved writes of some
460 leads with probability bands (SQLite), a write with the model cost 0.78x the CPU per
event of one without with spinning threads and 0.87x with sleeping ones, for about the
same wall time (0.85x, 0.89x).

libgomp reads the setting once, when LightGBM's library is loaded: :func:`sleep_between`
must run before that (``serve`` calls it first, a scoring process when it starts). A value
the user set is kept.
"""

from __future__ import annotations

import os

WAIT_POLICY = "OMP_WAIT_POLICY"


def sleep_between() -> None:
    """OpenMP's threads in this process (and those it starts) sleep while idle."""
    os.environ.setdefault(WAIT_POLICY, "PASSIVE")
