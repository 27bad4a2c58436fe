"""Snapshot -> Prometheus text exposition (format 0.0.4), rendered once per cycle.

Why not prometheus_client collectors: they cost 7–10 µs per sample (0.7 s per 100 000 samples,
see shared/notes/performance.md) and would run on every scrape; rendering straight from the
numpy arrays once per cycle is an order of magnitude cheaper and scrapes only copy bytes.
A test compares this output with prometheus_client's parser and `promtool check metrics`.
The few process/python families do come from prometheus_client's own collectors (a private
registry rendered with the snapshot), so they are exactly what every Python exporter serves.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Iterable, Sequence

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from exporter import __version__, catalog
from exporter.catalog import Metric
from exporter.config import Config, format_duration
from exporter.results import AnalysisResult
from exporter.snapshot import SelfStats


def escape(value: str) -> str:
    """Escape a label value for the text format."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def fmt(value: float) -> str:
    """Format a sample value as Go's strconv does for Prometheus (+Inf, -Inf, NaN)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return ",".join(f'{k}="{escape(v)}"' for k, v in pairs)


class _Writer:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self._headed: set[str] = set()

    def head(self, m: Metric) -> None:
        if m.name in self._headed:
            return
        self._headed.add(m.name)
        self.parts.append(f"# HELP {m.name} {m.help}\n# TYPE {m.name} {_type(m)}\n")

    def sample(self, m: Metric, labels: str, value: float) -> None:
        self.head(m)
        self.parts.append(f"{m.name}{{{labels}}} {fmt(value)}\n" if labels else
                          f"{m.name} {fmt(value)}\n")

    def column(self, m: Metric, prefixes: Sequence[str], suffix: str, values: np.ndarray,
               rows: Sequence[int] | None = None) -> None:
        """One sample per entity row with a finite value: `name{prefix<suffix>} value`."""
        idx = range(len(prefixes)) if rows is None else rows
        lines = [
            f"{m.name}{{{prefixes[i]}{suffix}}} {fmt(v)}\n"
            for i in idx
            if (v := float(values[i])) == v
        ]
        if lines:
            self.head(m)
            self.parts.extend(lines)

    def bytes(self) -> bytes:
        # Sources drop label values that are not valid Unicode; "replace" is the last guard
        # so that one such value can never make every scrape fail (client_python#564).
        return "".join(self.parts).encode("utf-8", "replace")


def _type(m: Metric) -> str:
    return "gauge" if m.type == "info" else m.type


def render(results: Sequence[AnalysisResult], stats: SelfStats, cfg: Config) -> bytes:
    """Render every result, the self-metrics in `stats` (snapshot.SelfStats) and the
    standard `process_*` / `python_*` families."""
    w = _Writer()
    # Families are written metric by metric across analyses so each has one HELP/TYPE block.
    per_analysis = [(r, _prefixes(r)) for r in results]
    _render_entities(w, per_analysis, cfg)
    _render_analyses(w, results, stats, cfg)
    _render_self(w, stats)
    return w.bytes() + runtime_metrics()


@functools.lru_cache(maxsize=1)
def _runtime_registry() -> CollectorRegistry:
    """A private registry with prometheus_client's process, platform and GC collectors.

    The same families every client_python exporter serves (`process_cpu_seconds_total`,
    `process_resident_memory_bytes`, `process_start_time_seconds`, `python_info`,
    `python_gc_*`), so exporter-health dashboards and alerts work on AURA unchanged. Private,
    not the global default registry: nothing is registered at import.
    """
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def runtime_metrics() -> bytes:
    """The process/python families in text format 0.0.4 (a few dozen samples, ~0.2 ms)."""
    return generate_latest(_runtime_registry())


def _prefixes(r: AnalysisResult) -> list[str]:
    head = f'analysis="{escape(r.analysis)}"'
    return [
        head + "".join(f',{k}="{escape(v)}"' for k, v in zip(r.label_names, e, strict=True))
        for e in r.entities
    ]


def _detail_rows(r: AnalysisResult, cfg: Config) -> list[int]:
    n = len(r.entities)
    if cfg.exposition.detail == "full" or n <= cfg.exposition.top_k_details:
        return list(range(n))
    if r.consensus is not None:
        # Level first, then risk: an entity at a level has an alert whose description reads
        # its detail series (the exported risk's bands are the levels already; the level
        # keeps the order where a config sets critical_risk == warning_risk).
        level = np.clip(np.nan_to_num(np.asarray(r.consensus.level, float), nan=0.0), 0, None)
        score = 2.0 * level + np.nan_to_num(r.consensus.risk, nan=-1.0)
    elif r.topology is not None:
        score = np.nan_to_num(r.topology.anomaly_score, nan=-1.0)
    else:
        return []
    k = cfg.exposition.top_k_details
    top = np.argpartition(-score, k - 1)[:k] if k else np.array([], dtype=int)
    return sorted(int(i) for i in top)


def _render_entities(w: _Writer, per_analysis: list[tuple[AnalysisResult, list[str]]],
                     cfg: Config) -> None:
    for r, pre in per_analysis:
        if r.forecast is not None:
            for j, h in enumerate(r.forecast.horizons):
                w.column(catalog.FAILURE_PROBABILITY, pre, f',horizon="{format_duration(h)}"',
                         r.forecast.probability[:, j])
    for r, pre in per_analysis:
        ttf = r.consensus.time_to_failure if r.consensus is not None else None
        if ttf is None and r.forecast is not None:
            ttf = r.forecast.time_to_failure
        if ttf is not None:
            w.column(catalog.TIME_TO_FAILURE, pre, "", ttf)
    for r, pre in per_analysis:
        if r.consensus is not None:
            w.column(catalog.RISK_SCORE, pre, "", r.consensus.risk)
    for r, pre in per_analysis:
        if r.consensus is not None:
            level = np.where(r.consensus.level >= 0, r.consensus.level, np.nan).astype(float)
            w.column(catalog.RISK_LEVEL, pre, "", level)
    for r, pre in per_analysis:
        if r.consensus is not None:
            w.column(catalog.VOTERS, pre, "", r.consensus.voters.astype(float))
    for r, pre in per_analysis:
        if r.topology is not None:
            w.column(catalog.TOPOLOGY_ANOMALY, pre, "", r.topology.anomaly_score)
    for metric, attr in ((catalog.BETTI, "betti"), (catalog.ENTROPY, "entropy")):
        for r, pre in per_analysis:
            if r.topology is not None:
                arr = getattr(r.topology, attr)
                for d in range(arr.shape[1]):
                    w.column(metric, pre, f',dimension="{d}"', arr[:, d])
    # Detail series: bounded by exposition.detail / top_k_details.
    details = [(r, pre, _detail_rows(r, cfg)) for r, pre in per_analysis]
    for r, pre, rows in details:
        for v in r.votes:
            w.column(catalog.AGENT_RISK, pre, f',agent="{escape(v.agent)}"', v.risk, rows)
    for r, pre, rows in details:
        if r.consensus is not None:
            for j, signal in enumerate(r.signals):
                w.column(catalog.SIGNAL_CONTRIBUTION, pre, f',signal="{escape(signal)}"',
                         r.consensus.contribution[:, j], rows)
    for r, pre, rows in details:
        if r.consensus is not None:
            for i in rows:
                action = r.consensus.action[i]
                if r.consensus.level[i] >= 0:
                    w.sample(catalog.RECOMMENDED_ACTION,
                             f'{pre[i]},action="{escape(action)}"', 1.0)


def _render_analyses(w: _Writer, results: Sequence[AnalysisResult], stats: SelfStats,
                     cfg: Config) -> None:
    by_name = {r.analysis: r for r in results}
    for a in cfg.analyses:
        r = by_name.get(a.name)
        if r is not None:
            w.sample(catalog.ANALYSIS_ENTITIES, f'analysis="{escape(a.name)}"', len(r.entities))
    for a in cfg.analyses:
        r = by_name.get(a.name)
        if r is not None and r.topology is not None:
            for d, v in enumerate(r.topology.fleet_betti):
                if v == v:
                    w.sample(catalog.FLEET_BETTI, f'analysis="{escape(a.name)}",dimension="{d}"',
                             float(v))
    gated = [(a, r.consensus) for a in cfg.analyses
             if (r := by_name.get(a.name)) is not None and r.consensus is not None
             and r.consensus.fleet_wide_entities is not None]
    for a, c in gated:
        w.sample(catalog.FLEET_WIDE_ENTITIES, f'analysis="{escape(a.name)}"',
                 float(c.fleet_wide_entities or 0))
    for a, c in gated:
        w.sample(catalog.FLEET_WIDE_EVENT, f'analysis="{escape(a.name)}"',
                 float(c.fleet_wide_event))
    dropped = stats.dropped_total
    for a in cfg.analyses:
        w.sample(catalog.ENTITIES_DROPPED, f'analysis="{escape(a.name)}"',
                 float(dropped.get(a.name, 0)))
    for a in cfg.analyses:
        r = by_name.get(a.name)
        if r is not None:
            for s in a.signals:
                if s.name in r.source_series:
                    w.sample(catalog.SOURCE_SERIES,
                             _labels([("analysis", a.name), ("signal", s.name)]),
                             float(r.source_series[s.name]))
    errors = stats.query_errors_total
    for a in cfg.analyses:
        for s in a.signals:
            w.sample(catalog.SOURCE_QUERY_ERRORS, _labels([("analysis", a.name), ("signal", s.name)]),
                     float(errors.get((a.name, s.name), 0)))


def _render_self(w: _Writer, stats: SelfStats) -> None:
    s = stats
    if s.up is not None:  # absent until the first cycle has tried the source (SelfStats.up)
        w.sample(catalog.UP, "", s.up)
    w.sample(catalog.BUILD_INFO,
             _labels([("version", __version__), ("pythonversion", platform.python_version())]), 1)
    info = s.model_info
    w.sample(catalog.MODEL_INFO, _labels([("model", info.get("model", "none")),
                                          ("version", info.get("version", "")),
                                          ("status", info.get("status", "not_loaded"))]), 1)
    if s.cycle_seconds is not None:
        w.sample(catalog.CYCLE_DURATION, "", s.cycle_seconds)
    for stage, seconds in sorted(s.stage_seconds.items()):
        w.sample(catalog.STAGE_DURATION, _labels([("stage", stage)]), seconds)
    if s.last_success is not None:
        w.sample(catalog.LAST_SUCCESS, "", s.last_success)
    w.sample(catalog.CYCLES, "", float(s.cycles_total))
    failures = s.failures_total
    # Every stage is always present so rate() and increase() work from the first failure.
    for stage in catalog.STAGES:
        w.sample(catalog.CYCLE_FAILURES, _labels([("stage", stage)]),
                 float(failures.get(stage, 0)))
    w.sample(catalog.INCIDENTS_RECORDED, "", float(s.incidents_recorded_total))
