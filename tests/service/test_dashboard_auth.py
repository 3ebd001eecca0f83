"""Dashboard sign-in without a browser: users and passwords, the session cookie, CSRF,
the throttle, and what each role may open or post. On SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pyrometer.api.app import create_app
from pyrometer.dashboard.throttle import Throttle
from pyrometer.service import users
from pyrometer.service.playbooks import version_row
from pyrometer.service.reps import add_rep
from pyrometer.service.runtime import Service
from tests.service.dashboard_helpers import PASSWORD, cheap_hashes, csrf_of, sign_in, user

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _cheap() -> Iterator[None]:
    old = cheap_hashes()
    yield
    users.hasher = old


@pytest.fixture
def web(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service, background=False), base_url="http://127.0.0.1") as c:
        yield c


def test_a_new_user_gets_a_password_that_must_change_and_only_argon2_is_stored(
    service: Service,
) -> None:
    made, password = users.add_user(service, "Ann@Example.COM ", "manager")
    assert made.email == "ann@example.com" and made.must_change and len(password) >= 16
    stored = service.read(lambda c: users.store.by_email(c, "ann@example.com"))
    assert stored is not None and stored.password_hash.startswith("$argon2id$")
    assert password not in stored.password_hash
    assert users.authenticate(service, "ANN@example.com", password) is not None
    assert users.authenticate(service, "ann@example.com", password + "x") is None
    assert users.authenticate(service, "bob@example.com", password) is None
    with pytest.raises(users.UserError, match="EMAIL: there is a user"):
        users.add_user(service, "ann@example.com", "rep")
    with pytest.raises(users.UserError, match="--role"):
        users.add_user(service, "cy@example.com", "owner")
    with pytest.raises(users.UserError, match="--rep: there is no rep 'kim'"):
        users.add_user(service, "cy@example.com", "rep", "kim")


def test_changing_the_password_checks_the_old_one_and_ends_other_sessions(
    service: Service,
) -> None:
    made, password = users.add_user(service, "ann@example.com", "rep")
    with pytest.raises(users.UserError, match="current"):
        users.change_password(service, made.id, "wrong", "a new password")
    with pytest.raises(users.UserError, match="at least"):
        users.change_password(service, made.id, password, "short")
    changed = users.change_password(service, made.id, password, "a new password")
    assert not changed.must_change and changed.session_version == made.session_version + 1
    assert users.authenticate(service, "ann@example.com", "a new password") is not None


def test_sign_in_sets_a_signed_http_only_lax_cookie_and_must_change_comes_first(
    service: Service, web: TestClient
) -> None:
    _, password = users.add_user(service, "ann@example.com", "admin")
    page = web.get("/")
    assert page.status_code == 200 and 'type="password"' in page.text
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    token = sign_in(web, "ann@example.com", password)
    assert web.get("/queue", follow_redirects=False).headers["location"] == "/password"
    changed = web.post(
        "/password",
        data={
            "csrf": token,
            "current": password,
            "new": "my own password",
            "repeat": "my own password",
        },
        follow_redirects=False,
    )
    assert changed.status_code == 303 and changed.headers["location"] == "/queue"
    assert web.get("/queue").status_code == 200
    # A tampered cookie is no session at all.
    value = web.cookies.get("pyrometer_session")
    web.cookies.set(
        "pyrometer_session", value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]
    )
    assert web.get("/queue", follow_redirects=False).headers["location"] == "/"


def test_the_cookie_is_secure_over_https(service: Service) -> None:
    with TestClient(create_app(service, background=False), base_url="https://127.0.0.1") as c:
        assert "Secure" in c.get("/").headers["set-cookie"]


def test_every_post_needs_the_sessions_csrf_token(service: Service, web: TestClient) -> None:
    user(service, "ann@example.com", "admin")
    form = {"email": "ann@example.com", "password": PASSWORD}
    csrf_of(web)
    assert web.post("/sign-in", data=form).status_code == 403
    assert web.post("/sign-in", data={**form, "csrf": "forged"}).status_code == 403
    token = sign_in(web, "ann@example.com")
    assert web.post("/sign-out", data={}).status_code == 403
    assert web.post("/touch", data={"lead_id": "x", "kind": "call"}).status_code == 403
    # The header htmx sends is as good as the field.
    answer = web.post("/sign-out", headers={"X-CSRF-Token": token}, follow_redirects=False)
    assert answer.status_code == 303
    assert web.get("/queue", follow_redirects=False).headers["location"] == "/"


def test_a_wrong_password_and_an_unknown_email_get_the_same_message_then_the_throttle(
    service: Service, web: TestClient
) -> None:
    user(service, "ann@example.com", "rep")
    token = csrf_of(web)
    texts = []
    for email in ("ann@example.com", "nobody@example.com"):
        answer = web.post("/sign-in", data={"csrf": token, "email": email, "password": "nope"})
        assert answer.status_code == 401
        texts.append(answer.text.split('role="alert">')[1].split("<")[0])
    assert texts[0] == texts[1] == "That e-mail and password do not match an account."
    for _ in range(4):
        web.post("/sign-in", data={"csrf": token, "email": "ann@example.com", "password": "no"})
    # Five failures for this e-mail from this address: even the right password waits.
    right = {"csrf": token, "email": "ann@example.com", "password": PASSWORD}
    blocked = web.post("/sign-in", data=right)
    assert blocked.status_code == 429 and "Too many failed attempts" in blocked.text


def test_the_throttle_counts_per_email_and_address_and_forgets_after_the_window() -> None:
    now = [1000.0]
    throttle = Throttle(window=300, per_pair=5, per_address=8, clock=lambda: now[0])
    for _ in range(5):
        assert throttle.blocked_for("a@x", "1.1.1.1") == 0
        throttle.failed("a@x", "1.1.1.1")
    assert throttle.blocked_for("A@x ", "1.1.1.1") == 300
    assert throttle.blocked_for("a@x", "2.2.2.2") == 0  # another address
    assert throttle.blocked_for("b@x", "1.1.1.1") == 0  # another e-mail, under 8
    for _ in range(3):
        throttle.failed("b@x", "1.1.1.1")
    assert throttle.blocked_for("c@x", "1.1.1.1") == 300  # the address's own limit
    now[0] += 300.5
    assert throttle.blocked_for("a@x", "1.1.1.1") == 0
    throttle.failed("a@x", "1.1.1.1")
    throttle.succeeded("a@x", "1.1.1.1")
    assert throttle.blocked_for("a@x", "1.1.1.1") == 0


def test_each_role_sees_and_posts_only_what_it_may(service: Service, web: TestClient) -> None:
    add_rep(service, {"id": "kim", "name": "Kim Lee", "email": "kim@example.com"})
    user(service, "kim@example.com", "rep", "kim")
    user(service, "max@example.com", "manager")
    user(service, "ann@example.com", "admin")
    in_force = service.read(version_row)
    assert in_force is not None
    yaml = in_force.yaml
    expected = {
        "kim@example.com": {"/queue": 200, "/leads": 200, "/reports": 403, "/playbook": 403},
        "max@example.com": {"/queue": 200, "/leads": 200, "/reports": 200, "/playbook": 200},
        "ann@example.com": {"/queue": 200, "/leads": 200, "/reports": 200, "/playbook": 200},
    }
    for email, pages in expected.items():
        web.cookies.clear()
        token = sign_in(web, email)
        queue = web.get("/queue").text
        assert ('href="/reports"' in queue) == (pages["/reports"] == 200)
        assert ('href="/playbook"' in queue) == (pages["/playbook"] == 200)
        for path, status in pages.items():
            assert web.get(path).status_code == status, (email, path)
        publish = web.post(
            "/playbook/publish",
            data={"csrf": token, "yaml": yaml + "\n# changed\n"},
            follow_redirects=False,
        )
        assert publish.status_code == (303 if email.startswith("ann") else 403), email
        edit = web.post(
            "/lead/attributes",
            data={"csrf": token, "lead_id": "nobody", "attr:x": "1"},
            follow_redirects=False,
        )
        assert edit.status_code == (403 if email.startswith("kim") else 404), email


def test_a_removed_user_is_signed_out_at_the_next_request(
    service: Service, web: TestClient
) -> None:
    user(service, "ann@example.com", "admin")
    sign_in(web, "ann@example.com")
    assert web.get("/leads").status_code == 200
    assert users.remove_user(service, "ANN@example.com")
    assert web.get("/leads", follow_redirects=False).headers["location"] == "/"


def test_users_commands_print_the_password_as_the_last_word(store_url: str) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        code = "from pyrometer.cli.app import main; main()"
        return subprocess.run(
            [sys.executable, "-c", code, "users", *args, "--database", store_url],
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "COLUMNS": "100"},
            timeout=120,
        )

    added = run("add", "Ann@Example.com", "--role", "admin")
    assert added.returncode == 0, added.stderr
    password = added.stdout.strip().splitlines()[-1].split()[-1]
    service = Service.open(store_url)
    try:
        found = users.authenticate(service, "ann@example.com", password)
        assert found is not None and found.role == "admin" and found.must_change
    finally:
        service.close()
    listed = run("list")
    assert "ann@example.com  admin" in listed.stdout and "yes" in listed.stdout
    bad = run("add", "bob@example.com", "--role", "rep", "--rep", "kim")
    assert bad.returncode == 2 and "--rep: there is no rep 'kim'" in bad.stderr
    assert run("remove", "ann@example.com").returncode == 0
    gone = run("remove", "ann@example.com")
    assert gone.returncode == 2 and "no user" in gone.stderr


def test_an_admin_publishes_and_the_page_follows_the_rescoring_job(
    service: Service, web: TestClient
) -> None:
    from pyrometer.service.rescore import run_job

    user(service, "ann@example.com", "admin")
    token = sign_in(web, "ann@example.com")
    in_force = service.read(version_row)
    assert in_force is not None
    text = in_force.yaml.replace("hot: 50", "hot: 55", 1)
    assert text != in_force.yaml
    checked = web.post("/playbook/check", data={"csrf": token, "yaml": text})
    assert "Valid." in checked.text and "+  hot: 55" in checked.text  # the diff
    published = web.post(
        "/playbook/publish", data={"csrf": token, "yaml": text}, follow_redirects=False
    )
    assert published.status_code == 303
    job_id = int(published.headers["location"].split("job=")[1])
    page = web.get(published.headers["location"]).text
    assert "Version 2 is in force" in page and 'hx-trigger="every 1s"' in page
    run_job(service, job_id)
    done = web.get(f"/playbook/job?id={job_id}").text
    assert "leads rescored" in done and "hx-get" not in done


def test_a_rep_moves_the_stage_of_their_own_leads_only(service: Service, web: TestClient) -> None:
    from pyrometer.service.ingest import ingest
    from pyrometer.service.inputs import Track
    from pyrometer.service.leads import update_lead
    from pyrometer.service.reads import get_lead

    add_rep(service, {"id": "kim", "name": "Kim Lee", "email": "kim@example.com"})
    user(service, "kim@example.com", "rep", "kim")
    now = service.clock()
    ingest(service, [Track("a", "page_view", now, user_id="mine")], [])
    ingest(service, [Track("b", "page_view", now, user_id="theirs")], [])
    update_lead(service, "mine", owner="kim", actor="test")
    token = sign_in(web, "kim@example.com")
    assert "Move the stage" in web.get("/lead?id=mine").text
    assert "Move the stage" not in web.get("/lead?id=theirs").text
    refused = web.post("/lead/stage", data={"csrf": token, "lead_id": "theirs", "move": "won"})
    assert refused.status_code == 403
    moved = web.post(
        "/lead/stage",
        data={"csrf": token, "lead_id": "mine", "move": "won"},
        follow_redirects=False,
    )
    assert moved.status_code == 303
    mine, theirs = get_lead(service, "mine"), get_lead(service, "theirs")
    assert mine is not None and mine["stage"] == "customer"
    assert theirs is not None and theirs["stage"] != "customer"
    bad = web.post("/lead/stage", data={"csrf": token, "lead_id": "mine", "move": "vanish"})
    assert bad.status_code == 422


def test_the_playbook_preview_counts_todays_leads_under_the_new_yaml(
    service: Service, web: TestClient
) -> None:
    from pyrometer.service.ingest import ingest
    from pyrometer.service.inputs import Track
    from pyrometer.service.playbook_preview import preview

    now = service.clock()
    ingest(service, [Track("a", "demo_request", now, user_id="ann")], [])  # 20: warm
    ingest(service, [Track("b", "page_view", now, user_id="bob")], [])  # 1: cold
    in_force = service.read(version_row)
    assert in_force is not None
    lower = in_force.yaml.replace("hot: 50", "hot: 15", 1).replace("warm: 20", "warm: 10", 1)
    counts = preview(service, lower)
    assert counts["before"] == {"hot": 0, "warm": 1, "cold": 1}
    assert counts["after"] == {"hot": 1, "warm": 0, "cold": 1} and counts["moved"] == 1
    assert preview(service, lower, limit=1)["too_many"]
    user(service, "max@example.com", "manager")
    token = sign_in(web, "max@example.com")
    shown = web.post("/playbook/preview", data={"csrf": token, "yaml": lower}).text
    assert "1 of 2 would change" in shown
    assert (
        "not a playbook" in web.post("/playbook/preview", data={"csrf": token, "yaml": "x: ["}).text
    )


def test_pages_allow_nothing_from_other_hosts_and_no_framing(web: TestClient) -> None:
    policy = web.get("/").headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self';" in policy
    assert "frame-ancestors 'none'" in policy


def test_reports_put_conversion_by_temperature_in_one_sentence(
    service: Service, web: TestClient
) -> None:
    from pyrometer.service.ingest import ingest
    from pyrometer.service.inputs import Track
    from pyrometer.service.leads import move_stage

    now = service.clock()
    for i in range(4):
        ingest(service, [Track(f"w{i}", "demo_request", now, user_id=f"warm-{i}")], [])
        ingest(service, [Track(f"c{i}", "page_view", now, user_id=f"cold-{i}")], [])
    move_stage(service, "warm-0", "won")
    user(service, "max@example.com", "manager")
    sign_in(web, "max@example.com")
    page = web.get("/reports?period=30").text
    sentence = " ".join(page.split('id="headline">')[1].split("</p>")[0].split())
    assert "warm ones became customers at <strong>25.0 %</strong> (1 of 4)" in sentence
    assert "against cold at <strong>0.0 %</strong> (0 of 4)" in sentence
    over_time = page.split('id="over-time">')[1].split("</table>")[0]
    rows = [row for row in over_time.split("<tr>")[2:]]  # past the header
    cells = [
        [int(cell.split(">")[1].split("<")[0]) for cell in row.split("<td")[1:]] for row in rows
    ]
    assert sum(c[0] for c in cells) == 8  # new leads
    assert sum(c[1] for c in cells) == 4  # turned warm
    assert sum(c[5] for c in cells) == 1  # became customers


def test_the_playbook_page_backtests_the_yaml_against_the_one_in_force(
    service: Service, web: TestClient, clock
) -> None:
    from pyrometer.service import backtest
    from pyrometer.service.ingest import ingest
    from pyrometer.service.inputs import Track

    start = service.clock()
    day = 86_400_000_000
    for i in range(6):  # demo requests, a purchase 5 days later for half of them
        lead = f"lead-{i}"
        ingest(service, [Track(f"d{i}", "demo_request", start + i * day, user_id=lead)], [])
        if i % 2 == 0:
            ingest(service, [Track(f"p{i}", "purchase", start + (i + 5) * day, user_id=lead)], [])
    clock.advance(70 * 86_400)
    in_force = service.read(version_row)
    assert in_force is not None
    lower = in_force.yaml.replace("hot: 50", "hot: 15", 1).replace("warm: 20", "warm: 10", 1)
    user(service, "max@example.com", "manager")
    token = sign_in(web, "max@example.com")
    started = web.post("/playbook/backtest", data={"csrf": token, "yaml": lower}).text
    assert "Backtesting: 0 of 6 leads" in started
    job_id = int(started.split("/playbook/backtest/job?id=")[1].split('"')[0])
    plan = backtest.plan(service, lower, None, None, day, 30 * day, None)
    backtest.run_job(service, job_id, plan)
    shown = web.get(f"/playbook/backtest/job?id={job_id}").text
    assert 'id="backtest-table"' in shown and "in force" in shown and "proposed" in shown
    # Under hot at 15 every demo request is hot: the proposed playbook catches the wins.
    assert "<strong>100.0%</strong>" in shown
    assert web.get("/playbook/backtest/job?id=999").status_code == 404
    bad = web.post("/playbook/backtest", data={"csrf": token, "yaml": "x: ["}).text
    assert "not a playbook" in bad
