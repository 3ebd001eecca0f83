"""The compiled plan on its own: condition trees and the key table, without an engine.

The trees are checked against :mod:`pyrometer.core.conditions` by a small interpreter
(:func:`holds`), and the key table against :meth:`Playbook.rules_matching`, on the random
playbooks and events of ``test_equivalence``: what any engine reads from the plan is what
the reference means.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import pytest
from conftest import PASS1, batch_score
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_equivalence import DAY_US, START_US, URLS, assert_same, playbooks, streams

from pyrometer.core.conditions import (
    FALSE_TEXTS,
    TRUE_TEXTS,
    Condition,
    Where,
    as_number,
    as_text,
)
from pyrometer.core.model import Event
from pyrometer.core.playbook import Playbook
from pyrometer.core.reference import score_reference
from pyrometer.engines import plan
from pyrometer.engines.cap_proof import ProofLayout
from pyrometer.engines.plan.conditions import (
    ALWAYS,
    AllFields,
    AnyEquals,
    Compare,
    Contains,
    EqualsFlag,
    EqualsNumber,
    EqualsText,
    FieldCondition,
    IsMissing,
    Match,
    Negated,
    Ref,
    Regex,
    ValueTest,
    ValueTests,
    compile_condition,
    compile_where,
    negation,
    reuse,
)

MISSING = ("", "select", "n/a")

# -- an interpreter of the trees, as an engine would run them ---------------------------


def _test(test: ValueTest, value: Any) -> bool:
    text = as_text(value)
    assert text is not None
    if isinstance(test, EqualsFlag):
        return text.strip(" ").lower() in (TRUE_TEXTS if test.value else FALSE_TEXTS)
    if isinstance(test, EqualsNumber):
        return as_number(value) == test.value
    if isinstance(test, EqualsText):
        return text.strip(" ").lower() == test.value.strip(" ").lower()
    if isinstance(test, AnyEquals):
        return any(_test(item, value) for item in test.tests)
    if isinstance(test, Contains):
        return any(needle.lower() in text.lower() for needle in test.needles)
    if isinstance(test, Regex):
        return re.search(test.pattern, text, re.IGNORECASE) is not None
    assert isinstance(test, Compare)
    number = as_number(value)
    return (
        number is not None
        and {
            ">": number > test.bound,
            ">=": number >= test.bound,
            "<": number < test.bound,
            "<=": number <= test.bound,
        }[test.op]
    )


def _field(cond: FieldCondition, value: Any, columns: Mapping[int, bool]) -> bool:
    text = as_text(value)
    missing = text is None or text.strip(" ").lower() in cond.missing_values
    for part in cond.parts:
        if isinstance(part, IsMissing):
            ok = missing == part.want
        elif isinstance(part, Negated):
            inner = part.inner
            ok = not (
                columns[inner.bit] if isinstance(inner, Ref) else _field(inner, value, columns)
            )
        else:
            assert isinstance(part, ValueTests)
            # As an engine runs it: the missing check only where the plan keeps it (NULL
            # fails every test either way).
            ok = (not (missing and part.check_missing)) and (
                text is not None and all(_test(t, value) for t in part.tests)
            )
        if not ok:
            return False
    return True


def holds(
    match: Match, record: Mapping[str, Any], columns: Mapping[int, bool] | None = None
) -> bool:
    """Whether ``match`` holds for a record (normalised names); ``columns``: the values of
    the conditions a ``Ref`` reads."""
    columns = columns or {}
    return any(
        columns[where.bit]
        if isinstance(where, Ref)
        else all(
            _field(c, None if c.field is None else record.get(c.field), columns)
            for c in where.conditions
        )
        for where in match.wheres
    )


# -- condition trees -----------------------------------------------------------------------


def test_negation_is_found_by_structure() -> None:
    pricing = Match(
        (compile_where(Where.model_validate({"url": {"contains": "/pricing"}}), {"url"}, MISSING),)
    )
    other = Match(
        (
            compile_where(
                Where.model_validate({"url": {"not": {"contains": "/pricing"}}}), {"url"}, MISSING
            ),
        )
    )
    assert negation(pricing) == other
    assert negation(other) != pricing  # `not: {not: ...}` is not written that way
    assert negation(ALWAYS) is None
    two = Match((pricing.wheres[0], other.wheres[0]))
    assert negation(two) is None


def test_flags_and_numbers_stay_apart() -> None:
    """``equals: true`` and ``equals: 1`` are different tests (True == 1 in Python)."""
    flag = compile_condition(Condition.model_validate({"equals": True}), "x", MISSING)
    one = compile_condition(Condition.model_validate({"equals": 1}), "x", MISSING)
    assert flag != one
    assert isinstance(flag.parts[0], ValueTests) and flag.parts[0].tests == (EqualsFlag(True),)
    assert isinstance(one.parts[0], ValueTests) and one.parts[0].tests == (EqualsNumber(1.0),)


def test_a_field_the_table_lacks_is_none() -> None:
    where = compile_where(
        Where.model_validate({"url": {"missing": True}, "plan": {"equals": "pro"}}), {"url"}, ()
    )
    assert [c.field for c in where.conditions] == ["url", None]


def test_missing_check_left_out_only_where_placeholders_cannot_pass() -> None:
    def check(cond: dict[str, Any]) -> bool:
        (part,) = compile_condition(Condition.model_validate(cond), "x", MISSING).parts
        assert isinstance(part, ValueTests)
        return part.check_missing

    assert not check({"contains": "/pricing"})
    assert check({"contains": "n/"})  # inside the placeholder "n/a"
    assert check({"equals": "pro"})


def test_reuse_reads_earlier_columns() -> None:
    def where(cond: dict[str, Any]) -> AllFields:
        return compile_where(Where.model_validate({"url": cond}), {"url"}, MISSING)

    a, b, c = where({"contains": "/a"}), where({"contains": "/b"}), where({"contains": "/c"})
    read, found = reuse(Match((c, a, b)), Match((a, b)), 4)
    assert found and read == Match((c, Ref(4)))
    read, found = reuse(Match((where({"not": {"contains": "/a"}}),)), Match((a,)), 2)
    (only,) = read.wheres
    assert found and isinstance(only, AllFields)
    assert only.conditions[0].parts == (Negated(Ref(2)),)
    assert reuse(Match((b,)), Match((a,)), 0) == (Match((b,)), False)


@settings(max_examples=300, deadline=None)
@given(
    cond=st.sampled_from(
        [
            {"contains": ["/pricing", "plans"]},
            {"not": {"contains": "/pricing"}},
            {"missing": True},
            {"missing": False, "regex": "^/s[0-9]"},
            {"equals": True},
            {"equals": 5},
            {"in": ["pro", 3, False]},
            {"gt": 2, "lte": 10},
            {"not": {"not": {"equals": "Pro"}}},
        ]
    ),
    value=st.one_of(
        st.none(),
        st.sampled_from(["", " N/A", "select", "Yes", "0", "5", "5.0", "/pricing", "PRO "]),
        st.sampled_from(["/s1/plans", "12", "3", "no", "nan", "1e1"]),
        st.integers(-3, 12),
        st.booleans(),
        st.floats(allow_nan=True, allow_infinity=True),
    ),
)
def test_trees_mean_what_conditions_mean(cond: dict[str, Any], value: Any) -> None:
    """The tree of a condition, interpreted, agrees with ``Condition.matches``."""
    condition = Condition.model_validate(cond)
    tree = Match((AllFields((compile_condition(condition, "x", MISSING),)),))
    assert holds(tree, {"x": value}) == condition.matches(value, MISSING)


# -- the key table -------------------------------------------------------------------------

PRICING = Playbook.model_validate(
    {
        "decay": {"half_life": "7d", "step": "1d"},
        "engagement": [
            {
                "name": "pricing",
                "points": 10,
                "event": "page_view",
                "where": {"url": {"contains": "/pricing"}},
                "cap": {"points": 20, "per": "1d"},
            },
            {
                "name": "other_page",
                "points": 1,
                "event": "page_view",
                "where": {"url": {"not": {"contains": "/pricing"}}},
            },
            {"name": "newsletter", "points": 5, "event": "newsletter_signup", "once": True},
        ],
        "temperature": {"warm": 5, "hot": 10},
        "lifecycle": {"mql": {"score": {"gte": 5}}, "events": {"purchase": "customer"}},
        "suppression": {"events": ["unsubscribe"]},
    }
)


def test_key_table_of_a_small_playbook() -> None:
    raw = ["Page View", "newsletter_signup", "purchase", "unsubscribe", "odd"]
    by_name = plan.terms(PRICING, {"url"})
    table = plan.key_table(PRICING, by_name, raw, plan.proof_layout(PRICING, {0: 3.0}))
    # One condition with a key bit; its negation reads the same bit.
    pricing, other = table.conditions
    assert (pricing.slot, pricing.negates, other.slot, other.negates) == (0, None, None, 0)
    assert pricing.users == other.users == {"Page View"}
    assert table.key_bits == 1 and table.keyed
    assert [(n.raw, n.base, n.rare, n.stage, n.suppress) for n in table.names] == [
        ("Page View", 0, False, None, False),
        ("newsletter_signup", 2, True, None, False),
        ("purchase", 4, True, "customer", False),
        ("unsubscribe", 6, True, None, True),
        ("odd", 8, False, None, False),
    ]
    assert table.names[1].once_mask == 1 and table.once_rules == (2,)
    not_pricing, of_pricing = table.keys[0], table.keys[1]
    assert (not_pricing.points, not_pricing.count, not_pricing.binned) == (1.0, 1, ())
    assert of_pricing.points == 10.0 and of_pricing.count == 1 + (1 << plan.TALLY_AT)
    (binned,) = of_pricing.binned
    assert binned.window_us == DAY_US and binned.bins.rule_id == 0
    assert binned.bins.full == 2  # two pricing views a day earn their full 10 points
    # Names without conditions: both keys alike; `once` points are not in the key table.
    assert [k.points for k in table.keys[2:]] == [0.0] * 8
    assert table.windows == {DAY_US} and table.shared_window == DAY_US
    assert not table.branches


def test_candidates_number_distinct_conditions() -> None:
    raw = ["page_view", "Page View", "odd"]
    by_name = plan.terms(PRICING, {"url"})
    cands = plan.candidates(PRICING, by_name, raw)
    assert cands.conditions[0] == ALWAYS and len(cands.conditions) == 3
    assert [(c.raw, c.rule_id, c.cond_id, c.cand) for c in cands.rows] == [
        ("page_view", 0, 1, 0),
        ("page_view", 1, 2, 1),
        ("Page View", 0, 1, 0),
        ("Page View", 1, 2, 1),
        ("odd", None, 0, 0),
    ]


def test_many_conditions_take_a_branch() -> None:
    playbook = Playbook.model_validate(
        {
            "decay": {"half_life": "7d"},
            "engagement": [
                {
                    "name": f"s{i}",
                    "points": 1 + i,
                    "event": "page_view",
                    "where": {"url": {"contains": f"/s{i}/"}},
                }
                for i in range(plan.KEY_CONDITIONS + 1)
            ],
            "temperature": {"warm": 5, "hot": 10},
            "lifecycle": {"mql": {"score": {"gte": 5}}, "events": {}},
        }
    )
    table = plan.key_table(
        playbook, plan.terms(playbook, {"url"}), ["page_view"], ProofLayout((), 0)
    )
    assert table.key_bits == plan.KEY_CONDITIONS and not table.keyed
    (branch,) = table.branches.values()
    assert isinstance(branch, plan.ConditionsBranch)
    assert [t.condition for t in branch.terms] == list(range(plan.KEY_CONDITIONS + 1))
    assert all(k.branch == 1 and k.points is None for k in table.keys)


def _key_of(table: plan.KeyTable, raw: str, props: Mapping[str, Any]) -> plan.KeyRow:
    name = next(n for n in table.names if n.raw == raw)
    columns: dict[int, bool] = {}
    for cond in table.conditions:
        columns[cond.bit] = holds(cond.reads, props, columns)
    combo = sum(1 << c.slot for c in table.conditions if c.slot is not None and columns[c.bit])
    key = table.keys[name.base + combo]
    assert key.k == name.base + combo
    return key


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=150, deadline=None)
@given(playbook=playbooks(), stream=streams(), seed=st.integers(0, 2**16))
def test_key_table_agrees_with_the_playbook(playbook, stream, seed) -> None:
    """Per event: the key its condition columns give holds the points of the rules
    ``rules_matching`` finds (``once`` rules aside: pass 2a takes them), and one bin per
    capped rule with points, with the rule's window; a branch says the same on the row."""
    events, _ = stream
    raw = sorted({e.name for e in events} | {"page_view", "odd"})
    by_name = plan.terms(playbook, {"url"})
    weights = {i: float((seed >> i) & 7) for i in range(len(playbook.engagement))}
    table = plan.key_table(playbook, by_name, raw, plan.proof_layout(playbook, weights))
    rules = playbook.engagement
    extra = [Event.create("a", "page_view", START_US, "x", {"url": u}) for u in URLS]
    for event in events[:12] + extra:
        props = {"url": event.properties.get("url")}
        earned = [
            i
            for i, rule in enumerate(rules)
            if rule in playbook.rules_matching(plan.event_name(playbook, event.name), props)
            and not rule.once
        ]
        capped = sorted(i for i in earned if table.layout.of(i) is not None)
        key = _key_of(table, event.name, props)
        branch = table.branches.get(key.branch) if key.branch is not None else None
        if isinstance(branch, plan.ConditionsBranch):
            columns: dict[int, bool] = {}
            for cond in table.conditions:
                columns[cond.bit] = holds(cond.reads, props, columns)
            on = [t for t in branch.terms if t.condition is None or columns[t.condition]]
            assert sorted(t.rule_id for t in on) == earned
            assert sorted(t.rule_id for t in on if t.binned is not None) == capped
            continue
        assert key.points == sum(rules[i].points for i in earned)
        assert key.count == 1 + (len(capped) << plan.TALLY_AT)
        assert sorted(b.bins.rule_id for b in key.binned) == capped
        assert all(b.window_us == rules[b.bins.rule_id].window_us for b in key.binned)
        assert (key.branch is not None) == (len(capped) > 1)
    unknown = table.keys[next(n.base for n in table.names if n.raw == "odd")]
    assert unknown.points == 0.0 and not unknown.binned


def test_a_blank_name_scores_nan() -> None:
    table = plan.key_table(PRICING, plan.terms(PRICING, {"url"}), [" "], ProofLayout((), 0))
    assert table.names[0].bad and all(math.isnan(k.points or 0.0) for k in table.keys)


@settings(max_examples=100, deadline=None)
@given(playbook=playbooks(), stream=streams())
def test_fit_plan_agrees_with_the_playbook(playbook, stream) -> None:
    """The fit plan, interpreted per lead, gives the fit and suppression of the reference;
    a column the lead table lacks reads as missing."""
    from pyrometer.core.conditions import normalize_record
    from pyrometer.core.fit import fit_lines, suppressed_by_attributes

    _, leads = stream
    fit = plan.fit_plan(playbook, {"title", "size"})  # no `dnc` column
    assert [c.field for w in fit.suppression for c in w.conditions] == [None]
    for record in leads.values():
        attrs = {k: v for k, v in normalize_record(record).items() if k != "dnc"}
        points = sum(t.points for t in fit.terms if holds(Match((t.where,)), attrs))
        assert points == sum(line.points for line in fit_lines(playbook, attrs))
        suppressed = any(holds(Match((w,)), attrs) for w in fit.suppression)
        assert suppressed == suppressed_by_attributes(playbook, attrs)
    assert fit.default_fit == sum(line.points for line in fit_lines(playbook, {}))
    classes = plan.class_plan(playbook)
    assert classes.warm == playbook.temperature.warm
    assert dict(classes.mql)["score"] == ((">=", playbook.temperature.warm),)


@settings(max_examples=100, deadline=None)
@given(playbook=playbooks())
def test_limits_give_the_points_of_their_rank(playbook) -> None:
    for i, limit in plan.limits(playbook).items():
        rule = playbook.engagement[i]
        assert [limit.given(r) for r in range(limit.slots + 2)] == [
            rule.points_at_rank(r) for r in range(limit.slots + 2)
        ]


# -- a condition read through another's column, by names that do not use that one -------


@pytest.mark.parametrize("native", PASS1)
def test_negation_beyond_the_key_bits_on_another_name(native) -> None:
    """A condition without a key bit (more than :data:`KEY_CONDITIONS`) whose negation is
    tested on a second event name: that name's events must compute the column the
    negation reads. Before the plan, only the first name using the negation did, and an
    ``email_open`` without ``/s8/`` got no points."""
    sections = plan.KEY_CONDITIONS + 1
    playbook = Playbook.model_validate(
        {
            "decay": {"half_life": "7d", "step": "1d"},
            "engagement": [
                {
                    "name": f"s{i}",
                    "points": 1.0,
                    "event": "page_view",
                    "where": {"url": {"contains": f"/s{i}/"}},
                }
                for i in range(sections)
            ]
            + [
                {
                    "name": f"not_last_{name}",
                    "points": 3.0,
                    "event": name,
                    "where": {"url": {"not": {"contains": f"/s{sections - 1}/"}}},
                }
                for name in ("page_view", "email_open")
            ],
            "temperature": {"warm": 5, "hot": 10},
            "lifecycle": {"mql": {"score": {"gte": 5}}, "events": {}},
        }
    )
    events = [
        Event.create("a", "email_open", START_US, "e1", {"url": "/blog"}),
        Event.create("b", "email_open", START_US, "e2", {"url": f"/s{sections - 1}/"}),
        Event.create("c", "page_view", START_US, "e3", {"url": "/s0/"}),
    ]
    expected = score_reference(playbook, events, {}, START_US)
    assert expected["a"].engagement == 3.0
    batch = batch_score(playbook, events, {}, START_US, native=native)
    for lead, want in expected.items():
        assert_same(want, batch[lead], "batch")
