"""The Spark engine: runs the compiled plan (:mod:`pyrometer.engines.plan`) as DataFrames.

The plan says which rules each raw event name may earn and under which conditions
(:func:`plan.candidates`), which rules are capped or ``once`` (:func:`plan.limits`), and
how fit and classes are decided (:func:`plan.fit_plan`, :func:`plan.class_plan`);
:mod:`.columns` spells those as Spark columns. Then, all in the JVM:

1. Events join the small candidate table on the raw name (a broadcast join), and the
   rows that count are shuffled once, by lead.
2. Two hash aggregates on that shuffle, no sort: per (lead, cap window of a capped or
   ``once`` rule), then per lead: decayed points, events, latest activity, the latest
   lifecycle event and suppression. The cap proof settles each window without ranking
   its events (:meth:`SparkBatchScorer._proved`). This job runs when :meth:`score` is
   called, and its per-lead rows are kept (a local checkpoint).
3. Only leads with a window the proof leaves open (or two lifecycle events at one
   instant) are redone from their own events: per cap window, events in time order (ties
   by event id) get their rank's points (``plan.Limit.given``).
4. Fit over the leads, then temperature, stage and funnel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pyrometer.core.conditions import normalize_name
from pyrometer.core.fit import fit_lines
from pyrometer.core.model import EngagementLine, FitLine, ScoredLead
from pyrometer.core.playbook import Playbook, Stage, Temperature
from pyrometer.core.timeutil import check_us, to_us
from pyrometer.engines import plan
from pyrometer.engines.spark import columns
from pyrometer.engines.spark.frames import EventFrame, LeadFrame, lead_id

_CANDIDATES = T.StructType(
    [
        T.StructField("pyro_raw", T.StringType()),
        T.StructField("pyro_rule", T.IntegerType()),
        T.StructField("pyro_cond", T.IntegerType()),
        T.StructField("pyro_cand", T.IntegerType()),
        T.StructField("pyro_points", T.DoubleType()),
        T.StructField("pyro_win", T.LongType()),
        T.StructField("pyro_stage", T.StringType()),
        T.StructField("pyro_suppress", T.BooleanType()),
        T.StructField("pyro_limited", T.BooleanType()),
        T.StructField("pyro_cap", T.DoubleType()),
        T.StructField("pyro_full", T.IntegerType()),
        T.StructField("pyro_slots", T.IntegerType()),
        T.StructField("pyro_stage_code", T.IntegerType()),
    ]
)

_BROADCAST_LEADS = 1_000_000
"""Leads to redo exactly that are sent to every task, rather than joined by a shuffle."""

_STAGES = [str(stage) for stage in Stage]
_STAGE_BITS = len(_STAGES).bit_length()
"""A lifecycle event's stage, packed under its time: ``ts_us * 2**bits + code``."""

_ACTIVITY = T.StructType(
    [
        T.StructField("lead_id", T.StringType()),
        T.StructField("engagement", T.DoubleType()),
        T.StructField("events", T.LongType()),
        T.StructField("last_us", T.LongType()),
        T.StructField("explicit_stage", T.StringType()),
        T.StructField("suppressed_by_event", T.BooleanType()),
    ]
)


class SparkBatchScorer:
    """Scores event and lead DataFrames with one playbook on one Spark session."""

    def __init__(self, playbook: Playbook, spark: SparkSession):
        self.playbook = playbook
        self.spark = spark
        self.last_name_counts: dict[str | None, int] = {}
        self.last_redone = 0
        """Leads the last :meth:`activity` redid exactly (the cap proof left them open)."""
        self.last_normalised = False
        """Whether the last :meth:`activity` found a lead id not in normal form among the
        ids as written, and scored again from the normal ids."""

    # -- reading the table -----------------------------------------------------------

    def check(self, events: EventFrame, leads: bool = True) -> dict[str | None, int]:
        """Rows per raw event name, in one pass that also finds rows without a lead, an
        event or a time; such a row is an error naming the field and the row.

        ``leads=False`` leaves out the rows without a lead (the lead id's normal form
        costs this pass most of its time): :meth:`activity` finds those in its own job,
        which computes the lead ids anyway, and names the row then."""
        frame = events.frame
        bad_lead = F.col("lead_id").isNull() | (F.col("lead_id") == "")
        rows = frame.groupBy("event").agg(
            F.count(F.lit(1)).alias("n"),
            F.count(F.when(bad_lead, 1) if leads else F.lit(None)).alias("bad_lead"),
            F.count(F.when(F.col("ts_us").isNull(), 1)).alias("bad_ts"),
        )
        counts: dict[str | None, int] = {}
        bad: list[tuple[str, Column, str]] = []
        for row in rows.collect():
            counts[row["event"]] = int(row["n"])
            if row["bad_lead"]:
                bad.append(("lead_id", bad_lead, "lead_id is empty or only white space"))
            if row["bad_ts"]:
                bad.append(
                    (
                        "timestamp",
                        F.col("ts_us").isNull(),
                        "timestamp is empty, not a timestamp, or outside the accepted range",
                    )
                )
        nameless = [
            name
            for name in counts
            if name is None or name.strip() == "" or not normalize_name(name)
        ]
        if nameless:
            bad.append(
                (
                    "event",
                    F.col("event").isNull() | F.col("event").isin([n for n in nameless if n]),
                    "event is empty or has no letter or digit",
                )
            )
        if bad:
            column, where, message = bad[0]
            first = frame.filter(where).limit(1).collect()
            shown = first[0].asDict() if first else {}
            raise ValueError(
                f"events: column {column!r}: {message} (row with event_id "
                f"{shown.get('event_id')!r}, lead_id {shown.get('lead_id')!r}, event "
                f"{shown.get('event')!r})"
            )
        return counts

    def distinct(self, events: EventFrame) -> EventFrame:
        """One event per id: the first row of an id in the frame's order. Only a frame
        whose ids repeat pays for the window that keeps the first."""
        if events.unique_ids:
            return events
        repeated = (
            events.frame.filter(F.col("event_id").isNotNull())
            .groupBy(F.xxhash64("event_id").alias("h"))
            .count()
            .filter("count > 1")
            .limit(1)
            .collect()
        )
        if not repeated:
            return replace(events, unique_ids=True)
        order = events.frame.withColumn("pyro_rn", F.monotonically_increasing_id())
        first = F.row_number().over(Window.partitionBy("event_id").orderBy("pyro_rn"))
        kept = (
            order.withColumn("pyro_first", first)
            .filter(F.col("event_id").isNull() | (F.col("pyro_first") == 1))
            .drop("pyro_rn", "pyro_first")
        )
        return replace(events, frame=kept, unique_ids=True, written_ids=None)

    # -- the plan, as frames -------------------------------------------------------------

    def _joined(self, events: EventFrame, raw_names: Sequence[str], as_of_us: int) -> DataFrame:
        """Events at or before ``as_of_us`` joined to their candidate rules: one row per
        (event, rule its name may earn), or one with no rule; ``pyro_matched`` says
        whether the rule's conditions hold, ``pyro_factor`` what a point is worth."""
        limits = plan.limits(self.playbook)
        by_name = plan.terms(self.playbook, events.properties)
        cands = plan.candidates(self.playbook, by_name, raw_names)
        rows = [
            (
                c.raw,
                c.rule_id,
                c.cond_id,
                c.cand,
                c.points,
                c.window_us,
                c.meaning.stage,
                c.meaning.suppress,
                c.rule_id in limits,
                limits[c.rule_id].cap_points if c.rule_id in limits else None,
                limits[c.rule_id].full if c.rule_id in limits else None,
                limits[c.rule_id].slots if c.rule_id in limits else None,
                None if c.meaning.stage is None else _STAGES.index(c.meaning.stage),
            )
            for c in cands.rows
        ]
        table = self.spark.createDataFrame(rows, _CANDIDATES)
        cond = F.col("pyro_cond")
        matched: Column = F.col("pyro_rule").isNotNull()
        if len(cands.conditions) > 1:
            tests = F.when(cond == 0, F.lit(True))
            for i, match in enumerate(cands.conditions):
                if i:
                    tests = tests.when(cond == i, columns.match(match, events.properties))
            matched = matched & F.coalesce(tests, F.lit(False))
        decay = self.playbook.decay
        return (
            events.frame.filter(F.col("ts_us") <= as_of_us)
            .join(F.broadcast(table), F.col("event") == F.col("pyro_raw"))
            .withColumn("pyro_matched", matched)
            .withColumn("pyro_factor", columns.factor(decay, "ts_us", as_of_us))
        )

    @staticmethod
    def _window(joined: DataFrame) -> DataFrame:
        """The cap window of each row of a capped rule (0: the lead's whole life)."""
        win = F.col("pyro_win")
        floored = F.expr("(ts_us - pmod(ts_us, pyro_win)) div pyro_win")
        return joined.withColumn("pyro_w", F.when(win.isNull(), F.lit(0)).otherwise(floored))

    @staticmethod
    def _ranked(limited: DataFrame) -> DataFrame:
        """Rows of capped rules with the points their rank in the window gives."""
        rank = F.row_number().over(
            Window.partitionBy("lead_id", "pyro_rule", "pyro_w").orderBy("ts_us", "event_id")
        )
        return limited.withColumn(
            "pyro_given", columns.given(F.col("pyro_points"), F.col("pyro_cap"), rank - 1)
        )

    def activity(
        self,
        events: EventFrame,
        as_of_us: int,
        say: Callable[[str], None] | None = None,
        counts: dict[str | None, int] | None = None,
    ) -> DataFrame:
        """Per lead: engagement, events, latest activity, explicit stage, suppression.
        ``counts``: :meth:`check`'s, when the caller has them (then ``events`` must be
        :meth:`distinct` already).

        Runs one job now (one shuffle by lead, two aggregates: :meth:`_proved`) and keeps
        its per-lead rows; the few leads the cap proof does not settle are then redone
        exactly (:meth:`_exact`) from their own events only."""
        say = say or (lambda _stage: None)
        checked = counts is not None
        if counts is None:
            counts = self.check(events, leads=False)
            events = self.distinct(events)
        self.last_name_counts = counts
        raw_names = [name for name in counts if name is not None]
        say("Scoring events")

        def proved_of(source: EventFrame) -> DataFrame:
            return self._proved(self._parted(source, raw_names, as_of_us)).localCheckpoint()

        self.last_normalised = False
        if events.written_ids is None:
            proved = proved_of(events)
        else:
            # By the ids as written; a lead whose id is not in normal form (white space
            # to trim, a character to compose, or none) makes it all again from the
            # normal ids (rare: nearly every file's ids are normal already).
            written = replace(events, frame=events.written_ids, written_ids=None)
            proved = proved_of(written)
            as_is = F.col("lead_id")
            if proved.filter(as_is.isNull() | (as_is != lead_id(as_is))).limit(1).count():
                self.last_normalised = True
                events = replace(events, written_ids=None)
                proved = proved_of(events)
            else:
                events = written
        if not checked:
            # Rows without a lead make one row of their own here: the whole check then
            # names the first of them (only a table that has one pays for it).
            nobody = F.col("lead_id").isNull() | (F.col("lead_id") == "")
            if proved.filter(nobody).limit(1).count():
                self.check(events)
        columns_out = [
            "lead_id",
            "engagement",
            F.col("events").cast("long").alias("events"),
            "last_us",
            "explicit_stage",
            F.col("suppressed").alias("suppressed_by_event"),
        ]
        unsettled = proved.filter("unsettled").select("lead_id")
        redo = self.last_redone = unsettled.count()
        if not redo:
            return proved.select(*columns_out)
        say("Stages and caps")
        leads = F.broadcast(unsettled) if redo <= _BROADCAST_LEADS else unsettled
        only = replace(events, frame=events.frame.join(leads, "lead_id", "left_semi"))
        exact = self._exact(self._parted(only, raw_names, as_of_us))
        return proved.filter(~F.col("unsettled")).select(*columns_out).unionByName(exact)

    def _parted(self, events: EventFrame, raw_names: Sequence[str], as_of_us: int) -> DataFrame:
        """The rows that say something (an event's first row, and every rule it earns),
        with only the columns the passes read, shuffled once, by lead: a lead's rows,
        hence its cap windows, are all in one partition, and nothing shuffles again."""
        joined = self._window(self._joined(events, raw_names, as_of_us))
        first = F.col("pyro_cand") == 0
        return (
            joined.filter(first | F.col("pyro_matched"))
            .select(
                "lead_id",
                "ts_us",
                "event_id",
                first.alias("pyro_first"),
                "pyro_matched",
                "pyro_limited",
                "pyro_rule",
                "pyro_w",
                "pyro_points",
                "pyro_cap",
                "pyro_full",
                "pyro_slots",
                "pyro_factor",
                "pyro_stage",
                "pyro_stage_code",
                "pyro_suppress",
            )
            .repartition("lead_id")
        )

    @staticmethod
    def _proved(parted: DataFrame) -> DataFrame:
        """Per lead, with no sort: two hash aggregates on the one shuffle by lead.

        First per (lead, cap window of a capped or ``once`` rule), and one group per lead
        for the rest; then per lead. The cap proof settles a window: one that holds no
        more events than earn the rule's whole points (``plan.Limit.full``) is not
        capped, so its points are the plain sum. A window past that bound has a closed
        form too when its events' points all decay alike (it lies in one decay step: the
        first ``min(n * points, cap)`` are given), or when only its first event gets
        points (``once``: the earliest event, whose points decayed most). The latest
        lifecycle event is the greatest ``time * 2**bits + stage``; a tie in time between
        two stages needs the event ids. A lead with a window or a stage none of these
        settle is ``unsettled``, and its row is not to be used."""
        limited = F.col("pyro_matched") & F.col("pyro_limited")
        staged = F.col("pyro_first") & F.col("pyro_stage_code").isNotNull()
        shift = F.lit(1 << _STAGE_BITS)
        code = F.col("pyro_stage_code").cast("long")
        top = F.lit((1 << _STAGE_BITS) - 1)

        def capped(column: str) -> Column:
            return F.when(limited, F.col(column))

        windows = parted.groupBy(
            "lead_id",
            F.when(limited, F.col("pyro_rule")).otherwise(-1).alias("rule"),
            F.when(limited, F.col("pyro_w")).otherwise(0).alias("w"),
        ).agg(
            F.sum(
                F.when(F.col("pyro_matched") & ~F.col("pyro_limited"), F.col("pyro_points"))
                * F.col("pyro_factor")
            ).alias("free"),
            F.count(F.when(F.col("pyro_first"), 1)).alias("events"),
            F.max("ts_us").alias("last_us"),
            F.max(F.col("pyro_first") & F.col("pyro_suppress")).alias("suppressed"),
            F.max(F.when(staged, F.col("ts_us") * shift + code)).alias("stage_hi"),
            F.max(F.when(staged, F.col("ts_us") * shift + (top - code))).alias("stage_lo"),
            F.count(F.when(limited, 1)).alias("n"),
            F.sum(capped("pyro_factor")).alias("factors"),
            F.min(capped("pyro_factor")).alias("lo"),
            F.max(capped("pyro_factor")).alias("hi"),
            F.max(capped("pyro_points")).alias("points"),
            F.max(capped("pyro_cap")).alias("cap"),
            F.max(capped("pyro_full")).alias("full"),
            F.max(capped("pyro_slots")).alias("slots"),
        )
        points, cap, n = F.col("points"), F.col("cap"), F.col("n")
        size = F.abs(points)
        sign = F.when(points >= 0, F.lit(1.0)).otherwise(F.lit(-1.0))
        settled = (
            F.when(n <= F.col("full"), points * F.col("factors"))
            .when(
                F.col("lo") == F.col("hi"),
                sign * F.greatest(F.lit(0.0), F.least(n.cast("double") * size, cap)) * F.col("lo"),
            )
            .when(F.col("slots") == 1, columns.given(points, cap, F.lit(0)) * F.col("lo"))
        )
        per_lead = windows.groupBy("lead_id").agg(
            F.sum("free").alias("free"),
            F.sum(F.when(n > 0, settled)).alias("settled"),
            F.max((n > 0) & settled.isNull()).alias("open_window"),
            F.sum("events").alias("events"),
            F.max("last_us").alias("last_us"),
            F.coalesce(F.max("suppressed"), F.lit(False)).alias("suppressed"),
            F.max("stage_hi").alias("stage_hi"),
            F.max("stage_lo").alias("stage_lo"),
        )
        hi_code = F.pmod(F.col("stage_hi"), shift)
        lo_code = top - F.pmod(F.col("stage_lo"), shift)
        stage = F.lit(None).cast("string")
        for i, name in enumerate(_STAGES):
            stage = F.when(hi_code == i, F.lit(name)).otherwise(stage)
        return per_lead.select(
            "lead_id",
            (
                F.coalesce(F.col("free"), F.lit(0.0)) + F.coalesce(F.col("settled"), F.lit(0.0))
            ).alias("engagement"),
            "events",
            "last_us",
            stage.alias("explicit_stage"),
            "suppressed",
            (F.col("open_window") | F.coalesce(hi_code != lo_code, F.lit(False))).alias(
                "unsettled"
            ),
        )

    def _exact(self, parted: DataFrame) -> DataFrame:
        """:meth:`activity`'s rows for leads the proof left open: every capped window
        ranked by time (ties by event id), the latest lifecycle event by (time, id)."""
        event_row = F.col("pyro_first")
        per_lead = parted.groupBy("lead_id").agg(
            F.sum(
                F.when(F.col("pyro_matched") & ~F.col("pyro_limited"), F.col("pyro_points"))
                * F.col("pyro_factor")
            ).alias("free"),
            F.count(F.when(event_row, 1)).alias("events"),
            F.max("ts_us").alias("last_us"),
            F.max(
                F.when(
                    event_row & F.col("pyro_stage").isNotNull(),
                    F.struct("ts_us", "event_id", "pyro_stage"),
                )
            ).alias("lifecycle"),
            F.coalesce(F.max(event_row & F.col("pyro_suppress")), F.lit(False)).alias("suppressed"),
        )
        capped = (
            self._ranked(parted.filter(F.col("pyro_matched") & F.col("pyro_limited")))
            .groupBy("lead_id")
            .agg(F.sum(F.col("pyro_given") * F.col("pyro_factor")).alias("capped"))
        )
        return per_lead.join(capped, "lead_id", "left").select(
            "lead_id",
            (F.coalesce(F.col("free"), F.lit(0.0)) + F.coalesce(F.col("capped"), F.lit(0.0))).alias(
                "engagement"
            ),
            F.col("events").cast("long").alias("events"),
            "last_us",
            F.col("lifecycle.pyro_stage").alias("explicit_stage"),
            F.col("suppressed").alias("suppressed_by_event"),
        )

    def _attributes(self, leads: LeadFrame) -> dict[str, str]:
        """Lead columns as the rules read them: the playbook's attribute aliases resolved."""
        return self.playbook.aliases.resolve_attributes(leads.attributes)

    # -- public ----------------------------------------------------------------------

    def score(
        self,
        events: EventFrame | None,
        leads: LeadFrame | None,
        as_of_us: int,
        progress: Callable[[str], None] | None = None,
        counts: dict[str | None, int] | None = None,
    ) -> DataFrame:
        """One row per lead (:data:`OUTPUT_COLUMNS`), as a DataFrame. The checks, the name
        counts (unless ``counts`` says they ran) and the per-lead aggregate of the events
        run now (:meth:`activity`); fit, classes and the leads' join stay lazy."""
        say = progress or (lambda _stage: None)
        act = (
            self.activity(events, as_of_us, say, counts)
            if events is not None
            else self.spark.createDataFrame([], _ACTIVITY)
        )
        fit_plan = plan.fit_plan(
            self.playbook, self._attributes(leads) if leads is not None else {}
        )
        if leads is not None:
            say("Scoring fit")
            fit, suppressed = columns.fit(fit_plan, self._attributes(leads))
            fits = leads.frame.select(
                "lead_id", fit.alias("fit"), suppressed.alias("suppressed_by_attr")
            )
            joined = fits.join(act, "lead_id", "full_outer")
        else:
            joined = act.withColumn("fit", F.lit(None).cast("double")).withColumn(
                "suppressed_by_attr", F.lit(None).cast("boolean")
            )
        say("Classifying")
        base = joined.select(
            "lead_id",
            F.coalesce(F.col("fit"), F.lit(float(fit_plan.default_fit))).alias("fit"),
            F.coalesce(F.col("engagement"), F.lit(0.0)).alias("engagement"),
            "explicit_stage",
            (
                F.coalesce(F.col("suppressed_by_attr"), F.lit(fit_plan.default_suppressed))
                | F.coalesce(F.col("suppressed_by_event"), F.lit(False))
            ).alias("suppressed"),
            "last_us",
            F.coalesce(F.col("events"), F.lit(0)).cast("long").alias("events"),
        )
        temperature, stage, funnel = columns.classes(plan.class_plan(self.playbook))
        staged = base.withColumn("temperature", temperature).withColumn("stage", stage)
        return staged.select(
            "lead_id",
            (F.col("fit") + F.col("engagement")).alias("score"),
            "fit",
            "engagement",
            "temperature",
            "stage",
            funnel.alias("funnel"),
            "suppressed",
            F.timestamp_micros(F.col("last_us")).alias("last_activity"),
            "events",
        )

    def collect(
        self,
        events: EventFrame | None,
        leads: LeadFrame | None,
        as_of_us: int,
        counts: dict[str | None, int] | None = None,
    ) -> dict[str, ScoredLead]:
        """Every lead scored, as Python objects (for tests and small tables)."""
        frame = self.score(events, leads, as_of_us, counts=counts).withColumn(
            "last_us", F.unix_micros("last_activity")
        )
        return {row["lead_id"]: _scored(row) for row in frame.collect()}

    def ledger(
        self,
        events: EventFrame,
        as_of_us: int,
        lead_ids: Sequence[str],
        counts: dict[str | None, int] | None = None,
    ) -> DataFrame:
        """``explain``'s ledger for ``lead_ids``: every matched (event, rule), its points
        (its rank's, for a capped rule) and their value at ``as_of_us``."""
        if counts is None:
            counts = self.check(events)
            events = self.distinct(events)
        raw_names = [name for name in counts if name is not None]
        wanted = F.col("lead_id").isin(list(lead_ids))
        only = replace(events, frame=events.frame.filter(wanted), written_ids=None)
        joined = self._window(self._joined(only, raw_names, as_of_us)).filter("pyro_matched")
        given = F.when(F.col("pyro_limited"), F.col("pyro_given")).otherwise(F.col("pyro_points"))
        return (
            self._ranked(joined)
            .withColumn("points", given)
            .select(
                "lead_id",
                "pyro_rule",
                F.col("event_id").cast("string").alias("event_id"),
                "event",
                "ts_us",
                "points",
                (F.col("points") * F.col("pyro_factor")).alias("value"),
            )
        )

    def explain(
        self,
        events: EventFrame | None,
        leads: LeadFrame | None,
        as_of_us: int,
        lead_ids: Sequence[str],
    ) -> dict[str, ScoredLead]:
        """Scores of ``lead_ids`` with their full ledgers (every rule, every event)."""
        wanted = list(lead_ids)

        def only(frame: DataFrame) -> DataFrame:
            return frame.filter(F.col("lead_id").isin(wanted))

        counts = None
        if events is not None:
            # Checked and made distinct over the whole table once, then the leads' rows.
            counts = self.check(events)
            events = self.distinct(events)
            events = replace(events, frame=only(events.frame), written_ids=None)
        scored = self.collect(
            events,
            replace(leads, frame=only(leads.frame)) if leads is not None else None,
            as_of_us,
            counts,
        )
        rules = self.playbook.engagement
        lines: dict[str, list[EngagementLine]] = {}
        if events is not None:
            rows = self.ledger(events, as_of_us, wanted, counts).collect()
            for row in sorted(
                rows, key=lambda r: (r["lead_id"], r["ts_us"], r["event_id"], r["pyro_rule"])
            ):
                lines.setdefault(row["lead_id"], []).append(
                    EngagementLine(
                        rules[row["pyro_rule"]].name,
                        row["event_id"],
                        normalize_name(row["event"]),
                        row["ts_us"],
                        row["points"],
                        row["value"],
                    )
                )
        fit_rules = self._fit_rules_matched(leads, wanted)
        empty = {line.rule for line in fit_lines(self.playbook, {})}  # a lead without a row
        out = {}
        for lead, lead_score in scored.items():
            names = fit_rules.get(lead, empty)
            fits = tuple(FitLine(r.name, r.points) for r in self.playbook.fit if r.name in names)
            out[lead] = replace(
                lead_score, engagement_lines=tuple(lines.get(lead, ())), fit_lines=fits
            )
        return out

    def _fit_rules_matched(self, leads: LeadFrame | None, wanted: list[str]) -> dict[str, set[str]]:
        if leads is None or not wanted:
            return {}
        attributes = self._attributes(leads)
        fit_plan = plan.fit_plan(self.playbook, attributes)
        if not fit_plan.terms:
            return {}
        hits = [
            columns.all_fields(term.where, attributes).alias(f"r{i}")
            for i, term in enumerate(fit_plan.terms)
        ]
        rows = leads.frame.filter(F.col("lead_id").isin(wanted)).select("lead_id", *hits)
        return {
            row[0]: {fit_plan.terms[i].name for i, hit in enumerate(row[1:]) if hit}
            for row in rows.collect()
        }


def score(
    events: DataFrame | None,
    leads: DataFrame | None,
    playbook: Playbook,
    as_of: datetime | str | int,
    *,
    lead_id_column: str | None = None,
) -> DataFrame:
    """Score a data engineer's own DataFrames in their own Spark job: one row per lead,
    with the columns of the DuckDB engine's output (:data:`OUTPUT_COLUMNS`), as of
    ``as_of`` (a datetime, ISO-8601 text, or epoch microseconds; naive means UTC).

    ``events`` has a lead id, an event name and a time (``lead_id``/``user_id``…,
    ``event``/``event_name``…, ``timestamp``/``occurred_at``…), optionally ``event_id``;
    its other columns are properties. ``leads`` has a lead id and attributes.

    The events are aggregated per lead when this is called (one Spark job, its per-lead
    rows kept as a local checkpoint, which Spark's cleaner frees once the returned frame
    is dropped); the rest is lazy.
    """
    from pyrometer.engines.spark.frames import events_frame, leads_frame

    source = events if events is not None else leads
    if source is None:
        raise ValueError("give events, leads, or both")
    scorer = SparkBatchScorer(playbook, source.sparkSession)
    return scorer.score(
        events_frame(events, lead_id_column) if events is not None else None,
        leads_frame(leads, lead_id_column) if leads is not None else None,
        check_us(to_us(as_of)),
    )


def _scored(row: object) -> ScoredLead:
    return ScoredLead(
        lead_id=row["lead_id"],  # type: ignore[index]
        fit=row["fit"],  # type: ignore[index]
        engagement=row["engagement"],  # type: ignore[index]
        temperature=Temperature(row["temperature"]),  # type: ignore[index]
        stage=Stage(row["stage"]),  # type: ignore[index]
        funnel=row["funnel"],  # type: ignore[index]
        suppressed=bool(row["suppressed"]),  # type: ignore[index]
        last_activity_us=row["last_us"],  # type: ignore[index]
        event_count=int(row["events"]),  # type: ignore[index]
    )
