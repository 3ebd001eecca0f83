"""``pyrometer models train|list|show|activate``: conversion models learned from the store.

``train`` runs the training job in this process (the same job ``POST /v1/models/train``
starts), printing its steps, then the new model's figures and whether it was activated.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from pyrometer.cli.commands import UserError, err, out, user_errors
from pyrometer.cli.extras import needs_extra
from pyrometer.cli.output import aligned
from pyrometer.cli.service_commands import DatabaseOpt, opened

VersionArg = Annotated[int, typer.Argument(min=1, help="The model's number.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document.")]


def _figure(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def models_train(as_json: JsonOpt = False, database: DatabaseOpt = None) -> None:
    """Train a model on the store's known outcomes; activate it per the playbook."""
    with needs_extra("service", "models train"), needs_extra("predict", "models train"):
        import lightgbm  # noqa: F401  (the extra, checked before the store opens)

        from pyrometer.service import models

    with user_errors(), opened(database) as service:
        job_id = models.create_job(service, trigger="cli")
        err.print(f"training job {job_id}: reading the stored outcomes...")
        result = models.run_training(service, job_id)
    if "error" in result:
        raise UserError(f"training failed: {result['error']}")
    if as_json:
        print(json.dumps(result, indent=2))
        return
    for warning in result["warnings"]:
        err.print(f"warning: {warning}")
    out.print(
        f"model {result['model']}: {result['outcomes']} outcomes, ROC AUC "
        f"{_figure(result['roc_auc'])} on the newest, trained in {result['seconds']:.1f} s"
    )
    champion = result.get("champion")
    if champion and champion.get("roc_auc") is not None:
        out.print(
            f"active model {champion['version']} on the same leads: ROC AUC "
            f"{_figure(champion.get('roc_auc'))}"
        )
    state = "activated" if result["activated"] else "not activated"
    out.print(f"{state}: {result['reason']}")


def models_list(as_json: JsonOpt = False, database: DatabaseOpt = None) -> None:
    """Every trained model, newest first: outcomes, figures on the newest outcomes, active."""
    with needs_extra("service", "models list"):
        from pyrometer.service.models import model_view
        from pyrometer.store.models import list_models

    with user_errors(), opened(database) as service:
        items = [model_view(row) for row in service.read(list_models)]
    if as_json:
        print(json.dumps({"items": items}, indent=2))
        return
    header = ("version", "created", "outcomes", "roc_auc", "brier", "lift_top10%", "active")
    rows = [header] + [
        (
            str(m["version"]),
            m["created"],
            str(m["outcomes"]),
            _figure(m["roc_auc"]),
            _figure(m["brier"], 4),
            _figure(m["lift_top_decile"], 2),
            "yes" if m["active"] else "no",
        )
        for m in items
    ]
    print(aligned(rows))


def models_show(version: VersionArg, database: DatabaseOpt = None) -> None:
    """One model's figures: metrics, lift by decile, calibration, baselines, as JSON."""
    with needs_extra("service", "models show"):
        from pyrometer.service.models import model_view
        from pyrometer.store.models import get_model

    with user_errors(), opened(database) as service:
        row = service.read(lambda conn: get_model(conn, version))
    if row is None:
        raise UserError(f"no model {version}; `pyrometer models list` shows them")
    print(json.dumps(model_view(row, full=True), indent=2))


def models_activate(version: VersionArg, database: DatabaseOpt = None) -> None:
    """Make a model the one lead reads are scored with."""
    with needs_extra("service", "models activate"):
        from pyrometer.service.models import activate

    with user_errors(), opened(database) as service:
        if not activate(service, version):
            raise UserError(f"no model {version}; `pyrometer models list` shows them")
    out.print(f"model {version} is active")


def register(app: typer.Typer) -> None:
    models_app = typer.Typer(
        help="Conversion models learned from the store's outcomes.", no_args_is_help=True
    )
    models_app.command("train")(models_train)
    models_app.command("list")(models_list)
    models_app.command("show")(models_show)
    models_app.command("activate")(models_activate)
    app.add_typer(models_app, name="models")
