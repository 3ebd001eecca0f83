"""Conversion models in the service (issue #14): time to train, time to score a lead.

Loads the demo company (``--leads`` leads over 180 days, its purchases the outcomes) into
a fresh store (SQLite file, or a PostgreSQL schema with ``--stores postgres``), then:

1. trains through the service's own job (read outcomes, point-in-time features, fit on
   the older outcomes, validate on the newest, refit, store), against a reference in the
   same run: a plain 5-fold LightGBM cross-validation of the same design matrix;
2. scores leads with the active model: one lead at a time without the cache (p50/p99
   over ``--samples`` leads), a page of 50 leads at once, and cached reads, against the
   reference of the bare booster predicting one row.

Usage:

    python bench/bench_models.py [--leads 3000] [--samples 200] [--stores sqlite,postgres]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lightgbm as lgb
from sklearn.model_selection import StratifiedKFold

from pyrometer.core.playbook import default_playbook_text
from pyrometer.core.timeutil import from_us, to_us
from pyrometer.demo.synth import generate
from pyrometer.predictive import event_features
from pyrometer.predictive import store_training as st
from pyrometer.predictive.models import LGB_PARAMS, _safe_names
from pyrometer.service import models
from pyrometer.service.ingest import ingest
from pyrometer.service.rescore import publish
from pyrometer.service.runtime import Service
from pyrometer.store import models as store
from tests.service.helpers import identifies_of, tracks_of

NOW = to_us("2026-11-23T09:00:00Z")
SETTINGS = "\nmodels:\n  horizon: 60d\n  cutoff: 7d\n  auto_activate: true\n"


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


def run(kind: str, n_leads: int, samples: int) -> None:
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
            one: list[float] = []
            for lead_id in ids[:samples]:
                service.write(
                    lambda conn, lead_id=lead_id: conn.execute(
                        store.lead_predictions.delete().where(
                            store.lead_predictions.c.lead_id == lead_id
                        )
                    )
                )
                started = time.perf_counter()
                models.predictions(service, [lead_id])
                one.append((time.perf_counter() - started) * 1000)
            cached: list[float] = []
            for lead_id in ids[:samples]:
                started = time.perf_counter()
                models.predictions(service, [lead_id])
                cached.append((time.perf_counter() - started) * 1000)
            page = ids[samples : samples + 50]
            started = time.perf_counter()
            models.predictions(service, page)
            page_ms = (time.perf_counter() - started) * 1000
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
                f"[{kind}] score one lead, uncached (read, features, model, reasons, cache "
                f"write): p50 {statistics.median(one):.2f} ms, p99 {_pct(one, 0.99):.2f} ms; "
                f"cached: p50 {statistics.median(cached):.2f} ms, p99 {_pct(cached, 0.99):.2f} ms"
            )
            print(
                f"[{kind}] a page of 50 leads uncached: {page_ms:.1f} ms "
                f"({page_ms / 50:.2f} ms per lead); reference: the model "
                f"alone on one prepared row: "
                f"p50 {statistics.median(ref):.3f} ms, p99 {_pct(ref, 0.99):.3f} ms"
            )
        finally:
            service.close()
            _drop(cleanup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=3000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--stores", default="sqlite")
    args = parser.parse_args()
    for kind in args.stores.split(","):
        run(kind.strip(), args.leads, args.samples)


if __name__ == "__main__":
    main()
