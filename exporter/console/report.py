"""Incident report of one entity: Markdown, or self-contained HTML with its charts inline.

Built from the entity view model (`views.entity_detail`), so the report says what the console
shows at that moment. The HTML needs nothing else: inline CSS, charts as inline SVG polylines,
no script; every value goes through `html.escape`. Markdown escapes table cells' pipes.
"""

from __future__ import annotations

import html
import math
import re
import time
from collections.abc import Sequence
from typing import Any

from exporter.console.views import LEVEL_NAMES


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
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now or time.time()))
    clock = detail.get("clock") or {}
    if clock.get("simulated"):
        when += f" (simulated time, {clock.get('speed', 1):g}x real: aura demo)"
    return when


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
        last = _f(vals[-1], 4) if vals else "no data"
        cap = f", capacity {s['capacity']:g}" if s["capacity"] is not None else ""
        share = f", share of the risk {_f(s['contribution'])}" if s["contribution"] is not None \
            else ""
        lines.append(f"- {cell(s['name'])}: last {last}{cap}{share}")
    h = detail["history"]
    if h["times"]:
        risks = [r for r in h["risk"] if r is not None]
        lines += ["", "## Last day", "",
                  f"{len(h['times'])} points from "
                  f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(h['times'][0]))} UTC; risk "
                  f"{_f(min(risks)) if risks else ''}..{_f(max(risks)) if risks else ''}."]
    return "\n".join(lines) + "\n"


def _spark(series: Sequence[tuple[Sequence[float | None], str]], *, lo: float | None = None,
           hi: float | None = None, capacity: float | None = None,
           band: Sequence[Sequence[float | None]] | None = None) -> str:
    """An inline SVG chart (polylines over the index)."""
    w, h = 320, 80
    values = [v for s, _ in series for v in s if v is not None]
    if band:
        values += [v for b in band for v in b if v is not None]
    if capacity is not None:
        values.append(capacity)
    if not values:
        return ""
    lo = min(values) if lo is None else lo
    hi = max(values) if hi is None else hi
    hi = hi if hi > lo else lo + 1.0
    n = max(len(s) for s, _ in series)

    def x(i: int) -> float:
        return 2 + i * (w - 4) / max(n - 1, 1)

    def y(v: float) -> float:
        return 2 + (1 - (v - lo) / (hi - lo)) * (h - 4)

    parts = [f'<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" class="chart">']
    if band:
        pts = [(i, a, b) for i, (a, b) in enumerate(zip(band[0], band[1], strict=True))
               if a is not None and b is not None]
        if pts:
            ring = [f"{x(i):.1f},{y(b):.1f}" for i, _, b in pts]
            ring += [f"{x(i):.1f},{y(a):.1f}" for i, a, _ in reversed(pts)]
            parts.append(f'<polygon points="{" ".join(ring)}" fill="#2f6fdb22"/>')
    if capacity is not None:
        parts.append(f'<line x1="0" x2="{w}" y1="{y(capacity):.1f}" y2="{y(capacity):.1f}" '
                     'stroke="#c62828" stroke-dasharray="4 3"/>')
    for s, colour in series:
        pts2 = [f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(s)
                if v is not None and math.isfinite(v)]
        if pts2:
            parts.append(f'<polyline points="{" ".join(pts2)}" fill="none" '
                         f'stroke="{colour}" stroke-width="1.5"/>')
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
    history = _spark([(hist["risk"], "#2f6fdb"), (hist["anomaly"], "#b86e00")], lo=0, hi=1) \
        if hist["times"] else "<p>No history yet.</p>"
    signals = "".join(
        f"<figure><figcaption>{e(s['name'])} ({e(_band_name(s, detail))})</figcaption>"
        f"{_spark([(s['values'], '#2f6fdb')], capacity=s['capacity'], band=s.get('band'))}"
        "</figure>" for s in detail["signals"])
    style = ("body{font:14px system-ui,sans-serif;margin:2rem;max-width:1100px;color:#1b1f24}"
             "table{border-collapse:collapse;margin:.5rem 0}th,td{border-bottom:1px solid #ddd;"
             "padding:.2rem .5rem;text-align:left;vertical-align:top}figure{display:inline-block;"
             "margin:.3rem}figcaption{font-size:.85em;color:#555}")
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>AURA report: "
            f"{e(title)}</title><style>{style}</style></head><body>"
            f"<h1>AURA incident report: {e(title)} ({e(detail['analysis'])})</h1>"
            f"<p>Generated {e(when)}.</p><table>{facts}</table>"
            f"<h2>Last day: risk (blue), anomaly score (orange)</h2>{history}"
            f"<h2>Agents' votes</h2>{votes}<h2>Consensus</h2><p>{e(_consensus(detail))}</p>"
            f"<h2>Signals (band: 10th–90th percentile of the entity's own baseline, or of the "
            f"fleet while it has none; dashed: capacity)</h2>{signals}"
            "</body></html>")
