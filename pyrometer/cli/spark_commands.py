"""``score`` and ``explain`` with ``--engine spark``: the same plan, run on a cluster.

Imported only when ``--engine spark`` is given, so the command line works without the
``spark`` extra; without it the command names the extra to install.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pyrometer.cli.commands import UserError, err, print_summary
from pyrometer.core.model import ScoredLead
from pyrometer.core.playbook import Playbook
from pyrometer.core.timeutil import iso, to_us

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@contextmanager
def spark_session(master: str, conf: Sequence[str]) -> Iterator[SparkSession]:
    """A session on ``master`` for one command; stopped after it unless it was already
    running (a job or test that calls the command in its own session keeps it)."""
    try:
        from pyspark.sql import SparkSession

        from pyrometer.engines.spark.session import parse_conf, session
    except ImportError:
        raise UserError(
            "--engine spark needs the spark extra (pyspark is not installed): "
            "pip install 'pyrometer[spark]'"
        ) from None
    settings = parse_conf(conf)
    before = SparkSession.getActiveSession()
    with err.status(f"Starting Spark on {master}..."):
        spark = session(master, settings)
    try:
        yield spark
    finally:
        if before is None:
            spark.stop()


def _analysis_errors() -> tuple[type[BaseException], ...]:
    from pyspark.errors import AnalysisException

    return (AnalysisException,)


def score_on_spark(
    book: Playbook,
    events: str | None,
    leads: str | None,
    as_of_us: int,
    output: Any,
    as_json: bool,
    top: int,
    id_column: str | None,
    master: str,
    conf: Sequence[str],
) -> None:
    """``pyrometer score --engine spark``: ``-o`` is a Parquet folder."""
    if output is not None and str(output) == "-":
        raise UserError("-o - : with --engine spark, -o names a Parquet folder")
    from pyspark.sql import functions as F

    from pyrometer.cli.commands import _warn_unknown
    from pyrometer.engines.spark import SparkBatchScorer, read_events, read_leads

    with spark_session(master, conf) as spark:
        try:
            event_frame = read_events(spark, events, id_column) if events else None
            lead_frame = read_leads(spark, leads, id_column) if leads else None
        except _analysis_errors() as exc:
            raise UserError(str(exc).splitlines()[0]) from None
        scorer = SparkBatchScorer(book, spark)
        with err.status("Scoring on Spark...") as status:
            scored = scorer.score(
                event_frame,
                lead_frame,
                as_of_us,
                progress=lambda stage: status.update(f"{stage} (Spark)..."),
            )
            if output is not None:
                scored.write.parquet(str(output))
                written = spark.read.parquet(str(output))
                counts = {
                    r["temperature"]: int(r["count"])
                    for r in written.groupBy("temperature").count().collect()
                }
                err.print(f"wrote {sum(counts.values())} leads to {output} (Parquet)")
            else:
                scored = scored.cache()
                counts = {
                    r["temperature"]: int(r["count"])
                    for r in scored.groupBy("temperature").count().collect()
                }
        if as_json or output is None:
            ordered = scored.orderBy(F.col("score").desc(), F.col("lead_id"))
            rows = [
                _display(r.asDict()) for r in (ordered if as_json else ordered.limit(top)).collect()
            ]
            if as_json:
                sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
            else:
                print_summary(rows, counts, top, as_of_us)
        _warn_unknown(book, scorer.last_name_counts)


def _display(row: dict[str, Any]) -> dict[str, Any]:
    """A row as ``score --json`` prints it with DuckDB: rounded scores, ISO times."""
    last = row["last_activity"]
    return {
        **row,
        "score": round(row["score"], 4),
        "fit": round(row["fit"], 4),
        "engagement": round(row["engagement"], 4),
        "last_activity": iso(to_us(last)) if last is not None else None,
    }


def explain_on_spark(
    book: Playbook,
    events: str,
    leads: str | None,
    as_of_us: int,
    lead_id: str,
    id_column: str | None,
    master: str,
    conf: Sequence[str],
) -> dict[str, ScoredLead]:
    """``pyrometer explain --engine spark``: one lead's score and ledger."""
    from pyrometer.engines.spark import SparkBatchScorer, read_events, read_leads

    with spark_session(master, conf) as spark:
        try:
            event_frame = read_events(spark, events, id_column)
            lead_frame = read_leads(spark, leads, id_column) if leads else None
        except _analysis_errors() as exc:
            raise UserError(str(exc).splitlines()[0]) from None
        with err.status("Explaining on Spark..."):
            return SparkBatchScorer(book, spark).explain(
                event_frame, lead_frame, as_of_us, [lead_id]
            )
