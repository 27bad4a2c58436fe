"""Runs the stages every interval, times and isolates each, and swaps in an immutable snapshot.

Data flows one way: source -> windows -> topology -> forecast -> agents -> consensus -> snapshot.
Each stage failure is counted in `aura_cycle_failures_total{stage}`, logged once, and loses only
what depends on it; an analysis whose ingestion failed keeps serving its last good result until
that result is older than `stale_after`, then it is dropped from /metrics.

The same `Pipeline.run_cycle(now)` serves the live exporter (`aura run`, `aura demo`), the
backtest (a simulated clock over history) and training, so all three share one code path.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from exporter.config import AnalysisConfig, Config
from exporter.results import AnalysisResult, Consensus, Forecast, TopologyResult, Votes
from exporter.source import Fetch, Source, SourceError
from exporter.windows import Window, WindowBuffer, shard_of

log = logging.getLogger("aura.pipeline")


class Predictor(Protocol):
    info: dict[str, str]

    def predict(
        self, window: Window, analysis: AnalysisConfig, topology: TopologyResult | None
    ) -> Forecast | None: ...


class StateStore(Protocol):
    def save(self, name: str, arrays: dict[str, np.ndarray]) -> None: ...

    def load(self, name: str) -> dict[str, np.ndarray] | None: ...


@dataclass
class SelfStats:
    """Counters and gauges about the exporter itself, rendered with every snapshot."""

    up: float = 0.0
    cycles_total: int = 0
    failures_total: dict[str, int] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    cycle_seconds: float | None = None
    last_success: float | None = None
    query_errors_total: dict[tuple[str, str], int] = field(default_factory=dict)
    dropped_total: dict[str, int] = field(default_factory=dict)
    incidents_recorded_total: int = 0
    model_info: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Snapshot:
    """What /metrics serves until the next cycle: results plus pre-rendered exposition bytes."""

    created: float
    results: tuple[AnalysisResult, ...]
    body: bytes
    body_gzip: bytes
    ready: bool


@dataclass
class _AnalysisRuntime:
    cfg: AnalysisConfig
    buffer: WindowBuffer
    topology: Any = None  # exporter.tda.stage.TopologyStage, created on first use
    # History fetched on a cold start, replayed through topology before the first cycle.
    bootstrap: Window | None = None
    last_good: AnalysisResult | None = None
    last_good_at: float = float("-inf")


class Pipeline:
    """The cycle runner.

    Parameters
    ----------
    cfg: validated configuration.
    source: where samples come from (live Prometheus, CSV, history, simulator).
    predictor: the failure model, or None when it abstains (`model_info` says why).
    state: optional store that keeps buffers and baselines across restarts.
    shard: (index, count) to analyse only this replica's share of the entities.
    topology_workers: processes for persistent homology (None: all cores).
    clock: wall clock for durations (the cycle's `now` is passed to run_cycle).
    """

    def __init__(
        self,
        cfg: Config,
        source: Source,
        *,
        predictor: Predictor | None = None,
        model_info: dict[str, str] | None = None,
        state: StateStore | None = None,
        shard: tuple[int, int] | None = None,
        topology_workers: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.source = source
        self.predictor = predictor
        self.state = state
        self.shard = shard
        self.topology_workers = topology_workers
        self.clock = clock
        self.stats = SelfStats(model_info=dict(model_info or predictor_info(predictor)))
        self.runtimes = [
            _AnalysisRuntime(a, self._new_buffer(a)) for a in cfg.analyses
        ]
        self._restore_state()
        self._render_seconds = 0.0
        self.snapshot = self._render((), created=clock(), ready=False)

    # ---------------------------------------------------------------- public

    async def run_cycle(self, now: float) -> Snapshot:
        """Run every stage once for the window ending at `now`; returns the new snapshot."""
        started = self.clock()
        stage_seconds: dict[str, float] = {}
        failed_stages: set[str] = set()
        source_ok = True
        results: list[AnalysisResult] = []

        for rt in self.runtimes:
            t0 = self.clock()
            try:
                fetch = await self._ingest(rt, now)
                if fetch.errors:
                    source_ok = False
            except (TimeoutError, SourceError, OSError) as err:
                source_ok = False
                self._fail("ingest", failed_stages, rt.cfg.name, err, expected=True)
                fetch = None
            except Exception as err:  # a bug in ingestion must not stop the exporter
                source_ok = False
                self._fail("ingest", failed_stages, rt.cfg.name, err)
                fetch = None
            _add(stage_seconds, "ingest", self.clock() - t0)
            if fetch is None:
                if rt.last_good is not None and now - rt.last_good_at <= self.cfg.stale_seconds:
                    results.append(rt.last_good)
                continue
            window = rt.buffer.window()
            result = await asyncio.to_thread(
                self._analyse, rt, window, fetch, now, stage_seconds, failed_stages
            )
            rt.last_good, rt.last_good_at = result, now
            results.append(result)

        self._save_state()
        self._refresh_model_info()
        self.stats.up = 1.0 if source_ok else 0.0
        self.stats.cycles_total += 1
        cycle_seconds = self.clock() - started
        if not failed_stages:
            self.stats.last_success = self.clock()
        # This cycle's render time is only known after rendering: the last one is shown.
        stage_seconds["render"] = self._render_seconds
        self.stats.stage_seconds = stage_seconds
        self.stats.cycle_seconds = cycle_seconds
        t0 = self.clock()
        snapshot = self._render(tuple(results), created=now, ready=True)
        self._render_seconds = self.clock() - t0
        self.snapshot = snapshot
        # Every cycle: debug. Info is kept for changes of state (failures, recoveries).
        log.debug(
            "msg=\"cycle done\" duration_seconds=%.3f entities=%d failed_stages=%s",
            cycle_seconds,
            sum(len(r.entities) for r in results),
            ",".join(sorted(failed_stages)) or "none",
        )
        return snapshot

    async def run_forever(self, stop: asyncio.Event, now: Callable[[], float] | None = None,
                          interval: float | None = None) -> None:
        """Cycle every `interval` (wall seconds) until `stop` is set; never raises."""
        now = now or self.clock
        interval = float(interval if interval is not None else self.cfg.interval)
        while not stop.is_set():
            started = self.clock()
            try:
                await self.run_cycle(now())
            except Exception:  # the loop itself must survive anything
                log.exception("cycle crashed")
            delay = max(0.0, interval - (self.clock() - started))
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                pass

    def record_incidents(self, count: int) -> None:
        """Count incidents recorded by the webhook (rendered with the next snapshot)."""
        self.stats.incidents_recorded_total += count

    def close(self) -> None:
        for rt in self.runtimes:
            if rt.topology is not None:
                rt.topology.close()

    # ---------------------------------------------------------------- stages

    def _new_buffer(self, a: AnalysisConfig) -> WindowBuffer:
        return WindowBuffer(
            a.name,
            tuple(a.entity_labels),
            tuple(s.name for s in a.signals),
            float(a.step),
            a.steps,
            a.max_entities,
        )

    async def _ingest(self, rt: _AnalysisRuntime, now: float) -> Fetch:
        start = rt.buffer.fetch_start(now, float(self.cfg.source.overlap))
        # No baselines yet (first start, or saved ones refused after an upgrade): bootstrap
        # them from history, even when the sample buffers were restored.
        cold = rt.topology is None
        bootstrap = float(rt.cfg.topology.bootstrap) if cold else 0.0
        fetch = await self.source.fetch(rt.cfg, start - bootstrap, now)
        block = fetch.block
        if self.shard is not None and block.entities:
            index, count = self.shard
            mine = np.array([shard_of(e, count) == index for e in block.entities], dtype=bool)
            block = block.select(mine)
        if bootstrap and block.entities:
            if len(block.entities) <= rt.cfg.topology.bootstrap_max_entities:
                rt.bootstrap = block
            else:
                log.info("topology bootstrap skipped analysis=%s entities=%d max=%d",
                         rt.cfg.name, len(block.entities),
                         rt.cfg.topology.bootstrap_max_entities)
        rt.buffer.update(block)  # keeps only the newest window of a longer block
        name = rt.cfg.name
        for signal in fetch.errors:
            key = (name, signal)
            self.stats.query_errors_total[key] = self.stats.query_errors_total.get(key, 0) + 1
        if fetch.errors:
            log.warning("source query failed analysis=%s signals=%s err=%r", name,
                        ",".join(sorted(fetch.errors)), next(iter(fetch.errors.values())))
        self.stats.dropped_total[name] = rt.buffer.dropped_total
        return fetch

    def _analyse(self, rt: _AnalysisRuntime, window: Window, fetch: Fetch, now: float,
                 stage_seconds: dict[str, float], failed: set[str]) -> AnalysisResult:
        """Topology -> forecast -> agents -> consensus for one analysis (runs in a thread)."""
        topology: TopologyResult | None = None
        forecast: Forecast | None = None
        votes: tuple[Votes, ...] = ()
        consensus: Consensus | None = None
        name = rt.cfg.name
        if window.entities:
            t0 = self.clock()
            try:
                if rt.topology is None:
                    from exporter.tda.stage import TopologyStage

                    rt.topology = TopologyStage(rt.cfg, workers=self.topology_workers)
                if rt.bootstrap is not None:
                    history, rt.bootstrap = rt.bootstrap, None
                    self._replay_topology(rt, history, now)
                topology = rt.topology.run(window, now)
            except Exception as err:
                self._fail("topology", failed, name, err)
            _add(stage_seconds, "topology", self.clock() - t0)

            t0 = self.clock()
            if self.predictor is not None:
                try:
                    forecast = self.predictor.predict(window, rt.cfg, topology)
                except Exception as err:
                    self._fail("forecast", failed, name, err)
            _add(stage_seconds, "forecast", self.clock() - t0)

            t0 = self.clock()
            try:
                from exporter.agents import AgentInput, run_agents

                votes = run_agents(AgentInput(rt.cfg, window, topology, forecast, now),
                                   self.cfg.agents)
            except Exception as err:
                self._fail("agents", failed, name, err)
            _add(stage_seconds, "agents", self.clock() - t0)

            t0 = self.clock()
            if votes:
                try:
                    from exporter.agents import agent_weights
                    from exporter.consensus import combine

                    consensus = combine(votes, self.cfg.agents.consensus, window.signals,
                                        agent_weights(self.cfg.agents))
                except Exception as err:
                    self._fail("consensus", failed, name, err)
            _add(stage_seconds, "consensus", self.clock() - t0)

        return AnalysisResult(
            analysis=name,
            label_names=window.label_names,
            entities=window.entities,
            signals=window.signals,
            window=window,
            topology=topology,
            forecast=forecast,
            votes=votes,
            consensus=consensus,
            source_series=dict(fetch.series),
            source_errors=dict(fetch.errors),
        )

    def _replay_topology(self, rt: _AnalysisRuntime, history: Window, now: float) -> None:
        """Feed past windows (one per baseline admission) to topology to learn baselines."""
        step, steps = float(rt.cfg.step), rt.cfg.steps
        every = max(float(rt.cfg.topology.baseline_admit_every), step)
        ts = history.timestamps
        if len(ts) < steps:
            return
        # Only complete windows: the first ends `steps` samples into the history.
        ends = np.arange(ts[steps - 1], now - step / 2, every)
        started = self.clock()
        for end in ends:
            j = int(np.searchsorted(ts, end + step / 2))
            if j < steps:
                continue
            past = Window(history.analysis, history.label_names, history.entities,
                          history.signals, ts[j - steps:j], history.values[:, :, j - steps:j])
            rt.topology.learn(past, float(ts[j - 1]))
        log.info("topology bootstrap analysis=%s windows=%d entities=%d duration_seconds=%.2f",
                 rt.cfg.name, len(ends), len(history.entities), self.clock() - started)

    def _fail(self, stage: str, failed: set[str], analysis: str, err: BaseException,
              expected: bool = False) -> None:
        failed.add(stage)
        self.stats.failures_total[stage] = self.stats.failures_total.get(stage, 0) + 1
        if expected:
            log.warning("stage failed stage=%s analysis=%s err=%r", stage, analysis, err)
        else:
            log.error("stage failed stage=%s analysis=%s", stage, analysis, exc_info=err)

    # ---------------------------------------------------------------- state

    def _refresh_model_info(self) -> None:
        """Copy the predictor's live status (e.g. a new abstention) into the next snapshot."""
        if self.predictor is None:
            return
        info = dict(self.predictor.info)
        before = self.stats.model_info.get("status")
        if info.get("status") != before:
            # A change of state, so logged (a new abstention must not pass quietly).
            level = logging.INFO if info.get("status") == "ok" else logging.WARNING
            log.log(level, "msg=\"failure model status changed\" model=%s status=%r "
                    "previous=%r", info.get("model"), info.get("status"), before)
        self.stats.model_info = info

    def _restore_state(self) -> None:
        if self.state is None:
            return
        for rt in self.runtimes:
            arrays = self.state.load(rt.cfg.name)
            if not arrays:
                continue
            buf = {k.removeprefix("buffer."): v for k, v in arrays.items()
                   if k.startswith("buffer.")}
            try:
                rt.buffer.restore(buf)
                log.info("restored buffer analysis=%s entities=%d", rt.cfg.name,
                         len(rt.buffer.entities))
            except (KeyError, ValueError) as err:
                log.warning("ignoring saved buffer analysis=%s err=%r", rt.cfg.name, err)
                rt.buffer = self._new_buffer(rt.cfg)
            topo = {k.removeprefix("topology."): v for k, v in arrays.items()
                    if k.startswith("topology.")}
            if topo:
                try:
                    from exporter.tda.stage import TopologyStage

                    rt.topology = TopologyStage(rt.cfg, workers=self.topology_workers)
                    rt.topology.restore(topo)
                except Exception as err:  # a stale baseline file must never stop a start
                    log.warning("ignoring saved baselines analysis=%s err=%r", rt.cfg.name, err)
                    rt.topology = None

    def _save_state(self) -> bool:
        """Save every analysis' buffers and baselines; a failure never stops the cycle.

        A failed save (disk full, read-only or deleted state_dir, a bug) is counted in
        `aura_cycle_failures_total{stage="state"}` and logged when it starts and when it
        recovers, not every cycle; the next cycle simply tries again. Returns success.
        """
        if self.state is None:
            return True
        failed: list[tuple[str, BaseException]] = []
        for rt in self.runtimes:
            try:
                arrays = {f"buffer.{k}": v for k, v in rt.buffer.state().items()}
                if rt.topology is not None:
                    arrays.update({f"topology.{k}": v for k, v in rt.topology.state().items()})
                self.state.save(rt.cfg.name, arrays)
            except Exception as err:  # StateError, OSError, or a bug: isolate it all the same
                failed.append((rt.cfg.name, err))
        was_failing = getattr(self, "_state_failing", False)
        self._state_failing = bool(failed)
        if failed:
            self.stats.failures_total["state"] = self.stats.failures_total.get("state", 0) + 1
            if not was_failing:
                name, first = failed[0]
                log.error("msg=\"cannot save state; retrying every cycle (logged once)\" "
                          "analysis=%s analyses_failed=%d err=%r", name, len(failed), str(first))
        elif was_failing:
            log.info("msg=\"state saved again\"")
        return not failed

    # ---------------------------------------------------------------- render

    def _render(self, results: tuple[AnalysisResult, ...], *, created: float,
                ready: bool) -> Snapshot:
        from exporter.exposition import render

        body = render(results, self.stats, self.cfg)
        return Snapshot(created, results, body, gzip.compress(body, compresslevel=5), ready)


def predictor_info(predictor: Predictor | None) -> dict[str, str]:
    if predictor is None:
        return {"model": "none", "version": "", "status": "not_loaded"}
    return dict(predictor.info)


def load_predictor(path: str) -> tuple[Predictor | None, dict[str, str]]:
    """Load the failure model; on any problem the forecast abstains and the reason is returned."""
    try:
        from exporter.lnn.predictor import FailurePredictor

        predictor = FailurePredictor.load(path)
        return predictor, dict(predictor.info)
    except Exception as err:
        log.warning("failure model unavailable, forecast abstains path=%s err=%r", path, err)
        reason = type(err).__name__
        return None, {"model": path.rstrip("/").split("/")[-1] or path, "version": "",
                      "status": f"error:{reason}"}


def _add(acc: dict[str, float], key: str, value: float) -> None:
    acc[key] = acc.get(key, 0.0) + value
