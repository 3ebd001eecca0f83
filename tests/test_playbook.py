"""Playbooks: the default encodes the documents; a wrong file says where and what."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pyrometer.core.playbook import (
    PlaybookError,
    default_playbook,
    default_playbook_text,
    load_playbook,
    parse_playbook,
)


def test_default_playbook_has_the_documents_numbers() -> None:
    book = default_playbook()
    points = {rule.name: rule.points for rule in book.engagement}
    assert points["whitepaper"] == 5
    assert points["pricing_page"] == 10
    assert points["demo_request"] == 20
    assert book.temperature.hot == 50
    assert all(rule.why for rule in (*book.engagement, *book.fit)), "every rule says why"
    vocabulary = {
        "page_view",
        "pricing_page_view",
        "product_page_view",
        "whitepaper_download",
        "case_study_download",
        "newsletter_signup",
        "social_follow",
        "email_open",
        "email_click",
        "form_submit",
        "webinar_attended",
        "contact_sales",
        "demo_request",
        "trial_signup",
        "cart_add",
        "purchase",
        "referral",
        "unsubscribe",
        "sales_accepted",
        "opportunity_created",
        "disqualified",
    }
    assert vocabulary <= book.known_events


def test_round_trip_through_yaml() -> None:
    book = default_playbook()
    again = parse_playbook(yaml.safe_dump(book.to_yaml_dict()))
    assert again == book


def broken(change: str, by: str) -> str:
    text = default_playbook_text()
    assert change in text
    return text.replace(change, by, 1)


@pytest.mark.parametrize(
    ("change", "by", "path", "message"),
    [
        (
            "    points: 5\n    event: whitepaper_download",
            "    points: lots\n    event: whitepaper_download",
            "engagement[3].points",
            "valid number",
        ),
        ("half_life: 30d", "half_life: 30 parsecs", "decay.half_life", "duration"),
        ("  hot: 50\n", "  hot: 10\n", "temperature", "must be below hot"),
        (
            "    cap: {points: 30, per: 1d}\n  - name: page_view",
            "    cap: {points: 30, per: 1d}\n    once: true\n  - name: page_view",
            "engagement[0]",
            "once",
        ),
        (
            "where: {job_title: {contains: student}}",
            "where: {job_title: {contians: student}}",
            "fit[2].where.job_title.contians",
            "Extra inputs",
        ),
        (
            "    purchase: customer\n",
            "    purchase: client\n",
            "lifecycle.events.purchase",
            "Input should be",
        ),
    ],
)
def test_errors_name_the_path_and_line(
    change: str, by: str, path: str, message: str, tmp_path: Path
) -> None:
    file = tmp_path / "team.yaml"
    file.write_text(broken(change, by))
    with pytest.raises(PlaybookError) as info:
        load_playbook(file)
    text = str(info.value)
    assert str(file) in text
    assert path in text
    assert message in text
    assert "(line " in text


def test_line_number_points_at_the_mistake(tmp_path: Path) -> None:
    text = broken(
        "    points: 20\n    event: demo_request", "    points: twenty\n    event: demo_request"
    )
    file = tmp_path / "p.yaml"
    file.write_text(text)
    line = text.splitlines().index("    points: twenty") + 1
    with pytest.raises(PlaybookError, match=rf"\(line {line}\)"):
        load_playbook(file)


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("decay: [unclosed\n")
    with pytest.raises(PlaybookError, match="not valid YAML"):
        load_playbook(bad)
    with pytest.raises(PlaybookError, match="cannot read"):
        load_playbook(tmp_path / "nope.yaml")


def test_yaml_1_1_booleans_stay_text() -> None:
    text = default_playbook_text().replace(
        "fit:\n", "fit:\n  - {name: norway, points: 3, where: {country: NO, opt_in: yes}}\n", 1
    )
    book = parse_playbook(text)
    rule = next(rule for rule in book.fit if rule.name == "norway")
    assert rule.where.matches({"country": "no", "opt_in": "YES"})
    assert not rule.where.matches({"country": "false", "opt_in": "yes"})
    assert book.suppression.attributes[0].fields["do_not_email"].equals is True
