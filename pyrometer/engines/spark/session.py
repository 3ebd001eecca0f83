"""A Spark session for scoring: ``local[*]``, a standalone ``spark://`` master, or YARN.

Settings that bite otherwise (measured, see the README's "Running on Spark"): times in
UTC, a warehouse folder of its own (a second run would fail with
LOCATION_ALREADY_EXISTS), the executors' Python the driver's own, and, for ``local``
masters and one on this machine, the loopback address (the machine's name may resolve elsewhere).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterable, Mapping

from pyspark.sql import SparkSession


def parse_conf(items: Iterable[str]) -> dict[str, str]:
    """``--conf k=v`` options as a mapping; an item without ``=`` is an error naming it."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--conf {item!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


def session(
    master: str = "local[*]", conf: Mapping[str, str] | None = None, app_name: str = "pyrometer"
) -> SparkSession:
    """A Spark session on ``master`` with ``conf`` on top of pyrometer's defaults."""
    if master.startswith("local") or any(
        master.startswith(f"spark://{host}") for host in ("127.0.0.1", "localhost")
    ):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    # Named, not made: Spark makes it only if a table is saved; removed when Python exits.
    warehouse = os.path.join(tempfile.gettempdir(), f"pyrometer-spark-warehouse-{uuid.uuid4().hex}")
    atexit.register(shutil.rmtree, warehouse, True)
    builder = (
        SparkSession.builder.appName(app_name)
        .master(master)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.warehouse.dir", warehouse)
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.ui.enabled", "false")
    )
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
