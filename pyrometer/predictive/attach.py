"""``pyrometer score --model``: a scored-leads table gains each lead's ``p_convert``.

The model reads the same LEADS file the scorer read (its own loader: placeholders, types,
the model's schema check) and the event log when it uses event features. With
``temperature.probability`` bands in the playbook, a lead's temperature then follows its
probability instead of its points; a lead the model could not score (no row in LEADS)
keeps its points-based temperature.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from pyrometer.core.conditions import normalize_name
from pyrometer.core.playbook import Playbook, Temperature
from pyrometer.engines.sql_conditions import number_literal
from pyrometer.io.readers import LEAD_ALIASES, InputError
from pyrometer.predictive.artifact import load_model
from pyrometer.predictive.loading import read_table


def attach_predictions(
    con: duckdb.DuckDBPyConnection,
    table: str,
    playbook: Playbook,
    model_dir: Path,
    leads: Path,
    events: Path | None,
    lead_id_column: str | None = None,
    trust_pickle: bool = False,
) -> None:
    """Add ``p_convert`` to ``table`` (which has ``lead_id``), in place; ``lead_id_column``
    names LEADS' id column (``score --id``) instead of the usual spellings;
    ``trust_pickle`` lets an old pickled model folder load (``--trust-pickle``)."""
    model = load_model(model_dir, trust_pickle=trust_pickle)
    frame = read_table(leads)
    id_column = _lead_id_column(frame, leads, lead_id_column)
    log = read_table(events) if events is not None and model.events is not None else None
    probabilities = model.predict_proba(frame, log, source=str(leads))
    predicted = pd.DataFrame(
        {"lead_id": frame[id_column].astype(str), "p_convert": probabilities.astype(float)}
    )
    con.register("pyro_predicted", predicted)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT s.*, p.p_convert FROM {table} s "
        "LEFT JOIN pyro_predicted p ON p.lead_id = s.lead_id"
    )
    bands = playbook.temperature.probability
    if bands is not None:
        con.execute(
            f"UPDATE {table} SET temperature = CASE "
            f"WHEN p_convert >= {number_literal(bands.hot)} THEN '{Temperature.HOT}' "
            f"WHEN p_convert >= {number_literal(bands.warm)} THEN '{Temperature.WARM}' "
            f"ELSE '{Temperature.COLD}' END WHERE p_convert IS NOT NULL"
        )


def _lead_id_column(frame: pd.DataFrame, path: Path, named: str | None = None) -> str:
    by_name = {normalize_name(str(column)): str(column) for column in frame.columns}
    if named is not None:
        if named in frame.columns:
            return named
        if normalize_name(named) in by_name:
            return by_name[normalize_name(named)]
        raise InputError(path, f"--id: no column {named!r}", column=named)
    for alias in LEAD_ALIASES:
        if alias in by_name:
            return by_name[alias]
    raise InputError(path, "missing column 'lead_id'", column="lead_id")
