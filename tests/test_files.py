"""Reading data files: their format by name, gzip, and text that is not UTF-8."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyrometer.io import files


@pytest.mark.parametrize(
    ("name", "suffix", "kind"),
    [
        ("events.csv", ".csv", "csv"),
        ("events.CSV.GZ", ".csv", "csv"),
        ("a.b.jsonl.gz", ".jsonl", "json"),
        ("x.parquet", ".parquet", "parquet"),
        ("x.gz", "", None),
        ("x.xlsx", ".xlsx", None),
    ],
)
def test_format_by_name(name: str, suffix: str, kind: str | None) -> None:
    assert files.data_suffix(Path(name)) == suffix
    assert files.file_format(Path(name)) == kind


def _expected_line(data: bytes) -> int | None:
    """The 1-based line of the first byte that is not UTF-8 (None: all of it is)."""
    try:
        data.decode("utf-8")
        return None
    except UnicodeDecodeError as exc:
        return data.count(b"\n", 0, exc.start) + 1


pieces = st.lists(
    st.one_of(
        st.text(max_size=8).map(lambda t: t.encode("utf-8")),
        st.sampled_from([b"\n", b"\xe9", b"\xc3", b"\xa9", b"\x80", b"\xf0\x9f", b"\x98\x80"]),
    ),
    max_size=30,
).map(b"".join)


@given(data=pieces, chunk=st.integers(min_value=1, max_value=9), zipped=st.booleans())
def test_first_non_utf8_finds_the_line_whatever_the_chunks(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, chunk: int, zipped: bool
) -> None:
    path = tmp_path_factory.mktemp("utf8") / ("f.csv.gz" if zipped else "f.csv")
    path.write_bytes(gzip.compress(data) if zipped else data)
    saved, files.CHUNK = files.CHUNK, chunk
    try:
        found = files.first_non_utf8(path)
    finally:
        files.CHUNK = saved
    expected = _expected_line(data)
    if expected is None:
        assert found is None
    else:
        assert found is not None
        # A sequence cut by the end of the file is found at the end: the same line or later.
        assert found.line == expected or (found.byte == 0 and found.line >= expected)


@given(text=st.text(alphabet=st.characters(codec="cp1252"), max_size=200))
def test_as_utf8_decodes_the_named_encoding(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = tmp_path_factory.mktemp("enc") / "f.csv.gz"
    path.write_bytes(gzip.compress(text.encode("cp1252")))
    copy = files.as_utf8(path, "cp1252")
    assert copy.suffix == ".csv"
    assert copy.read_bytes().decode("utf-8") == text


def test_the_guess_names_windows_1252_or_latin_1(tmp_path: Path) -> None:
    cp1252 = tmp_path / "a.csv"
    cp1252.write_bytes("id\nMüller’s\n".encode("cp1252"))
    found = files.first_non_utf8(cp1252)
    assert found is not None and (found.line, found.guess) == (2, "cp1252")
    assert found.sample == "Müller’s"
    latin1 = tmp_path / "b.csv"
    latin1.write_bytes(b"id\nM\xfcller\x81\n")  # 0x81 is not a Windows-1252 character
    found = files.first_non_utf8(latin1)
    assert found is not None and found.guess == "latin-1"


@pytest.mark.parametrize(("encoding", "name"), [("utf-16", "u.csv"), ("utf-32", "u.csv.gz")])
def test_a_file_with_a_utf16_or_utf32_mark_is_named_so(
    tmp_path: Path, encoding: str, name: str
) -> None:
    """Excel's "Unicode text" is UTF-16 with a byte-order mark; it was called cp1252,
    whose reading gives column names full of NUL characters."""
    from typer.testing import CliRunner

    from pyrometer.cli.app import app

    data = "lead_id,event,timestamp\nMüller,demo_request,2026-11-20T10:00:00Z\n".encode(encoding)
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    found = files.first_non_utf8(path)
    assert found is not None and (found.line, found.guess) == (1, encoding)
    result = CliRunner().invoke(app, ["score", str(path), "--as-of", "2026-11-22T00:00:00Z"])
    assert result.exit_code == 2 and f"run again with --encoding {encoding}" in result.stderr
    args = ["score", str(path), "--as-of", "2026-11-22T00:00:00Z", "--encoding", encoding]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.stderr
    assert "Müller" in result.stdout


def test_encoding_applies_to_the_file_that_is_not_utf8(tmp_path: Path) -> None:
    """The advice for a cp1252 LEADS is `--encoding cp1252`; it decoded the UTF-8 EVENTS
    as cp1252 too, and `Müller` of the events became `MÃ¼ller`, a lead without fit."""
    import json

    from typer.testing import CliRunner

    from pyrometer.cli.app import app

    events = tmp_path / "e.csv"
    events.write_text(
        "lead_id,event,timestamp\nMüller,demo_request,2026-11-20T10:00:00Z\n", encoding="utf-8"
    )
    leads = tmp_path / "l.csv"
    leads.write_bytes("lead_id,Job Title\nMüller,Geschäftsführer CEO\n".encode("cp1252"))
    args = ["score", str(events), "--leads", str(leads), "--as-of", "2026-11-22T00:00:00Z"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "--encoding cp1252" in result.stderr
    result = CliRunner().invoke(app, [*args, "--encoding", "cp1252", "--json"])
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(row["lead_id"], row["fit"], row["events"]) for row in rows] == [("Müller", 8.0, 1)]
