"""Write Olist's marketing-qualified leads with their outcome, ready for ``pyrometer evaluate``.

The outcome of an MQL is whether its ``mql_id`` appears in the closed deals. Only the MQL
columns are kept: the closed-deal columns exist for won leads only, so they would tell a
model the answer.

    python examples/olist_history.py ../shared/data/olist_marketing_funnel olist_history.csv
    python -m pyrometer.cli.app evaluate olist_history.csv --target won --id mql_id
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def olist_history(folder: Path) -> pd.DataFrame:
    mqls = pd.read_csv(
        folder / "olist_marketing_qualified_leads_dataset.csv", dtype=str, keep_default_na=False
    )
    deals = pd.read_csv(folder / "olist_closed_deals_dataset.csv", dtype=str, keep_default_na=False)
    history = mqls.copy()
    history["won"] = mqls["mql_id"].isin(set(deals["mql_id"])).astype(int)
    return history


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: olist_history.py OLIST_FOLDER OUT.csv", file=sys.stderr)
        return 2
    history = olist_history(Path(argv[1]))
    history.to_csv(argv[2], index=False)
    print(f"{argv[2]}: {len(history)} leads, {int(history['won'].sum())} won", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
