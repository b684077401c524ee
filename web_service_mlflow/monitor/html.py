"""The drift report as one self-contained HTML page: verdict, checks, histograms, zones, errors.

The page must open anywhere a report is sent (a mail, a ticket, a machine with no network), so
everything is inline: the plots are SVG drawn by matplotlib, the style one <style> block, and
there is no script at all. Every text that came from outside (paths, model versions, notes) is
escaped. The plots use matplotlib's object API (`Figure`), never pyplot: no backend, no display
and no global figure list to leak from.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

import matplotlib
import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from web_service.drift import NumericProfile, Profile

REFERENCE_COLOR, CURRENT_COLOR, ALERT_COLOR = "#5b7fa6", "#e0702a", "#c0392b"
BINS = 60
CLIP_QUANTILE = 0.995  # a few 100-mile rides would squeeze the whole distribution into one bar
# Days with fewer rides than this are left out of the error plot: a stray ride dated 2009 would
# stretch the axis over twelve years and its RMSE is one ride's error.
MIN_DAY_RIDES = 30
UNITS = {"trip_distance": ("trip distance", "miles"), "predicted_duration": ("predicted duration", "minutes")}
METHODS = {"psi": "PSI on the reference's deciles", "ks": "Kolmogorov-Smirnov D",
           "js": "Jensen-Shannon distance of zone shares", "rmse_ratio": "RMSE / validation RMSE"}  # fmt: skip
PLOT_STYLE = {
    "svg.fonttype": "none",  # text stays text: smaller, sharp, and searchable in the page
    "font.family": "sans-serif",
    "font.size": 12,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e6e6e6",
    "legend.frameon": False,
}


def render(report: Mapping[str, Any], profile: Profile, current: Mapping[str, np.ndarray]) -> str:
    """The page for `report`, drawing the reference from `profile` and the current rides' values."""
    sections = [
        _header(report),
        _checks_table(report["checks"]),
        _distributions_section(profile, current),
        _zones_section(report["checks"]),
        _errors_section(report),
        _footer(report),
    ]  # fmt: skip
    title = "Drift detected" if report["drift_detected"] else "No drift"
    return PAGE.format(title=escape(title), style=STYLE, body="\n".join(sections))


# --- the parts of the page ------------------------------------------------------------------------


def _header(report: Mapping[str, Any]) -> str:
    drifted = report["drift_detected"]
    verdict = (f"Drift detected in {', '.join(report['drifted_columns'])}" if drifted
               else "No drift: every check is under its threshold")  # fmt: skip
    reference, current, model = report["reference"], report["current"], report["model"]
    rows = [
        ("Reference", f"{reference['kind']}: {reference['source']} ({reference['rides']:,} rides)"),
        ("Current", f"{', '.join(dict.fromkeys(current['kinds']))}: {', '.join(current['sources'])} "
                    f"({current['rides']:,} rides, {current['skipped']:,} skipped)"),
        ("Model", f"{model['model_version']} ({model['source']})"),
        ("Current predictions by", ", ".join(current["model_versions"]) or "unknown"),
        ("Created", f"{report['created']} in {report['seconds']} s"),
    ]  # fmt: skip
    table = "".join(f"<tr><th>{escape(name)}</th><td>{escape(str(value))}</td></tr>" for name, value in rows)
    warnings = "".join(f'<p class="warning">Warning: {escape(text)}</p>' for text in report.get("warnings", []))
    banner = "drift" if drifted else "quiet"
    return (f'<h1>Drift report</h1><div class="banner {banner}">{escape(verdict)}</div>{warnings}'
            f'<table class="about">{table}</table>')  # fmt: skip


def _checks_table(checks: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for check in checks:
        statistic = check["statistic"]
        verdict = "DRIFT" if check["drifted"] else ("no verdict" if statistic is None else "ok")
        shown = "n/a" if statistic is None else f"{statistic:.4g}"
        rows.append(
            f'<tr class="{"drifted" if check["drifted"] else ""}"><td>{escape(check["column"])}</td>'
            f"<td>{escape(METHODS.get(check['method'], check['method']))}</td>"
            f'<td class="num">{shown}</td><td class="num">{check["threshold"]:g}</td>'
            f"<td>{verdict}</td><td>{escape(_check_detail(check['detail']))}</td></tr>"
        )
    head = "<tr><th>column</th><th>method</th><th>statistic</th><th>threshold</th><th>verdict</th><th>detail</th></tr>"
    return f'<h2>Checks</h2><table class="checks">{head}{"".join(rows)}</table>'


def _check_detail(detail: Mapping[str, Any]) -> str:
    if detail.get("note"):
        return str(detail["note"])
    if "current_mean" in detail:
        return f"mean {detail['reference_mean']:.4g} → {detail['current_mean']:.4g}, {detail['rides']:,} rides"
    if "rmse" in detail and detail.get("rmse") is not None:
        return f"RMSE {detail['rmse']:.3f} (validation {detail['valid_rmse']:.3f}) on {detail['rides']:,} rides"
    return f"{detail['rides']:,} rides" if "rides" in detail else ""


def _distributions_section(profile: Profile, current: Mapping[str, np.ndarray]) -> str:
    figures = [_histogram(name, profile.numeric[name], np.asarray(current[name], dtype=float))
               for name in UNITS if name in profile.numeric and name in current]  # fmt: skip
    intro = ("The reference's share of rides per bin is read off its profile's 1,001 quantiles (within 0.1 %), "
             "the current one counted from the rides; dashed lines are the means.")  # fmt: skip
    return f'<h2>Distributions</h2><p>{escape(intro)}</p><div class="plots">{"".join(figures)}</div>'


def _histogram(name: str, reference: NumericProfile, values: np.ndarray) -> str:
    label, unit = UNITS[name]
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return f"<figure><figcaption>{escape(label.capitalize())}: no current values.</figcaption></figure>"
    quantiles = np.asarray(reference.quantiles, dtype=float)
    low = min(0.0, float(quantiles[0]))
    high = float(np.quantile(quantiles, CLIP_QUANTILE, method="inverted_cdf"))
    edges = np.linspace(low, high, BINS + 1)
    ref_share, cur_share = _bin_shares(quantiles, edges), _bin_shares(np.sort(values), edges)
    beyond_ref, beyond_cur = 1 - ref_share.sum(), 1 - cur_share.sum()
    svg = _plot(name, lambda ax: _draw_histogram(ax, edges, ref_share, cur_share, reference.mean,
                                                 float(values.mean()), label, unit))  # fmt: skip
    note = (
        f"{label.capitalize()}, clipped at {high:.4g} {unit} (the reference's {CLIP_QUANTILE:.1%} quantile): "
        f"beyond it lie {beyond_ref:.1%} of the reference rides and {beyond_cur:.1%} of the current ones."
    )
    return f"<figure>{svg}<figcaption>{escape(note)}</figcaption></figure>"


def _bin_shares(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The share of values in [e0, e1], (e1, e2], ...: as a step distribution function counts them.

    The reference is known only by its evenly spaced quantiles; each stands for the same share of
    rides, so counting quantiles counts the reference's rides to within 0.1 %.
    """
    below = np.searchsorted(sorted_values, edges, side="right").astype(float)
    below[0] = np.searchsorted(sorted_values, edges[0], side="left")  # an atom on the lowest edge is inside
    return np.diff(below) / len(sorted_values)


def _draw_histogram(ax, edges: np.ndarray, reference: np.ndarray, current: np.ndarray, ref_mean: float,
                    cur_mean: float, label: str, unit: str) -> None:  # fmt: skip
    width = edges[1] - edges[0]
    bars = ax.bar(edges[:-1], reference * 100, width=width, align="edge", color=REFERENCE_COLOR, alpha=0.45,
                  label=f"reference (mean {ref_mean:.2f})")  # fmt: skip
    line = ax.stairs(current * 100, edges, color=CURRENT_COLOR, linewidth=2.2, label=f"current (mean {cur_mean:.2f})")
    ax.axvline(ref_mean, color=REFERENCE_COLOR, linestyle="--", linewidth=1.2)
    ax.axvline(cur_mean, color=CURRENT_COLOR, linestyle="--", linewidth=1.2)
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel(f"{label} ({unit})")
    ax.set_ylabel("share of rides per bin (%)")
    ax.legend(handles=[bars, line], loc="upper right")


def _zones_section(checks: Sequence[Mapping[str, Any]]) -> str:
    tables = [_zone_table(check) for check in checks if check["method"] == "js" and check["detail"].get("top_moved")]
    if not tables:
        return ""
    intro = ("The zones whose share of the rides moved most. Zones under 0.5 % of the reference are pooled "
             "as “other”.")  # fmt: skip
    return f'<h2>Zones that moved</h2><p>{escape(intro)}</p><div class="zones">{"".join(tables)}</div>'


def _zone_table(check: Mapping[str, Any]) -> str:
    title = {"PULocationID": "Pickup zones", "DOLocationID": "Drop-off zones"}.get(check["column"], check["column"])
    rows = []
    for zone in check["detail"]["top_moved"]:
        ref, cur = zone["reference_share"], zone["current_share"]
        change = (cur - ref) * 100
        direction = "up" if change > 0 else "down"
        rows.append(f"<tr><td>{escape(str(zone['zone']))}</td><td class='num'>{ref:.2%}</td>"
                    f"<td class='num'>{cur:.2%}</td><td class='num {direction}'>{change:+.2f}</td></tr>")  # fmt: skip
    head = "<tr><th>zone</th><th>reference</th><th>current</th><th>change (points)</th></tr>"
    return (f'<table class="zone"><caption>{escape(title)} ({escape(check["column"])}, JS {check["statistic"]:.3f})'
            f"</caption>{head}{''.join(rows)}</table>")  # fmt: skip


def _errors_section(report: Mapping[str, Any]) -> str:
    errors = report.get("errors")
    if not errors:
        return ("<h2>Errors</h2><p>The current rides have no actual durations (a prediction log has none), "
                "so their errors are not measured.</p>")  # fmt: skip
    valid = errors.get("valid_rmse")
    rmse = "n/a" if errors["rmse"] is None else f"{errors['rmse']:.3f}"
    mae = "n/a" if errors["mae"] is None else f"{errors['mae']:.3f}"
    text = f"RMSE {rmse} and MAE {mae} minutes on {errors['rides']:,} rides of 1 to 60 minutes" + (
        f"; the run's validation RMSE is {valid:.3f}." if valid else "; the run's validation RMSE is unknown."
    )
    days = [day for day in report["error_over_time"] if day["rides"] >= MIN_DAY_RIDES]
    left_out = len(report["error_over_time"]) - len(days)
    if not days:
        return f"<h2>Errors</h2><p>{escape(text)}</p>"
    svg = _plot("errors", lambda ax: _draw_errors(ax, days, valid, report["thresholds"]["rmse_ratio"]), wide=True)
    note = "Daily RMSE and MAE of the rides with a known duration."
    if left_out:
        note += f" {left_out} day(s) with fewer than {MIN_DAY_RIDES} rides are not drawn (report.json lists them)."
    figure = f"<figure>{svg}<figcaption>{escape(note)}</figcaption></figure>"
    return f"<h2>Errors over time</h2><p>{escape(text)}</p>{figure}"


def _draw_errors(ax, days: Sequence[Mapping[str, Any]], valid_rmse: float | None, ratio: float) -> None:
    x = np.array([day["day"] for day in days], dtype="datetime64[D]")
    ax.plot(x, [day["rmse"] for day in days], marker="o", color=CURRENT_COLOR, linewidth=2, label="daily RMSE")
    ax.plot(x, [day["mae"] for day in days], marker="s", color="#7a5195", linewidth=1.5, label="daily MAE")
    if valid_rmse:
        ax.axhline(valid_rmse, color=REFERENCE_COLOR, linestyle="--", label=f"validation RMSE ({valid_rmse:.2f})")
        ax.axhline(valid_rmse * ratio, color=ALERT_COLOR, linestyle=":",
                   label=f"alert line: {ratio:g} × validation RMSE")  # fmt: skip
    ax.set_ylim(bottom=0)
    ax.set_ylabel("minutes")
    ax.set_xlabel("day of the ride")
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.figure.legend(loc="outside upper center", ncols=4)


def _footer(report: Mapping[str, Any]) -> str:
    thresholds = ", ".join(f"{name} {value:g}" for name, value in report["thresholds"].items())
    return (
        f'<p class="footer">Thresholds: {escape(thresholds)}. A column with fewer current rides than '
        "min_rides gets no verdict. The same numbers are in report.json beside this page.</p>"
    )


# --- plotting -------------------------------------------------------------------------------------


def _plot(name: str, draw: Callable[[Axes], None], wide: bool = False) -> str:
    """An inline <svg> of what `draw(ax)` draws; ids salted with `name` so that two plots never share one."""
    with matplotlib.rc_context(PLOT_STYLE | {"svg.hashsalt": name}):
        figure = Figure(figsize=(11, 3.2) if wide else (6.4, 4), layout="constrained")
        draw(figure.subplots())
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # the XML prolog and DOCTYPE are not allowed inside HTML
    return re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.DOTALL)


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; margin: 24px auto;
       max-width: 1180px; padding: 0 20px; color: #222; font-size: 15px; line-height: 1.45; }
h1 { font-size: 26px; margin: 0 0 12px; }
h2 { font-size: 20px; margin: 22px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.banner { padding: 14px 18px; border-radius: 6px; font-size: 20px; font-weight: 600; color: #fff; }
.banner.drift { background: #c0392b; }
.banner.quiet { background: #2e8b57; }
.warning { background: #fff4d6; border-left: 5px solid #e0a800; padding: 8px 12px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { padding: 5px 10px; border-bottom: 1px solid #e5e5e5; text-align: left; vertical-align: top; }
table.about th { color: #555; font-weight: 600; white-space: nowrap; }
table.about td { word-break: break-all; }
table.zone td, table.zone th, table.about td, table.about th { padding: 3px 10px; }
table.checks tr.drifted td { background: #fde2df; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.up { color: #1f7a3a; }
td.down { color: #b03a2e; }
.zones { display: flex; gap: 32px; flex-wrap: wrap; }
caption { text-align: left; font-weight: 600; padding-bottom: 4px; }
figure { margin: 8px 0; }
.plots { display: grid; grid-template-columns: 1fr 1fr; gap: 24px; }
@media (max-width: 900px) { .plots { grid-template-columns: 1fr; } }
figure svg { width: 100%; height: auto; }
figcaption, .footer { color: #555; font-size: 14px; }
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}: drift report</title>
<style>{style}</style>
</head>
<body>
{body}
</body>
</html>
"""
