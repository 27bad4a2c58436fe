"""JSON view models of the console, built from a pipeline Snapshot (no computation of risk).

- `fleet_state`: every entity of every analysis in a compact row format: one list of label
  values per entity and one list of small integers per entity (`FleetAnalysis.columns` names
  them: percentages 0..100 for risk, anomaly and P(h), seconds (whole minutes) for the time to
  failure, indices into the analysis' `actions` / `signals` tables, map position 0..MAP_SCALE,
  map cluster 0..k-1 (fleetmap.clusters; None for outliers and unplaced entities)),
  None where a value is absent. `diff_text` turns two consecutive states into the WebSocket
  update (changed cells only).
- `entity_detail`: one entity's signals (with the unit their name states, `signal_unit`) with
  its own baseline band (the fleet's while it has none) and the capacity line, its history, persistence diagrams (current window and own
  baseline), every agent's vote and the consensus arithmetic spelled out.

Levels: 2 critical, 1 warning, 0 ok, -1 undecided (too few ballots, exporter.consensus); an
entity without a finite sample of any signal in its last `NO_DATA_STEPS` steps
(exporter.windows) is *no data*, whatever its level says (its scrapes stopped: its last verdict
is not current).
"""

from __future__ import annotations

import json
import math
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from exporter.config import AnalysisConfig, Config, ConsensusConfig
from exporter.console import fleetmap
from exporter.console.history import FIXED_COLUMNS, History
from exporter.results import AnalysisResult
from exporter.tda.baseline import DECILES, BaselineView
from exporter.util import format_duration
from exporter.windows import EntityKey, no_recent_samples

LEVEL_NAMES = {-1: "undecided", 0: "ok", 1: "warning", 2: "critical"}
NONE = -(2**31)  # integer sentinel for "absent" inside the int64 row arrays
# Map positions are sent on a MAP_SCALE x MAP_SCALE grid, times to failure in whole minutes:
# finer values would change every cycle and turn each WebSocket diff into the whole fleet.
MAP_SCALE = 200
ROWS_PER_CHUNK = 500  # rows per json.dumps call (FleetAnalysis.rows_json)
# Prometheus' base-unit name suffixes (prometheus.io/docs/practices/naming): a signal named by
# the convention (`latency_seconds`, `error_ratio`) states its unit. The configuration has no
# unit key, so any other name gets none rather than a guess from its query or capacity.
UNIT_SUFFIXES = frozenset({"seconds", "bytes", "ratio", "percent", "celsius", "volts",
                           "amperes", "joules", "grams", "meters"})


def _pct(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.where(np.isfinite(x), np.round(np.clip(x, 0, 1) * 100), NONE)


def signal_unit(name: str) -> str | None:
    """The unit a signal's name ends with (UNIT_SUFFIXES), else None."""
    suffix = name.rsplit("_", 1)[-1]
    return suffix if suffix in UNIT_SUFFIXES else None


def no_data(result: AnalysisResult) -> np.ndarray:
    """[E] bool: no finite sample of any signal in the window's last NO_DATA_STEPS steps."""
    v = np.asarray(result.window.values)
    if v.ndim != 3 or v.shape[2] == 0:
        return np.ones(len(result.entities), dtype=bool)
    return no_recent_samples(v)


def top_signal(contribution: np.ndarray) -> np.ndarray:
    """[E] index of the largest contribution, -1 where none is known."""
    c = np.asarray(contribution, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] == 0:
        return np.full(c.shape[0] if c.ndim else 0, -1)
    known = np.isfinite(c).any(axis=1)
    return np.where(known, np.argmax(np.nan_to_num(c, nan=-1), axis=1), -1)


@dataclass(frozen=True, eq=False)
class FleetAnalysis:
    """One analysis in the fleet view: `ints` [E, len(columns)] int64 with NONE for absent."""

    name: str
    labels: tuple[str, ...]
    signals: tuple[str, ...]
    horizons: tuple[str, ...]
    columns: tuple[str, ...]
    actions: tuple[str, ...]
    entities: tuple[EntityKey, ...]
    ints: np.ndarray

    def rows(self, which: np.ndarray | None = None) -> list[list[int | None]]:
        """`ints` (the rows `which` selects, or all) as lists, None for NONE."""
        data = self.ints if which is None else self.ints[which]
        return [[None if v == NONE else v for v in row] for row in data.tolist()]

    def rows_json(self) -> str:
        """`rows()` as JSON text, from the int array's `tolist` and one replace of the NONE
        sentinel: ~10x faster than converting 10 000 rows element by element. Encoded
        ROWS_PER_CHUNK rows at a time: json.dumps holds the GIL for a whole call, so one call
        for 10 000 rows stalled the exporter's event loop (scrapes) by ~10 ms; the state is
        built in a worker thread every cycle (console.live)."""
        parts = (_json(self.ints[i:i + ROWS_PER_CHUNK].tolist())[1:-1]
                 for i in range(0, len(self.ints), ROWS_PER_CHUNK))
        return f"[{','.join(parts)}]".replace(str(NONE), "null")

    def head(self) -> dict[str, Any]:
        """The analysis' tables: name, labels, signals, horizons, columns, actions, map scale."""
        return {"name": self.name, "labels": list(self.labels), "signals": list(self.signals),
                "horizons": list(self.horizons), "columns": list(self.columns),
                "actions": list(self.actions), "map_scale": MAP_SCALE}

    def to_json(self) -> dict[str, Any]:
        """`head()` plus `entities` (label values) and `rows`."""
        return {**self.head(), "entities": [list(k) for k in self.entities],
                "rows": self.rows()}

    def to_text(self, extra: str = "") -> str:
        """`to_json()` as JSON text (`extra`: more `"key":value` members, comma-led)."""
        head = _json({**self.head(), "entities": [list(k) for k in self.entities]})
        return f'{head[:-1]},"rows":{self.rows_json()}{extra}}}'


@dataclass(frozen=True, eq=False)
class FleetState:
    """The whole fleet view of one snapshot: `seq` numbers consecutive states (WebSocket
    diffs), `created` the snapshot's Unix seconds, `counts` entities per badge
    (`level_counts`)."""

    seq: int
    created: float
    health: dict[str, Any]
    analyses: tuple[FleetAnalysis, ...]
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The WebSocket `full` message: this state with every analysis' rows."""
        return {"type": "full", "seq": self.seq, "created": self.created, "health": self.health,
                "counts": self.counts, "analyses": [a.to_json() for a in self.analyses]}

    def to_text(self) -> str:
        """`to_json()` as JSON text, built fast (see `FleetAnalysis.rows_json`)."""
        head = _json({"type": "full", "seq": self.seq, "created": self.created,
                      "health": self.health, "counts": self.counts})
        return f'{head[:-1]},"analyses":[{",".join(a.to_text() for a in self.analyses)}]}}'


def fleet_analysis(r: AnalysisResult) -> FleetAnalysis:
    """The compact rows of one analysis (see the module docstring)."""
    e = len(r.entities)
    horizons = tuple(format_duration(h) for h in r.forecast.horizons) if r.forecast else ()
    columns = ("level", "nodata", "risk", "anomaly", *(f"p_{h}" for h in horizons), "ttf",
               "action", "top", "x", "y", "outlier", "cluster")
    ints = np.full((e, len(columns)), NONE, dtype=np.int64)
    col = {c: i for i, c in enumerate(columns)}
    nodata = no_data(r)
    ints[:, col["nodata"]] = nodata
    actions: tuple[str, ...] = ()
    c = r.consensus
    if c is not None:
        ints[:, col["level"]] = np.asarray(c.level, dtype=np.int64)
        ints[:, col["risk"]] = _pct(c.risk)
        ttf = np.asarray(c.time_to_failure, dtype=np.float64)
        ints[:, col["ttf"]] = np.where(np.isfinite(ttf), np.round(ttf / 60) * 60, NONE)
        actions = tuple(sorted(set(c.action)))
        lookup = {a: i for i, a in enumerate(actions)}
        ints[:, col["action"]] = [lookup[a] for a in c.action]
        top = top_signal(c.contribution)
        ints[:, col["top"]] = np.where(top >= 0, top, NONE)
    if r.forecast is not None:
        for j, h in enumerate(horizons):
            ints[:, col[f"p_{h}"]] = _pct(r.forecast.probability[:, j])
    t = r.topology
    if t is not None:
        ints[:, col["anomaly"]] = _pct(t.anomaly_score)
        out = fleetmap.outliers(t.fleet_outlier)
        comps = fleetmap.project(t.features, fit=~out)
        pos = fleetmap.place(comps, fit=~out)
        ok = np.isfinite(pos).all(axis=1)
        ints[:, col["x"]] = np.where(ok, np.round(np.nan_to_num(pos[:, 0]) * MAP_SCALE), NONE)
        ints[:, col["y"]] = np.where(ok, np.round(np.nan_to_num(pos[:, 1]) * MAP_SCALE), NONE)
        ints[:, col["outlier"]] = out
        cluster = fleetmap.clusters(comps, member=~out)
        ints[:, col["cluster"]] = np.where(cluster >= 0, cluster, NONE)
    return FleetAnalysis(r.analysis, tuple(r.label_names), tuple(r.signals), horizons, columns,
                         actions, tuple(r.entities), ints)


def level_counts(analyses: tuple[FleetAnalysis, ...]) -> dict[str, int]:
    """Entities per badge: critical, warning, ok, undecided, nodata (no data wins)."""
    counts = {"critical": 0, "warning": 0, "ok": 0, "undecided": 0, "nodata": 0}
    for a in analyses:
        col = {c: i for i, c in enumerate(a.columns)}
        nodata = a.ints[:, col["nodata"]] == 1
        level = a.ints[:, col["level"]]
        counts["nodata"] += int(nodata.sum())
        for value, name in LEVEL_NAMES.items():
            counts[name] += int(((level == value) & ~nodata).sum())
        # No consensus at all (agents failed): undecided, never ok.
        counts["undecided"] += int(((level == NONE) & ~nodata).sum())
    return counts


def fleet_state(snapshot: Any, seq: int, health: dict[str, Any]) -> FleetState:
    """The FleetState of a pipeline Snapshot (no results: no analyses)."""
    analyses = tuple(fleet_analysis(r) for r in getattr(snapshot, "results", ()))
    return FleetState(seq, float(getattr(snapshot, "created", 0.0)), health, analyses,
                      level_counts(analyses))


def diff_text(prev: FleetState | None, cur: FleetState) -> str:
    """The WebSocket update from `prev` to `cur` as JSON text: per analysis either the changed
    cells column by column (`cols`: {column: {i: row-index gaps, v: new values}}; the row
    index starts at -1 and each gap is added to it), or, when its entities or tables changed,
    everything (`full`: true). No `prev`: the full state.

    Column by column because in a live fleet most rows change every cycle in a few columns
    (anomaly score, map position) and rarely in the others; gap-coded indices are short."""
    if prev is None:
        return cur.to_text()
    before = {a.name: a for a in prev.analyses}
    parts = []
    for a in cur.analyses:
        p = before.get(a.name)
        if (p is None or p.entities != a.entities or p.columns != a.columns
                or p.actions != a.actions or p.signals != a.signals):
            parts.append(a.to_text(',"full":true'))
            continue
        cols = []
        for j, name in enumerate(a.columns):
            changed = np.flatnonzero(p.ints[:, j] != a.ints[:, j])
            if len(changed):
                gaps = _json(np.diff(changed, prepend=-1).tolist())
                values = _json(a.ints[changed, j].tolist()).replace(str(NONE), "null")
                cols.append(f'{_json(name)}:{{"i":{gaps},"v":{values}}}')
        parts.append(f'{{"name":{_json(a.name)},"cols":{{{",".join(cols)}}}}}')
    head = _json({"type": "diff", "seq": cur.seq, "base": prev.seq, "created": cur.created,
                  "health": cur.health, "counts": cur.counts})
    return f'{head[:-1]},"analyses":[{",".join(parts)}]}}'


def diff(prev: FleetState | None, cur: FleetState) -> dict[str, Any]:
    """`diff_text` parsed (for tests and tools)."""
    parsed: dict[str, Any] = json.loads(diff_text(prev, cur))
    return parsed


def _json(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


# ------------------------------------------------------------------------------ entity view


def find_entity(snapshot: Any, analysis: str,
                labels: Mapping[str, str]) -> tuple[AnalysisResult, int] | None:
    """The result and row of the entity whose entity labels equal `labels`, or None."""
    for r in getattr(snapshot, "results", ()):
        if r.analysis != analysis:
            continue
        try:
            key = tuple(labels[name] for name in r.label_names)
        except KeyError:
            return None
        for i, k in enumerate(r.entities):
            if k == key:
                return r, i
    return None


def projected_by(result: AnalysisResult, i: int) -> list[str]:
    """The agents whose projections entity `i`'s time to failure is the median of: the
    consensus's supporters with a finite projection ([] without a time to failure). The
    failure probabilities are the learned model's own; a screen that shows both must say
    whose the time is (a near exhaustion next to a low P(1h) read as a contradiction)."""
    c = result.consensus
    if c is None or not math.isfinite(float(c.time_to_failure[i])):
        return []
    agree = np.asarray(c.agreeing, dtype=bool)
    if agree.ndim != 2:
        return []
    return [v.agent for j, v in enumerate(result.votes)
            if j < agree.shape[1] and agree[i, j] and math.isfinite(float(v.time_to_failure[i]))]


def _num(x: Any, digits: int = 4) -> float | None:
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


def _series(values: np.ndarray, digits: int = 5) -> list[float | None]:
    return [None if not math.isfinite(v) else round(v, digits) for v in np.asarray(
        values, dtype=np.float64).tolist()]


def fleet_band(result: AnalysisResult) -> np.ndarray:
    """[2, S, T] 10th and 90th percentile of each signal across the fleet at each step."""
    from exporter.numeric import nan_percentile

    v = np.asarray(result.window.values, dtype=np.float64)
    if v.shape[0] == 0:
        return np.full((2, *v.shape[1:]), np.nan)
    return nan_percentile(v, [10.0, 90.0], axis=0)


def promql_url(base: str, expr: str, range_: str = "1d") -> str:
    """A Prometheus expression-browser link (graph tab) for `expr`."""
    query = urllib.parse.urlencode({"g0.expr": expr, "g0.tab": "0", "g0.range_input": range_})
    return f"{base.rstrip('/')}/graph?{query}"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def entity_selector(analysis: str, label_names: tuple[str, ...], key: EntityKey) -> str:
    """PromQL selector `{analysis="...",<label>="..."}` of one entity, values escaped."""
    parts = [f"analysis={_quote(analysis)}"]
    parts += [f"{n}={_quote(v)}" for n, v in zip(label_names, key, strict=True)]
    return "{" + ",".join(parts) + "}"


def signal_expr(query: str, label_names: tuple[str, ...], key: EntityKey) -> str:
    """The signal's own query restricted to one entity: `(q) and on(labels) label_replace(...)`."""
    selector = "vector(1)"
    for n, v in zip(label_names, key, strict=True):
        selector = f'label_replace({selector}, "{n}", {_quote(v)}, "", "")'
    return f"({query}) and on({', '.join(label_names)}) {selector}"


def consensus_arithmetic(result: AnalysisResult, i: int, cfg: ConsensusConfig,
                         weights: Mapping[str, float]) -> tuple[list[dict[str, Any]],
                                                                dict[str, Any]]:
    """Each agent's vote and role, and the consensus steps (module docstring of
    exporter.consensus): ballots n, f = floor((n-1)/3), quorum 2f+1, trimmed weighted mean."""
    from exporter.consensus import fault_tolerance
    from exporter.decision import MARGIN

    votes = []
    ballots = []
    for a, v in enumerate(result.votes):
        risk = float(v.risk[i])
        raw_conf = float(v.confidence[i])
        conf = min(max(raw_conf if math.isfinite(raw_conf) else 0.5, 0.05), 1.0)
        if not math.isfinite(risk):
            role = "abstain"
        elif conf >= cfg.min_confidence:
            role = "ballot"
            ballots.append((min(max(risk, 0.0), 1.0), a, float(weights.get(v.agent, 1.0)) * conf))
        else:
            role = "opinion"
        votes.append({
            "agent": v.agent, "risk": _num(risk), "confidence": _num(raw_conf), "role": role,
            "action": v.action[i], "ttf": _num(v.time_to_failure[i], 0),
            "reasons": v.reasons[i], "weight": _num(float(weights.get(v.agent, 1.0)) * conf),
            "trimmed": False,
        })
    n = len(ballots)
    f = int(fault_tolerance(np.array(n)))
    ballots.sort(key=lambda b: (b[0], b[1]))
    kept = ballots[f:n - f] if n else []
    for _, a, _ in ballots[:f] + ballots[n - f:] if f else []:
        votes[a]["trimmed"] = True
    den = sum(w for _, _, w in kept)
    mean = (sum(r * w for r, _, w in kept) / den if den > 0 else
            (sum(r for r, _, _ in kept) / len(kept) if kept else float("nan")))
    c = result.consensus
    threshold = getattr(c, "threshold", None) if c is not None else None
    agents_risk = None if c is None else (c.risk if c.consensus_risk is None
                                          else c.consensus_risk)
    arithmetic = {
        "ballots": n, "agents": len(result.votes), "f": f, "quorum": 2 * f + 1,
        "min_voters": cfg.min_voters, "min_confidence": cfg.min_confidence,
        "warning_risk": cfg.warning_risk, "critical_risk": cfg.critical_risk,
        "at_warning": sum(r >= cfg.warning_risk for r, _, _ in ballots),
        "at_critical": sum(r >= cfg.critical_risk for r, _, _ in ballots),
        "trimmed_mean": _num(mean),
        # The agents' risk (the trimmed mean), and what is exported (exporter.decision
        # reads it against the entity's usual: `exported_risk`).
        "consensus_risk": _num(agents_risk[i]) if agents_risk is not None else None,
        "risk": _num(c.risk[i]) if c is not None else None,
        "level": int(c.level[i]) if c is not None else None,
        # exporter.decision: the risk this entity had to exceed for a level to pass (by
        # `margin`).
        "gate": _num(threshold[i]) if threshold is not None else None,
        "margin": MARGIN,
    }
    return votes, arithmetic


def entity_detail(
    result: AnalysisResult,
    i: int,
    *,
    config: Config,
    history: History | None = None,
    band: np.ndarray | None = None,
    prometheus_url: str | None = None,
    runbook_url: str | None = None,
    diagram: dict[str, Any] | None = None,
    own: BaselineView | None = None,
    own_diagrams: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the entity page shows (JSON-ready; see the module docstring).

    Each signal's `band` [2, T] is its own baseline's 10th and 90th percentile (`own`, the
    median over the reservoir's windows of each window's deciles; constant over the window,
    `band_source` "own") where known, else the fleet's at each step (`band`, "fleet").
    `own_diagrams` (console.diagram.baseline_diagrams) goes out as `baseline` with the
    reservoir's size."""
    from exporter.agents import agent_weights

    analysis_cfg = next((a for a in config.analyses if a.name == result.analysis), None)
    key = result.entities[i]
    c = result.consensus
    f = result.forecast
    t = result.topology
    w = result.window
    capacities: dict[str, float | None] = {}
    queries: dict[str, str] = {}
    if analysis_cfg is not None:
        capacities = {s.name: s.capacity for s in analysis_cfg.signals}
        queries = {s.name: s.query for s in analysis_cfg.signals}
    sel = entity_selector(result.analysis, result.label_names, key)
    links: dict[str, str] = {}
    if prometheus_url:
        from exporter import catalog

        links = {"risk": promql_url(prometheus_url, f"{catalog.RISK_SCORE.name}{sel}"),
                 "anomaly": promql_url(prometheus_url, f"{catalog.TOPOLOGY_ANOMALY.name}{sel}"),
                 "probability": promql_url(prometheus_url,
                                           f"{catalog.FAILURE_PROBABILITY.name}{sel}")}
    contribution = c.contribution[i] if c is not None and c.contribution.size else None
    signals = []
    for s, name in enumerate(result.signals):
        item: dict[str, Any] = {
            "name": name,
            "unit": signal_unit(name),
            "values": _series(w.values[i, s]),
            "capacity": capacities.get(name),
            "contribution": _num(contribution[s]) if contribution is not None else None,
        }
        steps = w.values.shape[2]
        if own is not None and np.isfinite(own.deciles[s, [0, -1]]).all():
            lo, mid, hi = (float(own.deciles[s, j]) for j in (0, len(DECILES) // 2, -1))
            item["band"] = [_series(np.full(steps, lo)), _series(np.full(steps, hi))]
            item["band_source"] = "own"
            item["baseline_median"] = _num(mid, 5)
        elif band is not None:
            item["band"] = [_series(band[0, s]), _series(band[1, s])]
            item["band_source"] = "fleet"
        if prometheus_url and queries.get(name):
            item["promql"] = promql_url(prometheus_url, signal_expr(queries[name],
                                                                     result.label_names, key),
                                        "2h")
        signals.append(item)
    horizons = [format_duration(h) for h in f.horizons] if f is not None else []
    hist: dict[str, Any] = {"times": [], "risk": [], "level": [], "anomaly": [],
                            "probability": {h: [] for h in horizons}}
    if history is not None:
        times, vals = history.series(result.analysis, key)
        hist_h = [format_duration(h) for h in history.horizons(result.analysis)]
        hist = {"times": [round(x, 1) for x in times.tolist()],
                "risk": _series(vals[:, 0], 3), "level": _series(vals[:, 1], 0),
                "anomaly": _series(vals[:, 2], 3),
                "probability": {h: _series(vals[:, len(FIXED_COLUMNS) + j], 3)
                                for j, h in enumerate(hist_h)}}
    weights = agent_weights(config.agents)
    votes, arithmetic = (consensus_arithmetic(result, i, config.agents.consensus, weights)
                         if result.votes else ([], None))
    nodata = bool(no_data(result)[i])
    level = int(c.level[i]) if c is not None else None
    action = c.action[i] if c is not None else "none"
    alert = ("AuraFailurePredicted" if level == 2 else "AuraFailureRisk" if level == 1 else None)
    return {
        "analysis": result.analysis,
        "labels": dict(zip(result.label_names, key, strict=True)),
        "selector": sel,
        "level": level,
        "nodata": nodata,
        "risk": _num(c.risk[i]) if c is not None else None,
        "ttf": _num(c.time_to_failure[i], 0) if c is not None else None,
        "ttf_by": projected_by(result, i),
        "action": action,
        "runbook": runbook_url.format(alertname=alert) if runbook_url and alert else None,
        "explanation": c.explanation[i] if c is not None else "",
        "horizons": horizons,
        "probability": [_num(p) for p in f.probability[i]] if f is not None else [],
        "anomaly": _num(t.anomaly_score[i]) if t is not None else None,
        "betti": [_num(b, 0) for b in t.betti[i]] if t is not None else [],
        "entropy": [_num(x) for x in t.entropy[i]] if t is not None else [],
        "fleet_outlier": _num(t.fleet_outlier[i]) if t is not None else None,
        "window": {"start": _num(w.timestamps[0], 1) if len(w.timestamps) else None,
                   "step": _num(w.timestamps[1] - w.timestamps[0], 3)
                   if len(w.timestamps) > 1 else None},
        "signals": signals,
        "history": hist,
        "diagram": diagram,
        "baseline": ({**own_diagrams, "windows": own.windows} if own is not None
                     and own_diagrams is not None else None),
        "votes": votes,
        "consensus": arithmetic,
        "links": links,
    }


def analysis_config(config: Config, name: str) -> AnalysisConfig | None:
    """The analysis called `name`, or None."""
    return next((a for a in config.analyses if a.name == name), None)
