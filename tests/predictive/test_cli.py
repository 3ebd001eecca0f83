"""The commands as a user runs them: files in, files out, clear errors, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pyrometer.cli.app import app
from pyrometer.core.playbook import load_playbook

from .conftest import make_history

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    make_history(500).to_csv(folder / "history.csv", sep=";", index=False)
    code, _, err = run(
        "train",
        str(folder / "history.csv"),
        "--target",
        "Converted",
        "--id",
        "Lead ID",
        "-o",
        str(folder / "model"),
        "--scorecard",
        "--folds",
        "3",
    )
    assert code == 0, err
    return folder


def test_train_writes_model_dir(trained: Path) -> None:
    model = trained / "model"
    for name in ("model.json", "schema.json", "metrics.json", "meta.json", "scorecard.yaml"):
        assert (model / name).exists()
    meta = json.loads((model / "meta.json").read_text())
    assert len(meta["training_fingerprint"]) == 64 and meta["training_rows"] == 500
    metrics = json.loads((model / "metrics.json").read_text())
    assert metrics["roc_auc"] > 0.65 and "scorecard" in metrics
    assert load_playbook(model / "scorecard.yaml").fit


def test_predict_keeps_order_and_ids(trained: Path, tmp_path: Path) -> None:
    leads = make_history(40, seed=3).drop(columns=["Converted"]).iloc[::-1]
    leads.to_json(tmp_path / "leads.jsonl", orient="records", lines=True)
    code, _, err = run(
        "predict",
        str(trained / "model"),
        str(tmp_path / "leads.jsonl"),
        "-o",
        str(tmp_path / "out.csv"),
        "--explain",
    )
    assert code == 0, err
    out = pd.read_csv(tmp_path / "out.csv")
    assert out["Lead ID"].tolist() == leads["Lead ID"].tolist()
    assert out["p_convert"].between(0, 1).all()
    assert out["factors_up"].fillna("").str.contains(r"=.*\(\+", regex=True).any()
    assert out["factors_down"].fillna("").str.contains(r"\(-", regex=True).any()


def test_predict_reports_missing_column(trained: Path, tmp_path: Path) -> None:
    make_history(10).drop(columns=["Visits"]).to_csv(tmp_path / "l.csv", index=False)
    code, _, err = run("predict", str(trained / "model"), str(tmp_path / "l.csv"))
    assert code == 2
    assert "l.csv" in err and "'Visits'" in err and "Traceback" not in err


def test_evaluate_json_and_report(trained: Path, tmp_path: Path) -> None:
    frame = make_history(400)
    frame["Deal Stage"] = frame["Converted"].map({"Won": "closed", "Lost": "open"})
    frame.to_csv(tmp_path / "h.csv", index=False)
    report = tmp_path / "r.html"
    code, out, err = run(
        "evaluate",
        str(tmp_path / "h.csv"),
        "--target",
        "Converted",
        "--id",
        "Lead ID",
        "--folds",
        "3",
        "--json",
        "--report",
        str(report),
    )
    assert code == 0, err
    result = json.loads(out)
    for key in ("roc_auc", "pr_auc", "brier", "lift_top_decile"):
        assert isinstance(result[key], float)
    assert {"logistic", "naive_bayes"} <= set(result["baselines"]) | {result["model"]}
    assert all("roc_auc" in b for b in result["baselines"].values())
    assert "Deal Stage" in err  # the leakage warning, on stderr
    page = report.read_text()
    assert page.count("<svg") >= 3 and "Deal Stage" in page


def test_ambiguous_target_is_a_clear_error(tmp_path: Path) -> None:
    frame = make_history(50)
    frame["Converted"] = frame["Converted"].map({"Won": "A", "Lost": "B"})
    frame.to_csv(tmp_path / "h.csv", index=False)
    code, _, err = run("evaluate", str(tmp_path / "h.csv"), "--target", "Converted")
    assert code == 2 and "ambiguous" in err and "--positive" in err
    code, _, err = run("evaluate", str(tmp_path / "h.csv"), "--target", "Nope")
    assert code == 2 and "'Nope'" in err and "not found" in err


def test_too_few_outcomes_is_a_clear_error(tmp_path: Path) -> None:
    frame = make_history(60)
    frame["Converted"] = "Lost"
    frame.loc[:2, "Converted"] = "Won"
    frame.to_csv(tmp_path / "h.csv", index=False)
    code, _, err = run(
        "train", str(tmp_path / "h.csv"), "--target", "Converted", "-o", str(tmp_path / "m")
    )
    assert code == 2 and "3 converted and 57 other" in err and "at least" in err


def test_predict_json_is_an_array_and_keeps_the_id_under_any_spelling(
    trained: Path, tmp_path: Path
) -> None:
    """The model learned ``Lead ID``; an export that spells it ``lead_id`` keeps its ids,
    and ``-o x.json`` is one JSON array, as ``score -o x.json`` writes."""
    leads = make_history(30, seed=4).drop(columns=["Converted"])
    leads.rename(columns={"Lead ID": "lead_id"}).to_csv(tmp_path / "leads.csv", index=False)
    out = tmp_path / "out.json"
    code, _, err = run(
        "predict", str(trained / "model"), str(tmp_path / "leads.csv"), "-o", str(out)
    )
    assert code == 0, err
    rows = json.loads(out.read_text())
    assert isinstance(rows, list) and len(rows) == 30
    assert [row["lead_id"] for row in rows] == leads["Lead ID"].tolist()
    assert all(0 <= row["p_convert"] <= 1 for row in rows)


def test_predict_writes_gzip_and_stdout(trained: Path, tmp_path: Path) -> None:
    leads = make_history(12, seed=5).drop(columns=["Converted"])
    leads.to_csv(tmp_path / "leads.csv", index=False)
    model, source = str(trained / "model"), str(tmp_path / "leads.csv")
    code, _, err = run("predict", model, source, "-o", str(tmp_path / "p.jsonl.gz"))
    assert code == 0, err
    lines = pd.read_json(tmp_path / "p.jsonl.gz", lines=True)
    assert lines["Lead ID"].tolist() == leads["Lead ID"].tolist()
    code, out, err = run("predict", model, source, "-o", "-")
    assert code == 0, err
    assert out.splitlines()[0] == "Lead ID,p_convert" and len(out.splitlines()) == 13
    assert not Path("-").exists()


def test_train_and_evaluate_report_a_column_carrying_most_of_the_signal(tmp_path: Path) -> None:
    """An innocently named, always-filled figure written after the sales call: only its
    share of the model's signal gives it away; train and evaluate say so, with figures."""
    import numpy as np

    rng = np.random.default_rng(5)
    n = 2000
    y = (rng.random(n) < 0.25).astype(int)
    pd.DataFrame(
        {
            "minutes": np.round(rng.normal(0, 1, n) + 1.4 * y, 2),
            "employees": np.round(rng.normal(0, 1, n) + 0.3 * y, 2),
            "visits": np.round(rng.normal(0, 1, n) + 0.3 * y, 2),
            "region": rng.choice(["north", "south", "east", "west"], n),
            "won": y,
        }
    ).to_csv(tmp_path / "h.csv", index=False)
    code, out, err = run(
        "evaluate",
        str(
            tmp_path / "h.csv",
        ),
        "-t",
        "won",
        "--json",
        "--folds",
        "3",
    )
    assert code == 0, err
    leaks = json.loads(out)["leaks"]
    assert len(leaks) == 1 and "'minutes'" in leaks[0] and "of the model's signal" in leaks[0]
    assert "'minutes'" in " ".join(err.split()) and "warning" in err
    code, _, err = run(
        "train", str(tmp_path / "h.csv"), "-t", "won", "-o", str(tmp_path / "m"), "--folds", "3"
    )
    assert code == 0, err
    assert "of the model's signal" in " ".join(err.split())
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert any("'minutes'" in leak for leak in metrics["leaks"])


def test_a_rewritten_copy_is_a_warning_that_drop_leaky_leaves_in(tmp_path: Path) -> None:
    """Sign 6 (a copy of another column rewritten depending on the outcome) is reported
    with its figures on stderr and in the JSON, and --drop-leaky does not drop it."""
    from .test_leakage import _copied_history

    _copied_history(2000, rewrite_won=0.15, rewrite_lost=0.45).to_csv(
        tmp_path / "h.csv", index=False
    )
    code, out, err = run(
        "evaluate", str(tmp_path / "h.csv"), "-t", "Converted", "--id", "Lead ID",
        "--json", "--folds", "3", "--drop-leaky",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert len(summary["leaks"]) == 1 and "'Latest Step'" in summary["leaks"][0]
    assert "same value as 'Step'" in summary["leaks"][0]
    assert "Latest Step" in summary["features"]
    assert "a warning only" in " ".join(err.split())
