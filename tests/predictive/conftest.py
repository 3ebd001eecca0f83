"""Shared helpers: a small synthetic history with a known signal, and the real data sets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("PYROMETER_SHARED_DATA", REPO / ".." / "shared" / "data"))


def make_history(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Leads whose conversion depends on visits and source; placeholders sprinkled in."""
    rng = np.random.default_rng(seed)
    visits = rng.poisson(3, n)
    source = rng.choice(["Google", "Referral", "Direct", "Ads", "Email"], n)
    effect = {"Google": 0.0, "Referral": 1.5, "Direct": 0.3, "Ads": -0.8, "Email": 0.2}
    logit = -1.5 + 0.5 * visits + np.array([effect[s] for s in source])
    converted = rng.random(n) < 1 / (1 + np.exp(-logit))
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    frame = pd.DataFrame(
        {
            "Lead ID": [f"L{i:05d}" for i in range(n)],
            "Visits": visits.astype(str),
            "Source": source,
            "Do Not Email": rng.choice(["Yes", "No"], n, p=[0.1, 0.9]),
            "Created": created.strftime("%Y-%m-%d"),
            "Noise": rng.choice(["a", "b", "c"], n),
            "Converted": np.where(converted, "Won", "Lost"),
        }
    )
    frame.loc[rng.random(n) < 0.1, "Source"] = "Select"
    frame.loc[rng.random(n) < 0.05, "Visits"] = ""
    return frame


def require_data(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (expected <repo>/../shared/data)")
    return path


@pytest.fixture
def history_csv(tmp_path: Path) -> Path:
    path = tmp_path / "history.csv"
    make_history().to_csv(path, index=False)
    return path
