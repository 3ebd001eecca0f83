"""Shared test vectors: hand-checked numbers every engine must reproduce."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import batch_score

from pyrometer.core.events import distinct_events
from pyrometer.core.incremental import apply_attributes, apply_event, new_state, snapshot
from pyrometer.core.model import Event, ScoredLead
from pyrometer.core.playbook import Playbook, default_playbook
from pyrometer.core.reference import score_reference
from pyrometer.core.timeutil import to_us
from pyrometer.engines.native.build import compiler

VECTORS = sorted((Path(__file__).parent / "vectors").glob("*.yaml"))


def load(path: Path) -> tuple[Playbook, dict[str, dict[str, Any]], list[Event], list[Any]]:
    data = yaml.safe_load(path.read_text())
    playbook = (
        default_playbook()
        if data["playbook"] == "default"
        else Playbook.model_validate(data["playbook"])
    )
    events = [
        Event.create(row[0], row[1], row[2], row[3], row[4] if len(row) > 4 else None)
        for row in data["events"]
    ]
    return playbook, data.get("leads", {}), events, data["checks"]


def incremental(playbook, leads, events, as_of_us) -> dict[str, ScoredLead]:
    states = {
        lead: apply_attributes(playbook, new_state(lead), attrs, 0).state
        for lead, attrs in leads.items()
    }
    for event in events:
        if event.ts_us <= as_of_us:
            state = (
                states.get(event.lead_id)
                or apply_attributes(playbook, new_state(event.lead_id), {}, 0).state
            )
            states[event.lead_id] = apply_event(playbook, state, event).state
    return {lead: snapshot(playbook, state, as_of_us) for lead, state in states.items()}


def logged(events: list[Event]) -> list[Event]:
    """What the service's event log keeps of a file's events: the first of each id. The
    incremental scorer is given each id once, in any order."""
    return distinct_events(events)


ENGINES = {
    "reference": lambda pb, leads, events, t: score_reference(pb, events, leads, t),
    "incremental": lambda pb, leads, events, t: incremental(pb, leads, logged(events), t),
    "incremental, reversed": lambda pb, leads, events, t: incremental(
        pb, leads, logged(events)[::-1], t
    ),
    "incremental, shuffled": lambda pb, leads, events, t: incremental(
        pb, leads, random.Random(3).sample(logged(events), len(logged(events))), t
    ),
    "duckdb batch": lambda pb, leads, events, t: batch_score(pb, events, leads, t),
    "duckdb batch, native": lambda pb, leads, events, t: batch_score(
        pb, events, leads, t, native=True
    ),
}


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("vector", VECTORS, ids=[v.stem for v in VECTORS])
def test_vector(vector: Path, engine: str) -> None:
    if engine.endswith("native") and compiler() is None:
        pytest.skip("no C compiler for the native pass")
    playbook, leads, events, checks = load(vector)
    for check in checks:
        as_of_us = to_us(check["as_of"])
        scored = ENGINES[engine](playbook, leads, events, as_of_us)
        for lead, expected in check["expect"].items():
            got = scored[lead].to_dict()
            got["score"], got["fit"], got["engagement"] = (
                scored[lead].score,
                scored[lead].fit,
                scored[lead].engagement,
            )
            for key, value in expected.items():
                where = f"{vector.stem} @ {check['as_of']}: {lead}.{key}"
                if isinstance(value, int | float) and not isinstance(value, bool):
                    assert math.isclose(got[key], value, rel_tol=1e-9, abs_tol=1e-9), (
                        where,
                        got[key],
                        value,
                    )
                else:
                    assert got[key] == value, (where, got[key], value)
