"""``pyrometer tune``: thresholds for a capacity or a precision, and learned points, each
kept only if it does better on a later period than it was tuned on."""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from pyrometer.cli.backtest_command import DAY_US, _duration, parse_capacity
from pyrometer.cli.commands import (
    EncodingOpt,
    EventsArg,
    IdOpt,
    LeadsOpt,
    UserError,
    err,
    out,
    parse_as_of,
    user_errors,
)
from pyrometer.cli.output import print_table

if TYPE_CHECKING:
    from pyrometer.backtest.metrics import Metrics
    from pyrometer.backtest.tune import CurvePoint

LEARN_SHARE = 2 / 3


def merit(m: Metrics, precision: float | None) -> float:
    """How a tuned playbook is judged on the later period. For a capacity: wins per hot
    lead-day (precision; the volumes were matched on the learning period). For a target
    precision: recall while the precision holds, else the precision reached (below 0)."""
    p, r = m.hot_precision or 0.0, m.hot_recall or 0.0
    if precision is None:
        return p
    return r if p >= precision else p - 1.0


def tune_command(
    events: EventsArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="Write the tuned playbook.")],
    leads: LeadsOpt = None,
    outcomes: Annotated[
        Path | None,
        typer.Option("--outcomes", help="lead_id, outcome (won/lost), at; default: events."),
    ] = None,
    playbook: Annotated[
        Path | None, typer.Option("--playbook", help="The playbook to start from.")
    ] = None,
    capacity: Annotated[
        str | None, typer.Option("--capacity", help="New hot leads per day the team can take.")
    ] = None,
    precision: Annotated[
        float | None,
        typer.Option("--precision", help="Share of hot lead-days that should win.", min=0, max=1),
    ] = None,
    start: Annotated[str | None, typer.Option("--from", help="First as-of time.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last as-of time.")] = None,
    every: Annotated[str, typer.Option("--every", help="Step between as-of times.")] = "1d",
    horizon: Annotated[str, typer.Option("--horizon", help="Wins count within this.")] = "30d",
    report: Annotated[Path | None, typer.Option("--report", help="HTML report.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    id_column: IdOpt = None,
    encoding: EncodingOpt = None,
) -> None:
    """Tune a playbook on past events: hot/warm thresholds for a capacity (--capacity) or a
    precision (--precision) and points learned from what came before wins. The first two
    thirds of the as-of times learn (a capacity is matched on their last quarter), the
    rest (after a horizon's gap) judge."""
    import yaml

    from pyrometer.backtest import tune
    from pyrometer.backtest.metrics import lead_outcomes
    from pyrometer.backtest.report import render
    from pyrometer.backtest.run import Result, run
    from pyrometer.backtest.sweep import as_of_grid
    from pyrometer.core.playbook import default_playbook, load_playbook
    from pyrometer.core.timeutil import iso
    from pyrometer.engines.duckdb_batch import connect
    from pyrometer.io.history import iter_leads, open_history, read_outcomes

    with user_errors():
        if (capacity is None) == (precision is None):
            raise UserError("give --capacity N/day or --precision P (one of them)")
        per_day = parse_capacity(capacity)
        base = load_playbook(playbook)
        every_us, horizon_us = _duration(every, "--every"), _duration(horizon, "--horizon")
        con = connect()
        with err.status("Reading..."):
            history = open_history(con, base, events, leads, id_column, encoding)
            rows = read_outcomes(con, outcomes, id_column, encoding) if outcomes else None
            histories = list(iter_leads(con, history))
        if rows is None:
            from pyrometer.io.history import outcomes_from_events

            rows = [o for _, evs in histories for o in outcomes_from_events(base, evs)]
        known = lead_outcomes(rows)
        last = max([history.last_us, *(o.at_us for o in rows)])
        end_us = parse_as_of(end, "--to") if end else (last - horizon_us) // DAY_US * DAY_US
        start_us = (
            parse_as_of(start, "--from") if start else history.first_us // DAY_US * DAY_US + DAY_US
        )
        times = as_of_grid(start_us, end_us, every_us) if end_us >= start_us else []
        learn = times[: max(1, int(len(times) * LEARN_SHARE))]
        judge = [t for t in times if t >= learn[-1] + horizon_us] if learn else []
        if len(learn) < 2 or len(judge) < 2:
            raise UserError(
                f"the as-of range {iso(start_us)} … {iso(end_us)} is too short to learn on "
                "two thirds of it and judge on the rest a --horizon later: widen --from/--to "
                "or shorten --horizon"
            )

        def table(book: Any) -> tune.ScoreTable:
            timelines: list[Any] = []
            run(
                [("x", book)], histories, history.attributes, rows, learn, horizon_us,
                keep=lambda _, t: timelines.append(t),
            )  # fmt: skip
            # A capacity is matched on the learning period's last quarter: today's volume.
            since = len(learn) * 3 // 4 if per_day is not None else 0
            return tune.ScoreTable(learn, timelines, known, horizon_us, since)

        def thresholds(book: Any, label: str) -> tuple[Any, list[CurvePoint], CurvePoint]:
            scores = table(book)
            curve = scores.curve()
            picked = tune.pick_hot(curve, per_day, precision)
            if picked is None:
                target = f"{capacity}" if capacity else f"precision {precision}"
                raise UserError(f"{label}: no hot threshold reaches {target} on the history")
            warm = tune.pick_warm(scores, picked.threshold)
            return tune.with_thresholds(book, picked.threshold, warm), curve, picked

        with err.status("Tuning thresholds..."):
            tuned, curve, picked = thresholds(base, "thresholds")
        with err.status("Learning points..."):
            data = tune.features(base, histories, history.attributes, known, learn, horizon_us)
            learned, changes = tune.learn_points(base, data)
            learned, _, learned_pick = thresholds(learned, "learned points")
        with err.status("Judging on the later period..."):
            judged = run(
                [
                    ("default", default_playbook()),
                    ("yours" if playbook else "default as given", base),
                    ("thresholds tuned", tuned),
                    ("points learned", learned),
                ][0 if playbook else 1 :],
                histories, history.attributes, rows, judge, horizon_us, per_day,
            )  # fmt: skip
        scores = {
            name: merit(m, precision) for name, m in zip(judged.names, judged.metrics, strict=True)
        }
        keep_points = scores["points learned"] > scores["thresholds tuned"]
        chosen = learned if keep_points else tuned
        chosen_name = "points learned" if keep_points else "thresholds tuned"
        header = [
            f"Tuned by `pyrometer tune` from {playbook or 'the built-in playbook'} on "
            f"{history.leads} leads, {history.rows} events.",
            f"Learned on {len(learn)} as-of times {iso(learn[0])} … {iso(learn[-1])}; judged "
            f"on {len(judge)} from {iso(judge[0])} (horizon {horizon}).",
            f"Kept: {chosen_name} ({'recall' if precision else 'precision'} of hot on the "
            "later period: " + ", ".join(f"{n} {v:.3f}" for n, v in scores.items()) + ").",
            f"hot {chosen.temperature.hot:g}, warm {chosen.temperature.warm:g}: "
            + (f"for a capacity of {capacity}." if capacity else f"for precision {precision}."),
        ]
        text = "".join(f"# {line}\n" for line in header) + yaml.safe_dump(
            chosen.to_yaml_dict(), sort_keys=False, allow_unicode=True
        )
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output} ({chosen_name})", highlight=False)
        near = _near(curve, picked)
        if report is not None:
            report.write_text(
                render(judged, "pyrometer tune " + " ".join(sys.argv[2:]), _curve_html(near)),
                encoding="utf-8",
            )
            err.print(f"wrote {report}", highlight=False)
        summary = {
            "kept": chosen_name,
            "output": str(output),
            "learn": {"from": iso(learn[0]), "to": iso(learn[-1]), "count": len(learn)},
            "judge": {"from": iso(judge[0]), "to": iso(judge[-1]), "count": len(judge)},
            "thresholds": {"hot": picked.threshold, "warm": tuned.temperature.warm},
            "learned_thresholds": {
                "hot": learned_pick.threshold,
                "warm": learned.temperature.warm,
            },
            "points": {name: {"was": a, "learned": b} for name, (a, b) in changes.items()},
            "judged_by": "recall" if precision is not None else "precision",
            "merit_later": scores,
            "curve": [p.to_dict() for p in curve],
            "judged": Result.to_dict(judged),
        }
        if as_json:
            sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
            return
        _print(near, picked, changes, judged, chosen_name)


def _near(curve: list[CurvePoint], picked: CurvePoint, each_side: int = 5) -> list[CurvePoint]:
    at = next(i for i, p in enumerate(curve) if p.threshold == picked.threshold)
    return curve[max(0, at - each_side) : at + each_side + 1]


def _curve_html(points: list[CurvePoint]) -> str:
    rows = "".join(
        f"<tr><td>{p.threshold:g}</td><td>{p.new_hot_per_day:.1f}</td>"
        f"<td>{100 * (p.precision or 0):.1f}%</td><td>{100 * (p.recall or 0):.1f}%</td></tr>"
        for p in points
    )
    return (
        "<h2>Trade-off on the learning period</h2><table><tr><th>hot at</th>"
        "<th>new hot / day</th><th>precision</th><th>recall</th></tr>"
        f"{rows}</table><p>{html.escape('Lower thresholds: more hot leads, more recall.')}</p>"
    )


def _print(
    near: list[CurvePoint],
    picked: CurvePoint,
    changes: dict[str, tuple[float, float]],
    judged: Any,
    chosen: str,
) -> None:
    from pyrometer.backtest.report import ROWS, best, fmt

    curve = Table(title="Hot threshold trade-off (learning period)")
    for column in ("hot at", "new hot / day", "precision", "recall"):
        curve.add_column(column, justify="right")
    for p in near:
        style = "bold green" if p is picked else ""
        curve.add_row(
            f"{p.threshold:g}",
            f"{p.new_hot_per_day:.1f}",
            fmt(p.precision, "pct"),
            fmt(p.recall, "pct"),
            style=style,
        )
    print_table(out, curve)
    points = Table(title="Points learned (kept only if better on the later period)")
    for column in ("rule", "was", "learned"):
        points.add_column(column, justify="left" if column == "rule" else "right")
    for name, (was, now) in changes.items():
        points.add_row(name, f"{was:g}", f"{now:g}")
    print_table(out, points)
    compare = Table(title=f"Later period: {len(judged.as_of_times)} as-of times")
    compare.add_column("")
    for name in judged.names:
        compare.add_column(name, justify="right")
    for row in ROWS:
        if row.better is None and row.fmt != "num":
            continue
        values = [row.value(m) for m in judged.metrics]
        if all(v is None for v in values):
            continue
        winners = best(values, row.better)
        compare.add_row(
            row.label,
            *(
                f"[bold green]{fmt(v, row.fmt)}[/]" if i in winners else fmt(v, row.fmt)
                for i, v in enumerate(values)
            ),
        )
    print_table(out, compare)
    out.print(f"kept: [bold]{chosen}[/]")


def register(app: typer.Typer) -> None:
    app.command("tune")(tune_command)
