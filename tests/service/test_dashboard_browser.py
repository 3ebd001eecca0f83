"""The dashboard in real headless Chromium (Debian's ``chromium``, driven by Playwright's
async API), against a real uvicorn server on loopback, on SQLite and PostgreSQL.

Every test also checks that the page asked nothing of any host but the server (no CDN,
no font, no beacon): other hosts are blocked and recorded. Each page is photographed at
1280×800 and 390×844 into ``$PYROMETER_SCREENSHOTS`` (default ``.tmp/screenshots``).
"""

from __future__ import annotations

import csv
import io
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn

from pyrometer.api.app import create_app
from pyrometer.cli.service_commands import _load_demo
from pyrometer.service import users
from pyrometer.service.keys import Scope, create_key
from pyrometer.service.runtime import Service
from tests.service.conftest import free_port
from tests.service.dashboard_helpers import PASSWORD, cheap_hashes, user

playwright_api = pytest.importorskip("playwright.async_api")
CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("PYROMETER_SCREENSHOTS") or REPO / ".tmp" / "screenshots")
SIZES = ((1280, 800), (390, 844))

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"no {CHROMIUM}: apt-get install chromium"
    ),
]


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
async def browser(anyio_backend: str) -> AsyncIterator[Any]:
    """One Chromium for the whole session; each test gets its own context (cookies)."""
    async with playwright_api.async_playwright() as pw:
        launched = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                # A second guard beside the route below: no name resolves but loopback.
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            ],
        )
        yield launched
        await launched.close()


@dataclass
class Site:
    url: str
    service: Service
    ingest_key: str
    stores: str


@pytest.fixture
def site(store_url: str) -> Iterator[Site]:
    """A demo company (two reps, 40 leads, hot ones routed) served by uvicorn in a thread,
    on the wall clock (the browser counts down in real time), with a user per role."""
    old = cheap_hashes()
    service = Service.open(store_url)
    _load_demo(service, 40)
    user(service, "ann@example.com", "admin")
    user(service, "max@example.com", "manager")
    user(service, "kim@example.com", "rep", "kim")
    key = create_key(service, Scope.INGEST)
    port = free_port()
    config = uvicorn.Config(
        create_app(service, background=False), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield Site(f"http://127.0.0.1:{port}", service, key, store_url.split(":")[0])
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        service.close()
        users.hasher = old


@dataclass
class Visit:
    """A browser context on the site: its page, and every request it made or was refused."""

    page: Any
    site: Site
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def assert_only_the_server(self) -> None:
        """No request to another host, and no script error or Content-Security-Policy
        violation in the console (a page answered 4xx on purpose logs its status)."""
        origin = urlsplit(self.site.url).netloc
        foreign = [u for u in self.requests if urlsplit(u).netloc != origin]
        assert not self.blocked and not foreign, (self.blocked, foreign)
        assert self.requests  # it did ask the server
        errors = [e for e in self.errors if not e.startswith("Failed to load resource")]
        assert not errors, errors

    async def sign_in(self, email: str, password: str = PASSWORD) -> None:
        page = self.page
        await page.goto(self.site.url + "/")
        await page.get_by_label("E-mail").fill(email)
        await page.get_by_label("Password").fill(password)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url("**/queue")

    async def shoot(self, name: str) -> None:
        """The page at each size; only the SQLite run writes (same pages twice otherwise)."""
        if self.site.stores != "sqlite":
            return
        SHOTS.mkdir(parents=True, exist_ok=True)
        for width, height in SIZES:
            await self.page.set_viewport_size({"width": width, "height": height})
            await self.page.wait_for_timeout(100)
            await self.page.screenshot(path=str(SHOTS / f"{name}-{width}x{height}.png"))
        await self.page.set_viewport_size({"width": 1280, "height": 800})

    async def csrf(self) -> str:
        return await self.page.get_attribute('meta[name="csrf-token"]', "content")


@pytest.fixture
async def visit(browser: Any, site: Site) -> AsyncIterator[Visit]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    found = Visit(page, site)
    server = urlsplit(site.url).netloc

    async def guard(route: Any) -> None:
        if urlsplit(route.request.url).netloc == server:
            await route.continue_()
        else:
            found.blocked.append(route.request.url)
            await route.abort("blockedbyclient")

    await context.route("**/*", guard)
    page.on("request", lambda request: found.requests.append(request.url))
    page.on("pageerror", lambda error: found.errors.append(str(error)))
    page.on(
        "console",
        lambda message: found.errors.append(message.text) if message.type == "error" else None,
    )
    yield found
    await context.close()


async def test_each_role_sees_only_its_pages_and_a_rep_cannot_publish(
    browser: Any, site: Site
) -> None:
    expected = {
        "kim@example.com": ("My queue", False, False),
        "max@example.com": ("Hot leads", True, False),
        "ann@example.com": ("Hot leads", True, True),
    }
    for email, (queue_name, manages, publishes) in expected.items():
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        seen = Visit(page, site)
        page.on("request", lambda request, seen=seen: seen.requests.append(request.url))
        try:
            if email.startswith("kim"):
                await page.goto(site.url + "/")
                await seen.shoot("sign-in")
            await seen.sign_in(email)
            nav = page.get_by_role("navigation", name="Main")
            await nav.get_by_role("link", name=queue_name).wait_for()
            assert await nav.get_by_role("link", name="Leads", exact=True).count() == 1
            assert await nav.get_by_role("link", name="Reports").count() == int(manages)
            assert await nav.get_by_role("link", name="Playbook").count() == int(manages)
            for path in ("/reports", "/playbook"):
                answer = await page.goto(site.url + path)
                assert answer.status == (200 if manages else 403), (email, path)
            if manages:
                button = page.get_by_role("button", name="Publish as version 2")
                assert await button.count() == int(publishes)
            token = await seen.csrf()
            yaml = (await httpx.AsyncClient().get(site.url + "/health")).text  # any text
            posted = await page.request.post(
                site.url + "/playbook/publish",
                form={"csrf": token, "yaml": yaml},
                max_redirects=0,
            )
            # The rep and the manager are refused before the YAML is even read.
            assert posted.status == (422 if publishes else 403), email
            if email.startswith("kim"):
                await page.goto(site.url + "/queue")
                await seen.shoot("queue-rep")
            seen.assert_only_the_server()
        finally:
            await context.close()


async def _make_hot(site: Site, lead_id: str) -> None:
    """Through the ingest API: who the lead is, then enough for the default playbook's
    hot (50 points), each event by ``POST /v1/track``."""
    headers = {"Authorization": f"Bearer {site.ingest_key}"}
    traits = {"email": f"{lead_id}@example.org", "name": "Live Lead", "country": "GB"}
    names = ("Demo Request", "Webinar Attended", "Form Submit", "Case Study Download")
    async with httpx.AsyncClient(base_url=site.url, headers=headers) as client:
        who = {"userId": lead_id, "messageId": f"{lead_id}-id", "traits": traits}
        assert (await client.post("/v1/identify", json=who)).status_code == 200
        for i, name in enumerate(names):
            body = {"userId": lead_id, "event": name, "messageId": f"{lead_id}-{i}"}
            answer = await client.post("/v1/track", json=body)
            assert answer.status_code == 200, answer.text


async def test_a_lead_made_hot_through_the_api_appears_on_the_open_queue_within_2_s(
    visit: Visit,
) -> None:
    page = visit.page
    await visit.sign_in("ann@example.com")
    await page.evaluate("window.__notReloaded = true")
    # No wait for the stream to open: it starts after the id the page was rendered at.
    lead_id = f"live-{uuid.uuid4().hex[:8]}"
    row = page.locator(f'tr[data-lead="{lead_id}"]')
    assert await row.count() == 0
    await _make_hot(visit.site, lead_id)
    sent = time.monotonic()
    await row.wait_for(timeout=2000)
    assert time.monotonic() - sent < 2.0
    assert await page.evaluate("window.__notReloaded === true")  # no reload
    assert "Live Lead" in await row.inner_text()
    # One click logs a call: the row comes back with the clock stopped.
    await row.get_by_role("button", name="Log a call with Live Lead").click()
    await row.locator(".clock.touched").wait_for(timeout=3000)
    await visit.shoot("queue")
    visit.assert_only_the_server()


async def test_a_new_user_must_choose_a_password_at_first_sign_in(visit: Visit) -> None:
    page = visit.page
    _, generated = users.add_user(visit.site.service, "new@example.com", "rep", "kim")
    await page.goto(visit.site.url + "/")
    await page.get_by_label("E-mail").fill("new@example.com")
    await page.get_by_label("Password").fill("not it")
    await page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    assert await alert.inner_text() == "That e-mail and password do not match an account."
    await page.get_by_label("Password").fill(generated)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/password")
    assert await page.get_by_role("navigation", name="Main").count() == 0
    await visit.shoot("password")
    await page.get_by_label("Current password").fill(generated)
    await page.get_by_label("New password", exact=False).first.fill("kim's own password")
    await page.get_by_label("New password again").fill("kim's own password")
    await page.get_by_role("button", name="Save password").click()
    await page.wait_for_url("**/queue")
    assert await page.get_by_role("heading", name="My queue").count() == 1
    await page.goto(visit.site.url + "/lead?id=nobody")
    await visit.shoot("not-found")
    visit.assert_only_the_server()


async def test_the_lead_page_ledger_adds_up_to_the_score_shown(visit: Visit) -> None:
    page = visit.page
    await visit.sign_in("max@example.com")
    await page.goto(visit.site.url + "/leads?temperature=hot")
    await page.locator("table.leads tbody tr a").first.click()
    await page.wait_for_url("**/lead?id=*")
    score = float((await page.locator("#score").inner_text()).replace(",", ""))
    fit = float((await page.locator("#fit").inner_text()).replace(",", ""))
    engagement = float((await page.locator("#engagement").inner_text()).replace(",", ""))
    values = [
        float(text.replace(",", ""))
        for text in await page.locator("#ledger tbody td.value").all_inner_texts()
    ]
    assert values and score >= 50
    assert abs(sum(values) - score) <= 0.005 * len(values) + 0.01
    assert abs(fit + engagement - score) <= 0.011
    total = float((await page.locator("#ledger-total").inner_text()).replace(",", ""))
    assert abs(total - score) <= 0.01
    assert await page.get_by_role("img", name="Score over the last 30 days").count() == 1
    await visit.shoot("lead")
    visit.assert_only_the_server()


async def test_the_csv_export_is_the_filtered_view(visit: Visit) -> None:
    page = visit.page
    await visit.sign_in("kim@example.com")
    await page.goto(visit.site.url + "/leads")
    await page.get_by_label("Temperature").select_option("warm")
    await page.get_by_label("Sort").select_option("-last_activity")
    await page.get_by_role("button", name="Apply").click()
    await page.wait_for_url("**/leads?*temperature=warm*")
    shown = await page.locator("table.leads tbody tr td:first-child").all_inner_texts()
    assert shown and "No lead matches" not in shown[0]
    async with page.expect_download() as started:
        await page.get_by_role("link", name="Export this view as CSV").click()
    download = await started.value
    text = Path(await download.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["lead_id"] for r in rows] == shown
    assert {r["temperature"] for r in rows} == {"warm"}
    await visit.shoot("leads")
    visit.assert_only_the_server()


async def test_reports_and_the_playbook_editor_shows_an_error_at_its_line(visit: Visit) -> None:
    page = visit.page
    await visit.sign_in("ann@example.com")
    await page.goto(visit.site.url + "/reports")
    total = int((await page.locator("#total-leads").inner_text()).replace(",", ""))
    assert total > 0
    await page.get_by_role(
        "table", name="Leads and conversion by temperature", exact=True
    ).wait_for()
    over_time = page.get_by_role("table", name="Leads first seen, and moves into each class")
    cells = await over_time.locator("tbody td:first-of-type").all_inner_texts()
    arrived = [int(n.replace(",", "")) for n in cells]
    assert sum(arrived) == total  # every lead of the period arrived in one of its spans
    await visit.shoot("reports")
    await page.goto(visit.site.url + "/playbook")
    await page.get_by_role("button", name="Preview the effect").click()
    preview = page.get_by_role("table", name="Leads by temperature, now and under this YAML")
    await preview.wait_for(timeout=5000)
    assert "0 of" in await preview.inner_text()  # the YAML in force changes nothing
    editor = page.get_by_label("Playbook YAML")
    original = await editor.input_value()
    lines = original.splitlines()
    broken = next(i for i, line in enumerate(lines) if line.strip().startswith("hot:"))
    lines[broken] = lines[broken].split(":")[0] + ": very"
    await editor.fill("\n".join(lines))
    await page.locator("#check .line").first.wait_for(timeout=3000)
    message = await page.locator("#check").inner_text()
    assert f"Line {broken + 1}" in message and "Not valid" in message
    await visit.shoot("playbook")
    visit.assert_only_the_server()
