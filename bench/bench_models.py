"""Conversion models in the service (issue #14): time to train, time to score a lead.

Loads the demo company (``--leads`` leads over 180 days, its purchases the outcomes) into
a fresh store (SQLite file, or a PostgreSQL schema with ``--stores postgres``), then:

1. trains through the service's own job (read outcomes, point-in-time features, fit on
   the older outcomes, validate on the newest, refit, store), against a reference in the
   same run: a plain 5-fold LightGBM cross-validation of the same design matrix;
2. scores one lead with the active model (features from its attributes and events,
   probability, reasons: the service's row scorer) ``--scorings`` times over the leads in
   turn, wall time and the thread's CPU time, interleaved with a reference measured the
   same way: the bare booster's raw score of one prepared row (``Booster.predict``);
3. the pandas path (as before the row scorer) and the row scorer on whole uncached reads
   (store read, scoring, cache write; ``--samples`` leads), a page of 50 uncached leads,
   and cached reads;
4. ingests batches of 500 new events on known leads with no model active and with one,
   in alternating phases (``--rounds`` of ``--seconds`` each, medians), while the
   service's retrainer sweeps as in ``serve`` and rescores every lead ingest changed;
   then publishes the same playbook with ``temperature.probability`` bands and does it
   again (without the sweep, idle in that steady state): with a model active, ingest then
   computes the probabilities of the leads each batch changed in its own transaction
   (temperature from the band); and once more with the batches of the two kinds
   interleaved one by one (``--batches`` of each), each timed alone, then with the two
   halves of the leads swapped (their leads differ), and the geometric mean of the two.

Usage:

    python bench/bench_models.py [--leads 3000] [--samples 200] [--scorings 10000]
        [--stores sqlite,postgres] [--rounds 3] [--seconds 4] [--batches 100]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# OpenMP as `serve` has it (pyrometer.service.openmp), set before LightGBM's library loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import lightgbm as lgb
import sqlalchemy as sa
from sklearn.model_selection import StratifiedKFold

from pyrometer.core.playbook import default_playbook_text
from pyrometer.core.timeutil import from_us, to_us
from pyrometer.demo.synth import generate
from pyrometer.predictive import event_features
from pyrometer.predictive import store_training as st
from pyrometer.predictive.models import LGB_PARAMS, _safe_names
from pyrometer.service import models
from pyrometer.service.collector import tuned_for_serving
from pyrometer.service.ingest import ingest
from pyrometer.service.inputs import Track
from pyrometer.service.rescore import publish, run_job
from pyrometer.service.runtime import Service
from pyrometer.store import models as store
from tests.service.helpers import identifies_of, tracks_of

NOW = to_us("2026-11-23T09:00:00Z")
SETTINGS = "\nmodels:\n  horizon: 60d\n  cutoff: 7d\n  auto_activate: true\n"
BANDED = default_playbook_text().replace(
    "  hot: 50\n  warm: 20\n", "  hot: 50\n  warm: 20\n  probability: {hot: 0.3, warm: 0.1}\n", 1
)
assert default_playbook_text() != BANDED


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _store_url(kind: str, folder: str) -> tuple[str, object]:
    if kind == "sqlite":
        return f"sqlite:///{folder}/models.db", None
    import uuid

    import sqlalchemy as sa

    server = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    schema = f"bench_models_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    return f"{server}?options=-csearch_path%3D{schema}", (admin, schema)


def _drop(cleanup: object) -> None:
    if cleanup is None:
        return
    import sqlalchemy as sa

    admin, schema = cleanup  # type: ignore[misc]
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def reference_cv(service: Service) -> tuple[float, int]:
    """A plain 5-fold LightGBM CV on the design matrix the training job builds."""
    _, book = service.read(lambda conn: service.playbooks.active(conn))
    rows = service.read(store.training_rows)
    data = st.training_data(
        models._histories(rows, book.models.lost_events), st.event_log(rows.events), book, NOW
    )
    config = st._event_config(data.events)
    frame = data.frame
    if config is not None:
        extra = event_features.compute(config, data.events, frame[st.ID], frame[st.DECISION])
        frame = frame.assign(**{c: extra[c].astype(object) for c in extra.columns})
    frame = frame.assign(**{st.TARGET: data.y})
    from pyrometer.predictive.features import learn_schema
    from pyrometer.predictive.loading import DEFAULT_PLACEHOLDERS

    schema, cleaned = learn_schema(
        frame, st.TARGET, st.ID, list(DEFAULT_PLACEHOLDERS), [st.DECISION], st.DECISION
    )
    X = _safe_names(schema.design(cleaned))
    y = data.y
    started = time.perf_counter()
    params = {**LGB_PARAMS, "n_jobs": 1}
    for train, _test in StratifiedKFold(5, shuffle=True, random_state=0).split(X, y):
        lgb.LGBMClassifier(**params).fit(X.iloc[train], y[train])
    return time.perf_counter() - started, len(y)


def _set_active(service: Service, version: int | None) -> None:
    def work(conn: object) -> None:
        conn.execute(store.models.update().values(active=False))  # type: ignore[attr-defined]
        if version is not None:
            store.activate(conn, version, NOW)  # type: ignore[arg-type]

    service.write(work)


def _batch(rng: random.Random, prefix: str, leads: list[str]) -> list[Track]:
    """500 new events (ids ``prefix-0`` … ``prefix-499``) of the last day on these leads."""
    return [
        Track(
            message_id=f"{prefix}-{i}",
            name=rng.choice(("page_view", "email_open", "webinar_attended")),
            ts_us=NOW - rng.randrange(86_400_000_000),
            user_id=rng.choice(leads),
            properties={},
        )
        for i in range(500)
    ]


def ingest_phases(
    kind: str,
    service: Service,
    ids: list[str],
    rounds: int,
    seconds: float,
    label: str,
    sweeping: bool = True,
) -> None:
    """Ingest (batches of 500 new events on known leads) with no model active and with
    one, in alternating phases, while the service's :class:`Retrainer` runs as in
    ``serve`` (polling every 0.5 s instead of 10 s): with a model it rescores each lead
    ingest changed. Each kind of phase has its own half of the leads (with probability
    bands, a lead switched between a model and none would change temperature at every
    switch), each half warmed up first. The median events/s of each, in wall time and
    per CPU second of this process (all its threads: ingest and the sweep; a shared
    machine's load moves the first much more than the second; PostgreSQL's own CPU is
    not in it). The caller tunes the garbage collector as a serving process has it
    (:mod:`pyrometer.service.collector`), for both kinds of phase."""
    version = service.read(store.active_version)
    rng = random.Random(5 + len(label))
    retrainer = models.Retrainer(service)
    retrainer.POLL_SECONDS = 0.5
    if sweeping:
        retrainer.start()
    rates: dict[str, list[float]] = {"no model": [], "model active": []}
    cpu_rates: dict[str, list[float]] = {"no model": [], "model active": []}
    counter = 0
    halves = {"no model": ids[::2], "model active": ids[1::2]}
    try:
        for step, phase in enumerate(["no model", "model active"] * (rounds + 1)):
            warm_up = step < 2  # the first of each: its half's leads settle
            _set_active(service, version if phase != "no model" else None)
            mine = halves[phase]
            sent = 0
            started, cpu = time.perf_counter(), time.process_time()
            while time.perf_counter() - started < seconds:
                batch = _batch(rng, f"bench-{label}-{counter}", mine)
                counter += 1
                ingest(service, batch, [])
                sent += len(batch)
            rate = sent / (time.perf_counter() - started)
            if not warm_up:
                rates[phase].append(rate)
                cpu_rates[phase].append(sent / (time.process_time() - cpu))
        fresh = service.read(
            lambda conn: conn.execute(
                sa.select(sa.func.count()).select_from(store.lead_predictions)
            ).scalar_one()
        )
    finally:
        if sweeping:
            retrainer.stop()
        _set_active(service, version)
    off, on = statistics.median(rates["no model"]), statistics.median(rates["model active"])
    cpu_off = statistics.median(cpu_rates["no model"])
    cpu_on = statistics.median(cpu_rates["model active"])
    print(
        f"[{kind}] {label}: ingest {'with' if sweeping else 'without'} the retrainer's sweep, "
        f"{rounds} rounds of "
        f"{seconds:.0f} s phases: no model {off:,.0f} events/s, model active {on:,.0f} "
        f"events/s ({(on - off) / off:+.1%}); phases: "
        + ", ".join(f"{k} {[round(r) for r in v]}" for k, v in rates.items())
        + f"; per CPU second: no model {cpu_off:,.0f}, model active {cpu_on:,.0f} events "
        f"({(cpu_on - cpu_off) / cpu_off:+.1%}); phases: "
        + ", ".join(f"{k} {[round(r) for r in v]}" for k, v in cpu_rates.items())
        + f"; {fresh} cached predictions at the end"
    )


def ingest_interleaved(
    kind: str, service: Service, ids: list[str], batches: int, swapped: bool = False
) -> tuple[float, float]:
    """Ingest with probability bands, batch by batch: batches on one half of the leads
    with no model active alternate with batches on the other half with the model active
    (switched between batches, outside the timing). Each batch's wall and process CPU
    time is measured alone, so the leads' growing histories and the machine's load fall
    on both kinds alike (phases of seconds each leave a drift between them). The first
    ``batches // 5`` of each kind settle their half (the model's leads: its cache of
    their events) and are not counted; medians of the rest, in events per second.
    ``swapped``: the halves the other way round (the two halves' leads differ: on 200
    leads a half cost up to 8% more than the other whatever the model). Returns the
    ratios (model active over no model) in wall and CPU time."""
    version = service.read(store.active_version)
    rng = random.Random(11 + swapped)
    halves = {"no model": ids[::2], "model active": ids[1::2]}
    if swapped:
        halves = {"no model": ids[1::2], "model active": ids[::2]}
    wall: dict[str, list[float]] = {"no model": [], "model active": []}
    cpu: dict[str, list[float]] = {"no model": [], "model active": []}
    try:
        for step in range(2 * batches):
            phase = "model active" if step % 2 else "no model"
            _set_active(service, version if phase == "model active" else None)
            batch = _batch(rng, f"bench-interleaved-{int(swapped)}-{step}", halves[phase])
            started, used = time.perf_counter(), time.process_time()
            ingest(service, batch, [])
            if step >= 2 * (batches // 5):
                wall[phase].append(500 / (time.perf_counter() - started))
                cpu[phase].append(500 / max(time.process_time() - used, 1e-9))
    finally:
        _set_active(service, version)
    off, on = statistics.median(wall["no model"]), statistics.median(wall["model active"])
    cpu_off, cpu_on = statistics.median(cpu["no model"]), statistics.median(cpu["model active"])
    print(
        f"[{kind}] probability bands, batches interleaved ({len(wall['no model'])} of each "
        f"counted{', halves swapped' if swapped else ''}): no model {off:,.0f} events/s, "
        f"model active {on:,.0f} events/s "
        f"({on / off:.2f}x); per CPU second: no model {cpu_off:,.0f}, model active "
        f"{cpu_on:,.0f} ({cpu_on / cpu_off:.2f}x); the model's event cache: "
        f"{service.event_cache.hits:,} hits, {service.event_cache.misses:,} misses, "
        f"{len(service.event_cache):,} leads, {service.event_cache.size / 1e6:.1f} MB"
    )
    return on / off, cpu_on / cpu_off


def one_lead(kind: str, service: Service, model: object, ids: list[str], scorings: int) -> None:
    """Score one lead at a time, ``scorings`` times over the leads in turn (each with its
    own attributes and events), interleaved with the reference; p50/p99 wall and CPU."""
    leads_by_id = dict(
        service.read(
            lambda conn: [
                (r.lead_id, dict(r.attributes))
                for r in conn.execute(sa.select(store.leads.c.lead_id, store.leads.c.attributes))
            ]
        )
    )
    log = service.read(lambda conn: store.lead_event_rows(conn, ids))
    by_lead: dict[str, list[tuple[str, str, int]]] = {}
    for row in log:
        by_lead.setdefault(row[0], []).append(row)
    scorer = models._row_scorer(model)  # type: ignore[arg-type]
    assert scorer is not None
    first = [(name, ts) for _, name, ts in by_lead.get(ids[0], [])]
    made = scorer.row(leads_by_id[ids[0]], first, NOW)
    assert made is not None
    booster, row = scorer._booster, made[0].reshape(1, -1)
    figures: dict[str, tuple[list[float], list[float]]] = {"lead": ([], []), "ref": ([], [])}
    distinct = set()
    for i in range(scorings):
        lead_id = ids[i % len(ids)]
        pair = [(lead_id, leads_by_id[lead_id])]
        events = by_lead.get(lead_id, [])
        now = NOW + (i // len(ids)) * 3_600_000_000  # each pass an hour later
        for name in ("lead", "ref"):
            wall, cpu = time.perf_counter(), time.thread_time()
            if name == "lead":
                ((p, _),) = models.score_leads(model, pair, events, now)  # type: ignore[arg-type]
            else:
                booster.predict(row, raw_score=True, num_threads=1)
            figures[name][1].append((time.thread_time() - cpu) * 1000)
            figures[name][0].append((time.perf_counter() - wall) * 1000)
        distinct.add(round(p, 9))
    text = []
    for name, title in (("lead", "one lead (features, p, reasons)"), ("ref", "reference")):
        wall, cpu = figures[name]
        text.append(
            f"{title}: wall p50 {statistics.median(wall):.3f} ms, p99 {_pct(wall, 0.99):.3f} ms"
            f" (max {max(wall):.1f}); CPU p50 {statistics.median(cpu):.3f} ms, p99 "
            f"{_pct(cpu, 0.99):.3f} ms"
        )
    print(
        f"[{kind}] {scorings:,} single-lead scorings over {len(ids):,} leads "
        f"({len(distinct):,} distinct probabilities), interleaved with the reference (the "
        f"booster's raw score of one prepared row): " + "; ".join(text)
    )


def run(
    kind: str,
    n_leads: int,
    samples: int,
    rounds: int = 3,
    seconds: float = 4.0,
    scorings: int = 10_000,
    batches: int = 100,
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url, cleanup = _store_url(kind, folder)
        service = Service.open(url, lambda: NOW)
        try:
            publish(service, default_playbook_text() + SETTINGS)
            data = generate(n_leads, seed=3, end=from_us(NOW), days=180)
            started = time.perf_counter()
            ingest(service, tracks_of(data.events), identifies_of(data.leads, NOW))
            load_s = time.perf_counter() - started
            print(f"[{kind}] {n_leads} leads, {len(data.events)} events loaded in {load_s:.1f} s")

            started = time.perf_counter()
            result = models.run_training(service, models.create_job(service, "bench"))
            train_s = time.perf_counter() - started
            ref_s, _outcomes = reference_cv(service)
            print(
                f"[{kind}] train (job: read, features, 3 candidates, refit, store): "
                f"{train_s:.2f} s for {result['outcomes']} outcomes, ROC AUC "
                f"{result['roc_auc']:.3f} on the newest; reference plain 5-fold LightGBM CV "
                f"of the same matrix: {ref_s:.2f} s ({train_s / ref_s:.1f}x)"
            )

            ids = [lead["lead_id"] for lead in data.leads]
            held = service.read(lambda conn: models._active_model(service, conn))
            assert held is not None
            _, model = held
            fast_rows = models.FAST_ROWS
            one_lead(kind, service, model, ids, scorings)

            def uncached(lead_ids: list[str]) -> list[float]:
                times = []
                for lead_id in lead_ids:
                    service.write(
                        lambda conn, lead_id=lead_id: conn.execute(
                            store.lead_predictions.delete().where(
                                store.lead_predictions.c.lead_id == lead_id
                            )
                        )
                    )
                    started = time.perf_counter()
                    models.predictions(service, [lead_id])
                    times.append((time.perf_counter() - started) * 1000)
                return times

            def compute(lead_ids: list[str]) -> list[float]:
                """The model's part alone: features, probability and reasons of one lead."""
                times = []
                for lead_id in lead_ids:
                    attrs = service.read(
                        lambda conn, lead_id=lead_id: conn.execute(
                            sa.select(store.leads.c.attributes).where(
                                store.leads.c.lead_id == lead_id
                            )
                        ).scalar_one()
                    )
                    log = service.read(lambda conn, i=lead_id: store.lead_event_rows(conn, [i]))
                    started = time.perf_counter()
                    models.score_leads(model, [(lead_id, dict(attrs))], log, NOW)
                    times.append((time.perf_counter() - started) * 1000)
                return times

            figures = {}
            for label, rows in (("pandas path (before)", 0), ("row scorer (now)", fast_rows)):
                models.FAST_ROWS = rows
                one = uncached(ids[:samples])
                alone = compute(ids[:samples])
                page = ids[samples : samples + 50] if rows else ids[samples + 50 : samples + 100]
                started = time.perf_counter()
                models.predictions(service, page)
                page_ms = (time.perf_counter() - started) * 1000
                figures[label] = one
                print(
                    f"[{kind}] {label}: score one lead, model part only: p50 "
                    f"{statistics.median(alone):.3f} ms, p99 {_pct(alone, 0.99):.3f} ms; "
                    f"whole uncached read (read, features, model, reasons, cache write): "
                    f"p50 {statistics.median(one):.2f} ms, p99 {_pct(one, 0.99):.2f} ms; "
                    f"a page of 50 uncached: {page_ms:.1f} ms"
                )
            models.FAST_ROWS = fast_rows
            cached: list[float] = []
            for lead_id in ids[:samples]:
                started = time.perf_counter()
                models.predictions(service, [lead_id])
                cached.append((time.perf_counter() - started) * 1000)
            trees = model.model
            X = model.design(
                st.with_columns(st.lead_frame([{}], [ids[0]], [NOW]), model),
                st.event_log([]) if model.events else None,
            )
            ref: list[float] = []
            for _ in range(samples):
                started = time.perf_counter()
                trees.raw_score(X)  # type: ignore[attr-defined]
                ref.append((time.perf_counter() - started) * 1000)
            print(
                f"[{kind}] cached read: p50 {statistics.median(cached):.2f} ms, p99 "
                f"{_pct(cached, 0.99):.2f} ms; reference: the model alone on one prepared "
                f"frame row: p50 {statistics.median(ref):.3f} ms, p99 {_pct(ref, 0.99):.3f} ms"
            )
            with tuned_for_serving():  # the garbage collector as a serving process has it
                ingest_phases(kind, service, ids, rounds, seconds, "points")
            done = publish(service, BANDED + SETTINGS)
            if done["job_id"] is not None:
                run_job(service, done["job_id"])
            # With bands, ingest caches the probability of every lead it changes: in steady
            # state the sweep has nothing to do (here it would move the other half's
            # leads to their bands between phases, work a model kept active never has).
            with tuned_for_serving():
                ingest_phases(
                    kind, service, ids, rounds, seconds, "probability bands", sweeping=False
                )
                first = ingest_interleaved(kind, service, ids, batches)
                second = ingest_interleaved(kind, service, ids, batches, swapped=True)
            print(
                f"[{kind}] probability bands, batches interleaved, both ways: model active over "
                f"no model {(first[0] * second[0]) ** 0.5:.2f}x in events per second, "
                f"{(first[1] * second[1]) ** 0.5:.2f}x per CPU second (geometric means)"
            )
        finally:
            service.close()
            _drop(cleanup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=3000)
    parser.add_argument("--samples", type=int, default=200, help="Uncached reads per path.")
    parser.add_argument("--scorings", type=int, default=10_000, help="Single-lead scorings.")
    parser.add_argument("--stores", default="sqlite")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of the ingest phases.")
    parser.add_argument("--seconds", type=float, default=4.0, help="Per ingest phase.")
    parser.add_argument(
        "--batches", type=int, default=100, help="Interleaved ingest batches of each kind."
    )
    args = parser.parse_args()
    for kind in args.stores.split(","):
        run(
            kind.strip(),
            args.leads,
            args.samples,
            args.rounds,
            args.seconds,
            args.scorings,
            args.batches,
        )


if __name__ == "__main__":
    main()
