"""A backtest output directory as one self-contained HTML or Markdown report.

Input: what `aura backtest --output-dir` writes — `report.md` (the scored summary, present
when an incidents file was given), its PNG plots, `alerts.csv` and `scores.csv`. Output: the
summary with each plot inline as a data URI (or, without plots, a risk chart per alerted
entity drawn from scores.csv as inline SVG by `exporter.console.report`), then the alerts
table. The HTML carries no script and no external reference; every value is escaped.

report.md is turned into HTML by `_md_html`, which knows only the subset
`exporter.backtest_report.write_markdown` writes (headings, bullets, pipe tables, images,
paragraphs, inline code), so the figures are rendered once, not restated here.
"""

from __future__ import annotations

import base64
import csv
import html
import re
from collections import defaultdict
from pathlib import Path

from exporter.console.errors import ReportError
from exporter.util import parse_time

MAX_ALERT_ROWS = 500
MAX_CHARTS = 12
_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)\s]+)\)\s*$")


def _inline(text: str) -> str:
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _cells(line: str) -> list[str]:
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]


def _md_html(text: str, images: dict[str, str]) -> str:
    """The write_markdown subset -> HTML; `images` maps a file name to its data URI."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")), 6)
            out.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
            i += 1
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                if not re.match(r"^\|[\s|:-]+\|$", lines[i].strip()):
                    rows.append(_cells(lines[i]))
                i += 1
            head, body = rows[0], rows[1:]
            out.append("<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>"
                                 for r in body) + "</table>")
        elif line[:2] in ("- ", "* "):
            items: list[str] = []
            while i < len(lines) and (lines[i][:2] in ("- ", "* ")
                                      or (items and lines[i].startswith("  "))):
                if lines[i][:2] in ("- ", "* "):
                    items.append(lines[i][2:].strip())
                else:
                    items[-1] += " " + lines[i].strip()
                i += 1
            out.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in items) + "</ul>")
        elif m := _IMAGE.match(line):
            src = images.get(m.group(2))
            out.append(f'<img alt="{html.escape(m.group(1))}" src="{src}">' if src
                       else f"<p>(plot {_inline(m.group(2))} not found)</p>")
            i += 1
        else:
            para = []
            while i < len(lines) and lines[i].strip() and lines[i][0] not in "#|" \
                    and lines[i][:2] not in ("- ", "* ") and not _IMAGE.match(lines[i]):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{_inline(' '.join(para))}</p>")
    return "\n".join(out)


def _images(directory: Path, text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        m = _IMAGE.match(line)
        if m and "/" not in m.group(2) and (directory / m.group(2)).is_file():
            data = base64.b64encode((directory / m.group(2)).read_bytes()).decode("ascii")
            found[m.group(2)] = f"data:image/png;base64,{data}"
    return found


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def _risk_charts(directory: Path, header: list[str], alerts: list[dict[str, str]]) -> str:
    """Inline SVG: risk (blue) and anomaly score (orange) of each alerted entity."""
    from exporter.console.report import _spark

    scores = directory / "scores.csv"
    if not scores.is_file() or not alerts:
        return ""
    labels = header[header.index("severity") + 1: header.index("start")]
    alerted = list(dict.fromkeys(tuple(a[k] for k in labels) for a in alerts
                                 if a["alertname"].startswith("Aura")))[:MAX_CHARTS]
    series: dict[tuple[str, ...], list[tuple[float, float | None, float | None]]] = \
        defaultdict(list)
    want = set(alerted)

    def num(x: str) -> float | None:
        return float(x) if x else None

    unreadable = 0
    for row in _read_csv(scores)[1]:
        key = tuple(row[k] for k in labels)
        if key in want:
            try:
                t = parse_time(row.get("timestamp") or "")
            except ValueError:
                unreadable += 1  # said under the charts; the other rows still draw
                continue
            series[key].append((t, num(row["risk"]), num(row["anomaly_score"])))
    figures = []
    for key in alerted:
        pts = series.get(key, [])
        chart = _spark([([r for _, r, _ in pts], "#2f6fdb"), ([a for _, _, a in pts], "#b86e00")],
                       lo=0, hi=1, times=[t for t, _, _ in pts], x_label="time (UTC)",
                       y_label="risk, anomaly score (0–1)")
        figures.append(f"<figure><figcaption>{html.escape('/'.join(key))}</figcaption>"
                       f"{chart}</figure>")
    note = (f"<p>Left out of the charts: {unreadable} row(s) of scores.csv with an "
            "unreadable timestamp.</p>") if unreadable else ""
    return ("<h2>Risk (blue) and anomaly score (orange) of each alerted entity</h2>"
            + "".join(figures) + note) if figures else ""


def render(directory: Path, fmt: str) -> str:
    """The report of a backtest directory as `fmt` ('html' or 'md'); raises ReportError."""
    summary_path, alerts_path = directory / "report.md", directory / "alerts.csv"
    if not alerts_path.is_file():
        raise ReportError(f"--backtest-dir: {directory} has no alerts.csv "
                          "(not an `aura backtest --output-dir`)")
    try:
        summary = summary_path.read_text(encoding="utf-8") if summary_path.is_file() else (
            f"# AURA backtest — {directory.name}\n\nNo report.md (the backtest ran without "
            "--incidents), so no scores: the alerts it raised follow.\n")
        header, alerts = _read_csv(alerts_path)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ReportError(f"--backtest-dir: {err}") from err
    if "severity" not in header or "start" not in header:
        raise ReportError(f"--backtest-dir: {alerts_path}: unexpected header {header}")
    images = _images(directory, summary)
    shown = alerts[:MAX_ALERT_ROWS]
    more = f"{len(alerts)} alerts" + (f", the first {len(shown)} shown" if len(shown) <
                                      len(alerts) else "")
    if fmt == "md":
        text = summary
        for name, uri in images.items():
            text = text.replace(f"]({name})", f"]({uri})")
        lines = [text.rstrip(), "", "## Alerts", "", more + ".", "",
                 "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r[h].replace("|", "\\|") for h in header) + " |"
                  for r in shown]
        return "\n".join(lines) + "\n"
    e = html.escape
    table = ("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>"
             + "".join("<tr>" + "".join(f"<td>{e(r[h])}</td>" for h in header) + "</tr>"
                       for r in shown) + "</table>")
    charts = "" if images else _risk_charts(directory, header, alerts)
    style = ("body{font:14px system-ui,sans-serif;margin:2rem;max-width:1100px;color:#1b1f24}"
             "table{border-collapse:collapse;margin:.5rem 0}th,td{border-bottom:1px solid #ddd;"
             "padding:.2rem .5rem;text-align:left;vertical-align:top}img{max-width:100%}"
             "figure{display:inline-block;margin:.3rem}figcaption{font-size:.85em;color:#555}")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>AURA backtest: '
            f"{e(directory.name)}</title><style>{style}</style></head><body>"
            f"{_md_html(summary, images)}{charts}<h2>Alerts</h2><p>{e(more)}.</p>{table}"
            "</body></html>")
