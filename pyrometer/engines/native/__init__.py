"""Pyrometer's own DuckDB extension: the batch engine's pass 1 as one aggregate, in C.

:class:`~pyrometer.engines.duckdb_batch.DuckDBBatchScorer` uses it when it can: the
connection allows unsigned extensions (those made by :func:`connect` do), a C compiler was
there for the first build (cached per user, see :mod:`.build`), DuckDB is 2.0 or newer
(the C API positions in ``duckdb_capi.h`` were checked against it) and the environment
variable ``PYROMETER_NATIVE`` is not ``0``. Otherwise the engine runs the same pass in SQL,
with the same results.
"""

from __future__ import annotations

import os
import struct

import duckdb

from pyrometer.engines.native.build import BuildError, extension_path

FUNCTION = "pyro_pass1"
MAX_WORDS = 4  # proof words pyro_pass1 keeps (MAX_WORDS in pass1.c)
MAX_ONCE = 8  # `once` rules whose first events it finds (MAX_ONCE in pass1.c)
MAX_KEYS = 1 << 16  # keys (event names x combinations of conditions) it is given, at most
SPEC_ID = 32  # characters that identify a spec (ID_LEN in pass1.c)
CONFIG = {"allow_unsigned_extensions": "true"}
MIN_DUCKDB = (2, 0)

last_error: str | None = None
"""Why the last :func:`load` fell back to SQL (``None``: it did not)."""


def connect(database: str = ":memory:", read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection on which the extension can be loaded (unsigned: built here)."""
    return duckdb.connect(database, read_only=read_only, config=dict(CONFIG))


def double_bits(value: float) -> int:
    """The 64 bits of a double as an integer: how the spec passes doubles, exactly."""
    return int(struct.unpack("<q", struct.pack("<d", float(value)))[0])


def enabled() -> bool:
    """Whether the environment allows the extension (``PYROMETER_NATIVE=0`` does not)."""
    return os.environ.get("PYROMETER_NATIVE", "1").strip() != "0"


def _duckdb_version() -> tuple[int, ...]:
    parts = []
    for part in duckdb.__version__.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


_PLATFORM: str | None = None


def load(con: duckdb.DuckDBPyConnection) -> bool:
    """Make ``pyro_pass1`` callable on ``con``; whether it is (else see :data:`last_error`).

    ``LOAD`` of an extension the database has already loaded returns at once.
    """
    global last_error, _PLATFORM
    last_error = None
    if not enabled():
        last_error = "PYROMETER_NATIVE=0"
        return False
    if _duckdb_version() < MIN_DUCKDB:
        last_error = f"DuckDB {duckdb.__version__} is older than 2.0"
        return False
    try:
        allowed = con.execute("SELECT current_setting('allow_unsigned_extensions')").fetchone()
        if not (allowed and allowed[0]):
            last_error = "the connection does not allow unsigned extensions"
            return False
        if _PLATFORM is None:
            platform = con.execute("PRAGMA platform").fetchone()
            _PLATFORM = str(platform[0]) if platform else ""
        path = extension_path(_PLATFORM, duckdb.__version__)
        con.execute(f"LOAD '{str(path).replace(chr(39), chr(39) * 2)}'")
        return True
    except (BuildError, OSError, duckdb.Error) as error:
        last_error = str(error)
    return False
