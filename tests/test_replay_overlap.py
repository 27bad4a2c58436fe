"""A replay batch's persistence overlaps the previous batch's other stages.

`TopologyStage.batch` prepares a batch (window statistics), `start()` sends the first
window's clouds to the pool and `results()` finishes it with the `run_batch` results; in
between, the pool keeps itself fed (`DiagramCache(refill=True)`: each finished task starts the
next held one) while the caller runs the previous batch's forecast, agents and decisions
(`Pipeline.replay`).
Real two-worker pools throughout.
"""

from __future__ import annotations

import time

import numpy as np

from exporter.tda import TopologyStage
from exporter.tda.persistence import (
    SPECULATE_IN_FLIGHT,
    DiagramCache,
    RipsPersistence,
    cloud_key,
)
from exporter.tda.rips import rips_diagram
from tests import test_tda_stage as ts
from tests.test_speculate_order import _clouds
from tests.test_speculate_order import _same as _same_diagram


def _wait_for(cond, seconds: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def test_refill_starts_every_held_task_without_another_pump() -> None:
    clouds = _clouds(3, 40)
    pool = RipsPersistence(workers=2).fit()
    try:
        for refill in (False, True):
            cache = DiagramCache(refill=refill)
            pool.speculate(cache, clouds, chunk=2, priority=[float(i) for i in range(40)])
            pool.pump(cache)  # SPECULATE_IN_FLIGHT tasks per worker
            # Without refill exactly SPECULATE_IN_FLIGHT tasks of 2 clouds per worker started;
            # with it, tasks that already finished may have started any number more.
            held = len(cache._held_keys)
            first = 40 - 2 * SPECULATE_IN_FLIGHT * 2
            assert held <= first if refill else held == first
            # Nobody pumps again: without refill the rest stays held, with it all start.
            started = _wait_for(lambda c=cache: not c._held_keys, 3.0 if not refill else 60.0)
            assert started == refill
            for c in clouds:
                assert _same_diagram(cache.get(cloud_key(c)), rips_diagram(c, pool.thresh))
            cache.stop()
    finally:
        pool.close()


def test_stop_drops_held_tasks_and_starts_nothing_more() -> None:
    clouds = _clouds(4, 40)
    pool = RipsPersistence(workers=2).fit()
    try:
        cache = DiagramCache(refill=True)
        pool.speculate(cache, clouds, chunk=2)
        pool.pump(cache)
        cache.stop()
        assert not cache._held_keys
        flying = [cloud_key(c) for c in clouds if cloud_key(c) in cache._pending]
        assert 0 < len(flying) < len(clouds)
        time.sleep(0.5)  # finished tasks start nothing now
        later = [cloud_key(c) for c in clouds if cloud_key(c) in cache]
        assert later == flying
        # A dropped cloud is a miss (the caller computes it), a started one is there.
        assert cache.get(cloud_key(clouds[-1])) is None
        assert _same_diagram(cache.get(flying[0]), rips_diagram(clouds[0], pool.thresh))
    finally:
        pool.close()


def test_started_batches_equal_run_batch_and_sequential_runs() -> None:
    series = ts.fleet_series(6, 60, seed=8)
    series[2, :, 150:170] += 25.0  # an incident mid-run
    cycles = range(60)
    windows = [ts.window_at(series, c) for c in cycles]
    nows = [c * ts.SHIFT * ts.STEP for c in cycles]
    seq = TopologyStage(ts.analysis(), workers=1)
    batch = TopologyStage(ts.analysis(), workers=2)
    started = TopologyStage(ts.analysis(), workers=2)
    try:
        expected = [seq.run(w, now) for w, now in zip(windows, nows, strict=True)]
        by_batch, by_start = [], []
        spans = ((0, 1), (1, 25), (25, 60))
        handle = started.batch(windows[:1], nows[:1])
        for i, (a, b) in enumerate(spans):
            by_batch += batch.run_batch(windows[a:b], nows[a:b])
            handle.start()
            # The next batch's statistics while this one is started (they read no baseline).
            nxt = started.batch(windows[b:spans[i + 1][1]], nows[b:spans[i + 1][1]]) \
                if i + 1 < len(spans) else None
            time.sleep(0.2)  # the caller away: the pool feeds itself
            by_start += handle.results()
            handle = nxt  # type: ignore[assignment]
        ts._assert_same_results(expected, by_batch)
        ts._assert_same_results(expected, by_start)
        assert ts._same(started.state()["rawhist"], seq.state()["rawhist"])
        assert np.isfinite(expected[-1].anomaly_score).sum() >= 4
    finally:
        seq.close()
        batch.close()
        started.close()


def test_replay_starts_the_next_batch_before_this_batchs_other_stages(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Pipeline.replay: the next batch's statistics before this batch's topology results, its
    # start before this batch's agents; every batch's results in time order all the same.
    import asyncio

    from exporter.backtest import ReplaySource
    from exporter.config import parse_config
    from exporter.pipeline import Pipeline
    from exporter.source.simulator import fleet_signals, simulate_fleet
    from exporter.tda.stage import TopologyBatch
    from exporter.windows import Window

    sigs = [{"name": s.name, "query": s.query, "kind": s.kind,
             **({"capacity": s.capacity} if s.capacity is not None else {})}
            for s in fleet_signals()]
    cfg = parse_config({"interval": "5m", "analyses": [{
        "name": "fleet", "entity_labels": ["instance"], "window": "1h", "step": "1m",
        "horizons": ["30m", "1h"], "signals": sigs}]})
    fleet = simulate_fleet(7, 4, 1_760_000_000.0, 3 * 3600.0, 60, missing=False)
    window = Window("fleet", ("instance",), tuple(fleet.entities), tuple(fleet.signals),
                    np.asarray(fleet.timestamps, dtype=np.float64), fleet.values)
    nows = [float(t) for t in np.arange(window.timestamps[0] + 3600, window.timestamps[-1],
                                        300.0)]
    events: list[tuple[str, float]] = []

    def spy(cls, name, label, when):  # type: ignore[no-untyped-def]
        real = getattr(cls, name)

        def wrapped(self, *a, **k):  # type: ignore[no-untyped-def]
            events.append((label, when(self, *a)))
            return real(self, *a, **k)
        monkeypatch.setattr(cls, name, wrapped)

    spy(TopologyStage, "batch", "prepare", lambda self, windows, nows: nows[0])
    spy(TopologyBatch, "start", "start", lambda self: self.nows[0])
    spy(TopologyBatch, "results", "results", lambda self: self.nows[0])
    spy(Pipeline, "_assess", "assess", lambda self, rt, cycles, *a: cycles[0].now)

    async def run() -> list[float]:
        pipe = Pipeline(cfg, ReplaySource(window), topology_workers=2)
        try:
            return [now async for now, _ in pipe.replay(nows, rows=4 * 5)]
        finally:
            pipe.close()

    assert asyncio.run(run()) == nows
    firsts = sorted({t for label, t in events if label == "prepare"})
    assert len(firsts) >= 3  # several batches
    at: dict[tuple[str, float], int] = {}
    for i, event in enumerate(events):  # first occurrences (results() calls start())
        at.setdefault(event, i)
    for a, b in zip(firsts, firsts[1:], strict=False):
        assert at[("prepare", b)] < at[("results", a)]
        assert at[("results", a)] < at[("start", b)] < at[("assess", a)]
