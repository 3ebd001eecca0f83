"""What a data file is (its format, gzip or not) and text in encodings other than UTF-8.

DuckDB reads CSV and JSON Lines as UTF-8 and decompresses ``.gz`` itself. A file in
another encoding (Latin-1, Windows-1252, a spreadsheet's export) is either named with
``--encoding`` and copied once to a UTF-8 temporary file that DuckDB then reads, or
stopped before any scoring with the line where it stops being UTF-8 and the encoding it
looks like, so that no lead id is silently mis-read.
"""

from __future__ import annotations

import atexit
import codecs
import gzip
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
}
CHUNK = 1 << 20
UTF8 = frozenset({"utf-8", "utf8", "utf_8", "utf-8-sig"})


def data_suffix(path: Path) -> str:
    """The suffix that names the format, past a ``.gz``: ``.csv`` for ``events.csv.gz``."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def file_format(path: Path) -> str | None:
    """``parquet``, ``json`` or ``csv`` by the file's name; ``None`` if unknown."""
    return FORMATS.get(data_suffix(path))


def is_gzip(path: Path) -> bool:
    return path.suffix.lower() == ".gz"


def _open_binary(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if is_gzip(path) else path.open("rb")  # type: ignore[return-value]


def check_encoding(encoding: str) -> str:
    """The codec's canonical name; ``ValueError`` naming the option for an unknown one."""
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(
            f"--encoding: unknown encoding {encoding!r} (e.g. utf-8, cp1252, latin-1)"
        ) from None


@dataclass(frozen=True)
class NotUtf8:
    """Where a file stops being UTF-8: its 1-based line, the byte, the encoding the file
    looks like, and that line as it reads in that encoding."""

    line: int
    byte: int
    guess: str
    sample: str


def first_non_utf8(path: Path) -> NotUtf8 | None:
    """The first place where ``path`` is not UTF-8, or ``None`` when it all is.

    ASCII chunks (most data files) are checked at memory speed; the rest is decoded.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 1
    with _open_binary(path) as stream:
        while chunk := stream.read(CHUNK):
            if not chunk.isascii() or decoder.getstate()[0]:  # or a sequence left open
                pending = len(decoder.getstate()[0])
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    return _describe(path, chunk, max(0, exc.start - pending), lines)
            lines += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return NotUtf8(lines, 0, _guess(path), "")
    return None


def _describe(path: Path, chunk: bytes, at: int, lines_before: int) -> NotUtf8:
    line = lines_before + chunk.count(b"\n", 0, at)
    start = chunk.rfind(b"\n", 0, at) + 1
    end = chunk.find(b"\n", at)
    raw_line = chunk[start : end if end >= 0 else len(chunk)]
    guess = _guess(path)
    sample = raw_line.decode(guess if guess != "an unknown encoding" else "latin-1", "replace")
    return NotUtf8(line, chunk[at] if at < len(chunk) else 0, guess, sample.strip()[:80])


def bom_encoding(head: bytes) -> str | None:
    """``utf-32`` or ``utf-16`` when ``head`` starts with its byte-order mark (Excel's
    "Unicode text"), else ``None``. UTF-32's mark is tried first: it starts as UTF-16's."""
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return None


def _guess(path: Path) -> str:
    """UTF-16 or UTF-32 when the file starts with its byte-order mark; else Windows-1252
    when the whole file decodes as it (Latin-1's superset for text), else Latin-1 (which
    decodes any bytes)."""
    with _open_binary(path) as stream:
        marked = bom_encoding(stream.read(4))
    if marked is not None:
        return marked
    decoder = codecs.getincrementaldecoder("cp1252")()
    try:
        with _open_binary(path) as stream:
            while chunk := stream.read(CHUNK):
                decoder.decode(chunk)
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


_TEMPORARY: list[Path] = []


def _remove_temporary() -> None:
    for folder in _TEMPORARY:
        shutil.rmtree(folder, ignore_errors=True)


atexit.register(_remove_temporary)


def as_utf8(path: Path, encoding: str) -> Path:
    """A UTF-8 copy of ``path`` decoded from ``encoding`` (same format, uncompressed),
    removed when the process ends. ``UnicodeDecodeError`` if the bytes are not that
    encoding."""
    if not _TEMPORARY:
        _TEMPORARY.append(Path(tempfile.mkdtemp(prefix="pyrometer-")))
    target = _TEMPORARY[0] / f"{len(list(_TEMPORARY[0].iterdir()))}{data_suffix(path)}"
    decoder = codecs.getincrementaldecoder(encoding)()
    with _open_binary(path) as source, target.open("w", encoding="utf-8", newline="") as out:
        while chunk := source.read(CHUNK):
            out.write(decoder.decode(chunk))
        out.write(decoder.decode(b"", final=True))
    return target
