"""The Spark engine against DuckDB and a hand-written Spark decayed sum, same file, same run.

    python bench/bench_spark.py                       # 10 M and 100 M events
    python bench/bench_spark.py --events 10000000     # one size
    python bench/bench_spark.py --master local[2]     # the default
    python bench/bench_spark.py --data /big/disk      # where the Parquet files go

The Parquet file is the one ``bench_batch.py`` makes (``bench/data/events-N.parquet``).
Each run is a fresh child process (its own JVM), so that its peak memory is its own:

* **duckdb**: pyrometer's DuckDB engine, as in ``bench_batch.py`` (the full default
  playbook: caps, once, conditions, lifecycle, suppression, classes).
* **hand spark**: the decayed sum a data engineer would write in Spark: broadcast join of
  a points table, exponential decay, sum per lead. No caps, once-rules, fit or classes.
* **pyrometer spark**: ``SparkBatchScorer.score`` on the same file, the full playbook,
  every lead's row computed (written to Spark's ``noop`` sink).

Times exclude the Spark session's start (printed apart). It prints seconds, events per
second, seconds per million leads, peak memory (DuckDB: the process; Spark: the driver
JVM's and the Python driver's), and the ratio pyrometer spark / hand spark (target: 2x).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

AS_OF = "2026-11-23T00:00:00Z"


def _jvm_peak_mb(spark: object) -> float:
    """Peak resident memory of the driver JVM (``VmHWM`` of the gateway process)."""
    proc = getattr(spark.sparkContext._gateway, "proc", None)  # type: ignore[attr-defined]
    if proc is None:
        return float("nan")
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _session(master: str) -> tuple[object, float]:
    from pyrometer.engines.spark.session import session

    start = time.perf_counter()
    spark = session(master, {"spark.driver.memory": "2g"})
    return spark, time.perf_counter() - start


def run_hand_spark(path: str, master: str) -> dict[str, float]:
    from pyspark.sql import functions as F

    from pyrometer.core.playbook import default_playbook
    from pyrometer.core.timeutil import to_us

    spark, started = _session(master)
    points = {
        alt.event: rule.points
        for rule in default_playbook().engagement
        for alt in rule.alternatives
    }
    table = spark.createDataFrame(list(points.items()), "event string, points double")  # type: ignore[attr-defined]
    as_of = to_us(AS_OF)
    start = time.perf_counter()
    events = spark.read.parquet(path)  # type: ignore[attr-defined]
    age = (F.lit(as_of) - F.unix_micros("timestamp")) / 1e6
    scores = (
        events.filter(F.unix_micros("timestamp") <= as_of)
        .join(F.broadcast(table), "event")
        .groupBy("lead_id")
        .agg(F.sum(F.col("points") * F.pow(2.0, -age / (30 * 86400.0))).alias("score"))
        .cache()
    )
    leads = scores.count()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "leads": leads, "start": started, "jvm_mb": _jvm_peak_mb(spark)}


def run_pyrometer_spark(path: str, master: str) -> dict[str, float]:
    from pyrometer.core.playbook import default_playbook
    from pyrometer.core.timeutil import to_us
    from pyrometer.engines.spark import SparkBatchScorer, read_events

    spark, started = _session(master)
    start = time.perf_counter()
    scorer = SparkBatchScorer(default_playbook(), spark)  # type: ignore[arg-type]
    scores = scorer.score(read_events(spark, path), None, to_us(AS_OF)).cache()  # type: ignore[arg-type]
    leads = scores.count()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "leads": leads, "start": started, "jvm_mb": _jvm_peak_mb(spark)}


def run_duckdb(path: str, _master: str) -> dict[str, float]:
    from bench_batch import run_pyrometer

    return run_pyrometer(path)


RUNS = {"duckdb": run_duckdb, "hand spark": run_hand_spark, "pyrometer spark": run_pyrometer_spark}


def child(kind: str, path: str, master: str) -> None:
    result = RUNS[kind](path, master)
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def measure(kind: str, path: Path, master: str) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path), master],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[10_000_000, 100_000_000])
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the best counts")
    parser.add_argument(
        "--data",
        type=Path,
        default=HERE / "data",
        help="folder of the Parquet files (made once; 100 M events take 1.6 GB)",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    from synthetic import write_events

    print(
        f"{'events':>12} {'engine':>16} {'seconds':>8} {'events/s':>12} {'s/M leads':>10} "
        f"{'start s':>8} {'JVM MB':>8} {'py MB':>7}"
    )
    for n in args.events:
        path = args.data / f"events-{n}.parquet"
        if not path.exists():
            print(f"writing {path} ...", flush=True)
            write_events(path, n)
        results = {}
        for kind in RUNS:
            runs = [measure(kind, path, args.master) for _ in range(args.repeat)]
            best = min(runs, key=lambda r: r["seconds"])
            results[kind] = best
            jvm = best.get("jvm_mb")
            print(
                f"{n:>12,} {kind:>16} {best['seconds']:>8.2f} {n / best['seconds']:>12,.0f} "
                f"{best['seconds'] / (best['leads'] / 1e6):>10.2f} "
                f"{best.get('start', 0.0):>8.1f} {jvm if jvm is not None else 0:>8.0f} "
                f"{best['peak_mb']:>7.0f}",
                flush=True,
            )
        ratio = results["pyrometer spark"]["seconds"] / results["hand spark"]["seconds"]
        versus = results["pyrometer spark"]["seconds"] / results["duckdb"]["seconds"]
        same = results["pyrometer spark"]["leads"] == results["duckdb"]["leads"]
        print(
            f"{n:>12,} pyrometer spark / hand spark = {ratio:.2f}x (target <= 2x: "
            f"{'ok' if ratio <= 2 else 'MISSED'}); / duckdb = {versus:.2f}x on {args.master}; "
            f"same leads as duckdb: {same}",
            flush=True,
        )


if __name__ == "__main__":
    main()
