"""What a playbook compiles to, for any batch engine: plain data and condition trees.

Every batch engine (DuckDB today, :mod:`pyrometer.engines.duckdb`; Spark next) scores the
same way: join events to rules on the raw name, look the event's constants up by a small
key, sum per lead with a cap proof, and redo only the leads the proof does not clear. What
to join, sum and prove is decided here, once, so that engines differ only in how they
spell it. Nothing in this package imports an engine or builds SQL.

* :mod:`.conditions`: the ``where`` tests as trees;
* :mod:`.rules`: which rules each raw event name may earn, and the capped and ``once`` rules;
* :mod:`.keys`: the key table of rule × event name × condition bits, points, cap windows
  and the cap proof's bins (:mod:`pyrometer.engines.cap_proof`);
* :mod:`.leads`: fit, suppression by attribute, temperature, stage and funnel.
"""

from pyrometer.engines.plan.conditions import ALWAYS, AllFields, Match, Ref
from pyrometer.engines.plan.keys import (
    KEY_CONDITIONS,
    PROOF_WORDS,
    TALLY_AT,
    Binned,
    Branch,
    BranchTerm,
    ConditionBit,
    ConditionsBranch,
    KeyRow,
    KeyTable,
    NameRow,
    SharedBranch,
    key_table,
    proof_layout,
)
from pyrometer.engines.plan.leads import ClassPlan, FitPlan, FitTerm, class_plan, fit_plan
from pyrometer.engines.plan.rules import (
    Candidate,
    Candidates,
    Limit,
    Meaning,
    OnceRule,
    Term,
    candidates,
    event_name,
    limits,
    meaning,
    once_rules,
    spellings,
    terms,
)

__all__ = [
    "ALWAYS",
    "KEY_CONDITIONS",
    "PROOF_WORDS",
    "TALLY_AT",
    "AllFields",
    "Binned",
    "Branch",
    "BranchTerm",
    "Candidate",
    "Candidates",
    "ClassPlan",
    "ConditionBit",
    "ConditionsBranch",
    "FitPlan",
    "FitTerm",
    "KeyRow",
    "KeyTable",
    "Limit",
    "Match",
    "Meaning",
    "NameRow",
    "OnceRule",
    "Ref",
    "SharedBranch",
    "Term",
    "candidates",
    "class_plan",
    "event_name",
    "fit_plan",
    "key_table",
    "limits",
    "meaning",
    "once_rules",
    "proof_layout",
    "spellings",
    "terms",
]
