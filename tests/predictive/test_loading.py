from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrometer.predictive.loading import (
    DEFAULT_PLACEHOLDERS,
    ColumnKind,
    DataError,
    clean_missing,
    infer_kind,
    is_placeholder,
    looks_like_id,
    read_table,
)

from .conftest import make_history

WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)


@settings(max_examples=200)
@given(st.sampled_from(DEFAULT_PLACEHOLDERS), st.data())
def test_placeholders_in_any_case_and_padding_are_missing(mark: str, data: st.DataObject) -> None:
    cased = "".join(c.upper() if data.draw(st.booleans()) else c for c in mark)
    padded = " " * data.draw(st.integers(0, 3)) + cased + " " * data.draw(st.integers(0, 3))
    assert is_placeholder(padded)


@settings(max_examples=200)
@given(WORD)
def test_real_answers_are_not_placeholders(word: str) -> None:
    assert is_placeholder(word) == (word in DEFAULT_PLACEHOLDERS)


@settings(max_examples=50)
@given(st.lists(WORD, min_size=1, max_size=5), st.sampled_from(["Select", "unknown"]))
def test_configurable_placeholders(words: list[str], mark: str) -> None:
    frame = pd.DataFrame({"x": [*words, mark]}, dtype=object)
    cleaned = clean_missing(frame, ["unknown"])
    assert (cleaned["x"].iloc[-1] is None) == (mark == "unknown")
    assert cleaned["x"].iloc[:-1].tolist() == [None if w == "unknown" else w for w in words]


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([",", ";", "\t", "|"]),
    st.lists(st.tuples(WORD, st.integers(0, 999)), min_size=2, max_size=20),
)
def test_csv_with_any_common_delimiter(
    tmp_path_factory: pytest.TempPathFactory, delimiter: str, rows: list[tuple[str, int]]
) -> None:
    path = tmp_path_factory.mktemp("csv") / "leads.csv"
    lines = [delimiter.join(["name", "visits"])]
    lines += [delimiter.join([name, str(visits)]) for name, visits in rows]
    path.write_text("\n".join(lines) + "\n")
    frame = read_table(path)
    assert list(frame.columns) == ["name", "visits"]
    assert frame["name"].tolist() == [name for name, _ in rows]
    assert frame["visits"].tolist() == [str(v) for _, v in rows]


def test_parquet_and_json_lines_read_the_same_rows(tmp_path: Path) -> None:
    history = make_history(50)
    history.to_parquet(tmp_path / "h.parquet")
    (tmp_path / "h.jsonl").write_text(
        "\n".join(json.dumps(r) for r in history.to_dict("records")) + "\n"
    )
    for name in ("h.parquet", "h.jsonl"):
        frame = read_table(tmp_path / name)
        assert frame["Lead ID"].tolist() == history["Lead ID"].tolist()
        assert frame["Source"].tolist() == history["Source"].tolist()


def test_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(DataError, match=r"bad\.csv: line 3 has 3 fields"):
        read_table(bad)
    broken = tmp_path / "bad.jsonl"
    broken.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(DataError, match=r"bad\.jsonl: line 2 is not valid JSON"):
        read_table(broken)
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path / "absent.csv")


def test_stray_trailing_delimiter_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a;b\n1;x;\n2;y;\n")
    assert read_table(path)["b"].tolist() == ["x", "y"]


def test_kinds_and_identifiers() -> None:
    def s(values: list[object]) -> pd.Series:
        return clean_missing(pd.DataFrame({"x": values}, dtype=object))["x"]

    assert infer_kind(s(["1", "2.5", "", "-3"])) == ColumnKind.NUMERIC
    assert infer_kind(s(["Yes", "no", "Select"])) == ColumnKind.BOOLEAN
    assert infer_kind(s(["2024-01-02", "2024-03-04 10:00:00", "NA"])) == ColumnKind.DATETIME
    assert infer_kind(s(["x", "1"])) == ColumnKind.CATEGORICAL
    assert infer_kind(s(["", "Select"])) is None
    ids = s([f"id{i}" for i in range(50)])
    assert looks_like_id(ids, ColumnKind.CATEGORICAL)
    assert not looks_like_id(s([str(i % 7) for i in range(50)]), ColumnKind.NUMERIC)
    assert looks_like_id(s([str(1000 + i) for i in range(50)]), ColumnKind.NUMERIC, "Lead Number")
    assert not looks_like_id(s([str(1000 + i) for i in range(50)]), ColumnKind.NUMERIC, "Revenue")
    assert not looks_like_id(s([str(i + 0.5) for i in range(50)]), ColumnKind.NUMERIC)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-16-be"])
def test_a_utf16_or_utf32_file_with_its_mark_is_read(tmp_path: Path, encoding: str) -> None:
    """Excel's "Unicode text" was decoded as cp1252: NULs everywhere, one field a line."""
    text = "lead_id,Job Title,converted\nMüller,CEO,1\nAnn,Student,0\n"
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    path = tmp_path / "h.csv"
    path.write_bytes(data)
    frame = read_table(path)
    assert list(frame.columns) == ["lead_id", "Job Title", "converted"]
    assert frame["lead_id"].tolist() == ["Müller", "Ann"]
