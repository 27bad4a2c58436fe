"""AURA's alerts as the generated rules would fire them, evaluated on the current snapshot.

The alert definitions (name, severity, expression, `for:`) come from `exporter.rulegen.alerts`;
nothing here restates a threshold. An expression of the form `metric{selector} OP number`
over a per-entity metric the snapshot carries (risk level, risk score, anomaly score) is
evaluated per entity; its `for:` is checked against the console's history: the alert is
*firing* when the condition held in every recorded frame of the last `for:` seconds (and
now), *pending* when it holds now but not yet that long; an alert whose condition cleared
fires on for its rule's `keep_firing_for`, replayed over the frames as the backtest replays
it (`fire_intervals`). The history's frames are
`History.spacing` apart, so the start of a condition is known to that resolution. Self-metric
alerts of the same form (`aura_up == 0`, cycle duration) are evaluated on the exporter's
health now, without `for:`, and so is the per-analysis fleet-wide event (its value: how many
entities reached a level in the window). Anything else (`absent(up)`, `increase(...)`, `time() - ...`) is
listed as evaluated by Prometheus only.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from exporter import catalog
from exporter.config import Config
from exporter.console.history import History
from exporter.results import AnalysisResult
from exporter.rulegen import Alert, alerts

_EXPR = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s*(>=|<=|==|!=|>|<)\s*"
                   r"([-+0-9.eE]+)\s*$")
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
    "==": operator.eq, "!=": operator.ne}
# Per-entity metrics the snapshot carries -> (history column, value of a result).
_ENTITY: dict[str, tuple[int, Callable[[AnalysisResult], np.ndarray | None]]] = {
    catalog.RISK_SCORE.name: (0, lambda r: r.consensus.risk if r.consensus else None),
    catalog.RISK_LEVEL.name: (1, lambda r: (np.asarray(r.consensus.level, dtype=np.float64)
                                            if r.consensus else None)),
    catalog.TOPOLOGY_ANOMALY.name: (2, lambda r: r.topology.anomaly_score
                                    if r.topology else None),
}
_HEALTH = {catalog.UP.name: "up", catalog.CYCLE_DURATION.name: "cycle_seconds"}


def parse(expr: str) -> tuple[str, str, float] | None:
    """`aura_risk_level{job="x"} >= 2` -> ("aura_risk_level", ">=", 2.0); other forms: None."""
    m = _EXPR.match(expr)
    if not m:
        return None
    try:
        return m.group(1), m.group(3), float(m.group(4))
    except ValueError:
        return None


def _since(history: History, r: AnalysisResult, column: int, op: Callable[[Any, Any], Any],
           threshold: float, now: float, active: np.ndarray) -> np.ndarray:
    """[E] earliest time of the run of frames (newest backwards) in which the condition held,
    `now` for entities whose condition holds only now."""
    since = np.where(active, now, np.nan)
    times, values = history.aligned(r.analysis, r.entities, column)
    run = active.copy()
    for t, v in zip(times[::-1], values[::-1], strict=True):
        if t > now:
            continue
        with np.errstate(invalid="ignore"):
            run &= op(v, threshold) & np.isfinite(v)
        if not run.any():
            break
        since = np.where(run, t, since)
    return since


def evaluate(snapshot: Any, config: Config, history: History,
             health: dict[str, Any]) -> dict[str, Any]:
    """{alerts: [{name, severity, for, expr, evaluated, runbook, active: [...]}]}.

    `active` lists per entity {analysis, labels, state: pending|firing, since, value}, plus
    `kept_until` for an alert that fires on under its rule's `keep_firing_for` after its
    condition cleared; for self alerts {state, value}.
    """
    now = float(getattr(snapshot, "created", 0.0))
    out = []
    for a in alerts(config):
        item: dict[str, Any] = {"name": a.name, "severity": a.severity, "for": a.for_,
                                "expr": a.expr, "summary": a.summary, "active": [],
                                "runbook": config.rules.runbook_url.format(alertname=a.name)}
        parsed = parse(a.expr)
        if parsed is not None and a.entity and parsed[0] in _ENTITY:
            item["evaluated"] = "console"
            item["active"] = _entity_alerts(a, parsed, snapshot, history, now)
        elif parsed is not None and parsed[0] == catalog.FLEET_WIDE_EVENT.name:
            item["evaluated"] = "console (now, without for:)"
            item["active"] = [
                {"analysis": r.analysis, "state": "active",
                 "value": r.consensus.fleet_wide_entities}
                for r in getattr(snapshot, "results", ())
                if r.consensus is not None and r.consensus.fleet_wide_event
                and _OPS[parsed[1]](1.0, parsed[2])]
        elif parsed is not None and parsed[0] in _HEALTH:
            item["evaluated"] = "console (now, without for:)"
            value = health.get(_HEALTH[parsed[0]])
            if value is not None and _OPS[parsed[1]](float(value), parsed[2]):
                item["active"] = [{"state": "active", "value": value}]
        else:
            item["evaluated"] = "prometheus only"
        out.append(item)
    return {"created": now, "alerts": out}


def _entity_alerts(a: Alert, parsed: tuple[str, str, float], snapshot: Any, history: History,
                   now: float) -> list[dict[str, Any]]:
    metric, op_name, threshold = parsed
    column, value_of = _ENTITY[metric]
    op = _OPS[op_name]
    found = []
    for r in getattr(snapshot, "results", ()):
        values = value_of(r)
        if values is None:
            continue
        values = np.asarray(values, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            active = op(values, threshold) & np.isfinite(values)
        labels = [dict(zip(r.label_names, e, strict=True)) for e in r.entities]
        if active.any():
            since = _since(history, r, column, op, threshold, now, active)
            for i in np.flatnonzero(active):
                firing = now - since[i] >= a.for_
                found.append({"analysis": r.analysis, "labels": labels[i],
                              "state": "firing" if firing else "pending",
                              "since": float(since[i]), "value": float(values[i])})
        if a.keep_firing_for > 0 and not active.all():
            found += _kept(a, r.analysis, labels, history.aligned(r.analysis, r.entities, column),
                           op, threshold, values, active, now)
    found.sort(key=lambda x: (x["state"] != "firing", -x["value"]))
    return found


def _kept(a: Alert, analysis: str, labels: list[dict[str, str]],
          frames: tuple[np.ndarray, np.ndarray], op: Callable[[Any, Any], Any],
          threshold: float, values: np.ndarray, active: np.ndarray,
          now: float) -> list[dict[str, Any]]:
    """Entities whose condition is false now but whose alert still fires under the rule's
    `keep_firing_for`, replayed over the history's frames and now as the backtest replays it
    (`fire_intervals`): state "firing", `kept_until` when it resolves unless the condition
    returns, `since` when it fired."""
    from exporter.backtest_report import fire_intervals

    times, past = frames
    keep = times < now
    times = np.append(times[keep], now)
    with np.errstate(invalid="ignore"):
        cond = np.vstack([op(past[keep], threshold) & np.isfinite(past[keep]),
                          active[None, :]]).T
    out = []
    for row, start, end in fire_intervals(times, cond, a.for_, a.keep_firing_for):
        if end is None and not active[row]:
            was = np.flatnonzero(cond[row])
            cleared = float(times[was[-1] + 1]) if len(was) else now
            out.append({"analysis": analysis, "labels": labels[row], "state": "firing",
                        "since": start, "value": float(values[row]),
                        "kept_until": cleared + a.keep_firing_for})
    return out
