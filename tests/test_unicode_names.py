"""Names in any script keep their meaning: `注册` is not `退订`, and neither is lost.

Event, column and property names are matched loosely (case, spaces, punctuation). Before,
only ASCII letters and digits were kept: every Chinese or Japanese event name became the
empty name (silently worth 0, reported nowhere, stored as '' by `import` so that no alias
could recover it), `Téléchargé` became `t_l_charg`, and a playbook could not name either.
"""

from __future__ import annotations

import json
import re
import sqlite3
import unicodedata
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from pyrometer.cli.app import app
from pyrometer.core.conditions import normalize_name
from pyrometer.core.model import Event
from pyrometer.core.playbook import default_playbook_text, load_playbook
from pyrometer.core.reference import score_reference
from pyrometer.core.timeutil import to_us

AS_OF = "2026-11-22T00:00:00Z"
runner = CliRunner()


@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_names_normalise_as_before(name: str) -> None:
    assert normalize_name(name) == re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


@given(st.text())
def test_a_normal_name_is_its_own_normal_form_and_keeps_every_letter(name: str) -> None:
    normal = normalize_name(name)
    assert normalize_name(normal) == normal
    assert normalize_name(unicodedata.normalize("NFD", name)) == normal
    assert not normal.startswith("_") and not normal.endswith("_") and "__" not in normal
    if any(ch.isalnum() for ch in unicodedata.normalize("NFKC", name)):
        assert normal  # a name with a letter or digit never becomes the empty name


def test_names_in_other_scripts_stay_apart() -> None:
    assert normalize_name("注册") == "注册" and normalize_name("退订") == "退订"
    assert normalize_name("Téle\u0301chargé") == "téléchargé"
    assert normalize_name("Formulaire envoyé!") == "formulaire_envoyé"
    assert normalize_name("Ｄｅｍｏ Ｒｅｑｕｅｓｔ") == "demo_request"  # full-width letters


def test_score_import_and_the_reference_agree_on_chinese_names(tmp_path: Path) -> None:
    events = tmp_path / "e.csv"
    events.write_text(
        "lead_id,event,timestamp\na,注册,2026-11-20T10:00:00Z\nb,退订,2026-11-20T10:00:00Z\n"
        "c,Téléchargé,2026-11-20T10:00:00Z\n"
    )
    leads = tmp_path / "l.csv"
    leads.write_text("lead_id,职位\na,CEO\nb,学生\n")
    text = default_playbook_text().replace("    event: whitepaper_download", "    event: 注册")
    text = text.replace(
        "fit:\n", "fit:\n  - name: 职位_ceo\n    points: 7\n    where: {职位: CEO}\n", 1
    )
    playbook = tmp_path / "p.yaml"
    playbook.write_text(text)
    args = ["score", str(events), "--leads", str(leads), "--playbook", str(playbook)]
    result = runner.invoke(app, [*args, "--as-of", AS_OF, "--json"])
    assert result.exit_code == 0, result.stderr
    scored = {row["lead_id"]: row for row in json.loads(result.stdout)}
    assert scored["a"]["fit"] == 7.0 and scored["a"]["engagement"] > 4.7
    assert scored["b"]["score"] == 0.0
    assert "unknown events: 2 (" in result.stderr
    assert "退订 1" in result.stderr and "téléchargé 1" in result.stderr

    book = load_playbook(playbook)
    reference = score_reference(
        book,
        [
            Event.create("a", "注册", "2026-11-20T10:00:00Z", "1"),
            Event.create("b", "退订", "2026-11-20T10:00:00Z", "2"),
        ],
        {"a": {"职位": "CEO"}, "b": {"职位": "学生"}},
        to_us(AS_OF),
    )
    assert round(reference["a"].score, 4) == scored["a"]["score"]

    database = tmp_path / "s.db"
    result = runner.invoke(app, ["import", str(events), "--database", f"sqlite:///{database}"])
    assert result.exit_code == 0, result.stderr
    with sqlite3.connect(database) as con:
        names = sorted(row[0] for row in con.execute("SELECT name FROM events"))
    assert names == sorted(["注册", "退订", "téléchargé"])


def test_an_event_name_of_punctuation_alone_is_an_error_naming_its_row(tmp_path: Path) -> None:
    """`/v1/track` refuses `"event": "!!!"`; a file scored it as a silent 0 (reported
    nowhere) and `import` stored it under the empty name."""
    events = tmp_path / "e.csv"
    events.write_text(
        "lead_id,event,timestamp\nb,demo_request,2026-11-20T10:00:00Z\na,!!!,2026-11-20T10:00:00Z\n"
    )
    playbook = tmp_path / "p.yaml"
    playbook.write_text(default_playbook_text())
    database = f"sqlite:///{tmp_path / 's.db'}"
    for args in (
        ["score", str(events), "--as-of", AS_OF],
        ["explain", "a", str(events), "--as-of", AS_OF],
        ["playbook", "check", str(playbook), "--events", str(events)],
        ["import", str(events), "--database", database],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.stdout)
        assert (
            "e.csv, row 2, column 'event': an event name needs at least one letter or digit: '!!!'"
            in result.stderr
        ), args
    with sqlite3.connect(tmp_path / "s.db") as con:
        assert con.execute("SELECT count(*) FROM events").fetchone() == (0,)
