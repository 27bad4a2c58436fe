"""Backtest figures: `for:` semantics, alert intervals, incident matching, report files.

Pure functions over arrays and alert lists, so the figures can be tested on literal input and
recomputed by an outside evaluation from `alerts.csv` and the incidents file alone.

Definitions (also in benchmarks/README.md and report.md):

* An alert's condition is evaluated at every evaluation time. As in Prometheus, it becomes
  pending at the first true evaluation and fires at the first evaluation where
  `now - first_true >= for`; it ends at the first evaluation where the condition is false,
  or, for a rule with `keep_firing_for` (the failure alerts), at the first evaluation at
  least that long after the condition went false, the condition returning meanwhile
  continuing the same alert (`end` empty when it is still firing at the last evaluation).
  An absent value is false.
* An incident's *match window* is `[start - H, end]`, H = the analysis' largest horizon
  (`end` empty: up to the last evaluation). An alert of the same entity *overlaps* it when
  `alert.start <= window_end` and (`alert.end` empty or `alert.end > window_start`).
* Lead time = incident start - start of the earliest overlapping alert (negative: only after
  the start; null: missed). Recall at lead >= x = incidents with lead >= x / incidents.
* Only incidents that start within the evaluated span, on an entity of the data, are scored
  (the others are counted apart); sudden incidents (kind containing "sudden", or flagged
  unpredictable) are reported separately, not in recall.
* Precision = alerts overlapping some incident's match window (any kind) / all alerts;
  false alerts = the others, per entity-day = false alerts / (evaluations at which each
  entity was present, summed, x interval / 86400): the days entities were observed, so a
  pod that lived four hours of a three-day replay counts a sixth of a day. (Until
  2026-12-02 the divisor was every entity over the whole span, `entity_days_span` in
  report.json: 3-4x larger on a fleet whose pods churn, 1.0-1.2x on the fixed fleets.)
"""

from __future__ import annotations

import csv
import math
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from exporter.incidents import Incident
from exporter.util import format_rfc3339, humanize_seconds
from exporter.windows import EntityKey

RECALL_LEADS = (("lead_ge_0s", 0.0), ("lead_ge_30m", 1800.0), ("lead_ge_2h", 7200.0))
# The plots `render_plots` may write next to report.md.
PLOT_FILES = ("risk_per_incident.png", "lead_times.png")
ANY_FAILURE = "aura_any_failure_alert"
FAILURE_ALERTS = ("AuraFailurePredicted", "AuraFailureRisk")


@dataclass(frozen=True)
class AlertEvent:
    """One alert firing interval; AURA's carry why it fired (at its start), baselines do not.

    top_signal: the signal contributing most; agents: the agents supporting the level,
    `+`-joined; action: the recommended action; explanation: the consensus's explanation
    (the text the console and the entity API show).
    """

    alertname: str
    severity: str
    entity: EntityKey
    start: float
    end: float | None
    top_signal: str = ""
    agents: str = ""
    action: str = ""
    explanation: str = ""

    @property
    def cause(self) -> str:
        """A short grouping key for false-alert tables: agents / top signal / action."""
        return f"{self.agents or '—'} / {self.top_signal or '—'} / {self.action or '—'}"


def fire_intervals(times: np.ndarray, condition: np.ndarray, for_: float,
                   keep_firing_for: float = 0.0) -> list[tuple[int, float, float | None]]:
    """Firing intervals (entity row, start, end|None) of `condition` [E, N] over evaluation
    `times` [N] (Unix s), as Prometheus' alerting rules fire them: a run of true evaluations
    fires once it has held `for_` seconds; a firing alert whose condition turns false keeps
    firing for `keep_firing_for` seconds (the rule's `keep_firing_for`, Prometheus >= 2.42),
    goes on as the same alert if the condition returns meanwhile (no new `for:`), and
    resolves at the first evaluation at least that long after its condition first went
    false (None: still firing at the last evaluation)."""
    times = np.asarray(times, dtype=np.float64)
    cond = np.asarray(condition, dtype=bool)
    e, n = cond.shape
    if e == 0 or n == 0:
        return []
    padded = np.zeros((e, n + 2), dtype=np.int8)
    padded[:, 1:-1] = cond
    d = np.diff(padded, axis=1)
    run_rows, run_starts = np.nonzero(d == 1)
    _, run_ends = np.nonzero(d == -1)  # exclusive: first false evaluation (or n)
    # Tolerance: evaluation grids built from floats must not miss `for` by a rounding error.
    fire_at = np.searchsorted(times, times[run_starts] + for_ - 1e-6, side="left")
    out: list[tuple[int, float, float | None]] = []
    rows, starts, ends, fires = (run_rows.tolist(), run_starts.tolist(), run_ends.tolist(),
                                 fire_at.tolist())
    r = 0
    while r < len(rows):
        row, k, j = rows[r], fires[r], ends[r]
        r += 1
        if k >= j:
            continue  # pending only: never fired
        # Runs that start within keep_firing_for of the alert's condition going false are
        # the same alert.
        while j < n and r < len(rows) and rows[r] == row \
                and times[starts[r]] < times[j] + keep_firing_for - 1e-6:
            j = ends[r]
            r += 1
        resolved = j if keep_firing_for <= 0 or j >= n else int(np.searchsorted(
            times, times[j] + keep_firing_for - 1e-6, side="left"))
        out.append((row, float(times[k]), float(times[resolved]) if resolved < n else None))
    return out


def alert_events(name: str, severity: str, entities: Sequence[EntityKey], times: np.ndarray,
                 condition: np.ndarray, for_: float,
                 keep_firing_for: float = 0.0) -> list[AlertEvent]:
    """Alerts `name` of `severity` from condition[E, N] over evaluation `times` (Unix s): one
    per firing interval (`fire_intervals`: held `for_` seconds to fire, kept firing
    `keep_firing_for` seconds after it clears), as Prometheus fires them."""
    return [AlertEvent(name, severity, tuple(entities[row]), start, end)
            for row, start, end in fire_intervals(times, condition, for_, keep_firing_for)]


def scored_incidents(incidents: Iterable[Incident]) -> list[Incident]:
    """The incidents as scored: times as floats, entities as tuples, an empty kind "unknown"."""
    return [replace(i, start=float(i.start), end=None if i.end is None else float(i.end),
                    entity=tuple(i.entity), kind=i.kind or "unknown")
            for i in incidents]


def _overlaps(a: AlertEvent, ws: float, we: float) -> bool:
    return a.start <= we and (a.end is None or a.end > ws)


def lead_time(alerts_by_entity: dict[EntityKey, list[AlertEvent]], inc: Incident,
              horizon: float, last_eval: float) -> float | None:
    """Seconds from the first alert of the incident's entity that overlaps [start - horizon,
    end (or last_eval)] to the incident's start (negative: it fired after the start); None
    when no alert did."""
    ws, we = inc.start - horizon, inc.end if inc.end is not None else last_eval
    starts = [a.start for a in alerts_by_entity.get(inc.entity, ()) if _overlaps(a, ws, we)]
    return inc.start - min(starts) if starts else None


def _quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p10": None, "p50": None, "p90": None}
    q = np.percentile(np.asarray(values), [10, 50, 90])
    return {"p10": float(q[0]), "p50": float(q[1]), "p90": float(q[2])}


def score_system(alerts: Sequence[AlertEvent], incidents: Sequence[Incident], *,
                 horizon: float, last_eval: float, entity_days: float) -> dict[str, Any]:
    """The figures of one alerting system (one alert name, a union, or a baseline)."""
    by_entity: dict[EntityKey, list[AlertEvent]] = {}
    for a in alerts:
        by_entity.setdefault(a.entity, []).append(a)
    leads = [lead_time(by_entity, inc, horizon, last_eval) for inc in incidents]
    matched = 0
    for a in alerts:
        if any(inc.entity == a.entity and _overlaps(
                a, inc.start - horizon, inc.end if inc.end is not None else last_eval)
               for inc in incidents):
            matched += 1
    false_alerts = len(alerts) - matched
    pred = [(inc, lead) for inc, lead in zip(incidents, leads, strict=True) if not inc.sudden]
    sudden = [(inc, lead) for inc, lead in zip(incidents, leads, strict=True) if inc.sudden]
    found = [lead for _, lead in pred if lead is not None]

    def recall(pairs: list[tuple[Incident, float | None]], limit: float) -> float | None:
        if not pairs:
            return None
        return sum(1 for _, lead in pairs if lead is not None and lead >= limit) / len(pairs)

    per_kind: dict[str, Any] = {}
    for kind in sorted({inc.kind for inc, _ in pred}):
        pairs = [(i, lead) for i, lead in pred if i.kind == kind]
        kind_found = [lead for _, lead in pairs if lead is not None]
        per_kind[kind] = {
            "incidents": len(pairs),
            "detected": len(kind_found),
            **{f"recall_{name}": recall(pairs, limit) for name, limit in RECALL_LEADS},
            "median_lead_time_seconds": float(np.median(kind_found)) if kind_found else None,
        }
    return {
        "alerts": len(alerts),
        "alerts_matching_incident": matched,
        "precision": matched / len(alerts) if alerts else None,
        "false_alerts": false_alerts,
        "false_alerts_per_entity_day": false_alerts / entity_days if entity_days > 0 else None,
        "incidents": len(pred),
        "detected": len(found),
        "recall": {name: recall(pred, limit) for name, limit in RECALL_LEADS},
        "lead_time_seconds_quantiles": _quantiles(found),
        "per_kind": per_kind,
        "sudden": {
            "incidents": len(sudden),
            "alerted_before_start": sum(1 for _, lead in sudden if lead is not None and lead > 0),
            "alerted": sum(1 for _, lead in sudden if lead is not None),
        },
    }


def systems(aura: Sequence[AlertEvent], baselines: Sequence[AlertEvent],
            aura_names: Sequence[str], baseline_names: Sequence[str]) -> dict[str, list[AlertEvent]]:
    """Alert sets scored in the report: each AURA alert, AURA's failure alerts, each baseline."""
    out: dict[str, list[AlertEvent]] = {n: [a for a in aura if a.alertname == n] for n in aura_names}
    out[ANY_FAILURE] = [a for a in aura if a.alertname in FAILURE_ALERTS]
    for n in baseline_names:
        out[n] = [a for a in baselines if a.alertname == n]
    return out


# ------------------------------------------------------------------------------------ files


def fmt_time(value: float | None) -> str:
    """Unix seconds as written to the CSVs: integral values without a fraction."""
    if value is None or not math.isfinite(value):
        return ""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def write_alerts_csv(path: Path, label_names: Sequence[str], alerts: Iterable[AlertEvent]) -> None:
    """alerts.csv: alertname, severity, the entity labels, start, end (Unix s; empty while
    firing), top_signal, agents, action, explanation; sorted by start. Raises OSError."""
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["alertname", "severity", *label_names, "start", "end", "top_signal",
                    "agents", "action", "explanation"])
        for a in sorted(alerts, key=lambda a: (a.start, a.alertname, a.entity)):
            w.writerow([a.alertname, a.severity, *a.entity, fmt_time(a.start), fmt_time(a.end),
                        a.top_signal, a.agents, a.action, a.explanation])


def false_alert_causes(alerts: Sequence[AlertEvent], incidents: Sequence[Incident], *,
                       horizon: float, last_eval: float) -> list[dict[str, Any]]:
    """False AURA failure alerts grouped by cause (agents / top signal / action), largest first.

    An alert is false when it overlaps no incident's match window (as in `score_system`).
    """
    groups: dict[str, dict[str, Any]] = {}
    for a in alerts:
        if a.alertname not in FAILURE_ALERTS:
            continue
        if any(inc.entity == a.entity and _overlaps(
                a, inc.start - horizon, inc.end if inc.end is not None else last_eval)
               for inc in incidents):
            continue
        g = groups.setdefault(a.cause, {"cause": a.cause, "false_alerts": 0, "entities": set()})
        g["false_alerts"] += 1
        g["entities"].add(a.entity)
    out = sorted(groups.values(), key=lambda g: (-g["false_alerts"], g["cause"]))
    return [{"cause": g["cause"], "false_alerts": g["false_alerts"],
             "entities": len(g["entities"])} for g in out]


def _coverage_lines(report: dict[str, Any]) -> list[str]:
    """The report's lines on evaluations without a risk or an anomaly score, when any (a
    forecast that abstained, constant signals): "0 alerts" then reads as "could not
    tell", not as "nothing unusual"; and on levels held as fleet-wide events, when any."""
    n = int(report.get("entity_evaluations", 0))
    if not n:
        return []
    parts = []
    for key, what in (("risk_undecided", "without a risk (undecided: no recent samples, or "
                                         "fewer agents voted than consensus.min_voters)"),
                      ("anomaly_unknown", "without an anomaly score (warming up, a window "
                                          "mostly missing, or constant or two-state "
                                          "signals)")):
        k = int(report.get(key, 0))
        if k:
            share = 100.0 * k / n
            pct = "<1" if share < 1 else ">99" if share > 99 and k < n else f"{share:.0f}"
            parts.append(f"{what}: {k} ({pct} %)")
    lines = [f"- Entity evaluations: {n}; " + "; ".join(parts)] if parts else []
    wide = int(report.get("fleet_wide_held_evaluations", 0))
    if wide:
        lines.append(f"- Levels held as fleet-wide events (more entities at a level at once "
                     f"than independent failures explain; AuraFleetWideEvent instead): {wide} "
                     f"evaluations of {int(report.get('fleet_wide_held_entities', 0))} "
                     "entities; their explanations start \"fleet-wide\"")
    sym = int(report.get("symptom_held_evaluations", 0))
    if sym:
        lines.append(f"- Levels held as another entity's symptom (a caller whose errors or "
                     f"latency follow a dependency's, which rose more): {sym} evaluations of "
                     f"{int(report.get('symptom_held_entities', 0))} entities; the most held:")
        for x in report.get("symptom_examples") or []:
            why = textwrap.shorten(str(x.get("first", "")), 400, placeholder=" …")
            lines.append(f"  - {','.join(str(v) for v in x.get('entity', []))} "
                         f"({x.get('evaluations', 0)} evaluations): {why}")
    return lines


def _fmt_lead(value: float | None) -> str:
    """A lead as `2h10m`; one that rounds to 0 minutes either way is `0m` (a lead, not a
    duration: "under a minute" read as early). The rounding is humanize_seconds' own."""
    if value is None:
        return "—"
    return "0m" if int(round(abs(value) / 60)) == 0 else humanize_seconds(value)


def _fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def write_markdown(out_dir: Path, report: dict[str, Any], plots: dict[str, str]) -> None:
    """report.md: headline table AURA vs baselines, per-kind table, plots."""
    lines = [f"# AURA backtest — analysis `{report['analysis']}`", ""]
    lines += [
        f"- Evaluations: {report['evaluations']} every {report['interval_seconds']:g}s from "
        f"{report['first_evaluation_rfc3339']} to {report['last_evaluation_rfc3339']}",
        f"- Entities: {report['entities']} ({report['entity_days']:.2f} entity-days observed, "
        f"{report.get('entity_days_span', report['entity_days']):.2f} over the whole span)",
        f"- Incidents scored: {report.get('incidents_scored', 0)} "
        f"({report.get('sudden_incidents', 0)} sudden, reported separately); "
        f"{report.get('incidents_outside_evaluation', 0)} outside the evaluated span, "
        f"{report.get('incidents_unknown_entity', 0)} on entities absent from the data",
        f"- Model: {report.get('model', {}).get('model', 'none')} "
        f"(status {report.get('model', {}).get('status', 'n/a')})",
        *_coverage_lines(report),
        f"- Match window: [incident start - {report['largest_horizon_seconds'] / 3600:g}h, "
        "incident end]; lead time = incident start - first overlapping alert start",
        "",
    ]
    sys_figs = report.get("systems", {})
    if sys_figs:
        lines += ["## AURA vs baselines", "",
                  "| alerts | count | precision | false / entity-day | recall lead≥0 | "
                  "recall ≥30m | recall ≥2h | lead p10 | lead p50 | lead p90 | sudden alerted before |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, fig in sys_figs.items():
            q = fig["lead_time_seconds_quantiles"]
            r = fig["recall"]
            fpd = fig["false_alerts_per_entity_day"]
            lines.append(
                f"| {name} | {fig['alerts']} | {_fmt_ratio(fig['precision'])} | "
                f"{'—' if fpd is None else f'{fpd:.3f}'} | {_fmt_ratio(r['lead_ge_0s'])} | "
                f"{_fmt_ratio(r['lead_ge_30m'])} | {_fmt_ratio(r['lead_ge_2h'])} | "
                f"{_fmt_lead(q['p10'])} | {_fmt_lead(q['p50'])} | {_fmt_lead(q['p90'])} | "
                f"{fig['sudden']['alerted_before_start']}/{fig['sudden']['incidents']} |")
        lines += ["", "## Per incident kind (recall at lead ≥ 0 / median lead)", ""]
        kinds = sorted({k for fig in sys_figs.values() for k in fig["per_kind"]})
        names = list(sys_figs)
        lines += ["| kind | incidents | " + " | ".join(names) + " |",
                  "|---|---|" + "---|" * len(names)]
        for kind in kinds:
            cells = []
            count = 0
            for n in names:
                k = sys_figs[n]["per_kind"].get(kind)
                if k is None:
                    cells.append("—")
                    continue
                count = k["incidents"]
                cells.append(f"{_fmt_ratio(k['recall_lead_ge_0s'])} / "
                             f"{_fmt_lead(k['median_lead_time_seconds'])}")
            lines.append(f"| {kind} | {count} | " + " | ".join(cells) + " |")
        lines.append("")
    incidents = report.get("incidents") or []
    if incidents:
        names = [n for n in ("aura_any_failure_alert", "BaselinePredictLinear",
                             "BaselineStaticThreshold")
                 if n in incidents[0].get("lead_time_seconds", {})]
        lines += ["## Per incident", "",
                  "Lead of each system (— not alerted in the match window), AURA's peak "
                  "exported risk (`risk`, aura_risk_score) before the start, how many "
                  "evaluations the decision stage held at level 0 "
                  "then (a level lowered as usual, a sustained anomaly a restart excused, a "
                  "fleet-wide event, or another entity's symptom), "
                  "and the first explanation of a hold, by that stage or by the consensus (an "
                  "agent's risk at the warning bar that it did not back: no quorum, no agent "
                  "that sees a mechanism): why an alert came late or not at all.", "",
                  "| entity | kind | start | " + " | ".join(names)
                  + " | peak exported risk before | held | first held because (consensus risk) |",
                  "|---|---|---|" + "---|" * len(names) + "---|---|---|"]
        for inc in incidents:
            ent = ",".join(str(v) for v in inc["entity"].values())
            leads = " | ".join(_fmt_lead(inc["lead_time_seconds"].get(n)) for n in names)
            peak = inc.get("peak_risk_before")
            why = str(inc.get("first_held", "")).replace("|", "/")
            kind = inc["kind"] + (" (sudden)" if inc.get("sudden") else "")
            lines.append(f"| {ent} | {kind} | {format_rfc3339(inc['start'])} | {leads} | "
                         f"{'—' if peak is None else f'{peak:.2f}'} | "
                         f"{inc.get('held_evaluations', 0)} | "
                         f"{textwrap.shorten(why, 160, placeholder=' …')} |")
        lines.append("")
    causes = report.get("false_alert_causes")
    if causes:
        lines += ["## False failure alerts by cause", "",
                  "Agents supporting the level / top contributing signal / action, at the start "
                  "of each AuraFailure* alert that overlaps no incident's match window.", "",
                  "| cause | false alerts | entities |", "|---|---|---|"]
        lines += [f"| {c['cause']} | {c['false_alerts']} | {c['entities']} |" for c in causes]
        lines.append("")
    for title, file in plots.items():
        lines += [f"## {title}", "", f"![{title}]({file})", ""]
    lines += ["## Definitions", "", (__doc__ or "").split("Definitions (also in", 1)[-1]
              .split("\n", 1)[-1].strip(), ""]
    (out_dir / "report.md").write_text("\n".join(lines))


def render_plots(out_dir: Path, *, times: np.ndarray, entities: Sequence[EntityKey],
                 risk: np.ndarray, incidents: Sequence[Incident],
                 alerts: Sequence[AlertEvent], report: dict[str, Any],
                 max_entities: int = 12) -> dict[str, str]:
    """PNG plots next to report.md; returns {title: file name}. matplotlib is imported lazily."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots: dict[str, str] = {}
    index = {e: i for i, e in enumerate(entities)}
    shown = [e for e in dict.fromkeys(inc.entity for inc in incidents) if e in index][:max_entities]
    if shown:
        fig, axes = plt.subplots(len(shown), 1, figsize=(10, 1.8 * len(shown) + 0.6),
                                 sharex=True, squeeze=False)
        hours = (times - times[0]) / 3600.0
        colours = {"AuraFailurePredicted": "tab:red", "AuraFailureRisk": "tab:orange",
                   "AuraTopologyAnomaly": "tab:purple"}
        for ax, ent in zip(axes[:, 0], shown, strict=True):
            ax.plot(hours, risk[index[ent]], lw=0.8, color="black")
            for inc in incidents:
                if inc.entity == ent:
                    end = inc.end if inc.end is not None else times[-1]
                    ax.axvspan((inc.start - times[0]) / 3600, (end - times[0]) / 3600,
                               color="tab:red" if not inc.sudden else "tab:gray", alpha=0.25)
            for a in alerts:
                if a.entity == ent and a.alertname in colours:
                    ax.axvline((a.start - times[0]) / 3600, color=colours[a.alertname], lw=1,
                               ls="--")
            ax.set_ylim(-0.02, 1.02)
            ax.set_ylabel("/".join(ent), fontsize=7, rotation=0, ha="right")
        axes[-1, 0].set_xlabel("hours since first evaluation")
        fig.suptitle("risk per incident entity (shaded: incident; dashed: alert start — "
                     "red critical, orange warning, purple anomaly)", fontsize=9)
        fig.tight_layout()
        fig.savefig(out_dir / PLOT_FILES[0], dpi=90)
        plt.close(fig)
        plots["Risk over time per incident entity"] = PLOT_FILES[0]

    leads = report.get("lead_times", {})
    if leads:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for name, values in leads.items():
            vals = [v / 3600 for v in values if v is not None]
            if vals:
                ax.hist(vals, bins=20, alpha=0.5, label=name)
        ax.set_xlabel("lead time (hours; negative = after incident start)")
        ax.set_ylabel("incidents")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / PLOT_FILES[1], dpi=90)
        plt.close(fig)
        plots["Lead-time histogram"] = PLOT_FILES[1]
    return plots
