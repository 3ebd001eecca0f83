"""``pyrometer train`` and ``evaluate`` against a plain 5-fold LightGBM cross-validation
(issue #14, section 4: within 2x).

Writes a synthetic history of ``--rows`` leads x 16 columns (an id, the outcome, five
numbers, seven categories of which one has 60 levels, a yes/no and a date; placeholders
sprinkled in) as CSV, then times, in this process and in this order:

1. the reference: ``LGBMClassifier(**LGB_PARAMS)`` fitted and scored on 5 stratified folds
   of the same design matrix ``pyrometer evaluate`` builds (reading and preparing the CSV
   are not in it);
2. ``pyrometer evaluate HISTORY --target won --id lead_id --json``;
3. ``pyrometer train HISTORY --target won --id lead_id -o MODEL_DIR``.

Wall time and this process's CPU time (all threads) are printed with their ratios to the
reference; CPU time is the steadier figure on a machine shared with other work.

Usage:

    python bench/bench_train.py [--rows 45000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold
from typer.testing import CliRunner

from pyrometer.cli.app import app
from pyrometer.predictive.models import LGB_PARAMS, _safe_names
from pyrometer.predictive.pipeline import prepare


def history(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    source = rng.choice(["Google", "Direct", "Referral", "Ads", "Email", "Social", "Events"], rows)
    country = rng.integers(0, 60, rows)
    industry = rng.choice([f"industry {i}" for i in range(12)], rows)
    title = rng.choice([f"title {i}" for i in range(20)], rows)
    activity = rng.choice([f"activity {i}" for i in range(15)], rows)
    size = rng.choice(["1-10", "11-50", "51-200", "201-1000", "1000+"], rows)
    plan = rng.choice(["free", "starter", "team", "enterprise"], rows)
    visits = rng.poisson(3, rows)
    minutes = np.round(rng.exponential(8, rows), 1)
    pages = np.round(rng.gamma(2, 1.5, rows), 2)
    employees = rng.lognormal(4, 1.2, rows).round()
    age = rng.integers(18, 70, rows)
    logit = (
        -1.6
        + 0.25 * visits
        + 0.04 * minutes
        + 0.3 * (source == "Referral")
        - 0.5 * (source == "Ads")
        + 0.02 * (country % 7)
        + 0.4 * (plan == "enterprise")
        + 0.1 * np.log1p(employees)
        - 0.01 * np.abs(age - 40)
    )
    won = rng.random(rows) < 1 / (1 + np.exp(-logit))
    created = pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 365, rows), unit="D")
    frame = pd.DataFrame(
        {
            "lead_id": [f"L{i:07d}" for i in range(rows)],
            "source": source,
            "country": [f"C{c:02d}" for c in country],
            "industry": industry,
            "job_title": title,
            "last_activity": activity,
            "company_size": size,
            "plan": plan,
            "do_not_email": rng.choice(["Yes", "No"], rows, p=[0.1, 0.9]),
            "visits": visits,
            "minutes_on_site": minutes,
            "pages_per_visit": pages,
            "employees": employees,
            "age": age,
            "created": created.strftime("%Y-%m-%d"),
            "won": np.where(won, "Yes", "No"),
        }
    )
    frame.loc[rng.random(rows) < 0.08, "industry"] = "Select"
    frame.loc[rng.random(rows) < 0.05, "employees"] = np.nan
    return frame


def timed(work) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def command(*args: str) -> None:
    result = CliRunner().invoke(app, list(args))
    if result.exit_code != 0:
        raise SystemExit(f"pyrometer {' '.join(args)} failed: {result.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=45_000)
    parser.add_argument("--repeat", type=int, default=1)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "history.csv"
        frame = history(options.rows)
        frame.to_csv(path, index=False)
        print(
            f"history: {len(frame):,} rows x {frame.shape[1]} columns ({path.stat().st_size:,} B)"
        )
        prepared = prepare(path, "won", "lead_id")
        X = prepared.X
        # Time the reference on the prepared design only: preparing is ours to pay.
        print(f"design matrix: {X.shape[0]:,} x {X.shape[1]}")
        for round_ in range(options.repeat):
            Xs, y = _safe_names(X), prepared.y
            # The thread rule pyrometer's own fits follow (one thread under 20,000 rows).
            params = {**LGB_PARAMS, **({"n_jobs": 1} if len(y) < 20_000 else {})}

            def plain(Xs: pd.DataFrame = Xs, y: np.ndarray = y, params: dict = params) -> None:
                for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(Xs, y):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        model = lgb.LGBMClassifier(**params).fit(Xs.iloc[train], y[train])
                        model.predict_proba(Xs.iloc[test])

            ref = timed(plain)
            evaluate = timed(
                lambda: command("evaluate", str(path), "-t", "won", "--id", "lead_id", "--json")
            )
            train = timed(
                lambda: command(
                    "train", str(path), "-t", "won", "--id", "lead_id", "-o", f"{folder}/model"
                )
            )
            print(f"round {round_ + 1}:")
            print(f"  plain 5-fold LightGBM CV  wall {ref[0]:6.2f} s  cpu {ref[1]:6.2f} s")
            for name, (wall, cpu) in (("pyrometer evaluate", evaluate), ("pyrometer train", train)):
                print(
                    f"  {name:<25} wall {wall:6.2f} s  cpu {cpu:6.2f} s   "
                    f"x{wall / ref[0]:.2f} wall, x{cpu / ref[1]:.2f} cpu"
                )


if __name__ == "__main__":
    main()
