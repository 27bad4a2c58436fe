"""Incident report of one entity: Markdown, or self-contained HTML with its charts inline.

Built from the entity view model (`views.entity_detail`), so the report says what the console
shows at that moment. The HTML needs nothing else: inline CSS, charts as inline SVG polylines,
no script; every value goes through `html.escape`. Markdown escapes table cells' pipes.

The charts read as the console's (common.js `lineChart`): y ticks on round values, the unit
the API gives a signal (`views.signal_unit`) or what is plotted above the y axis, and a time
axis with a few clock ticks. A file has no viewer's time zone, so its times are UTC (ZONE), and
the axes, the "Last day" line and the generated time say so; the output depends only on the
view model and `now`, never on the machine's zone.
"""

from __future__ import annotations

import html
import math
import re
import time
from collections.abc import Sequence
from typing import Any

from exporter.console.views import LEVEL_NAMES, signal_unit

# Spacings of time-axis ticks, seconds (common.js TICK_STEPS): the first that fits, so ticks
# land on round times.
TICK_STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
# A static file has no viewer's time zone (the console draws the browser's local time): the
# report's times are UTC, and every time axis and time says so.
ZONE = "UTC"


def _level(detail: dict[str, Any]) -> str:
    if detail["nodata"]:
        return "no data"
    return LEVEL_NAMES.get(detail["level"], "undecided") if detail["level"] is not None \
        else "undecided"


def _f(v: Any, digits: int = 2) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def _ttf(seconds: Any, by: list[str] | None = None) -> str:
    """The time to failure, with the agents that projected it (`views.projected_by`)."""
    if seconds is None:
        return "none projected"
    from exporter.util import humanize_seconds

    text = humanize_seconds(float(seconds))
    return (f"{text} (projected by {', '.join(by)}; the failure probabilities are the learned "
            "model's own)") if by else text


def filename(detail: dict[str, Any], ext: str) -> str:
    """A safe download name: aura-report-<analysis>-<labels>.<ext>."""
    name = "-".join([detail["analysis"], *detail["labels"].values()])
    return f"aura-report-{re.sub(r'[^A-Za-z0-9._-]+', '_', name)[:120]}.{ext}"


def _facts(detail: dict[str, Any]) -> list[tuple[str, str]]:
    probs = ", ".join(f"P({h}) {_f(p)}" for h, p in zip(detail["horizons"], detail["probability"],
                                                          strict=True))
    return [("entity", detail["selector"]), ("level", _level(detail)),
            ("risk (aura_risk_score)", _f(detail["risk"])),
            ("failure probability", probs or "no forecast"),
            ("time to failure", _ttf(detail["ttf"], detail.get("ttf_by"))),
            ("action", detail["action"]),
            ("runbook", detail["runbook"] or ""), ("explanation", detail["explanation"]),
            ("anomaly score", _f(detail["anomaly"]) or "warming up")]


def _votes(detail: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["agent", "risk", "confidence", "counts as", "action", "reasons"]
    rows = [[v["agent"], _f(v["risk"]), _f(v["confidence"]),
             v["role"] + (" (trimmed)" if v["trimmed"] else ""), v["action"], v["reasons"]]
            for v in detail["votes"]]
    return head, rows


def _consensus(detail: dict[str, Any]) -> str:
    c = detail["consensus"]
    if not c:
        return "No votes this cycle."
    return (f"{c['ballots']} ballots of {c['agents']} agents (confidence >= "
            f"{c['min_confidence']:g}); f = floor((n - 1) / 3) = {c['f']}; quorum 2f + 1 = "
            f"{c['quorum']}; trimmed weighted mean {_f(c['trimmed_mean'])}; "
            f"{c['at_warning']} ballots >= warning {c['warning_risk']:g}, {c['at_critical']} >= "
            f"critical {c['critical_risk']:g}."
            + (f" Decision gate: a level passes only above consensus risk "
               f"{_f(c['gate'] + c.get('margin', 0.0))}."
               if c.get("gate") is not None else "")
            + f" Exported risk (aura_risk_score) {_f(c['risk'])}: the consensus risk read "
            "against the entity's bar, at least the topology anomaly's rarity below the "
            "warning risk (once that score has sustained_anomaly_min_history of history), "
            "banded by level.")


def _when(detail: dict[str, Any], now: float | None) -> str:
    """The report's time; on `aura demo`'s simulated clock (detail["clock"]) so labelled."""
    when = time.strftime(f"%Y-%m-%d %H:%M:%S {ZONE}", time.gmtime(now or time.time()))
    clock = detail.get("clock") or {}
    if clock.get("simulated"):
        when += f" (simulated time, {clock.get('speed', 1):g}x real: aura demo)"
    return when


def _time_name(detail: dict[str, Any]) -> str:
    """The name of the report's time axes: the zone, and whether the clock is simulated."""
    simulated = (detail.get("clock") or {}).get("simulated")
    return f"{'simulated time' if simulated else 'time'} ({ZONE})"


def _span(times: Sequence[float]) -> str:
    """How many points a series has, and from when to when (minutes, in ZONE)."""
    def at(t: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))

    return f"{len(times)} points from {at(times[0])} to {at(times[-1])} {ZONE}"


def _unit(signal: dict[str, Any]) -> str | None:
    """The unit the API gives a signal (`views.signal_unit`; an older exporter sends none)."""
    return signal["unit"] if "unit" in signal else signal_unit(signal["name"])


def markdown(detail: dict[str, Any], now: float | None = None) -> str:
    """The report as Markdown."""
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    when = _when(detail, now)
    title = " / ".join(detail["labels"].values())
    lines = [f"# AURA incident report: {title} ({detail['analysis']})", "", f"Generated {when}.",
             "", "| | |", "|---|---|"]
    lines += [f"| {k} | {cell(v)} |" for k, v in _facts(detail)]
    head, rows = _votes(detail)
    lines += ["", "## Agents' votes", "", "| " + " | ".join(head) + " |",
              "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows]
    lines += ["", "## Consensus", "", _consensus(detail), "", "## Signals", ""]
    for s in detail["signals"]:
        vals = [v for v in s["values"] if v is not None]
        unit = _unit(s)
        last = (_f(vals[-1], 4) + (f" {unit}" if unit else "")) if vals else "no data"
        cap = f", capacity {s['capacity']:g}" if s["capacity"] is not None else ""
        share = f", share of the risk {_f(s['contribution'])}" if s["contribution"] is not None \
            else ""
        lines.append(f"- {cell(s['name'])}: last {last}{cap}{share}")
    h = detail["history"]
    if h["times"]:
        risks = [r for r in h["risk"] if r is not None]
        lines += ["", "## Last day", "",
                  f"{_span(h['times'])}; risk "
                  f"{_f(min(risks)) if risks else ''}..{_f(max(risks)) if risks else ''}."]
    return "\n".join(lines) + "\n"


def nice_ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    """Round values within [lo, hi], 1, 2 or 5 x 10^k apart, labelled (common.js niceTicks)."""
    raw = (hi - lo) / 4
    mag = 10.0 ** math.floor(math.log10(raw))
    spacing = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw * (1 - 1e-9))
    big = max(abs(lo), abs(hi))
    unit, suffix = next(((u, x) for u, x in ((1e9, "G"), (1e6, "M"), (1e3, "k")) if big >= u),
                        (1.0, ""))
    digits = max(0, -math.floor(math.log10(spacing / unit) + 1e-9))
    first, last = math.ceil(lo / spacing - 1e-9), math.floor(hi / spacing + 1e-9)
    return [(k * spacing, "0" if k == 0 else f"{k * spacing / unit:.{digits}f}{suffix}")
            for k in range(first, last + 1)]


def clock_ticks(t0: float, t1: float, most: int) -> list[float]:
    """At most `most` evenly spaced Unix times within [t0, t1] on round UTC clock times."""
    step = next((s for s in TICK_STEPS if (t1 - t0) / s < most),
                86400 * math.ceil((t1 - t0) / 86400 / most))
    return [float(t) for t in range(math.ceil(t0 / step) * step, math.floor(t1) + 1, step)]


def _clock(t: float) -> str:
    return time.strftime("%H:%M", time.gmtime(t))


def _day(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(t))


def _spark(series: Sequence[tuple[Sequence[float | None], str]], *, lo: float | None = None,
           hi: float | None = None, capacity: float | None = None,
           band: Sequence[Sequence[float | None]] | None = None,
           times: Sequence[float] | None = None, x_label: str | None = None,
           y_label: str | None = None) -> str:
    """An inline SVG line chart with y ticks; over `times` (Unix) with UTC clock ticks.

    Without `times` x is the index and the x axis is a bare line. The day stands under the
    first tick and under each new day's when the span crosses midnight UTC. `x_label` and
    `y_label` name the axes (the time zone; the unit or what is plotted)."""
    e = html.escape
    values = [v for s, _ in series for v in s if v is not None and math.isfinite(v)]
    if band:
        values += [v for b in band for v in b if v is not None and math.isfinite(v)]
    if capacity is not None:
        values.append(capacity)
    if not values:
        return ""
    lo = min(*values, 0.0) if lo is None else lo  # from zero, as the console's charts
    hi = max(values) if hi is None else hi
    hi = hi if hi > lo else lo + 1.0
    n = max(len(s) for s, _ in series)
    xs = list(times) if times and len(times) == n else None
    x0, x1 = (xs[0], xs[-1]) if xs else (0.0, float(n - 1))
    days = bool(xs) and _day(x0) != _day(x1)
    w, h, left, top = 360, 120, 36, 18 if y_label else 6
    right = 16 if xs else 6
    bottom = 16 + (6 + (10 if days else 0) if xs else 0) + (12 if x_label else 0)

    def xt(t: float) -> float:
        return left + (t - x0) / max(x1 - x0, 1e-9) * (w - left - right)

    def x(i: int) -> float:
        return xt(xs[i] if xs else i)

    def y(v: float) -> float:
        return top + (1 - (v - lo) / (hi - lo)) * (h - top - bottom)

    def text(cls: str, tx: float, ty: float, anchor: str, body: str) -> str:
        return (f'<text class="{cls}" x="{tx:.1f}" y="{ty:.1f}" text-anchor="{anchor}">'
                f"{e(body)}</text>")

    base = h - bottom
    parts = [f'<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" class="chart" role="img"'
             f' aria-label="{e(y_label or "chart")}">',
             f'<line class="axis" x1="{left}" x2="{w - right}" y1="{base}" y2="{base}"/>',
             f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{base}"/>']
    for v, label in nice_ticks(lo, hi):
        parts.append(f'<line class="axis" x1="{left - 3}" x2="{left}" y1="{y(v):.1f}" '
                     f'y2="{y(v):.1f}"/>' + text("tick y", left - 5, y(v) + 3, "end", label))
    if y_label:
        parts.append(text("axis-name y", 2, 10, "start", y_label))
    if xs:
        last_day = None
        for t in clock_ticks(x0, x1, max(2, (w - left - right) // 60)):
            parts.append(f'<line class="axis" x1="{xt(t):.1f}" x2="{xt(t):.1f}" y1="{base}" '
                         f'y2="{base + 3}"/>'
                         + text("tick x", xt(t), base + 12, "middle", _clock(t)))
            if days and _day(t) != last_day:
                parts.append(text("tick day", xt(t), base + 22, "middle", _day(t)))
            last_day = _day(t)
    if x_label:
        parts.append(text("axis-name x", (left + w - right) / 2, h - 3, "middle", x_label))
    if band:
        pts = [(i, a, b) for i, (a, b) in enumerate(zip(band[0], band[1], strict=True))
               if a is not None and b is not None]
        if pts:
            ring = [f"{x(i):.1f},{y(b):.1f}" for i, _, b in pts]
            ring += [f"{x(i):.1f},{y(a):.1f}" for i, a, _ in reversed(pts)]
            parts.append(f'<polygon points="{" ".join(ring)}" fill="#2f6fdb22"/>')
    if capacity is not None:
        parts.append(f'<line x1="{left}" x2="{w - right}" y1="{y(capacity):.1f}" '
                     f'y2="{y(capacity):.1f}" stroke="#c62828" stroke-dasharray="4 3"/>')
    for s, colour in series:
        pts2 = [f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(s)
                if v is not None and math.isfinite(v)]
        if len(pts2) > 1:
            parts.append(f'<polyline points="{" ".join(pts2)}" fill="none" '
                         f'stroke="{colour}" stroke-width="1.5"/>')
        elif pts2:  # a single point draws no line: mark it
            cx, cy = pts2[0].split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{colour}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _band_name(signal: dict[str, Any], detail: dict[str, Any]) -> str:
    if signal.get("band_source") == "own":
        return f"band: own baseline, {detail['baseline']['windows']} healthy windows"
    return "band: fleet" if signal.get("band_source") == "fleet" else "no band"


def html_report(detail: dict[str, Any], now: float | None = None) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, no script)."""
    e = html.escape
    when = _when(detail, now)
    title = " / ".join(detail["labels"].values())
    facts = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in _facts(detail))
    head, rows = _votes(detail)
    votes = ("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"
             + "".join("<tr>" + "".join(f"<td>{e(x)}</td>" for x in r) + "</tr>" for r in rows)
             + "</table>")
    hist = detail["history"]
    axis = _time_name(detail)
    history = (_spark([(hist["risk"], "#2f6fdb"), (hist["anomaly"], "#b86e00")], lo=0, hi=1,
                      times=hist["times"], x_label=axis, y_label="risk, anomaly score (0–1)")
               + f"<p>{e(_span(hist['times']))}.</p>") \
        if hist["times"] else "<p>No history yet.</p>"
    window = detail.get("window") or {}
    start, step = window.get("start"), window.get("step")

    def signal(s: dict[str, Any]) -> str:
        unit = _unit(s)
        times = [start + i * step for i in range(len(s["values"]))] \
            if start is not None and step else None
        chart = _spark([(s["values"], "#2f6fdb")], capacity=s["capacity"], band=s.get("band"),
                       times=times, x_label=axis if times else None, y_label=unit)
        name = s["name"] + (f" ({unit})" if unit else "")
        return (f"<figure><figcaption>{e(name)} ({e(_band_name(s, detail))})</figcaption>"
                f"{chart}</figure>")

    signals = "".join(signal(s) for s in detail["signals"])
    style = ("body{font:14px system-ui,sans-serif;margin:2rem;max-width:1100px;color:#1b1f24}"
             "table{border-collapse:collapse;margin:.5rem 0}th,td{border-bottom:1px solid #ddd;"
             "padding:.2rem .5rem;text-align:left;vertical-align:top}figure{display:inline-block;"
             "margin:.3rem;width:360px;vertical-align:top}figcaption{font-size:.85em;color:#555}"
             ".chart text{font-size:9px;fill:#555}.chart .axis{stroke:#999}"
             ".chart .axis-name{fill:#1b1f24}")
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>AURA report: "
            f"{e(title)}</title><style>{style}</style></head><body>"
            f"<h1>AURA incident report: {e(title)} ({e(detail['analysis'])})</h1>"
            f"<p>Generated {e(when)}. Every time in this file is {ZONE} (a file has no viewer's "
            "time zone; the console shows the browser's local time).</p>"
            f"<table>{facts}</table>"
            f"<h2>Last day: risk (blue), anomaly score (orange)</h2>{history}"
            f"<h2>Agents' votes</h2>{votes}<h2>Consensus</h2><p>{e(_consensus(detail))}</p>"
            f"<h2>Signals (band: 10th–90th percentile of the entity's own baseline, or of the "
            f"fleet while it has none; dashed: capacity)</h2>{signals}"
            "</body></html>")
