"""Batch scoring speed and memory against a hand-written DuckDB decayed sum.

    python bench/bench_batch.py                      # 10 M and 100 M events
    python bench/bench_batch.py --events 10000000    # one size

For each size a synthetic Parquet file is made once (``bench/data/``), then two runs, each
in a fresh child process so that peak memory is its own:

* **hand SQL**: the decayed sum a data engineer would write: join a points table, decay
  exponentially, sum per lead. No caps, once-rules, fit, thresholds or stages.
* **pyrometer**: ``pyrometer score`` without the output file: reading and checking the
  file, the full default playbook (caps, once, conditions, lifecycle, suppression),
  temperature, stage and funnel for every lead, into a DuckDB table.

It prints events per second, seconds per million leads, peak memory and the ratio of the
two times, and the targets: within 2.5x of the hand SQL, under 2 GB at 100 M events.

Then the same as whole processes, start-up included: the hand SQL's child process from
start to end against ``pyrometer score FILE --as-of ...`` run as a user runs it (the
command line, reading, scoring, the table of the top leads), by wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

AS_OF = "2026-11-23T00:00:00Z"


def run_hand_sql(path: str) -> dict[str, float]:
    import duckdb

    from pyrometer.core.playbook import default_playbook

    points = {
        alt.event: rule.points
        for rule in default_playbook().engagement
        for alt in rule.alternatives
    }
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'; SET enable_progress_bar = false")
    con.execute("CREATE TABLE pts (event VARCHAR, points DOUBLE)")
    con.executemany("INSERT INTO pts VALUES (?, ?)", list(points.items()))
    start = time.perf_counter()
    con.execute(f"""
        CREATE TABLE scores AS
        SELECT e.lead_id,
               sum(p.points * pow(2.0, -(epoch(TIMESTAMP '{AS_OF[:-1]}') - epoch(e.timestamp))
                                       / (30 * 86400.0))) AS score
        FROM read_parquet('{path}') e JOIN pts p ON p.event = e.event
        WHERE e.timestamp <= TIMESTAMP '{AS_OF[:-1]}'
        GROUP BY e.lead_id
    """)
    seconds = time.perf_counter() - start
    leads = con.execute("SELECT count(*) FROM scores").fetchone()[0]  # type: ignore[index]
    return {"seconds": seconds, "leads": leads}


def run_pyrometer(path: str) -> dict[str, float]:

    from pyrometer.core.playbook import default_playbook
    from pyrometer.core.timeutil import to_us
    from pyrometer.engines.duckdb_batch import DuckDBBatchScorer, connect
    from pyrometer.io.readers import open_events

    con = connect()
    con.execute("SET enable_progress_bar = false")
    start = time.perf_counter()
    events = open_events(con, path)
    scorer = DuckDBBatchScorer(default_playbook(), con)
    relation = scorer.score_relation(events, None, to_us(AS_OF))
    con.execute(f"CREATE TABLE scores AS {relation.sql_query()}")
    seconds = time.perf_counter() - start
    leads = con.execute("SELECT count(*) FROM scores").fetchone()[0]  # type: ignore[index]
    return {"seconds": seconds, "leads": leads}


def child(kind: str, path: str) -> None:
    result = (run_hand_sql if kind == "hand_sql" else run_pyrometer)(path)
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def measure(kind: str, path: Path) -> dict[str, float]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - start
    return result


def whole_command(path: Path) -> float:
    """Wall time of ``pyrometer score FILE`` as a user runs it, start-up included."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pyrometer", "score", str(path), "--as-of", AS_OF],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)},
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[10_000_000, 100_000_000])
    parser.add_argument("--repeat", type=int, default=2, help="runs of each; the best counts")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    from synthetic import write_events

    print(
        f"{'events':>12} {'engine':>10} {'seconds':>8} {'events/s':>12} {'s/M leads':>10} "
        f"{'peak MB':>8}"
    )
    for n in args.events:
        path = HERE / "data" / f"events-{n}.parquet"
        if not path.exists():
            print(f"writing {path} ...", flush=True)
            write_events(path, n)
        results, walls = {}, {}
        for kind in ("hand_sql", "pyrometer"):
            runs = [measure(kind, path) for _ in range(args.repeat)]
            walls[kind] = min(r["wall"] for r in runs)
            best = min(runs, key=lambda r: r["seconds"])
            best["peak_mb"] = max(r["peak_mb"] for r in runs)
            results[kind] = best
            print(
                f"{n:>12,} {kind:>10} {best['seconds']:>8.2f} {n / best['seconds']:>12,.0f} "
                f"{best['seconds'] / (best['leads'] / 1e6):>10.2f} {best['peak_mb']:>8.0f}",
                flush=True,
            )
        ratio = results["pyrometer"]["seconds"] / results["hand_sql"]["seconds"]
        peak = results["pyrometer"]["peak_mb"]
        print(
            f"{n:>12,} ratio pyrometer / hand SQL = {ratio:.2f}x (target <= 2.5x: "
            f"{'ok' if ratio <= 2.5 else 'MISSED'}); pyrometer peak {peak:.0f} MB"
            + (
                f" (target < 2048 MB at 100 M: {'ok' if peak < 2048 else 'MISSED'})"
                if n >= 100_000_000
                else ""
            ),
            flush=True,
        )
        hand = walls["hand_sql"]
        command = min(whole_command(path) for _ in range(args.repeat))
        print(
            f"{n:>12,} whole processes, start-up included: hand SQL {hand:.2f} s, "
            f"pyrometer score {command:.2f} s, ratio {command / hand:.2f}x (target <= 2.5x: "
            f"{'ok' if command / hand <= 2.5 else 'MISSED'})",
            flush=True,
        )


if __name__ == "__main__":
    main()
