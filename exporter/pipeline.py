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
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from exporter import stacking
from exporter.config import AnalysisConfig, Config, SignalConfig
from exporter.exposition import render
from exporter.heap import release_free_heap
from exporter.results import AnalysisResult, Consensus, Forecast, TopologyResult, Votes
from exporter.snapshot import SelfStats, Snapshot
from exporter.source import Fetch, Source, SourceError
from exporter.windows import Window, WindowBuffer, shard_of

if TYPE_CHECKING:
    from exporter.agents import AgentInput

log = logging.getLogger("aura.pipeline")

# Agents whose vote on a row depends on that row alone (no fleet-wide term): a replay runs them
# once on many cycles' stacked rows (tests/test_backtest_batched.py checks each of them). The
# network agent scales by a fleet quantile, so it runs cycle by cycle.
ROW_WISE_AGENTS = frozenset({"topology", "forecast", "capacity", "stability"})
# The model is called on a multiple of this many rows (zero rows pad): MKL's sgemm rounds a
# row differently in a partial register block, and full blocks make each entity's forecast
# independent of how many rows share the call (the live fleet, a replay's stacked cycles).
FORECAST_ROW_BLOCK = 64
# ... and on at most this many rows per call (a multiple of FORECAST_ROW_BLOCK, so the numbers
# do not change): the step features' [rows, S, T] float64 temporaries and the CfC's
# activations grow with the rows (+430 MiB of peak RSS at 10 000 entities x 120 steps in one
# call, ~+130 MiB in blocks of 2 048; benchmarks/bench_pipeline.py).
FORECAST_MAX_ROWS = 16 * FORECAST_ROW_BLOCK
# A replay batch: about this many (cycle, entity) rows, at most this many cycles.
REPLAY_ROWS = 2048
REPLAY_MAX_CYCLES = 1024
# Ingest failures of the source (logged as warnings); anything else is a bug (a traceback).
SOURCE_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, SourceError, OSError)


class StateSaveError(RuntimeError):
    """The state of one or more analyses could not be saved this cycle (the first cause
    chained)."""


class Predictor(Protocol):
    """What the forecast stage calls: exporter.lnn.predictor.CfcPredictor, or a test double."""

    info: dict[str, str]

    def predict(self, window: Window, analysis: AnalysisConfig) -> Forecast | None:
        """Forecast every row of `window` [E, S, T] on `analysis.horizons`: a Forecast with
        probability [E, H] and time_to_failure [E] seconds, or None to abstain."""
        ...


class StateBackend(Protocol):
    """Where the pipeline keeps named array bundles across restarts (exporter.state.StateStore
    on disk; tests inject failing ones)."""

    def save(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        """Replace bundle `name`; raise (any exception) when it cannot be written."""
        ...

    def load(self, name: str) -> dict[str, np.ndarray] | None:
        """Bundle `name`, or None when there is none (or it is unreadable)."""
        ...


@dataclass
class _AnalysisRuntime:
    cfg: AnalysisConfig
    buffer: WindowBuffer
    topology: Any = None  # exporter.tda.stage.TopologyStage, created on first use
    decision: Any = None  # exporter.decision.DecisionStage, created on first use
    # The same history, replayed through forecast -> consensus to seed the risk references.
    decision_bootstrap: Window | None = None
    # History fetched on a cold start, replayed through topology before the first cycle.
    bootstrap: Window | None = None
    last_good: AnalysisResult | None = None
    last_good_at: float = float("-inf")


@dataclass(frozen=True, eq=False)
class Cycle:
    """One cycle of one analysis as the stages after the forecast see it."""

    now: float
    window: Window
    fetch: Fetch
    topology: TopologyResult | None
    forecast: Forecast | None


@dataclass(eq=False)
class _TopologyRun:
    """One `Pipeline._topology` run in steps (`_topology_prepare`): the cycles' windows and
    times, the indices of those with entities, the `run_batch` options of a replay, the
    stage's `TopologyBatch` where it has one, and whether a step failed."""

    windows: list[Window]
    nows: list[float]
    todo: list[int]
    replay: dict[str, bool] | None
    batch: Any = None
    failed: bool = False

    def mine(self) -> tuple[list[Window], list[float]]:
        """The windows with entities and their times."""
        return [self.windows[k] for k in self.todo], [self.nows[k] for k in self.todo]


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
        state: StateBackend | None = None,
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
        # (stage, analysis) failing since its last success, for stages logged once per run.
        self._failing: set[tuple[str, str]] = set()
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
            fetch: Fetch | None = None
            # A bug in ingestion must not stop the exporter either.
            with self._stage("ingest", rt.cfg.name, failed_stages, stage_seconds,
                             expected=SOURCE_ERRORS):
                fetch = await self._ingest(rt, now)
            if fetch is None or fetch.errors:
                source_ok = False
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
        await asyncio.to_thread(release_free_heap)  # off the loop that serves scrapes
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

    def record_incidents(self, count: int,
                         incidents: Sequence[tuple[Mapping[str, str], float, float | None]] = (),
                         ) -> None:
        """Count incidents recorded by the webhook (rendered with the next snapshot) and leave
        each (labels, start, end) out of the risk references of every analysis whose entity
        labels it carries (see `note_incidents`)."""
        self.stats.incidents_recorded_total += count
        for rt in self.runtimes:
            names = tuple(rt.cfg.entity_labels)
            spans = [(tuple(labels[n] for n in names), start, end)
                     for labels, start, end in incidents if all(labels.get(n) for n in names)]
            if spans:
                self.note_incidents(rt.cfg.name, spans)

    def note_incidents(self, analysis: str,
                       spans: Sequence[tuple[tuple[str, ...], float, float | None]]) -> None:
        """Leave real incidents (entity, start, end|None) out of `analysis`' risk references
        (exporter.decision), so a failure does not teach an entity that failing is usual."""
        for rt in self.runtimes:
            if rt.cfg.name == analysis:
                if rt.decision is None:
                    rt.decision = self._new_decision(rt)
                rt.decision.exclude(spans)

    def close(self) -> None:
        """Shut the topology stages' worker pools down; call once the pipeline is done."""
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
        limit = rt.cfg.topology.bootstrap_max_entities
        if bootstrap and (not rt.buffer.entities or len(rt.buffer.entities) > limit):
            # Fleet size unknown (or known too large): the window first, the history only
            # when the fleet is small enough to bootstrap (24 h of 10 000 entities x 8
            # signals is ~1 GB per copy, fetched and dropped: the peak RSS of a cold start).
            fetch = await self._fetch(rt, start, now)
            if 0 < len(self._mine(fetch.block).entities) <= limit:
                fetch = await self._fetch(rt, start - bootstrap, now)
        else:
            fetch = await self._fetch(rt, start - bootstrap, now)
        block = self._mine(fetch.block)
        if bootstrap and block.entities:
            if len(block.entities) <= rt.cfg.topology.bootstrap_max_entities:
                rt.bootstrap = block
            else:
                log.info("topology bootstrap skipped analysis=%s entities=%d max=%d",
                         rt.cfg.name, len(block.entities),
                         rt.cfg.topology.bootstrap_max_entities)
        rt.buffer.update(block)  # keeps only the newest window of a longer block
        name = rt.cfg.name
        self._count_query_errors(name, fetch.errors)
        if fetch.errors:
            log.warning("source query failed analysis=%s signals=%s err=%r", name,
                        ",".join(sorted(fetch.errors)), next(iter(fetch.errors.values())))
        self.stats.dropped_total[name] = rt.buffer.dropped_total
        return fetch

    async def _fetch(self, rt: _AnalysisRuntime, start: float, end: float) -> Fetch:
        """`source.fetch`; a source that could not answer at all failed every signal's query."""
        try:
            return await self.source.fetch(rt.cfg, start, end)
        except SOURCE_ERRORS:
            # Connection refused, TLS, timeouts of every query: counted per signal like a 401
            # or a PromQL error, so aura_source_query_errors_total tells the whole story (the
            # ingest stage failure is counted too, by the caller's `_stage`).
            self._count_query_errors(rt.cfg.name, [s.name for s in rt.cfg.signals])
            raise

    def _count_query_errors(self, analysis: str, signals: Collection[str]) -> None:
        """Add one to `aura_source_query_errors_total` of each of `analysis`' `signals`."""
        for signal in signals:
            key = (analysis, signal)
            self.stats.query_errors_total[key] = self.stats.query_errors_total.get(key, 0) + 1

    def _mine(self, block: Window) -> Window:
        """The rows of `block` this replica analyses (`shard`)."""
        if self.shard is None or not block.entities:
            return block
        index, count = self.shard
        return block.select(np.array([shard_of(e, count) == index for e in block.entities],
                                     dtype=bool))

    def _analyse(self, rt: _AnalysisRuntime, window: Window, fetch: Fetch, now: float,
                 stage_seconds: dict[str, float], failed: set[str]) -> AnalysisResult:
        """Topology -> forecast -> agents -> consensus for one analysis (runs in a thread)."""
        if window.entities:
            self._ensure_topology(rt, failed)
        topology = self._topology(rt, [window], [now], stage_seconds, failed)
        release_free_heap()  # each stage's peak starts from what is held, not freed
        self._seed_decision(rt, now, failed)
        forecast = self._forecast(rt, [window], stage_seconds, failed)
        release_free_heap()
        cycle = Cycle(now, window, fetch, topology[0], forecast[0])
        return self._assess(rt, [cycle], stage_seconds, failed)[0]

    # Processes of the topology stage in a replay (`replay(topology_jobs=...)`).
    _topology_jobs = 1

    async def replay(self, nows: Sequence[float], *, rows: int = REPLAY_ROWS,
                     max_cycles: int = REPLAY_MAX_CYCLES, topology_features: bool = True,
                     topology_jobs: int = 1,
                     ) -> AsyncIterator[tuple[float, tuple[AnalysisResult, ...]]]:
        """Run the cycles at `nows` (ascending) as an offline replay; yield (now, results).

        The results of `run_cycle` at each `now` (tests/test_backtest_batched.py checks it),
        computed for about `rows` (cycle, entity) rows at once (at most `max_cycles` cycles):
        windows are ingested cycle by cycle, the topology stage gets them in one `run_batch`
        (persistence in one pool pass), the forecast, the row-wise agents and consensus run
        once on the stacked rows, and what follows consensus runs cycle by cycle in time
        order. Batches overlap: the next batch is ingested and its window statistics computed
        while the pool computes this batch's persistence, and its topology starts (its
        baselines are final once this batch's topology is done) before this batch's forecast,
        agents and decisions run, so the workers compute its diagrams meanwhile
        (`_topology_prepare`); per-entity state is still consumed in time order. Nothing is
        rendered, so the fleet's Betti numbers are not computed (NaN).
        topology_features=False: nothing reads the diagram features (the caller knows the
        model has no topology inputs and the replay has fewer than `tda.fleet.MIN_FLEET`
        entities, so no fleet outliers): their persistence is skipped (`run_batch`).
        topology_jobs > 1: the topology stage runs split by entity over that many processes
        (`tda.shards.TopologyShards`, same results; set before the first cycle). A stage
        failure loses that stage for the whole batch of cycles (counted and logged once); an
        ingest failure loses that cycle.
        """
        stage_seconds: dict[str, float] = {}
        failed: set[str] = set()
        self._topology_jobs = topology_jobs
        options = {"features": topology_features, "fleet_betti": False}
        k = 0

        async def prepare() -> tuple[list[float], list[tuple[_AnalysisRuntime, list[Cycle],
                                                              _TopologyRun]]] | None:
            """Ingest the next batch's cycles and prepare their topology (windows only)."""
            nonlocal k
            if k >= len(nows):
                return None
            entities = sum(len(rt.buffer.entities) for rt in self.runtimes)
            # Before the first ingest the entities are unknown: one cycle first, so a large
            # fleet is not replayed in one batch of max_cycles windows (a 48-host, 3-day
            # replay held all 864 cycles' windows, stacked rows and CfC activations: 3.6 GB).
            size = max(1, min(max_cycles, rows // entities)) if entities else 1
            batch = [float(t) for t in nows[k:k + size]]
            k += len(batch)
            prepared = []
            for rt in self.runtimes:
                cycles = []
                for now in batch:
                    fetch: Fetch | None = None
                    with self._stage("ingest", rt.cfg.name, failed, stage_seconds,
                                     expected=SOURCE_ERRORS):
                        fetch = await self._ingest(rt, now)
                    if fetch is None:  # as run_cycle: the cycle loses this analysis
                        continue
                    window = rt.buffer.window()
                    if window.entities:  # as run_cycle: the next ingest is no cold start
                        self._ensure_topology(rt, failed)
                    cycles.append(Cycle(now, window, fetch, None, None))
                if cycles:
                    prepared.append((rt, cycles, self._topology_prepare(
                        rt, [c.window for c in cycles], [c.now for c in cycles],
                        stage_seconds, failed, options)))
            return batch, prepared

        current = await prepare()
        for rt, _, run in current[1] if current is not None else ():
            self._topology_start(rt, run, stage_seconds, failed)
        while current is not None:
            batch, runs = current
            # The next batch's windows and their statistics while the pool computes this
            # batch's persistence; its topology starts once this batch's is done (the
            # baselines are final then), so the workers compute its diagrams while this
            # batch's forecast, agents and decisions run here.
            current = await prepare()
            done = [(rt, cycles, self._topology_results(rt, run, stage_seconds, failed))
                    for rt, cycles, run in runs]
            for rt, _, run in current[1] if current is not None else ():
                self._topology_start(rt, run, stage_seconds, failed)
            results: dict[float, list[AnalysisResult]] = {now: [] for now in batch}
            for rt, cycles, topology in done:
                self._seed_decision(rt, cycles[0].now, failed)
                forecast = self._forecast(rt, [c.window for c in cycles], stage_seconds, failed)
                cycles = [Cycle(c.now, c.window, c.fetch, t, f)
                          for c, t, f in zip(cycles, topology, forecast, strict=True)]
                for c, r in zip(cycles, self._assess(rt, cycles, stage_seconds, failed),
                                strict=True):
                    results[c.now].append(r)
            self.stats.cycles_total += len(batch)
            self.stats.stage_seconds = stage_seconds
            for now in batch:
                yield now, tuple(results[now])

    def _ensure_topology(self, rt: _AnalysisRuntime, failed: set[str]) -> None:
        if rt.topology is None:
            with self._stage("topology", rt.cfg.name, failed):
                if self._topology_jobs > 1:  # a replay's `topology_jobs`
                    from exporter.tda.shards import TopologyShards

                    rt.topology = TopologyShards(rt.cfg, self._topology_jobs)
                    return
                from exporter.tda.stage import TopologyStage

                rt.topology = TopologyStage(rt.cfg, workers=self.topology_workers)

    def _topology(self, rt: _AnalysisRuntime, windows: Sequence[Window], nows: Sequence[float],
                  stage_seconds: dict[str, float], failed: set[str]) -> list[TopologyResult | None]:
        """Topology of consecutive cycles in time order (`run_batch` when there are several)."""
        run = self._topology_prepare(rt, windows, nows, stage_seconds, failed)
        self._topology_start(rt, run, stage_seconds, failed)
        return self._topology_results(rt, run, stage_seconds, failed)

    def _topology_prepare(self, rt: _AnalysisRuntime, windows: Sequence[Window],
                          nows: Sequence[float], stage_seconds: dict[str, float],
                          failed: set[str], replay: dict[str, bool] | None = None,
                          ) -> _TopologyRun:
        """`_topology` in three steps, for a replay that overlaps them with other batches'
        work: this one reads only the windows (`TopologyStage.batch`'s statistics, where the
        stage has it and `replay` gives the options of `run_batch`), `_topology_start` the
        baselines as they are then (persistence starts on the pool), `_topology_results`
        finishes; nothing else may use `rt.topology` between the last two. A stage failure
        in any step gives None for every window."""
        run = _TopologyRun(list(windows), [float(t) for t in nows],
                           [k for k, w in enumerate(windows) if w.entities], replay)
        if run.todo and rt.topology is not None and replay is not None \
                and hasattr(rt.topology, "batch"):
            run.failed = True
            with self._stage("topology", rt.cfg.name, failed, stage_seconds):
                run.batch = rt.topology.batch(*run.mine(), **replay)
                run.failed = False
        return run

    def _topology_start(self, rt: _AnalysisRuntime, run: _TopologyRun,
                        stage_seconds: dict[str, float], failed: set[str]) -> None:
        """The second step of `_topology_prepare`: the cold-start bootstrap, then the start."""
        if not run.todo or rt.topology is None:
            return
        ok = False
        with self._stage("topology", rt.cfg.name, failed, stage_seconds):
            if rt.bootstrap is not None:
                history, rt.bootstrap = rt.bootstrap, None
                rt.decision_bootstrap = history
                self._replay_topology(rt, history, run.nows[run.todo[0]])
            if run.batch is not None and not run.failed:
                run.batch.start()
            ok = True
        run.failed = run.failed or not ok

    def _topology_results(self, rt: _AnalysisRuntime, run: _TopologyRun,
                          stage_seconds: dict[str, float], failed: set[str],
                          ) -> list[TopologyResult | None]:
        """The last step of `_topology_prepare`: one result per window (None: no entities,
        no stage or a failure)."""
        out: list[TopologyResult | None] = [None] * len(run.windows)
        if not run.todo or rt.topology is None or run.failed:
            return out
        stage = rt.topology
        with self._stage("topology", rt.cfg.name, failed, stage_seconds):
            if run.batch is not None:
                done = run.batch.results()
            elif (len(run.todo) > 1 or run.replay is not None) and hasattr(stage, "run_batch"):
                done = stage.run_batch(*run.mine(), **(run.replay or {}))
            else:
                done = [stage.run(w, t) for w, t in zip(*run.mine(), strict=True)]
            for k, r in zip(run.todo, done, strict=True):
                out[k] = r
        return out

    def _forecast(self, rt: _AnalysisRuntime, windows: Sequence[Window],
                  stage_seconds: dict[str, float], failed: set[str]) -> list[Forecast | None]:
        """Forecasts of consecutive cycles: one model call on the stacked rows of the cycles
        with entities, padded to a multiple of FORECAST_ROW_BLOCK. The model takes no
        topology inputs (README design notes), so topology is neither waited for nor passed."""
        out: list[Forecast | None] = [None] * len(windows)
        group = [k for k, w in enumerate(windows) if w.entities]
        if self.predictor is None:
            return out
        with self._stage("forecast", rt.cfg.name, failed, stage_seconds):
            if not group:
                return out
            bounds = stacking.offsets([windows[k] for k in group])
            # Unpadded: one cycle's window is passed as is, not copied (73 MiB at 10 000
            # entities); _predict_rows pads the last block.
            stacked = stacking.stack_windows([windows[k] for k in group])
            f = self._predict_rows(stacked, rt.cfg)
            if f is not None:
                for k, part in zip(group, stacking.split(f, bounds), strict=True):
                    out[k] = part
        return out

    def _predict_rows(self, window: Window, analysis: AnalysisConfig,
                      max_rows: int = FORECAST_MAX_ROWS) -> Forecast | None:
        """`predictor.predict` on blocks of at most max_rows rows (a multiple of
        FORECAST_ROW_BLOCK), the last padded to a multiple of FORECAST_ROW_BLOCK, joined: the
        numbers of one call on the rows padded whole (padding rows included), without a
        padded copy of them all. Blocks before the last are views of `window`."""
        n = len(window.entities)
        parts = []
        for a in range(0, max(n, 1), max_rows):
            block = window if a == 0 and n <= max_rows else \
                window.select(slice(a, min(n, a + max_rows)))
            part = self.predictor.predict(  # type: ignore[union-attr]
                stacking.stack_windows([block], FORECAST_ROW_BLOCK), analysis)
            if part is None:
                return None
            parts.append(part)
        return parts[0] if len(parts) == 1 else stacking.stack_rows(parts)

    def _assess(self, rt: _AnalysisRuntime, cycles: Sequence[Cycle],
                stage_seconds: dict[str, float], failed: set[str]) -> list[AnalysisResult]:
        """Agents -> consensus of consecutive cycles of one analysis, then one result per cycle
        in time order: the one path after the forecast, live (one cycle) and replayed.

        Row-wise agents (ROW_WISE_AGENTS) and consensus run once on the stacked rows of runs of
        cycles alike; fleet-wide agents run per cycle (on one cycle: `run_agents` as is).
        """
        from exporter.agents import AgentInput, agent_weights, run_agents
        from exporter.consensus import combine

        name = rt.cfg.name
        votes: list[tuple[Votes, ...]] = [()] * len(cycles)
        consensus: list[Consensus | None] = [None] * len(cycles)
        todo = [k for k, c in enumerate(cycles) if c.window.entities]
        groups = _runs(todo, lambda k: (cycles[k].topology is None, cycles[k].forecast is None))
        for group in groups:
            with self._stage("agents", name, failed, stage_seconds):
                if len(group) == 1:
                    c = cycles[group[0]]
                    votes[group[0]] = run_agents(
                        AgentInput(rt.cfg, c.window, c.topology, c.forecast, c.now),
                        self.cfg.agents)
                else:
                    for k, v in zip(group, self._agents_stacked(rt, [cycles[k] for k in group]),
                                    strict=True):
                        votes[k] = v

            with self._stage("consensus", name, failed, stage_seconds):
                voted = [k for k in group if votes[k]]
                if voted:
                    bounds = stacking.offsets([cycles[k].window for k in voted])
                    stacked = tuple(stacking.stack_rows([votes[k][a] for k in voted])
                                    for a in range(len(votes[voted[0]])))
                    combined = combine(stacked, self.cfg.agents.consensus,
                                       cycles[voted[0]].window.signals,
                                       agent_weights(self.cfg.agents))
                    for k, part in zip(voted, stacking.split(combined, bounds), strict=True):
                        consensus[k] = part

        out = []
        for k, c in enumerate(cycles):  # time order: sequential per-entity state goes here
            w = c.window
            agreed = consensus[k]
            if agreed is not None:
                consensus[k] = self._decide(rt, c, agreed, stage_seconds, failed)
            out.append(AnalysisResult(
                analysis=name,
                label_names=w.label_names,
                entities=w.entities,
                signals=w.signals,
                window=w,
                topology=c.topology,
                forecast=c.forecast,
                votes=votes[k],
                consensus=consensus[k],
                source_series=dict(c.fetch.series),
                source_errors=dict(c.fetch.errors),
            ))
        return out

    def _decide(self, rt: _AnalysisRuntime, cycle: Cycle, consensus: Consensus,
                stage_seconds: dict[str, float], failed: set[str]) -> Consensus:
        """Gate the consensus level by how rare the risk is for the entity (exporter.decision);
        on failure the ungated consensus stands (counted as stage `decision`)."""
        from exporter.decision import gate

        with self._stage("decision", rt.cfg.name, failed, stage_seconds):
            if rt.decision is None:
                rt.decision = self._new_decision(rt)
            consensus = gate(rt.decision, cycle.window.entities, consensus, cycle.now,
                             cycle.topology, cycle.window.values,
                             warning_risk=self.cfg.agents.consensus.warning_risk,
                             critical_risk=self.cfg.agents.consensus.critical_risk,
                             forecast=cycle.forecast, signals=_in_window_order(
                                 rt.cfg.signals, cycle.window.signals))
        return consensus

    def _new_decision(self, rt: _AnalysisRuntime) -> Any:
        from exporter.decision import DecisionStage

        return DecisionStage(self.cfg.agents.decision, max(float(h) for h in rt.cfg.horizons))

    def _agents_stacked(self, rt: _AnalysisRuntime, cycles: Sequence[Cycle],
                        ) -> list[tuple[Votes, ...]]:
        """Votes of cycles alike: row-wise agents once on the stacked rows, fleet-wide agents
        with `assess_cycles` (fleet terms per cycle, the rest row-wise) once on them too, the
        others per cycle; per cycle in registry order."""
        from exporter.agents import AGENTS, AgentInput, enabled_agents, run_agents

        row_cfg, cycle_cfg, fleet_cfg = self._agent_configs()
        windows = [c.window for c in cycles]
        bounds = stacking.offsets(windows)
        first = cycles[0]
        stacked = AgentInput(
            rt.cfg, stacking.stack_windows(windows),
            None if first.topology is None else stacking.stack_rows(
                [c.topology for c in cycles]),  # type: ignore[misc]
            None if first.forecast is None else stacking.stack_rows(
                [c.forecast for c in cycles]),  # type: ignore[misc]
            first.now)
        by_cycle = {n: partial(_CyclesAgent, AGENTS[n](), bounds) for n in AGENTS
                    if hasattr(AGENTS[n], "assess_cycles")}
        row_votes = [stacking.split(v, bounds) for v in (*run_agents(stacked, row_cfg),
                                                         *run_agents(stacked, cycle_cfg,
                                                                     by_cycle))]
        order = enabled_agents(self.cfg.agents)
        out = []
        for k, c in enumerate(cycles):
            mine = {v[k].agent: v[k] for v in row_votes}
            if enabled_agents(fleet_cfg):
                for v in run_agents(AgentInput(rt.cfg, c.window, c.topology, c.forecast, c.now),
                                    fleet_cfg):
                    mine[v.agent] = v
            out.append(tuple(mine[a] for a in order))
        return out

    def _agent_configs(self) -> tuple[Any, Any, Any]:
        """The agents config split into its row-wise agents, its fleet-wide agents with
        `assess_cycles` and the other fleet-wide agents (others disabled in each)."""
        from exporter.agents import AGENTS

        a = self.cfg.agents

        def only(names: Collection[str]) -> Any:
            return replace(a, **{n: replace(getattr(a, n), enabled=getattr(a, n).enabled
                                            and n in names) for n in AGENTS})

        cycle_wise = {n for n in set(AGENTS) - ROW_WISE_AGENTS
                      if hasattr(AGENTS[n], "assess_cycles")}
        return (only(ROW_WISE_AGENTS), only(cycle_wise),
                only(set(AGENTS) - ROW_WISE_AGENTS - cycle_wise))

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

    def _seed_decision(self, rt: _AnalysisRuntime, now: float, failed: set[str]) -> None:
        """Replay a pending cold-start history into the decision stage (before the live
        forecast, so the model's status describes the live windows)."""
        if rt.decision_bootstrap is not None:
            history, rt.decision_bootstrap = rt.decision_bootstrap, None
            self._replay_decision(rt, history, now, failed)

    def _replay_decision(self, rt: _AnalysisRuntime, history: Window, now: float,
                         failed: set[str]) -> None:
        """Seed the risk references (exporter.decision) from the cold-start history: one past
        window per `sample_every` through forecast -> agents -> consensus -> decision, in
        chunks of about REPLAY_ROWS rows, results discarded (topology left out: it only
        votes opinions). Without it a fresh exporter would need hours before alerting below
        `cold_threshold`."""
        step, steps = float(rt.cfg.step), rt.cfg.steps
        every = max(float(self.cfg.agents.decision.sample_every), step)
        ts = history.timestamps
        if len(ts) < steps or not history.entities:
            return
        ends = np.arange(ts[steps - 1], now - step / 2, every)
        per_chunk = max(1, REPLAY_ROWS // len(history.entities))
        scratch: dict[str, float] = {}
        started = self.clock()
        for k in range(0, len(ends), per_chunk):
            windows = []
            for end in ends[k:k + per_chunk]:
                j = int(np.searchsorted(ts, end + step / 2))
                windows.append(Window(history.analysis, history.label_names, history.entities,
                                      history.signals, ts[j - steps:j],
                                      history.values[:, :, j - steps:j]))
            forecast = self._forecast(rt, windows, scratch, failed)
            self._assess(rt, [Cycle(float(w.timestamps[-1]), w, Fetch(w), None, f)
                              for w, f in zip(windows, forecast, strict=True)], scratch, failed)
        log.info("decision bootstrap analysis=%s windows=%d entities=%d duration_seconds=%.2f",
                 rt.cfg.name, len(ends), len(history.entities), self.clock() - started)

    @contextmanager
    def _stage(self, stage: str, analysis: str, failed: set[str],
               stage_seconds: dict[str, float] | None = None,
               expected: tuple[type[BaseException], ...] = (),
               recovered: str | None = None) -> Iterator[None]:
        """Isolate one stage run: an exception ends the block and is counted in
        `aura_cycle_failures_total{stage}` and logged (`_fail`; `expected` ones as a warning
        without a traceback), then the caller carries on with what it has. With
        `stage_seconds`, the block's wall time is added to `stage_seconds[stage]`. With
        `recovered`, a run of failures of (stage, analysis) is logged once, when it starts,
        and `recovered` (info) when the block next succeeds."""
        t0 = self.clock()
        key = (stage, analysis)
        was_failing = recovered is not None and key in self._failing
        failing = True
        try:
            yield
            failing = False
        except expected as err:
            self._fail(stage, failed, analysis, err, expected=True, quiet=was_failing)
        except Exception as err:
            self._fail(stage, failed, analysis, err, quiet=was_failing)
        if recovered is not None and failing:
            self._failing.add(key)
        elif was_failing:
            self._failing.discard(key)
            log.info('msg="%s" stage=%s analysis=%s', recovered, stage, analysis)
        if stage_seconds is not None:
            _add(stage_seconds, stage, self.clock() - t0)

    def _fail(self, stage: str, failed: set[str], analysis: str, err: BaseException,
              expected: bool = False, quiet: bool = False) -> None:
        """Count a failure of `stage` and log it (unless `quiet`: already logged)."""
        failed.add(stage)
        self.stats.failures_total[stage] = self.stats.failures_total.get(stage, 0) + 1
        if quiet:
            return
        if expected:
            log.warning("stage failed stage=%s analysis=%s err=%r", stage, analysis, err)
        else:
            log.error("stage failed stage=%s analysis=%s err=%r", stage, analysis, err,
                      exc_info=err)

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
            decision = {k.removeprefix("decision."): v for k, v in arrays.items()
                        if k.startswith("decision.")}
            if decision:
                try:
                    rt.decision = self._new_decision(rt)
                    rt.decision.restore(decision)
                except Exception as err:  # as baselines: relearn rather than refuse to start
                    log.warning("ignoring saved risk references analysis=%s err=%r",
                                rt.cfg.name, err)
                    rt.decision = None

    def _save_state(self) -> bool:
        """Save every analysis' buffers and baselines; a failure never stops the cycle.

        A failed save (disk full, read-only or deleted state_dir, a bug) goes through the
        stage isolation (`_stage`): counted once per cycle in
        `aura_cycle_failures_total{stage="state"}` and logged when it starts and when it
        recovers, not every cycle; the next cycle simply tries again. It does not fail the
        cycle (`aura_last_cycle_success_timestamp_seconds` still advances). Returns success.
        """
        if self.state is None:
            return True
        failed: set[str] = set()
        with self._stage("state", ",".join(rt.cfg.name for rt in self.runtimes), failed,
                         recovered="state saved again"):
            errors: list[tuple[str, BaseException]] = []
            for rt in self.runtimes:
                try:
                    self.state.save(rt.cfg.name, self._state_arrays(rt))
                except Exception as err:  # one analysis' failure must not skip the others
                    errors.append((rt.cfg.name, err))
            if errors:
                name, first = errors[0]
                raise StateSaveError(
                    f"cannot save state; retrying every cycle (logged once) analysis={name} "
                    f"analyses_failed={len(errors)} err={first}") from first
        return not failed

    @staticmethod
    def _state_arrays(rt: _AnalysisRuntime) -> dict[str, np.ndarray]:
        """One analysis' saved state: `buffer.*`, `topology.*` and `decision.*` arrays."""
        arrays = {f"buffer.{k}": v for k, v in rt.buffer.state().items()}
        if rt.topology is not None:
            arrays.update({f"topology.{k}": v for k, v in rt.topology.state().items()})
        if rt.decision is not None:
            arrays.update({f"decision.{k}": v for k, v in rt.decision.state().items()})
        return arrays

    # ---------------------------------------------------------------- render

    def _render(self, results: tuple[AnalysisResult, ...], *, created: float,
                ready: bool) -> Snapshot:
        body = render(results, self.stats, self.cfg)
        return Snapshot(created, results, body, gzip.compress(body, compresslevel=5), ready)


def predictor_info(predictor: Predictor | None) -> dict[str, str]:
    """The `aura_model_info` labels (model, version, status) of `predictor`; `not_loaded`
    when there is none."""
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


def _runs(items: Sequence[int], key: Callable[[int], Any]) -> list[list[int]]:
    """`items` cut into runs of consecutive items with equal `key`."""
    out: list[list[int]] = []
    for i in items:
        if out and key(out[-1][-1]) == key(i):
            out[-1].append(i)
        else:
            out.append([i])
    return out


class _CyclesAgent:
    """An agent's `assess_cycles(inp, bounds)` seen as `Agent.assess` (for `run_agents`, which
    isolates its failures) on the stacked rows of the cycles at `bounds`."""

    def __init__(self, agent: Any, bounds: np.ndarray) -> None:
        self.name: str = agent.name
        self.agent, self.bounds = agent, bounds

    def assess(self, inp: AgentInput) -> Votes:
        return self.agent.assess_cycles(inp, self.bounds)  # type: ignore[no-any-return]


def _in_window_order(signals: Sequence[SignalConfig],
                     names: Sequence[str]) -> list[SignalConfig] | None:
    """The analysis' signal configs in the window's signal order (None where a window
    signal has no config: the decision stage then reads no signal kinds)."""
    by_name = {s.name: s for s in signals}
    if any(n not in by_name for n in names):
        return None
    return [by_name[n] for n in names]
