"""Olist's marketing-qualified leads as an events file for `pyrometer backtest` / `tune`.

    python examples/olist_mql_events.py ../shared/data/olist_marketing_funnel mql_events.csv

One `mql` event per lead at its first contact, with its `origin` and `landing_page_id`
as properties; the lead id column keeps Olist's name, `mql_id`, which the closed deals
file (the outcomes: `won_date`) shares, so `--id mql_id` names both.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb


def write(folder: Path, out: Path) -> Path:
    source = folder / "olist_marketing_qualified_leads_dataset.csv"
    duckdb.sql(
        f"""COPY (SELECT mql_id, 'mql' AS event, first_contact_date AS timestamp,
                         coalesce(origin, 'unknown') AS origin, landing_page_id
                  FROM read_csv('{source}', all_varchar = true))
            TO '{out}' (HEADER)"""
    )
    return out


if __name__ == "__main__":
    write(Path(sys.argv[1]), Path(sys.argv[2]))
