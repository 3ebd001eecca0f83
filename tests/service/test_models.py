"""Conversion models in the service (issue #14): the demo company's purchases are the
outcomes; train through the API and the CLI, serve p_convert with reasons, retrain on a
schedule with a fake clock and keep the better model. SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from pyrometer.cli.app import app as cli
from pyrometer.core.playbook import default_playbook_text
from pyrometer.core.timeutil import from_us
from pyrometer.demo.synth import generate
from pyrometer.predictive import models as model_family
from pyrometer.service import models
from pyrometer.service.ingest import ingest
from pyrometer.service.rescore import publish
from pyrometer.service.runtime import Service
from pyrometer.store.tables import lead_predictions
from tests.service.conftest import Clock, Keys
from tests.service.helpers import identifies_of, tracks_of

DAY_S = 86_400
SETTINGS = """
models:
  horizon: 60d
  cutoff: 7d
  auto_activate: true
  retrain: 10d
  min_new_outcomes: 5
"""


def _load(service: Service, clock: Clock, n: int = 600) -> list[str]:
    """The demo company over 180 days, its playbook with a models section."""
    publish(service, default_playbook_text() + SETTINGS)
    data = generate(n, seed=3, end=from_us(clock.now_us), days=180)
    ingest(service, tracks_of(data.events), identifies_of(data.leads, clock.now_us))
    return [lead["lead_id"] for lead in data.leads]


def _move(client: TestClient, keys: Keys, lead_ids: list[str], stage: str) -> None:
    for lead_id in lead_ids:
        done = client.post(
            f"/v1/leads/{lead_id}/stage", json={"stage": stage}, headers=keys.bearer(keys.admin)
        )
        assert done.status_code == 200, done.text


def _open_leads(service: Service, count: int, first_from: int, first_to: int) -> list[str]:
    """Open leads first seen between the two times (their outcome is still unknown)."""
    query = sa.text(
        "SELECT l.lead_id FROM leads l JOIN events e ON e.lead_id = l.lead_id "
        "WHERE l.stage NOT IN ('customer', 'disqualified') GROUP BY l.lead_id "
        "HAVING min(e.ts_us) BETWEEN :a AND :b ORDER BY l.lead_id LIMIT :n"
    )
    params = {"a": first_from, "b": first_to, "n": count}
    return service.read(lambda conn: [r[0] for r in conn.execute(query, params)])


def test_train_through_the_api_and_serve_p_convert(
    service: Service, client: TestClient, keys: Keys, clock: Clock
) -> None:
    ids = _load(service, clock)
    read, admin = keys.bearer(keys.read), keys.bearer(keys.admin)
    before = client.get(f"/v1/leads/{ids[0]}", headers=read).json()
    assert before["p_convert"] is None and before["p_convert_factors"] == []
    assert client.post("/v1/models/train", headers=read).status_code == 403

    started = client.post("/v1/models/train", headers=admin)
    assert started.status_code == 202
    job = started.json()["job"]
    assert job["status"] == "running" and job["kind"] == "train"
    models.run_training(service, job["id"])  # the thread the server would start
    done = client.get(f"/v1/jobs/{job['id']}", headers=read).json()
    assert done["status"] == "done", done
    result = done["result"]
    assert result["model"] == 1 and result["activated"] is True
    assert result["outcomes"] > 100 and isinstance(result["warnings"], list)

    listed = client.get("/v1/models", headers=read).json()
    assert [m["version"] for m in listed] == [1] and listed[0]["active"] is True
    shown = client.get("/v1/models/1", headers=read).json()
    figures = shown["metrics"]
    assert 0.5 < figures["roc_auc"] <= 1.0
    assert len(figures["lift_by_decile"]) == 10 and figures["calibration"]
    assert set(figures["baselines"]) == {"logistic", "naive_bayes"}
    assert figures["holdout_leads"] + figures["train_leads"] == figures["leads"]
    assert client.get("/v1/models/9", headers=read).status_code == 404

    lead = client.get(f"/v1/leads/{ids[0]}", headers=read).json()
    assert 0.0 < lead["p_convert"] < 1.0 and lead["p_convert_model"] == 1
    factors = lead["p_convert_factors"]
    assert factors and all({"feature", "value", "effect"} <= set(f) for f in factors)
    assert any(f["effect"] > 0 for f in factors) or any(f["effect"] < 0 for f in factors)
    cached = service.read(
        lambda conn: conn.execute(
            sa.select(lead_predictions.c.p_convert).where(lead_predictions.c.lead_id == ids[0])
        ).scalar_one()
    )
    assert cached == pytest.approx(lead["p_convert"])
    # A lead with no attributes at all (only an event) has them missing, not an error.
    track = {"userId": "newcomer", "event": "pricing_page_view", "messageId": "n1"}
    assert client.post("/v1/track", json=track, headers=keys.bearer(keys.ingest)).is_success
    newcomer = client.get("/v1/leads/newcomer", headers=read).json()
    assert 0.0 < newcomer["p_convert"] < 1.0, newcomer.get("p_convert_error")
    page = client.get("/v1/leads", params={"limit": 20}, headers=read).json()
    assert all(0.0 < item["p_convert"] < 1.0 for item in page["items"])

    # The sweep scores every lead ahead, so the list sorts and filters on p_convert.
    while models.sweep(service):
        pass
    first = client.get("/v1/leads", params={"sort": "-p_convert", "limit": 25}, headers=read).json()
    second = client.get(
        "/v1/leads",
        params={"sort": "-p_convert", "limit": 25, "cursor": first["next_cursor"]},
        headers=read,
    ).json()
    ranked = [item["p_convert"] for item in first["items"] + second["items"]]
    assert ranked == sorted(ranked, reverse=True) and len(ranked) == 50
    assert not {i["lead_id"] for i in first["items"]} & {i["lead_id"] for i in second["items"]}
    top = ranked[0]
    likely = client.get("/v1/leads", params={"p_convert_gte": top, "limit": 500}, headers=read)
    assert likely.status_code == 200
    assert likely.json()["items"] and all(i["p_convert"] >= top for i in likely.json()["items"])
    bad = client.get("/v1/leads", params={"p_convert_gte": 2}, headers=read)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "p_convert_gte"]

    # Reads racing to compute the same leads' probabilities all succeed (an upsert).
    some = ids[100:120]
    service.write(
        lambda conn: conn.execute(
            lead_predictions.delete().where(lead_predictions.c.lead_id.in_(some))
        )
    )
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: models.predictions(service, some), range(4)))
    assert all(set(answer) == set(some) for answer in answers)
    assert answers[0][some[0]]["p_convert"] == pytest.approx(answers[3][some[0]]["p_convert"])

    # A sales change updates the lead, so its probability is computed again.
    patched = client.patch(
        f"/v1/leads/{ids[0]}",
        json={"attributes": {"industry": "Software"}},
        headers=admin,
    )
    assert patched.status_code == 200, patched.text
    again = client.get(f"/v1/leads/{ids[0]}", headers=read).json()
    assert again["p_convert"] is not None


def test_scheduled_retrain_keeps_the_better_model(
    service: Service, client: TestClient, keys: Keys, clock: Clock, monkeypatch
) -> None:
    _load(service, clock, n=500)
    first = models.run_training(service, models.create_job(service, "test"))
    assert first["activated"] is True
    assert models.retrain_due(service) is None  # 10 days have not passed
    day = DAY_S * 1_000_000
    # Leads 10 to 45 days old: open now, within the 60-day horizon 11 days on.
    candidates = _open_leads(service, 60, clock.now_us - 45 * day, clock.now_us - 10 * day)
    # Sales win the leads model 1 rates highest and drop those it rates lowest.
    rated = models.predictions(service, candidates)
    ranked = sorted(candidates, key=lambda lead: -rated[lead]["p_convert"])
    fresh = ranked[:3] + ranked[-3:]
    clock.advance(11 * DAY_S)
    assert models.retrain_due(service) is None  # and no new outcome since
    _move(client, keys, fresh[:3], "won")
    _move(client, keys, fresh[3:], "disqualified")
    assert models.retrain_due(service) == "6 new outcome(s)"

    # A much weaker challenger (one tiny tree) is stored but does not replace model 1.
    monkeypatch.setitem(model_family.LGB_PARAMS, "n_estimators", 1)
    monkeypatch.setitem(model_family.LGB_PARAMS, "num_leaves", 2)
    second = models.retrain_if_due(service)
    assert second is not None and second["model"] == 2, second
    assert second["activated"] is False and "worse than model 1" in second["reason"], second
    assert second["champion"]["version"] == 1 and second["champion"]["fair"] is True
    assert second["champion"]["roc_auc"] > second["champion"]["challenger"]["roc_auc"]
    active = [m.version for m in service.read(models.store.list_models) if m.active]
    assert active == [1]
    assert models.retrain_due(service) is None  # just trained: the next is 10 days away


def test_models_from_the_command_line(store_url: str, clock: Clock) -> None:
    service = Service.open(store_url, clock)
    try:
        _load(service, clock, n=500)
        db = ("--database", store_url)
        runner = CliRunner()
        trained = runner.invoke(cli, ["models", "train", *db])
        assert trained.exit_code == 0, trained.output
        assert "model 1:" in trained.output and "activated" in trained.output
        listed = runner.invoke(cli, ["models", "list", *db])
        assert listed.exit_code == 0 and listed.output.splitlines()[1].startswith("1 ")
        missing = runner.invoke(cli, ["models", "activate", "7", *db])
        assert missing.exit_code != 0 and "no model 7" in missing.output
        shown = runner.invoke(cli, ["models", "show", "1", *db])
        assert shown.exit_code == 0 and '"lift_by_decile"' in shown.output
    finally:
        service.close()


def test_too_few_outcomes_fails_the_job_with_a_reason(service: Service, clock: Clock) -> None:
    publish(service, default_playbook_text() + SETTINGS)
    job = models.create_job(service, "test")
    result: dict[str, Any] = models.run_training(service, job)
    assert "training needs at least" in result["error"]
    assert (
        service.read(lambda conn: conn.execute(sa.text("SELECT count(*) FROM models")).scalar())
        == 0
    )


def test_the_worker_and_the_server_run_the_retrainer(service: Service) -> None:
    from pyrometer.cli.worker_command import background_tasks

    assert any(isinstance(t, models.Retrainer) for t in background_tasks(service, None))
    assert models.sweep(service) == 0  # no model active: nothing to score, nothing loaded


def test_probability_bands_of_the_playbook_name_the_temperature() -> None:
    from pyrometer.core.playbook import parse_playbook

    text = default_playbook_text().replace(
        "temperature:\n", "temperature:\n  probability: {hot: 0.5, warm: 0.2}\n", 1
    )
    book = parse_playbook(text)
    assert book.temperature.probability is not None
    assert [models.band(book, p) for p in (0.6, 0.5, 0.3, 0.1, None)] == [
        "hot",
        "hot",
        "warm",
        "cold",
        None,
    ]
    assert models.band(parse_playbook(default_playbook_text()), 0.9) is None


def _banded_playbook(hot: float, warm: float) -> str:
    """The default playbook, hot by points out of reach, with probability bands."""
    text = default_playbook_text()
    assert "  hot: 50\n  warm: 20\n" in text
    return (
        text.replace(
            "  hot: 50\n  warm: 20\n",
            f"  hot: 100000\n  warm: 99999\n  probability: {{hot: {hot}, warm: {warm}}}\n",
            1,
        )
        + SETTINGS
    )


def _lead_row(service: Service, lead_id: str) -> Any:
    from pyrometer.store.tables import leads

    query = sa.select(leads.c.temperature, leads.c.owner).where(leads.c.lead_id == lead_id)
    return service.read(lambda conn: conn.execute(query).one())


def _hot_deliveries(service: Service) -> set[str]:
    from pyrometer.store.tables import deliveries

    query = sa.select(deliveries.c.lead_id).where(deliveries.c.event_type == "lead.hot")
    return set(service.read(lambda conn: conn.execute(query).scalars().all()))


def _set_model(service: Service, version: int | None) -> None:
    from pyrometer.store import models as model_store

    def work(conn: Any) -> None:
        conn.execute(model_store.models.update().values(active=False))
        if version is not None:
            model_store.activate(conn, version, service.clock())

    service.write(work)


def test_probability_bands_make_a_lead_hot_route_it_and_fire_the_webhook(
    service: Service, client: TestClient, keys: Keys, clock: Clock
) -> None:
    """With ``temperature.probability`` bands and a model active, a lead's temperature is
    its probability's band: a lead that points leave cold turns hot on its next event,
    is routed and announced (one event at a time, and in a batch large enough for the
    scored-ahead path). Without an active model, points decide again."""
    from pyrometer.service.ingest import SCORE_AHEAD_MIN
    from pyrometer.service.inputs import Track
    from pyrometer.service.reps import add_rep
    from pyrometer.service.webhooks import add_webhook

    # Bands every calibrated probability reaches: hot by probability, never by points.
    publish(service, _banded_playbook(hot=0.001, warm=0.0005))
    data = generate(500, seed=3, end=from_us(clock.now_us), days=180)
    ingest(service, tracks_of(data.events), identifies_of(data.leads, clock.now_us))
    assert models.sweep(service) == 0  # no model yet: nothing scored
    result = models.run_training(service, models.create_job(service))
    assert result["activated"] is True, result
    opened = _open_leads(service, 120, 0, clock.now_us)
    assert len(opened) == 120
    # Activating a model changes no stored temperature by itself: points made them.
    assert {_lead_row(service, lead).temperature for lead in opened} <= {"cold", "warm"}

    add_rep(service, {"id": "ana", "name": "Ana", "email": "ana@example.com", "capacity": 1000})
    add_webhook(service, "https://example.com/hook", ["lead.hot"])
    clock.advance(60)
    one, *batch_leads = opened[:40]
    ingest(service, [Track("p-1", "page_view", clock.now_us, user_id=one)], [])
    row = _lead_row(service, one)
    assert (row.temperature, row.owner) == ("hot", "ana")
    assert one in _hot_deliveries(service)
    change = service.read(
        lambda conn: conn.execute(
            sa.text(
                "SELECT old, new, cause FROM transitions WHERE lead_id = :l AND kind = "
                "'temperature' ORDER BY id DESC LIMIT 1"
            ),
            {"l": one},
        ).one()
    )
    assert (change.new, change.cause) == ("hot", "p_convert") and change.old != "hot"

    # The ingest cached the probability for the lead as it now is, without its reasons
    # (they cost most); the read adds them and shows the band as the temperature.
    def cached() -> Any:
        query = sa.select(lead_predictions.c.p_convert, lead_predictions.c.factors).where(
            lead_predictions.c.lead_id == one
        )
        return service.read(lambda conn: conn.execute(query).one())

    written = cached()
    assert written.factors is None and written.p_convert >= 0.001
    read = client.get(f"/v1/leads/{one}", headers=keys.bearer(keys.read)).json()
    assert read["temperature"] == read["p_convert_temperature"] == "hot"
    assert read["p_convert"] == pytest.approx(written.p_convert, abs=1e-9)
    assert read["p_convert_factors"] and cached().factors == read["p_convert_factors"]
    # A batch large enough to be scored ahead of its transaction goes the same way.
    tracks = [
        Track(f"b-{i}", "email_open", clock.now_us - i, user_id=batch_leads[i % len(batch_leads)])
        for i in range(max(SCORE_AHEAD_MIN, 2 * len(batch_leads)))
    ]
    ingest(service, tracks, [])
    for lead in batch_leads:
        assert _lead_row(service, lead).temperature == "hot"
    assert set(batch_leads) <= _hot_deliveries(service)
    # Each was routed: to the rep, or held back as do-not-contact (an unsubscribe).
    routed = service.read(
        lambda conn: {
            row.lead_id: (row.rep_id, row.rule)
            for row in conn.execute(sa.text("SELECT lead_id, rep_id, rule FROM assignments"))
        }
    )
    assert {one, *batch_leads} <= set(routed)
    assert routed[one][0] == "ana"
    assert all(
        routed[lead] in (("ana", "round_robin"), (None, "suppressed")) for lead in batch_leads
    )
    assert sum(routed[lead][0] == "ana" for lead in batch_leads) > len(batch_leads) // 2

    # Without an active model, points apply: the next lead stays as points make it.
    _set_model(service, None)
    other = opened[60]
    ingest(service, [Track("p-2", "page_view", clock.now_us, user_id=other)], [])
    row = _lead_row(service, other)
    assert row.temperature in ("cold", "warm") and row.owner is None
    assert other not in _hot_deliveries(service)
    read = client.get(f"/v1/leads/{other}", headers=keys.bearer(keys.read)).json()
    assert read["temperature"] in ("cold", "warm") and read["p_convert"] is None

    # Active again: the background sweep brings every lead to its band, those no write
    # touched since the model was activated too, and routes them.
    _set_model(service, result["model"])
    untouched = opened[100]
    assert _lead_row(service, untouched).temperature in ("cold", "warm")
    while models.sweep(service):
        pass
    row = _lead_row(service, untouched)
    assert row.temperature == "hot" and untouched in _hot_deliveries(service)
    assert row.owner == "ana" or routed_rule(service, untouched) == "suppressed"
    assert models.sweep(service) == 0  # every lead's probability is current


def routed_rule(service: Service, lead_id: str) -> str:
    query = sa.text("SELECT rule FROM assignments WHERE lead_id = :l ORDER BY id DESC LIMIT 1")
    return service.read(lambda conn: conn.execute(query, {"l": lead_id}).scalar_one())


def test_probability_bands_leave_a_lead_below_them_cold(service: Service, clock: Clock) -> None:
    """The band, not a blanket rule: with bands no probability reaches, leads with a
    model active stay cold on their events, even ones points would make hot."""
    from pyrometer.service.inputs import Track

    text = _banded_playbook(hot=1.0, warm=0.999).replace(
        "  hot: 100000\n  warm: 99999\n", "  hot: 1\n  warm: 0.5\n", 1
    )
    publish(service, text)
    data = generate(500, seed=3, end=from_us(clock.now_us), days=180)
    ingest(service, tracks_of(data.events), identifies_of(data.leads, clock.now_us))
    assert models.run_training(service, models.create_job(service))["activated"] is True
    lead = _open_leads(service, 1, 0, clock.now_us)[0]
    clock.advance(60)
    ingest(service, [Track("q-1", "demo_request", clock.now_us, user_id=lead)], [])
    assert _lead_row(service, lead).temperature == "cold"
    _set_model(service, None)
    ingest(service, [Track("q-2", "demo_request", clock.now_us, user_id=lead)], [])
    assert _lead_row(service, lead).temperature == "hot"  # points: hot at 1
