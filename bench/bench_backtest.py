"""Backtest speed and memory: 180 daily as-of times against one ``pyrometer score``.

    python bench/bench_backtest.py                       # 1 M events
    python bench/bench_backtest.py --events 1000000 10000000
    python bench/bench_backtest.py --events 10000000 --repeat 5   # interleaved, medians

For each size a synthetic Parquet file is made once (``bench/data/``, as bench_batch),
then two runs, each in a fresh child process so that peak memory is its own:

* **score** (the reference): ``pyrometer score``'s engine on the file as of its last day:
  reading, the default playbook, classes, into a DuckDB table.
* **backtest (SQL)**: ``pyrometer backtest``'s path for 180 daily as-of times, the
  default playbook, outcomes from the file's purchase events: every event's earned points
  once in SQL, summed per lead and as-of stretch, then bands and counts as arrays
  (:mod:`pyrometer.engines.duckdb_backtest`).
* **backtest (Python)**: the reference sweep (``--python``; slow at 10 M events): the file
  streamed lead by lead in time order, each lead swept once
  (:mod:`pyrometer.backtest.sweep`), tallied. Its figures must equal the SQL path's.

Prints seconds, events per second, lead-days per second, peak memory and the ratio of
the two times; the issue's target is within 3x of one score, under 2 GB, at 10 M events.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

DAY_US = 86_400_000_000
AS_OF_TIMES = 180


def run_score(path: str) -> dict[str, float]:
    from synthetic import END_US

    from pyrometer.core.playbook import default_playbook
    from pyrometer.engines.duckdb_batch import DuckDBBatchScorer, connect
    from pyrometer.io.readers import open_events

    start, cpu = time.perf_counter(), time.process_time()
    con = connect()
    book = default_playbook()
    events = open_events(con, path)
    relation = DuckDBBatchScorer(book, con).score_relation(events, None, END_US)
    con.execute(f"CREATE TEMP TABLE scored AS {relation.sql_query()}")
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu}


def run_backtest(path: str, python: bool) -> dict[str, object]:
    from synthetic import END_US

    from pyrometer.backtest.run import run
    from pyrometer.backtest.sweep import as_of_grid
    from pyrometer.core.playbook import default_playbook
    from pyrometer.engines.duckdb_backtest import run_sql
    from pyrometer.engines.duckdb_batch import connect
    from pyrometer.io.history import iter_leads, open_history

    start, cpu = time.perf_counter(), time.process_time()
    con = connect()
    book = default_playbook()
    history = open_history(con, book, Path(path), None)
    times = as_of_grid(END_US - (AS_OF_TIMES - 1) * DAY_US, END_US, DAY_US)
    books = [("default", book)]
    if python:
        result = run(books, iter_leads(con, history), {}, None, times, 30 * DAY_US)
    else:
        found = run_sql(
            con,
            books,
            history.events,
            {},
            None,
            times,
            30 * DAY_US,
            per_lead=history.per_lead,
            proven=history.proven,
        )
        assert found is not None
        result = found
    (metrics,) = result.metrics
    return {
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,
        "sweep_seconds": result.seconds,
        "lead_days": metrics.observations,
        "leads": result.leads,
        "metrics": metrics.to_dict(),
    }


def child(kind: str, path: str) -> None:
    figures: dict[str, object] = (
        dict(run_score(path)) if kind == "score" else run_backtest(path, kind == "python")
    )
    figures["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures))


def measure(kind: str, path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The runs' figures with the median seconds and peak memory (the rest from any)."""
    out = dict(runs[0])
    for key in ("seconds", "cpu_seconds", "sweep_seconds", "peak_mb"):
        if key in out:
            out[key] = statistics.median(run[key] for run in runs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000])
    parser.add_argument(
        "--python", action="store_true", help="also time the Python sweep (the reference)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run score and backtest interleaved this many times; medians are printed",
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    from synthetic import write_events

    for n in args.events:
        path = HERE / "data" / f"events_{n}.parquet"
        if not path.exists():
            write_events(path, n)
        # Interleaved, so that a busy machine slows the reference and the candidate alike;
        # each figure is the median of its runs, the ratio the median of each pair's.
        scores: list[dict[str, Any]] = []
        sqls: list[dict[str, Any]] = []
        for _ in range(args.repeat):
            scores.append(measure("score", path))
            sqls.append(measure("backtest", path))
        ratios = [b["seconds"] / a["seconds"] for a, b in zip(scores, sqls, strict=True)]
        cpu_ratios = [
            b["cpu_seconds"] / a["cpu_seconds"] for a, b in zip(scores, sqls, strict=True)
        ]
        score = _median_run(scores)
        runs = [("backtest (SQL)", _median_run(sqls))]
        if args.python:
            runs.append(("backtest (Python)", measure("python", path)))
        print(
            f"{n:>12,} events, {runs[0][1]['leads']:,.0f} leads, {AS_OF_TIMES} as-of times\n"
            f"  {'score (reference)':18} {score['seconds']:8.2f} s  "
            f"{n / score['seconds']:>12,.0f} events/s  peak {score['peak_mb']:7.0f} MB"
        )
        for name, figures in runs:
            ratio = (
                statistics.median(ratios)
                if figures is runs[0][1]
                else figures["seconds"] / score["seconds"]
            )
            print(
                f"  {name:18} {figures['seconds']:8.2f} s  "
                f"{n / figures['seconds']:>12,.0f} events/s  peak {figures['peak_mb']:7.0f} MB"
                f"  ({figures['lead_days'] / figures['sweep_seconds']:,.0f} lead-days/s)"
                f"  {ratio:5.1f}x score"
            )
        if args.repeat > 1:
            print(
                f"  medians of {args.repeat} interleaved runs; backtest/score ratios: "
                + ", ".join(f"{r:.2f}" for r in ratios)
            )
        # CPU time (all threads) moves less than wall time when other work shares the cores.
        print(
            f"  CPU time: score {score['cpu_seconds']:.2f} s, backtest "
            f"{runs[0][1]['cpu_seconds']:.2f} s, ratio {statistics.median(cpu_ratios):.2f}x"
            + (f" ({', '.join(f'{r:.2f}' for r in cpu_ratios)})" if args.repeat > 1 else "")
        )
        if len(runs) > 1:
            same = runs[0][1]["metrics"] == runs[1][1]["metrics"]
            print(f"  SQL and Python figures {'equal' if same else 'DIFFER'}")
        print("  target: backtest within 3x of score, under 2048 MB")


if __name__ == "__main__":
    main()
