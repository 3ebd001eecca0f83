"""Conversion models in the service: train from the store, keep the better one, serve it.

The decisions live elsewhere: :mod:`pyrometer.predictive.store_training` labels leads,
cuts their history and judges a new model against the active one; this module loads
the store's rows for it, records the job and the model, and adds ``p_convert`` and its
reasons to lead reads. A training job runs in a thread (``POST /v1/models/train``), in
the caller (``pyrometer models train``), or on the playbook's ``models.retrain``
schedule (:class:`Retrainer`, in ``serve`` and ``worker``).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pyrometer.core.classify import temperature_of_probability
from pyrometer.core.timeutil import iso
from pyrometer.service.decay import SchedulerLock
from pyrometer.service.redact import describe
from pyrometer.service.rescore import fail_job
from pyrometer.service.runtime import Service
from pyrometer.store import models as store
from pyrometer.store.tables import jobs

if TYPE_CHECKING:  # the predictive libraries load only when a model is trained or used
    from pyrometer.predictive import store_training as st
    from pyrometer.predictive.artifact import PredictiveModel
    from pyrometer.predictive.fast_score import RowScorer

_log = logging.getLogger("pyrometer.error")
KIND = "train"
STEPS = 4
TOP_FACTORS = 3
# Up to this many leads are scored row by row (a read, a page, the leads an ingest batch
# changed: one vectorised LightGBM call for all); more go through pandas.
FAST_ROWS = 5000
# A cached probability is recomputed after this long even if the lead did not change:
# its event features ("in the last 7 days") move with the clock.
CACHE_US = 3_600_000_000


# --- training -------------------------------------------------------------------------


def create_job(service: Service, trigger: str = "api") -> int:
    now = service.clock()
    return service.write(
        lambda conn: conn.execute(
            jobs.insert()
            .values(
                kind=KIND,
                status="running",
                done=0,
                total=STEPS,
                created_us=now,
                result={"trigger": trigger},
            )
            .returning(jobs.c.id)
        ).scalar_one()
    )


def _step(service: Service, job_id: int, done: int, note: str) -> None:
    def work(conn: Connection) -> None:
        result = conn.execute(sa.select(jobs.c.result).where(jobs.c.id == job_id)).scalar_one()
        conn.execute(
            jobs.update()
            .where(jobs.c.id == job_id)
            .values(done=done, result={**(result or {}), "step": note})
        )

    service.write(work)


def _histories(rows: store.TrainingRows, lost_events: tuple[str, ...]) -> list[st.LeadHistory]:
    from pyrometer.predictive import store_training as st

    first_event: dict[str, int] = {}
    lost: dict[str, int] = {}
    lost_names = set(lost_events)
    for lead_id, name, ts in rows.events:
        if ts < first_event.get(lead_id, ts + 1):
            first_event[lead_id] = ts
        if name in lost_names and ts < lost.get(lead_id, ts + 1):
            lost[lead_id] = ts
    out = []
    for lead_id, attributes, created in rows.leads:
        stage = rows.first_stage
        out.append(
            st.LeadHistory(
                lead_id=lead_id,
                attributes=attributes,
                first_seen_us=min(created, first_event.get(lead_id, created)),
                customer_us=stage.get((lead_id, "customer")),
                disqualified_us=stage.get((lead_id, "disqualified")),
                lost_us=lost.get(lead_id),
                mql_us=stage.get((lead_id, "mql")),
            )
        )
    return out


def run_training(service: Service, job_id: int, seed: int = 0) -> dict[str, Any]:
    """Train, store the model, activate it if the playbook says so and it is not worse.

    The job's ``result`` gets the model's number, whether it was activated and why, the
    champion's figures on the same held-out leads, and the leakage guard's warnings.
    """
    from pyrometer.predictive import store_training as st

    now = service.clock()
    try:
        _, book = service.read(lambda conn: service.playbooks.active(conn))
        rows = service.read(store.training_rows)
        known = service.read(store.outcome_count)
        champion_version = service.read(store.active_version)
        champion = None
        if champion_version is not None:

            def read_champion(conn: Connection) -> tuple[bytes, dict[str, Any]]:
                found = store.get_model(conn, champion_version)
                data = store.artifact(conn, champion_version)
                assert found is not None and data is not None
                return data, found.metrics

            champion = service.read(read_champion)
        _step(service, job_id, 1, "read outcomes")
        data = st.training_data(
            _histories(rows, book.models.lost_events),
            st.event_log(rows.events),
            book,
            now,
        )
        _step(service, job_id, 2, f"training on {len(data.labelled)} outcomes")
        trained = st.train(data, book, now, seed=seed, champion=champion)
        _step(service, job_id, 3, "storing the model")
        wins = trained.champion is None or bool(trained.champion["challenger_wins"])
        activate = book.models.auto_activate and wins
        if champion is None:
            reason = "no model was active" if activate else "models.auto_activate is off"
        elif not book.models.auto_activate:
            reason = "models.auto_activate is off"
        elif wins:
            reason = f"at least as good as model {champion_version} on the same recent outcomes"
        elif trained.champion is not None and not trained.champion.get("fair", True):
            reason = f"kept model {champion_version}: {trained.champion['note']}"
        else:
            reason = f"worse than model {champion_version} on the same recent outcomes: kept it"
        metrics = {
            **trained.metrics,
            "train_seconds": round(trained.seconds, 3),
            "stage_outcomes": known,
        }
        if trained.champion is not None:
            metrics["champion"] = {"version": champion_version, **trained.champion}

        def save(conn: Connection) -> dict[str, Any]:
            version = store.add_model(
                conn, now, job_id, trained.outcomes, metrics, trained.artifact
            )
            if activate:
                store.activate(conn, version, now)
            result = {
                "model": version,
                "activated": activate,
                "reason": reason,
                "outcomes": trained.outcomes,
                "roc_auc": metrics["roc_auc"],
                "champion": metrics.get("champion"),
                "warnings": trained.warnings,
                "seconds": metrics["train_seconds"],
            }
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(status="done", done=STEPS, finished_us=now, result=result)
            )
            return result

        return service.write(save)
    except Exception as exc:
        expected = isinstance(exc, ValueError)
        message = str(exc) if expected else describe(exc)
        fail_job(service, "training", job_id, message, None if expected else exc)
        return {"error": message}


def start_training(service: Service, job_id: int) -> threading.Thread:
    thread = threading.Thread(
        target=run_training, args=(service, job_id), name=f"pyrometer-train-{job_id}", daemon=True
    )
    thread.start()
    return thread


def model_view(row: store.ModelRow, full: bool = False) -> dict[str, Any]:
    m = row.metrics
    out: dict[str, Any] = {
        "version": row.version,
        "created": iso(row.created_us),
        "active": row.active,
        "activated": iso(row.activated_us),
        "job_id": row.job_id,
        "outcomes": row.outcomes,
        "roc_auc": m.get("roc_auc"),
        "pr_auc": m.get("pr_auc"),
        "brier": m.get("brier"),
        "lift_top_decile": m.get("lift_top_decile"),
        "holdout_leads": m.get("holdout_leads"),
    }
    if full:
        out["metrics"] = m
    return out


def activate(service: Service, version: int) -> bool:
    now = service.clock()
    return service.write(lambda conn: store.activate(conn, version, now))


# --- scheduled retraining --------------------------------------------------------------


def retrain_due(service: Service) -> str | None:
    """Why a scheduled retrain should run now, or ``None``: the playbook's ``retrain``
    period has passed since the last model, and enough outcomes are new since it."""
    now = service.clock()

    def work(conn: Connection) -> str | None:
        _, book = service.playbooks.active(conn)
        period = book.models.retrain_us
        if period is None:
            return None
        running = conn.execute(  # a job a stopped process left "running" blocks a day at most
            sa.select(sa.func.count())
            .select_from(jobs)
            .where(
                jobs.c.kind == KIND,
                jobs.c.status == "running",
                jobs.c.created_us > now - 86_400_000_000,
            )
        ).scalar_one()
        if running:
            return None
        latest = store.list_models(conn)
        outcomes = store.outcome_count(conn)
        if latest:
            if now - latest[0].created_us < period:
                return None
            last_outcomes = int(latest[0].metrics.get("stage_outcomes", 0))
        else:
            last_outcomes = 0
        if outcomes - last_outcomes < book.models.min_new_outcomes:
            return None
        return f"{outcomes - last_outcomes} new outcome(s)"

    return service.read(work)


def retrain_if_due(service: Service) -> dict[str, Any] | None:
    """Run one scheduled training in this thread if it is due; its result."""
    if retrain_due(service) is None:
        return None
    job_id = create_job(service, trigger="schedule")
    return run_training(service, job_id)


SWEEP = 200


def sweep(service: Service, limit: int = SWEEP) -> int:
    """Score up to ``limit`` leads whose cached probability is missing or older than their
    last change, so ``sort=p_convert`` and ``p_convert_gte`` see every lead; how many.

    With probability bands in force the leads' temperatures follow too (a model just
    activated reaches every lead this way, not only those that change): see
    :func:`_band_sweep`."""

    def stale(conn: Connection) -> list[str]:
        version = store.active_version(conn)
        if version is None:
            return []
        lp = store.lead_predictions
        query = (
            sa.select(store.leads.c.lead_id)
            .select_from(
                store.leads.outerjoin(
                    lp,
                    sa.and_(lp.c.lead_id == store.leads.c.lead_id, lp.c.model_version == version),
                )
            )
            .where(sa.or_(lp.c.lead_id.is_(None), lp.c.lead_updated_us != store.leads.c.updated_us))
            .limit(limit)
        )
        return list(conn.execute(query).scalars())

    ids, banded = service.read(
        lambda conn: (stale(conn), service.playbooks.active(conn)[1].temperature.probability)
    )
    if ids and banded is not None:
        _band_sweep(service, ids)
    elif ids:
        _sweep_probabilities(service, ids)
    return len(ids)


def _sweep_probabilities(service: Service, lead_ids: list[str]) -> None:
    """Cache the probabilities of these leads, without reasons (a read adds those): the
    list's sort and filter need only the probability, which one vectorised raw-score
    call gives for all; the reasons (TreeSHAP) cost about ten times as much."""
    from pyrometer.service.probability import each_probability

    now = service.clock()

    def read(conn: Connection) -> tuple[Any, list[Any], list[tuple[str, str, int]]]:
        held = _active_model(service, conn)
        if held is None:
            return None, [], []
        rows = conn.execute(
            sa.select(
                store.leads.c.lead_id, store.leads.c.attributes, store.leads.c.updated_us
            ).where(store.leads.c.lead_id.in_(lead_ids))
        ).all()
        return held, rows, store.lead_event_rows(conn, [r.lead_id for r in rows])

    held, rows, log = service.read(read)
    if held is None or not rows:
        return
    version, model = held
    found = each_probability(model, [(r.lead_id, dict(r.attributes)) for r in rows], log, now)
    saved: list[tuple[str, int, float, list[dict[str, Any]] | None]] = [
        (r.lead_id, int(r.updated_us), p, None)
        for r, p in zip(rows, found, strict=True)
        if p is not None
    ]
    service.write(lambda conn: store.save_predictions(conn, version, now, saved))
    unread = [r.lead_id for r, p in zip(rows, found, strict=True) if p is None]
    if unread:  # a feature the model cannot read: the read path records why
        predictions(service, unread)


def _band_sweep(service: Service, lead_ids: list[str]) -> None:
    """Stale leads under probability bands, in one write: their probabilities cached
    and, where the band differs from the stored temperature, the temperature moved with
    its transition, routing and webhooks, as a write that changed them would."""
    from pyrometer.service import actions
    from pyrometer.service.probability import probability_temperatures
    from pyrometer.store import repo
    from pyrometer.store.records import Change

    now = service.clock()

    def work(conn: Connection) -> list[str]:
        version, book = service.playbooks.active(conn)
        records = repo.lock_leads(conn, lead_ids)
        current = [Change(r) for r in records.values() if r.playbook_version == version]
        moved = [
            c for c in probability_temperatures(service, conn, book, current, now) if c.transitions
        ]
        repo.save_changes(conn, moved, now)
        actions.act_on_changes(conn, book, moved, now)
        return [r.lead_id for r in records.values() if r.playbook_version != version]

    waiting = service.write(work)
    if waiting:  # not rescored under the playbook in force yet: the rescore moves them
        predictions(service, waiting)


class Retrainer:
    """A daemon thread that keeps every lead's probability current (:func:`sweep`) and
    checks every few seconds whether a scheduled retrain is due."""

    POLL_SECONDS = 10.0
    _LOCK_ID = 0x50595254  # "PYRT"

    def __init__(self, service: Service) -> None:
        self._service = service
        self._lock = SchedulerLock(service, self._LOCK_ID, "retrain")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pyrometer-retrain", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        # The first check comes a poll after the start, not during it: a server that is
        # only starting (or stopping again at once) has other work.
        wait = self.POLL_SECONDS
        try:
            while not self._stop.wait(wait):
                wait = self.POLL_SECONDS
                try:
                    if self._lock.try_acquire():
                        retrain_if_due(self._service)
                        started = time.monotonic()
                        if sweep(self._service) == SWEEP:
                            # More to do: go on after a pause four times the batch's
                            # time, so the sweep takes a fifth of a core at most and
                            # ingest keeps the rest.
                            wait = max(0.01, 4 * (time.monotonic() - started))
                except Exception as exc:  # a database blip must not stop the schedule
                    _log.error("scheduled retrain failed: %s", describe(exc))
        finally:
            self._lock.release()


# --- serving ---------------------------------------------------------------------------

_loaded: weakref.WeakKeyDictionary[Service, tuple[int, PredictiveModel]] = (
    weakref.WeakKeyDictionary()
)
_loading = threading.Lock()


def _active_model(service: Service, conn: Connection) -> tuple[int, PredictiveModel] | None:
    version = store.active_version(conn)
    if version is None:
        return None
    with _loading:
        held = _loaded.get(service)
        if held is not None and held[0] == version:
            return held
    row = store.get_model(conn, version)
    data = store.artifact(conn, version)
    if row is None or data is None:
        return None
    from pyrometer.predictive import model_bytes
    from pyrometer.predictive import store_training as st

    model = st.as_predictive(model_bytes.load(data), row.metrics)
    with _loading:
        _loaded[service] = (version, model)
    return version, model


def _factor(name: str, value: Any, effect: float) -> dict[str, Any]:
    if value is not None and not isinstance(value, str | int | float | bool):
        value = str(value)
    if isinstance(value, float) and value != value:
        value = None
    return {"feature": name, "value": value, "effect": round(effect, 4)}


_scorers: weakref.WeakKeyDictionary[PredictiveModel, RowScorer | None] = weakref.WeakKeyDictionary()


def _row_scorer(model: PredictiveModel) -> RowScorer | None:
    """The model's :class:`RowScorer`, built once; ``None`` if it cannot score row by row."""
    from pyrometer.predictive.fast_score import RowScorer, Unsupported

    with _loading:
        if model in _scorers:
            return _scorers[model]
    try:
        scorer: RowScorer | None = RowScorer(model)
    except Unsupported:
        scorer = None
    with _loading:
        _scorers[model] = scorer
    return scorer


def score_leads(
    model: PredictiveModel,
    leads: list[tuple[str, dict[str, Any]]],
    log: list[tuple[str, str, int]],
    now_us: int,
    fast: bool = True,
) -> list[tuple[float, list[dict[str, Any]]]]:
    """``p_convert`` and its top signed reasons for each ``(lead_id, attributes)`` as of now.

    ``log``: the leads' ``(lead_id, event, ts_us)`` rows. A few leads go through the
    model's :class:`~pyrometer.predictive.fast_score.RowScorer` (the same numbers without
    pandas); many leads, or a lead it cannot read, through the data-frame path.
    """
    from pyrometer.predictive import store_training as st

    if not leads:
        return []
    scorer = _row_scorer(model) if fast and len(leads) <= FAST_ROWS else None
    if scorer is not None:
        by_lead: dict[str, list[tuple[str, int]]] = {lead_id: [] for lead_id, _ in leads}
        for lead_id, name, ts in log:
            if lead_id in by_lead:
                by_lead[lead_id].append((name, ts))
        scored = scorer.score(
            [(attrs, by_lead[lead_id]) for lead_id, attrs in leads], now_us, TOP_FACTORS
        )
        if scored is not None:
            return [
                (p, [_factor(*f) for f in up] + [_factor(*f) for f in down])
                for p, up, down in scored
            ]
    frame = st.lead_frame([a for _, a in leads], [i for i, _ in leads], [now_us] * len(leads))
    frame = st.with_columns(frame, model)
    events = st.event_log(log) if model.events else None
    raw = model.cleaned(frame, events, source="lead")
    p = model.model.predict_proba(model.schema.design(raw))
    reasons = model.factors(frame, TOP_FACTORS, raw=raw)
    out = []
    for prob, (up, down) in zip(p, reasons, strict=True):
        factors = [_factor(*f) for f in up] + [_factor(*f) for f in down]
        out.append((float(prob), factors))
    return out


def probabilities(
    model: PredictiveModel,
    leads: list[tuple[str, dict[str, Any]]],
    log: list[tuple[str, str, int]],
    now_us: int,
) -> list[float]:
    """:func:`score_leads`' probabilities alone (no reasons: no contributions), in one
    vectorised call; what a write needs to name a lead's temperature band."""
    from pyrometer.predictive import store_training as st

    if not leads:
        return []
    scorer = _row_scorer(model) if len(leads) <= FAST_ROWS else None
    if scorer is not None:
        by_lead: dict[str, list[tuple[str, int]]] = {lead_id: [] for lead_id, _ in leads}
        for lead_id, name, ts in log:
            if lead_id in by_lead:
                by_lead[lead_id].append((name, ts))
        pairs = [(attrs, by_lead[lead_id]) for lead_id, attrs in leads]
        found = scorer.probabilities(pairs, now_us)
        if found is not None:
            return found
    frame = st.lead_frame([a for _, a in leads], [i for i, _ in leads], [now_us] * len(leads))
    frame = st.with_columns(frame, model)
    events = st.event_log(log) if model.events else None
    raw = model.cleaned(frame, events, source="lead")
    return [float(p) for p in model.model.predict_proba(model.schema.design(raw))]


def event_sums_by_lead(
    conn: Connection, model: PredictiveModel, scorer: RowScorer, ids: list[str], now_us: int
) -> dict[str, list[tuple[str, tuple[int, ...], int, float]]]:
    """Each lead's event sums per name as the database adds them up
    (:func:`pyrometer.store.models.lead_event_sums`, the windows the scorer needs), an
    empty list for a lead without events or a model without event features."""
    by_lead: dict[str, list[tuple[str, tuple[int, ...], int, float]]] = {i: [] for i in ids}
    if model.events is not None:
        windows, half_life = scorer.sum_windows, model.events.half_life_days
        for lead_id, name, counts, latest, decayed in store.lead_event_sums(
            conn, ids, now_us, windows, half_life
        ):
            by_lead[lead_id].append((name, counts, latest, decayed))
    return by_lead


def stored_probabilities(
    conn: Connection,
    model: PredictiveModel,
    leads: list[tuple[str, dict[str, Any]]],
    now_us: int,
) -> list[float | None]:
    """The probabilities of stored leads (their attributes given, their events in the
    store, this transaction's included): what a write needs to name their temperature
    bands. The row scorer takes each lead's event features from sums the database adds
    up per lead and event name (:func:`pyrometer.store.models.lead_event_sums`: a row per
    name, not per event); a model it cannot read, or a lead it cannot, goes through the
    events themselves (:func:`pyrometer.service.probability.each_probability`), ``None``
    for a lead the model cannot read at all."""
    from pyrometer.service.probability import each_probability

    ids = [lead_id for lead_id, _ in leads]
    scorer = _row_scorer(model) if len(leads) <= FAST_ROWS else None
    if scorer is not None:
        by_lead = event_sums_by_lead(conn, model, scorer, ids, now_us)
        found = scorer.probabilities_from_sums(
            [(attributes, by_lead[lead_id]) for lead_id, attributes in leads], now_us
        )
        if found is not None:
            return list(found)
    log = store.lead_event_rows(conn, ids) if model.events is not None else []
    return each_probability(model, leads, log, now_us)


def predictions(service: Service, lead_ids: list[str]) -> dict[str, dict[str, Any]]:
    """``p_convert``, ``p_convert_factors`` and the model's version for each lead under the
    active model (cached per lead until it changes or an hour passes); ``{}`` if no model
    is active. Leads the model cannot read (a feature column mistyped) get ``None``."""
    now = service.clock()
    if not lead_ids:
        return {}

    def read(conn: Connection) -> tuple[Any, dict[str, Any], dict[str, Any], list[Any]]:
        held = _active_model(service, conn)
        if held is None:
            return None, {}, {}, []
        version, _ = held
        rows = conn.execute(
            sa.select(
                store.leads.c.lead_id, store.leads.c.attributes, store.leads.c.updated_us
            ).where(store.leads.c.lead_id.in_(lead_ids))
        ).all()
        cached = store.cached_predictions(conn, lead_ids, version)
        stale = [
            r
            for r in rows
            if r.lead_id not in cached
            or cached[r.lead_id][0] != r.updated_us
            or cached[r.lead_id][3] is None  # a write computed the probability alone
            or now - cached[r.lead_id][1] > CACHE_US
        ]
        log = store.lead_event_rows(conn, [r.lead_id for r in stale]) if stale else []
        return held, {r.lead_id: r for r in stale}, cached, log

    held, stale, cached, log = service.read(read)
    if held is None:
        return {}
    version, model = held
    out = {
        lead_id: {"p_convert": p, "p_convert_factors": factors or [], "p_convert_model": version}
        for lead_id, (_, _, p, factors) in cached.items()
    }
    if stale:
        ordered = list(stale.values())
        try:
            fresh = score_leads(
                model,
                [(r.lead_id, dict(r.attributes)) for r in ordered],
                log,
                now,
            )
        except ValueError as exc:
            for r in ordered:
                out[r.lead_id] = {
                    "p_convert": None,
                    "p_convert_factors": [],
                    "p_convert_model": version,
                    "p_convert_error": str(exc),
                }
            return out
        saved = []
        for r, (p, factors) in zip(ordered, fresh, strict=True):
            out[r.lead_id] = {
                "p_convert": p,
                "p_convert_factors": factors,
                "p_convert_model": version,
            }
            saved.append((r.lead_id, int(r.updated_us), p, factors))
        service.write(lambda conn: store.save_predictions(conn, version, now, saved))
    return out


NO_MODEL: dict[str, Any] = {"p_convert": None, "p_convert_factors": [], "p_convert_model": None}


def annotate(service: Service, items: list[dict[str, Any]]) -> None:
    """Add ``p_convert``, ``p_convert_factors`` and ``p_convert_model`` to lead views (each
    with ``lead_id``); ``None`` and no factors while no model is active. When the
    playbook has probability bands, also ``p_convert_temperature``, and the lead's
    ``temperature`` is that band (as the store's, routing's and webhooks' are)."""
    if not items:
        return
    found = predictions(service, [item["lead_id"] for item in items])
    book = service.read(lambda conn: service.playbooks.active(conn)[1]) if found else None
    for item in items:
        values = found.get(item["lead_id"], NO_MODEL)
        item.update(values)
        if book is not None and book.temperature.probability is not None:
            item["p_convert_temperature"] = banded = band(book, values["p_convert"])
            if banded is not None:
                item["temperature"] = banded


def band(book: Any, p: float | None) -> str | None:
    """The playbook's ``temperature.probability`` band of a probability, if it has bands."""
    bands = book.temperature.probability
    if bands is None or p is None:
        return None
    return str(temperature_of_probability(bands, p))
