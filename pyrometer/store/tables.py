"""The store's tables, in SQLAlchemy Core: one definition for SQLite and PostgreSQL.

Core rather than the ORM because ingest is a few bulk statements per request and the
lead's scoring state is a JSON document the pure core reads and writes; objects with
identity maps would only add work. Times are integer UTC microseconds, as in the core.

The migrations in ``pyrometer/store/migrations`` create exactly these tables; a test
compares the two so they cannot drift.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

# Who a lead is and where it stands. ``state`` is the incremental scorer's LeadState as
# JSON; the columns after it are copies kept for filtering and sorting in SQL.
leads = sa.Table(
    "leads",
    metadata,
    sa.Column("lead_id", sa.String(200), primary_key=True),
    sa.Column("attributes", sa.JSON, nullable=False),
    sa.Column("source", sa.String(200)),
    sa.Column("owner", sa.String(200)),
    sa.Column("consent", sa.Boolean),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("updated_us", sa.BigInteger, nullable=False),
    sa.Column("playbook_version", sa.Integer, nullable=False),
    sa.Column("state", sa.JSON, nullable=False),
    sa.Column("fit", sa.Float, nullable=False),
    sa.Column("anchor_step", sa.BigInteger),
    sa.Column("engagement_at_anchor", sa.Float, nullable=False),
    sa.Column("temperature", sa.String(20), nullable=False),
    sa.Column("stage", sa.String(20), nullable=False),
    sa.Column("last_activity_us", sa.BigInteger),
    sa.Column("event_count", sa.Integer, nullable=False),
    # Decay transitions at or before this time are in ``transitions`` already.
    sa.Column("decay_checked_us", sa.BigInteger, nullable=False),
    # When decay alone next changes temperature or stage: the scheduler's wake-up list.
    sa.Column("next_decay_us", sa.BigInteger),
    sa.Index(None, "next_decay_us"),
    sa.Index(None, "temperature"),
    sa.Index(None, "stage"),
    sa.Index(None, "last_activity_us"),
)

# The event log. Rows are never deleted or changed, except ``lead_id`` when an identify
# call reveals that an anonymous visitor is a known lead (``subject`` keeps who sent it).
events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("event_id", sa.String(200), nullable=False, unique=True),
    sa.Column("lead_id", sa.String(200), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("ts_us", sa.BigInteger, nullable=False),
    sa.Column("properties", sa.JSON, nullable=False),
    sa.Column("received_us", sa.BigInteger, nullable=False),
    # By lead and time, with the name: a lead's events read by their name and time (its
    # model features, a write's sums) never visit the table (migration 0015).
    sa.Index(None, "lead_id", "ts_us", "name"),
)

transitions = sa.Table(
    "transitions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("lead_id", sa.String(200), nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("old", sa.String(20), nullable=False),
    sa.Column("new", sa.String(20), nullable=False),
    sa.Column("cause", sa.String(250), nullable=False),
    sa.Column("recorded_us", sa.BigInteger, nullable=False),
    sa.Index(None, "lead_id", "at_us"),
    sa.Index(None, "kind", "new", "at_us"),
)

# An anonymous id (a browser before it filled in a form) belongs to a lead from now on.
identities = sa.Table(
    "identities",
    metadata,
    sa.Column("anonymous_id", sa.String(200), primary_key=True),
    sa.Column("lead_id", sa.String(200), nullable=False),
    sa.Column("linked_us", sa.BigInteger, nullable=False),
)

# Every playbook ever published; the highest version is the one in force.
playbooks = sa.Table(
    "playbooks",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("yaml", sa.Text, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("scope", sa.String(20), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False),
    # When a server last let the key in, to the minute (each process writes it once a
    # minute); NULL: never used.
    sa.Column("last_used_us", sa.BigInteger),
)

# A lead erased on request (GDPR): when, who asked and how much went, never who it was
# (no id, no hash of one: a hash of an e-mail address can be matched against a list).
erasures = sa.Table(
    "erasures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("erased_us", sa.BigInteger, nullable=False),
    sa.Column("key_id", sa.Integer),  # the API key that asked; NULL from the command line
    sa.Column("requested_by", sa.String(200), nullable=False),
    sa.Column("events", sa.Integer, nullable=False),
    sa.Column("identities", sa.Integer, nullable=False),
    sa.Column("transitions", sa.Integer, nullable=False),
)

# Background work (rescoring after a publish), with progress readable through the API.
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("playbook_version", sa.Integer),
    sa.Column("done", sa.Integer, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("finished_us", sa.BigInteger),
    sa.Column("error", sa.Text),
    sa.Column("result", sa.JSON),  # what a finished job found (a training job's model, warnings)
)

# Secrets the server makes for itself once and every process shares, such as the key that
# signs list cursors (pyrometer.store.secrets).
server_secrets = sa.Table(
    "server_secrets",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
)

# Leads that only an ``anonymousId`` has named so far (a browser before it filled in a
# form). Only these may be folded into another lead by ``identify``/``alias``; a lead any
# ``userId`` has named is known, and merging two known leads is the admin's explicit call.
# Leads of stores older than this table count as known (the safe side).
visitors = sa.Table(
    "visitors",
    metadata,
    sa.Column("lead_id", sa.String(200), primary_key=True),
)

# The message ids of ``identify`` and ``alias`` calls already applied (events keep theirs
# in ``events.event_id``), so a resent one changes nothing.
identity_messages = sa.Table(
    "identity_messages",
    metadata,
    sa.Column("message_id", sa.String(200), primary_key=True),
    sa.Column("lead_id", sa.String(200), nullable=False),
    sa.Column("received_us", sa.BigInteger, nullable=False),
)

# Who asked for what, when: the admin's explicit merges of two known leads.
audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("actor", sa.String(250), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("lead_id", sa.String(200), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Index(None, "lead_id", "at_us"),
)

# The sales reps routing may give leads to: ``rep`` is ``pyrometer.routing.reps.Rep`` as
# plain data (``Rep.to_dict()``), so a new optional field of a rep needs no migration.
reps = sa.Table(
    "reps",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("rep", sa.JSON, nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("updated_us", sa.BigInteger, nullable=False),
)

RUNNING_CLOCK = sa.text(
    "ended_us IS NULL AND first_touch_us IS NULL AND breached_us IS NULL AND clock_us IS NOT NULL"
)

# Who routing (or a person) gave a lead to, one row per assignment, and the lead's
# speed-to-lead clock: ``clock_us`` is the routing transition's own time (the clock moves
# with the lead to a new owner, it does not restart), ``sla_due_us`` when the first touch
# is due, ``first_touch_us`` when it came. ``counts``: the row counts against the rep's
# capacity (a new lead for them). ``ended_us``: a later assignment replaced this one.
assignments = sa.Table(
    "assignments",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("lead_id", sa.String(200), nullable=False),
    sa.Column("rep_id", sa.String(200)),  # NULL: the unassigned queue
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("rule", sa.String(20), nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("cause", sa.String(250), nullable=False),
    sa.Column("counts", sa.Boolean, nullable=False),
    sa.Column("clock_us", sa.BigInteger),
    sa.Column("sla_due_us", sa.BigInteger),
    sa.Column("first_touch_us", sa.BigInteger),
    sa.Column("breached_us", sa.BigInteger),
    sa.Column("ended_us", sa.BigInteger),
    sa.Column("recorded_us", sa.BigInteger, nullable=False),
    sa.Index(None, "lead_id", "at_us"),
    sa.Index(None, "rep_id", "at_us"),
    # Only the clocks that run and have not breached: the SLA watcher's scan stays as
    # small as the leads waiting now, not every assignment ever made.
    sa.Index(None, "sla_due_us", sqlite_where=RUNNING_CLOCK, postgresql_where=RUNNING_CLOCK),
)

# Sales touches: a call, e-mail, meeting or note by a rep, from the API or from a tracked
# ``sales_touch`` event (``event_id``), which stops the lead's speed-to-lead clock.
touches = sa.Table(
    "touches",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("lead_id", sa.String(200), nullable=False),
    sa.Column("rep_id", sa.String(200)),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("outcome", sa.Text),
    sa.Column("event_id", sa.String(200), unique=True),
    sa.Column("recorded_us", sa.BigInteger, nullable=False),
    sa.Index(None, "lead_id", "at_us"),
)

# Webhook endpoints: where notifications go, which event types, and the Standard Webhooks
# secret (``whsec_...``) that signs them, kept to sign each delivery.
webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("events", sa.JSON, nullable=False),
    sa.Column("secret", sa.String(200), nullable=False),
    sa.Column("description", sa.String(500)),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("deleted_us", sa.BigInteger),
)

# The transactional outbox: one row per notification per webhook, written in the same
# transaction as the transition that caused it, sent by the delivery worker.
# ``message_id`` is the ``webhook-id`` header, the same on every retry; ``payload`` the
# exact JSON text that is signed and sent. ``status``: pending, delivered or dead;
# ``next_attempt_us``: when a pending row is due (a worker that claims it moves this past
# its lease, so a killed worker's rows come due again).
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("webhook_id", sa.String(40), nullable=False),
    sa.Column("message_id", sa.String(60), nullable=False),
    sa.Column("event_type", sa.String(40), nullable=False),
    sa.Column("lead_id", sa.String(200)),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_us", sa.BigInteger, nullable=False),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("delivered_us", sa.BigInteger),
    sa.Index(None, "status", "next_attempt_us"),
    sa.Index(None, "webhook_id", "id"),
    sa.Index(None, "lead_id"),
)

# People who sign in to the dashboard (API keys stay for machines). ``email`` is stored
# lower-cased; ``password_hash`` is argon2id; ``must_change``: the password was generated
# and must be replaced at the next sign-in. ``session_version`` is in every session cookie:
# raising it (a new password) ends the user's other sessions. ``rep_id``: the routing rep
# whose queue a ``rep`` user sees.
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("rep_id", sa.String(200)),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("must_change", sa.Boolean, nullable=False),
    sa.Column("session_version", sa.Integer, nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("last_sign_in_us", sa.BigInteger),
)

# Nurture (issue #17). An enrolment is one lead in one sequence: ``step`` is the index of
# the next action, ``next_due_us`` when it is due (a runner that claims it moves this past
# its lease, so a killed runner's enrolments come due again); ``status`` active, completed
# or exited (``exit_reason`` says why).
nurture_enrolments = sa.Table(
    "nurture_enrolments",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("lead_id", sa.String(200), nullable=False),
    sa.Column("sequence", sa.String(80), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("step", sa.Integer),
    sa.Column("next_due_us", sa.BigInteger),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("enrolled_us", sa.BigInteger, nullable=False),
    sa.Column("ended_us", sa.BigInteger),
    sa.Column("exit_reason", sa.String(80)),
    sa.Column("cause", sa.String(120), nullable=False),
    sa.Index(None, "status", "next_due_us"),
    # A lead is in a sequence once at a time: two writers enrolling it at once (ingest and
    # the sweep of standing conditions) make one enrolment, the other insert does nothing.
    # One index by lead serves that and the reads of a lead's enrolments (each enrolment
    # written in ingest updates it alone, not a second index by lead): the slot is 0 for
    # the active enrolment, an ended one's own id (migration 0014). Spelled as PostgreSQL
    # prints it back, line breaks included, so comparing the store with these models
    # (alembic) finds them equal.
    sa.Index(
        "uq_nurture_enrolments_lead",
        "lead_id",
        "sequence",
        sa.text("(\nCASE\n    WHEN status = 'active' THEN 0\n    ELSE id\nEND)"),
        unique=True,
    ),
)

# Each action an enrolment ran (or tried): one row per enrolment and step, ``key``
# ``"<enrolment>:<step>"`` unique, so a crash and restart finds the row it planned and
# never sends the step twice. ``status``: planned (an e-mail not yet sent), sent,
# written (dry run), skipped (no SMTP configured), done (a task or webhook), failed.
# ``opened_us`` and ``clicked_us``: the first open and click it reported back.
nurture_steps = sa.Table(
    "nurture_steps",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("key", sa.String(40), nullable=False, unique=True),
    sa.Column("enrolment_id", sa.BigInteger, nullable=False),
    sa.Column("lead_id", sa.String(200), nullable=False),
    sa.Column("sequence", sa.String(80), nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(12), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("variant", sa.Integer),
    sa.Column("subject", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("planned_us", sa.BigInteger, nullable=False),
    sa.Column("done_us", sa.BigInteger),
    sa.Column("opened_us", sa.BigInteger),
    sa.Column("clicked_us", sa.BigInteger),
    sa.Index(None, "lead_id", "done_us"),
    sa.Index(None, "sequence", "step"),
)

# Per-channel do-not-contact with a reason (unsubscribed, bounced, complained, manual);
# channel ``*`` blocks every channel.
contact_blocks = sa.Table(
    "contact_blocks",
    metadata,
    sa.Column("lead_id", sa.String(200), primary_key=True),
    sa.Column("channel", sa.String(20), primary_key=True),
    sa.Column("reason", sa.String(20), nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
)

# Conversion models trained from the store's own outcomes (issue #14), numbered from 1.
# ``artifact`` is the safe model file (LightGBM's text format and JSON; never pickle);
# ``metrics`` are its figures on the most recent outcomes it was validated on. At most
# one row is ``active``.
models = sa.Table(
    "models",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("job_id", sa.Integer),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("activated_us", sa.BigInteger),
    sa.Column("outcomes", sa.Integer, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("artifact", sa.LargeBinary, nullable=False),
)

# Each lead's probability under a model, cached: computed when a lead is read or by the
# sweep after its events or attributes changed (``lead_updated_us`` is the lead's
# ``updated_us`` it was computed from). Kept out of ``leads`` so ingest never waits on it.
lead_predictions = sa.Table(
    "lead_predictions",
    metadata,
    sa.Column("lead_id", sa.String(200), primary_key=True),
    sa.Column("model_version", sa.Integer, nullable=False),
    sa.Column("lead_updated_us", sa.BigInteger, nullable=False),
    sa.Column("p_convert", sa.Float, nullable=False),
    sa.Column("computed_us", sa.BigInteger, nullable=False),
    sa.Column("factors", sa.JSON, nullable=False),
    sa.Index("ix_lead_predictions_p_convert", "p_convert"),
)
