"""OpenMP's threads told to sleep, not spin, between a serving process's predictions.

LightGBM predicts a write's few hundred rows on two OpenMP threads
(:data:`pyrometer.predictive.fast_score.PARALLEL_ROWS`). After each parallel region
libgomp's threads spin by default, waiting for the next one: a training loop gains from
that, a server that predicts once per write does not, and on a small machine the
spinning takes the core the other process (the server process, the other scoring
process, PostgreSQL) needed. Interleaved writes of 460 leads with probability bands
(`/tmp` harness of ``bench/bench_models.py``'s interleaved batches, three runs each): the
write cost 0.85-0.91x the CPU of one without a model with spinning threads, 0.92-0.93x
with sleeping ones, for the same wall time.

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
