"""The dashboard shows the service's model and nurture where they exist: the lead's
p_convert with its factors, the model's lift and calibration in reports, and a lead's
sequences with their steps."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from pyrometer.api.app import create_app
from pyrometer.service import models, users
from pyrometer.service.ingest import ingest
from pyrometer.service.inputs import Track
from pyrometer.service.nurture import NurtureSettings, Runner
from pyrometer.service.reads import get_lead
from pyrometer.service.runtime import Service
from tests.service.conftest import Clock
from tests.service.dashboard_helpers import cheap_hashes, sign_in, user
from tests.service.test_models import _load


@pytest.fixture(autouse=True)
def _cheap() -> Iterator[None]:
    old = cheap_hashes()
    yield
    users.hasher = old


@pytest.fixture
def web(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service, background=False), base_url="http://127.0.0.1") as c:
        yield c


def _cells(page: str, table_id: str) -> list[list[str]]:
    body = page.split(f'id="{table_id}"')[1].split("</table>")[0].split("<tbody>")[1]
    rows = body.split("<tr>")[1:]
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.split(r"<t[dh][^>]*>", r)[1:]]
        for r in rows
    ]


def test_reports_and_the_lead_page_show_the_active_model(
    service: Service, web: TestClient, clock: Clock
) -> None:
    user(service, "max@example.com", "manager")
    sign_in(web, "max@example.com")
    ids = _load(service, clock)
    assert 'id="lift"' not in web.get("/reports").text  # no model yet: no section
    assert 'id="model-card"' not in web.get(f"/lead?id={ids[0]}").text

    models.run_training(service, models.create_job(service))
    shown = models.model_view(service.read(lambda c: models.store.get_model(c, 1)), full=True)
    page = web.get("/reports").text
    lift = _cells(page, "lift")
    assert [row[0] for row in lift] == [str(d) for d in range(1, 11)]
    expected = [f"{d['lift']:.2f}×" for d in shown["metrics"]["lift_by_decile"]]
    assert [row[-1] for row in lift] == expected
    assert len(_cells(page, "calibration")) == len(shown["metrics"]["calibration"])

    lead = get_lead(service, ids[0])
    assert lead is not None
    models.annotate(service, [lead])
    page = web.get(f"/lead?id={ids[0]}").text
    assert f"{lead['p_convert'] * 100:.1f} %" in page.split('id="p-convert">')[1][:20]
    factors = _cells(page, "factors")
    strongest = max(lead["p_convert_factors"], key=lambda f: f["effect"])
    assert factors[0][0] == strongest["feature"]


def test_the_lead_page_shows_nurture_steps_and_do_not_contact(
    service: Service, web: TestClient
) -> None:
    user(service, "max@example.com", "manager")
    sign_in(web, "max@example.com")
    now = service.clock()
    ingest(service, [Track("w1", "whitepaper_download", now, "nell@example.com")], [])
    Runner(service, NurtureSettings(mailer=None, public_url="http://x")).run_due()
    page = web.get("/lead?id=nell@example.com").text
    card = page.split('id="nurture-card"')[1].split("</section>")[0]
    found = get_lead(service, "nell@example.com")
    assert found is not None
    enrolment = found["nurture"]["enrolments"][0]
    assert enrolment["sequence"] in card and enrolment["steps"][0]["status"] in card
    ingest(service, [Track("u1", "unsubscribe", now + 1, "nell@example.com")], [])
    from pyrometer.service.nurture import suppress

    suppress(service, "nell@example.com", "unsubscribed")
    card = web.get("/lead?id=nell@example.com").text.split('id="nurture-card"')[1]
    assert "Do not contact" in card and "unsubscribed" in card
