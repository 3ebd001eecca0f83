"""CSV input against Parquet for the same events, and against DuckDB's own CSV reader.

    python bench/bench_csv.py                      # 1 M events
    python bench/bench_csv.py --events 3000000

Makes the synthetic events of :mod:`synthetic` as Parquet and as CSV (ISO-8601 text
times, as exports have them) once in ``bench/data/``, then times, best of ``--repeat``:

* **duckdb csv**: DuckDB alone reading the CSV into a table (what its reader allows);
* **parquet** and **csv**: reading and checking the file and scoring it with the
  default playbook (``pyrometer score`` without the output), in-process.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

AS_OF = "2026-11-23T00:00:00Z"


def files(n: int) -> tuple[Path, Path]:
    import duckdb
    from synthetic import write_events

    parquet = HERE / "data" / f"events-{n}.parquet"
    csv = HERE / "data" / f"events-{n}.csv"
    if not parquet.exists():
        write_events(parquet, n)
    if not csv.exists():
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute(
            f"COPY (SELECT lead_id, event, strftime(timestamp, '%Y-%m-%dT%H:%M:%S.%fZ') "
            f"AS timestamp, url FROM '{parquet}') TO '{csv}' (HEADER)"
        )
    return parquet, csv


def duckdb_alone(path: Path) -> float:
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    start = time.perf_counter()
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{path}')")
    return time.perf_counter() - start


def pyrometer(path: Path) -> float:
    from pyrometer.core.playbook import default_playbook
    from pyrometer.core.timeutil import to_us
    from pyrometer.engines.duckdb_batch import DuckDBBatchScorer, connect
    from pyrometer.io.readers import open_events

    con = connect()
    con.execute("SET enable_progress_bar = false")
    start = time.perf_counter()
    events = open_events(con, path)
    relation = DuckDBBatchScorer(default_playbook(), con).score_relation(events, None, to_us(AS_OF))
    con.execute(f"CREATE TABLE scores AS {relation.sql_query()}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    parquet, csv = files(args.events)
    runs = {
        "duckdb csv": lambda: duckdb_alone(csv),
        "parquet": lambda: pyrometer(parquet),
        "csv": lambda: pyrometer(csv),
    }
    best = {name: min(run() for _ in range(args.repeat)) for name, run in runs.items()}
    for name, seconds in best.items():
        print(f"{args.events:>12,} {name:>11} {seconds:7.2f} s")
    print(
        f"csv / parquet = {best['csv'] / best['parquet']:.2f}x; csv scoring beyond DuckDB's "
        f"own read of the file: {best['csv'] - best['duckdb csv']:.2f} s "
        f"(parquet scoring: {best['parquet']:.2f} s)"
    )


if __name__ == "__main__":
    main()
