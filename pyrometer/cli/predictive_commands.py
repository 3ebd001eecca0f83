"""``pyrometer train``, ``predict`` and ``evaluate``: predictive scoring from the command line.

User mistakes (a missing column, an ambiguous target, a bad file) end with one line on
stderr naming the file, row or column, and exit code 2; never with a traceback.

scikit-learn, LightGBM and pandas are imported when one of these commands runs, not
when the command line is built; without the ``predict`` extra each command says so.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pyrometer.cli.extras import needs_extra
from pyrometer.cli.output import print_table

if TYPE_CHECKING:
    import pandas as pd

    from pyrometer.predictive.evaluate import CrossValidation
    from pyrometer.predictive.pipeline import Prepared

_err = Console(stderr=True)

Target = Annotated[str, typer.Option("--target", "-t", help="The outcome column.")]
IdOpt = Annotated[
    str | None, typer.Option("--id", help="The lead id column (kept, not a feature).")
]
Positive = Annotated[str | None, typer.Option(help="The target value that means converted.")]
Events = Annotated[Path | None, typer.Option(help="Event log for point-in-time features.")]
TimeOpt = Annotated[
    str | None, typer.Option("--time", help="Column with each lead's decision time (for --events).")
]
Exclude = Annotated[
    list[str] | None, typer.Option("--exclude", help="Column to leave out (repeatable).")
]
Missing = Annotated[
    list[str] | None,
    typer.Option("--missing", help="Text meaning 'no answer' (repeatable; replaces the defaults)."),
]
DropLeaky = Annotated[
    bool, typer.Option("--drop-leaky", help="Leave out columns the leakage guard warns about.")
]
Folds = Annotated[int, typer.Option(min=2, max=20, help="Cross-validation folds.")]
Seed = Annotated[int, typer.Option(help="Random seed; the same seed gives the same model.")]
TrustPickle = Annotated[
    bool,
    typer.Option(
        "--trust-pickle",
        help="Load an old MODEL_DIR stored as a pickle (it can run code): only for a folder "
        "you trust.",
    ),
]


def _fail(message: str) -> typer.Exit:
    _err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code=2)


@contextmanager
def _user_errors(command: str) -> Iterator[None]:
    """The predict extra's absence, and the user's mistakes, as one line each."""
    with needs_extra("predict", command):
        from pyrometer.predictive.artifact import ModelDirError
        from pyrometer.predictive.features import SchemaError
        from pyrometer.predictive.loading import DataError
    try:
        yield
    except (DataError, SchemaError, ModelDirError) as exc:
        raise _fail(str(exc).replace("[", "\\[")) from None


@contextmanager
def _status(text: str) -> Iterator[Callable[[str], None]]:
    with _err.status(text) as status:
        yield lambda message: status.update(f"{text}: {message}")


def _warn(text: str) -> None:
    _err.print(f"[yellow]warning:[/] {text.replace('[', chr(92) + '[')}", soft_wrap=True)


def _prepare(
    history: Path,
    target: str,
    id_column: str | None,
    positive: str | None,
    events: Path | None,
    time: str | None,
    exclude: list[str] | None,
    missing: list[str] | None,
    drop_leaky: bool,
) -> Prepared:
    from pyrometer.predictive.pipeline import prepare

    prepared = prepare(
        history, target, id_column, positive, events, time, exclude, missing, drop_leaky, note=_warn
    )
    for leak in prepared.leaks:
        if not leak.droppable:
            suffix = " (a warning only: --exclude it if so)"
        elif drop_leaky:
            suffix = " (dropped: --drop-leaky)"
        else:
            suffix = " (use --drop-leaky to leave out)"
        _warn(leak.message() + suffix)
    return prepared


def _summary(
    prepared: Prepared, folds: int, seed: int, with_scorecard: bool, progress: Callable[[str], None]
) -> tuple[dict[str, Any], CrossValidation]:
    from pyrometer.predictive import scorecard
    from pyrometer.predictive.evaluate import cross_validate
    from pyrometer.predictive.leakage import dominant_column, merge, per_column

    cv = cross_validate(prepared.X, prepared.y, folds, seed, progress)
    summary = cv.summary()
    leaks = list(prepared.leaks)
    dominant = dominant_column(*per_column(prepared.schema, cv.contributions))
    if dominant is not None:  # found after training, so warned here; one entry per column
        _warn(dominant.message())
        leaks = merge(leaks, [dominant])
    summary["leaks"] = [leak.message() for leak in leaks]
    summary["features"] = prepared.schema.columns
    summary["dropped"] = prepared.schema.dropped
    if with_scorecard:
        progress("scorecard")
        auc = scorecard.cross_validated_auc(
            prepared.schema, prepared.cleaned, prepared.y, cv.folds, seed
        )
        summary["scorecard"] = {"roc_auc": auc, "auc_given_up": summary["roc_auc"] - auc}
    return summary, cv


def _print_summary(summary: dict[str, Any]) -> None:
    table = Table(title=f"{summary['folds']}-fold cross-validation, {summary['leads']} leads")
    for column in ("model", "ROC AUC", "PR AUC", "Brier", "log loss", "lift@10%"):
        table.add_column(column)
    rows = {summary["model"] + " (chosen)": summary, **summary["baselines"]}
    for name, m in rows.items():
        table.add_row(
            name,
            f"{m['roc_auc']:.4f}",
            f"{m['pr_auc']:.4f}",
            f"{m['brier']:.4f}",
            f"{m['log_loss']:.4f}",
            f"{m['lift_top_decile']:.2f}",
        )
    console = Console()
    print_table(console, table)
    if "scorecard" in summary:
        card = summary["scorecard"]
        console.print(
            f"scorecard ROC AUC {card['roc_auc']:.4f}: gives up "
            f"{card['auc_given_up']:.4f} against the full model"
        )
    bands = summary["bands"]
    rates = ", ".join(
        f"{b['band']} {b['conversion_rate']:.1%} ({b['leads']} leads)"
        for b in summary["band_rates"]
        if b["conversion_rate"] is not None
    )
    console.print(
        f"bands: hot p ≥ {bands['hot']:.3f}, warm p ≥ {bands['warm']:.3f}; conversion: {rates}",
        highlight=False,
    )


def train(
    history: Annotated[Path, typer.Argument(help="Past leads: CSV, Parquet or JSON Lines.")],
    target: Target,
    output: Annotated[Path, typer.Option("--output", "-o", help="MODEL_DIR to write.")],
    id_column: IdOpt = None,
    positive: Positive = None,
    events: Events = None,
    time: TimeOpt = None,
    exclude: Exclude = None,
    missing: Missing = None,
    drop_leaky: DropLeaky = False,
    with_scorecard: Annotated[
        bool, typer.Option("--scorecard", help="Also learn an integer points table as a playbook.")
    ] = False,
    folds: Folds = 5,
    seed: Seed = 0,
) -> None:
    """Learn conversion from past leads; write MODEL_DIR (model, schema, metrics)."""
    with _user_errors("train"), _status("training") as progress:
        import yaml

        from pyrometer.predictive import artifact, scorecard
        from pyrometer.predictive.evaluate import fit_chosen

        progress("reading")
        prepared = _prepare(
            history, target, id_column, positive, events, time, exclude, missing, drop_leaky
        )
        summary, cv = _summary(prepared, folds, seed, with_scorecard, progress)
        progress(f"fitting {summary['model']} on all {len(prepared.y)} leads")
        model = fit_chosen(cv, prepared.X, prepared.y)
        artifact.save(
            output,
            model,
            prepared.schema,
            summary,
            artifact.fingerprint(prepared.frame),
            len(prepared.y),
            prepared.events,
            {"command": _command()},
        )
        if with_scorecard:
            card = scorecard.Scorecard().fit(prepared.schema, prepared.cleaned, prepared.y)
            playbook = card.playbook(prepared.schema, str(history))
            (output / "scorecard.yaml").write_text(
                "# Learned by pyrometer train --scorecard; use with: pyrometer score "
                "--playbook scorecard.yaml\n"
                + yaml.safe_dump(playbook, sort_keys=False, allow_unicode=True)
            )
    _print_summary(summary)
    _err.print(f"wrote {output}", highlight=False)


def _write(frame: pd.DataFrame, output: Path | None) -> None:
    """By the extension, as ``score -o`` writes: ``.json`` an array, ``.jsonl`` one object
    a line, ``.gz`` compressed; ``-`` or none: CSV on stdout."""
    from pyrometer.io.files import data_suffix, is_gzip

    if output is None or str(output) == "-":
        frame.to_csv(sys.stdout, index=False)
        return
    suffix = data_suffix(output)
    compression = "gzip" if is_gzip(output) else None
    if suffix in (".parquet", ".pq") and compression is None:
        frame.to_parquet(output, index=False)
    elif suffix == ".json":
        frame.to_json(output, orient="records", force_ascii=False, compression=compression)
    elif suffix in (".jsonl", ".ndjson"):
        frame.to_json(
            output, orient="records", lines=True, force_ascii=False, compression=compression
        )
    elif suffix in (".csv", ".tsv", ".txt"):
        frame.to_csv(output, index=False, compression=compression)
    else:
        raise _fail(
            f"{output}: unknown output type; use .csv, .parquet, .json or .jsonl "
            "(.csv.gz, .jsonl.gz compressed), or - for stdout"
        )


def _id_column(frame: pd.DataFrame, wanted: str | None) -> str | None:
    """The column ``wanted`` names, as spelled or loosely (``LeadID`` for ``lead_id``)."""
    from pyrometer.core.conditions import normalize_name

    if wanted is None or wanted in frame.columns:
        return wanted
    loose = [c for c in frame.columns if normalize_name(c) == normalize_name(wanted)]
    return loose[0] if loose else None


def predict(
    model_dir: Annotated[Path, typer.Argument(help="A folder written by pyrometer train.")],
    leads: Annotated[Path, typer.Argument(help="Leads to score: CSV, Parquet or JSON Lines.")],
    id_column: IdOpt = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Output file (.csv, .parquet, .json array, .jsonl; .csv.gz, .jsonl.gz); "
            "CSV on stdout if omitted or -.",
        ),
    ] = None,
    explain: Annotated[
        bool,
        typer.Option("--explain", help="Add the top factors pushing each probability up and down."),
    ] = False,
    top: Annotated[int, typer.Option(min=1, max=20, help="Factors per direction.")] = 3,
    events: Events = None,
    trust_pickle: TrustPickle = False,
) -> None:
    """Write p_convert for every lead, in input order."""
    with _user_errors("predict"):
        import numpy as np
        import pandas as pd

        from pyrometer.predictive import artifact
        from pyrometer.predictive.loading import DataError, read_table

        model = artifact.load_model(model_dir, trust_pickle=trust_pickle)
        frame = read_table(leads)
        frame.columns = [str(c) for c in frame.columns]
        id_name = _id_column(frame, id_column or model.id_column)
        if id_column is not None and id_name is None:
            raise DataError(f"{leads}: --id column {id_column!r} not found")
        log = read_table(events) if events is not None else None
        p = model.predict_proba(frame, log, source=str(leads))
        out = pd.DataFrame(index=range(len(frame)))
        if id_name is not None:
            out[id_name] = frame[id_name].to_numpy()
        out["p_convert"] = np.round(p, 6)
        if explain:
            factors = model.explain(frame, top, log, source=str(leads))
            out["factors_up"] = ["; ".join(up) for up, _ in factors]
            out["factors_down"] = ["; ".join(down) for _, down in factors]
        _write(out, output)


def evaluate(
    history: Annotated[Path, typer.Argument(help="Past leads: CSV, Parquet or JSON Lines.")],
    target: Target,
    id_column: IdOpt = None,
    positive: Positive = None,
    events: Events = None,
    time: TimeOpt = None,
    exclude: Exclude = None,
    missing: Missing = None,
    drop_leaky: DropLeaky = False,
    folds: Folds = 5,
    seed: Seed = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    report_path: Annotated[
        Path | None, typer.Option("--report", help="Write an HTML report with plots.")
    ] = None,
    with_scorecard: Annotated[
        bool, typer.Option("--scorecard", help="Also measure the integer points table's AUC.")
    ] = False,
) -> None:
    """Cross-validated ROC AUC, PR AUC, Brier, log loss, lift, calibration and bands."""
    with _user_errors("evaluate"), _status("evaluating") as progress:
        from pyrometer.predictive import report

        prepared = _prepare(
            history, target, id_column, positive, events, time, exclude, missing, drop_leaky
        )
        summary, _ = _summary(prepared, folds, seed, with_scorecard, progress)
        if report_path is not None:
            report_path.write_text(
                report.render(summary, summary["leaks"], str(history), _command()), encoding="utf-8"
            )
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        _print_summary(summary)
    if report_path is not None:
        _err.print(f"wrote {report_path}", highlight=False)


def _command() -> str:
    return "pyrometer " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def register(app: typer.Typer) -> None:
    """Add ``train``, ``predict`` and ``evaluate`` to ``app``."""
    app.command("train")(train)
    app.command("predict")(predict)
    app.command("evaluate")(evaluate)
