"""The evaluation report: one self-contained HTML file with inline SVG plots.

No plotting library is needed: the report must open on any machine, from an e-mail
attachment, without scripts or network access.
"""

from __future__ import annotations

import html
from typing import Any

W, H, PAD = 360, 260, 40


def _scale(value: float, low: float, high: float, size: float) -> float:
    return (value - low) / ((high - low) or 1.0) * size


def _axes(xlabel: str, ylabel: str, ymax: float) -> str:
    parts = [
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - 10}" y2="{H - PAD}" stroke="#333"/>',
        f'<line x1="{PAD}" y1="10" x2="{PAD}" y2="{H - PAD}" stroke="#333"/>',
        f'<text x="{W / 2}" y="{H - 8}" text-anchor="middle">{html.escape(xlabel)}</text>',
        f'<text x="12" y="{H / 2}" transform="rotate(-90 12 {H / 2})" '
        f'text-anchor="middle">{html.escape(ylabel)}</text>',
    ]
    for tick in (0.0, 0.5, 1.0):
        y = H - PAD - _scale(tick * ymax, 0, ymax, H - PAD - 10)
        parts.append(
            f'<text x="{PAD - 4}" y="{y + 4:.1f}" text-anchor="end">{tick * ymax:.2g}</text>'
        )
    return "".join(parts)


def calibration_svg(curve: list[dict[str, float]]) -> str:
    top = max([1e-9] + [max(c["mean_p"], c["observed"]) for c in curve])
    top = min(1.0, top * 1.1)
    sx, sy = W - PAD - 10, H - PAD - 10

    def point(px: float, py: float) -> tuple[float, float]:
        return PAD + _scale(px, 0, top, sx), H - PAD - _scale(py, 0, top, sy)

    diagonal = f"{PAD},{H - PAD} {PAD + sx},{H - PAD - sy}"
    line = " ".join("{:.1f},{:.1f}".format(*point(c["mean_p"], c["observed"])) for c in curve)
    dots = "".join(
        '<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="#c0392b"/>'.format(
            *point(c["mean_p"], c["observed"])
        )
        for c in curve
    )
    return (
        f'<svg width="{W}" height="{H}" font-size="11">{_axes("predicted", "observed", top)}'
        f'<polyline points="{diagonal}" stroke="#aaa" stroke-dasharray="4" fill="none"/>'
        f'<polyline points="{line}" stroke="#c0392b" fill="none"/>{dots}</svg>'
    )


def bars_svg(values: list[float], labels: list[str], ylabel: str, reference: float | None) -> str:
    top = max([1e-9, *values, reference or 0]) * 1.1
    width = (W - PAD - 10) / max(1, len(values))
    parts = [_axes("", ylabel, top)]
    for i, (value, label) in enumerate(zip(values, labels, strict=True)):
        height = _scale(value, 0, top, H - PAD - 10)
        x = PAD + i * width + 2
        parts.append(
            f'<rect x="{x:.1f}" y="{H - PAD - height:.1f}" width="{width - 4:.1f}" '
            f'height="{height:.1f}" fill="#e67e22"/>'
        )
        parts.append(
            f'<text x="{x + width / 2 - 2:.1f}" y="{H - PAD + 12}" '
            f'text-anchor="middle">{html.escape(label)}</text>'
        )
    if reference is not None:
        y = H - PAD - _scale(reference, 0, top, H - PAD - 10)
        parts.append(
            f'<line x1="{PAD}" y1="{y:.1f}" x2="{W - 10}" y2="{y:.1f}" '
            'stroke="#2c3e50" stroke-dasharray="4"/>'
        )
    return f'<svg width="{W}" height="{H}" font-size="11">{"".join(parts)}</svg>'


def render(summary: dict[str, Any], leaks: list[str], source: str, command: str) -> str:
    """The whole report; ``summary`` is :meth:`CrossValidation.summary` (plus scorecard)."""
    rows = [
        ("chosen model", summary["model"]),
        ("leads", summary["leads"]),
        ("base conversion rate", f"{summary['base_rate']:.1%}"),
        ("ROC AUC", f"{summary['roc_auc']:.4f}"),
        ("PR AUC", f"{summary['pr_auc']:.4f}"),
        ("Brier score", f"{summary['brier']:.4f}"),
        ("log loss", f"{summary['log_loss']:.4f}"),
        ("lift, top decile", f"{summary['lift_top_decile']:.2f}"),
    ]
    if "scorecard" in summary:
        card = summary["scorecard"]
        rows.append(
            ("scorecard ROC AUC", f"{card['roc_auc']:.4f} (gives up {card['auc_given_up']:.4f})")
        )
    metric_rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    baseline_rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{m['roc_auc']:.4f}</td><td>{m['pr_auc']:.4f}</td>"
        f"<td>{m['brier']:.4f}</td><td>{m['log_loss']:.4f}</td></tr>"
        for name, m in summary["baselines"].items()
    )
    deciles = summary["lift_by_decile"]
    bands = summary["band_rates"]
    leak_html = (
        "<ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in leaks) + "</ul>"
        if leaks
        else "<p>No column looks like it was filled in after the outcome.</p>"
    )
    band_rows = "".join(
        f"<tr><td>{b['band']}</td><td>{b['leads']}</td><td>"
        f"{'' if b['conversion_rate'] is None else format(b['conversion_rate'], '.1%')}</td></tr>"
        for b in bands
    )
    thresholds = summary["bands"]
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Pyrometer evaluation: {html.escape(source)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;
text-align:left}}.plots{{display:flex;flex-wrap:wrap;gap:1em}}.warn{{background:#fdf2e9;
padding:0.5em 1em;border-left:4px solid #e67e22}}</style></head><body>
<h1>Pyrometer evaluation</h1>
<p>History <code>{html.escape(source)}</code>, {summary["folds"]}-fold cross-validation
(seed {summary["seed"]}): every figure is computed on leads the model did not see.</p>
<p><code>{html.escape(command)}</code></p>
<table>{metric_rows}</table>
<h2>Leakage guard</h2><div class="warn">{leak_html}</div>
<h2>Baselines</h2>
<table><tr><th>model</th><th>ROC AUC</th><th>PR AUC</th><th>Brier</th><th>log loss</th></tr>
{baseline_rows}</table>
<h2>Plots</h2><div class="plots">
<figure>{calibration_svg(summary["calibration"])}<figcaption>Calibration: predicted
probability against observed conversion (dashed: perfect).</figcaption></figure>
<figure>{
        bars_svg([d["lift"] for d in deciles], [str(d["decile"]) for d in deciles], "lift", 1.0)
    }<figcaption>Lift by decile of predicted probability (1 = highest;
dashed: no lift).</figcaption></figure>
<figure>{
        bars_svg(
            [b["conversion_rate"] or 0.0 for b in bands],
            [b["band"] for b in bands],
            "conversion rate",
            summary["base_rate"],
        )
    }<figcaption>Conversion rate by
temperature band (dashed: base rate).</figcaption></figure></div>
<h2>Temperature bands</h2>
<p>hot: p ≥ {thresholds["hot"]:.3f}; warm: p ≥ {thresholds["warm"]:.3f}; cold below.</p>
<table><tr><th>band</th><th>leads</th><th>conversion rate</th></tr>{band_rows}</table>
</body></html>
"""
