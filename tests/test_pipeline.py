import asyncio

import numpy as np

from exporter.config import parse_config
from exporter.pipeline import Pipeline
from tests.arrays import ArraySource

STEP = 60.0


def _cfg(**extra):
    return parse_config({
        "interval": "1m",
        "analyses": [{"name": "fleet", "window": "30m", "step": "1m", "signals": [
            {"name": "memory", "query": "m", "capacity": 1.0, "kind": "resource"},
            {"name": "cpu", "query": "c", "capacity": 1.0, "kind": "saturation"}]}],
        **extra,
    })


def _source(n_entities=4, n_steps=200, seed=0):
    rng = np.random.default_rng(seed)
    ts = STEP * np.arange(1000, 1000 + n_steps)
    values = 0.3 + 0.05 * rng.standard_normal((n_entities, 2, n_steps))
    return ArraySource([(f"h{i}",) for i in range(n_entities)], ("memory", "cpu"), ts, values)


def _samples(body: bytes, name: str) -> list[str]:
    return [line for line in body.decode().splitlines() if line.startswith(name + "{")
            or line.startswith(name + " ")]


def test_first_cycle_fetches_window_then_only_new_steps():
    src = _source()
    pipe = Pipeline(_cfg(), src, topology_workers=1)
    now = src.timestamps[100]
    asyncio.run(pipe.run_cycle(now))
    asyncio.run(pipe.run_cycle(now + STEP))
    (s0, e0), (s1, e1), (s2, e2) = src.calls
    assert e0 - s0 == 29 * STEP  # fleet size unknown: the window first (issue 16)
    assert e1 - s1 == 29 * STEP + 24 * 3600  # small: whole window + bootstrap history
    assert e2 - s2 == STEP + 120  # newest step + 2m overlap for late samples
    window = pipe.snapshot.results[0].window
    assert window.values.shape == (4, 2, 30)
    assert not np.isnan(window.values).any()
    pipe.close()


def test_cold_start_of_a_fleet_too_large_to_bootstrap_fetches_only_the_window():
    # Above bootstrap_max_entities the history would be fetched and dropped (1 GB per copy
    # at 10 000 entities x 8 signals x 24 h): the cold cycle asks for the window alone.
    from exporter.config import replace

    src = _source(n_entities=4)
    cfg = _cfg()
    a = cfg.analyses[0]
    small = replace(cfg, analyses=(replace(a, topology=replace(a.topology,
                                                               bootstrap_max_entities=3)),))
    pipe = Pipeline(small, src, topology_workers=1)
    asyncio.run(pipe.run_cycle(src.timestamps[100]))
    (start, end), = src.calls
    assert end - start == 29 * STEP
    assert pipe.runtimes[0].bootstrap is None and pipe.snapshot.results[0].window.values.shape \
        == (4, 2, 30)
    pipe.close()


def test_snapshot_self_metrics_and_readiness():
    src = _source()
    pipe = Pipeline(_cfg(), src, topology_workers=1)
    assert not pipe.snapshot.ready
    asyncio.run(pipe.run_cycle(src.timestamps[100]))
    snap = pipe.snapshot
    assert snap.ready
    assert _samples(snap.body, "aura_up") == ["aura_up 1.0"]
    assert _samples(snap.body, "aura_cycles_total") == ["aura_cycles_total 1.0"]
    assert _samples(snap.body, "aura_analysis_entities") == ['aura_analysis_entities{analysis="fleet"} 4.0']
    assert any('stage="ingest"' in s for s in _samples(snap.body, "aura_stage_duration_seconds"))
    pipe.close()


def test_source_failure_keeps_last_good_until_stale_then_drops_it():
    src = _source()
    pipe = Pipeline(_cfg(stale_after="3m"), src, topology_workers=1)
    t = src.timestamps[100]
    asyncio.run(pipe.run_cycle(t))
    src.fail = True
    asyncio.run(pipe.run_cycle(t + STEP))
    body = pipe.snapshot.body
    assert _samples(body, "aura_up") == ["aura_up 0.0"]
    assert _samples(body, "aura_analysis_entities")  # last good result still served
    assert 'aura_cycle_failures_total{stage="ingest"} 1.0' in body.decode()
    asyncio.run(pipe.run_cycle(t + 5 * STEP))  # now older than stale_after
    assert not _samples(pipe.snapshot.body, "aura_analysis_entities")
    src.fail = False
    asyncio.run(pipe.run_cycle(t + 6 * STEP))
    assert _samples(pipe.snapshot.body, "aura_up") == ["aura_up 1.0"]
    pipe.close()


class _MemoryStore:
    def __init__(self):
        self.saved = {}

    def save(self, name, arrays):
        self.saved[name] = {k: np.array(v, copy=True) for k, v in arrays.items()}

    def load(self, name):
        return self.saved.get(name)


def test_restart_with_state_fetches_only_new_steps():
    src = _source()
    store = _MemoryStore()
    pipe = Pipeline(_cfg(), src, state=store, topology_workers=1)
    t = src.timestamps[100]
    asyncio.run(pipe.run_cycle(t))
    pipe.close()
    src.calls.clear()
    again = Pipeline(_cfg(), src, state=store, topology_workers=1)
    asyncio.run(again.run_cycle(t + STEP))
    (start, end), = src.calls
    assert end - start == STEP + 120  # restored buffers: no full-window refetch
    assert again.snapshot.results[0].window.values.shape == (4, 2, 30)
    again.close()


def test_refused_saved_baselines_are_bootstrapped_again():
    # Baselines saved by an older version are refused at start (buffers still restored): the
    # first cycle fetches the bootstrap history again instead of warming up for hours.
    src = _source()
    store = _MemoryStore()
    pipe = Pipeline(_cfg(), src, state=store, topology_workers=1)
    t = src.timestamps[100]
    asyncio.run(pipe.run_cycle(t))
    pipe.close()
    store.saved["fleet"]["topology.format"] = np.array([1])
    src.calls.clear()
    again = Pipeline(_cfg(), src, state=store, topology_workers=1)
    asyncio.run(again.run_cycle(t + STEP))
    (start, end), = src.calls
    assert end - start == STEP + 120 + 24 * 3600  # new steps + overlap + bootstrap history
    again.close()


def test_shard_takes_only_its_entities():
    src = _source(n_entities=30)
    seen = set()
    for index in range(3):
        pipe = Pipeline(_cfg(), src, shard=(index, 3), topology_workers=1)
        asyncio.run(pipe.run_cycle(src.timestamps[100]))
        mine = set(pipe.snapshot.results[0].entities)
        assert not (mine & seen)
        seen |= mine
        pipe.close()
    assert seen == set(src.entities)


def test_cold_start_bootstraps_topology_baselines_from_history():
    src = _source(n_entities=6, n_steps=700)
    pipe = Pipeline(_cfg(), src, topology_workers=1)
    asyncio.run(pipe.run_cycle(src.timestamps[699]))
    topo = pipe.snapshot.results[0].topology
    assert topo is not None
    # 11 h of history replayed (all the source has of the 24 h asked): every entity has a
    # baseline and enough of its own distances for a calibrated score at once.
    assert np.isfinite(topo.anomaly_score).all()
    assert ((topo.anomaly_score >= 0) & (topo.anomaly_score <= 1)).all()
    pipe.close()
    # Without bootstrap the same first cycle has no baseline yet (unknown, not zero).
    cfg = _cfg()
    a = cfg.analyses[0]
    from exporter.config import replace

    cold = replace(cfg, analyses=(replace(a, topology=replace(a.topology, bootstrap=0)),))
    pipe = Pipeline(cold, src, topology_workers=1)
    asyncio.run(pipe.run_cycle(src.timestamps[699]))
    assert np.isnan(pipe.snapshot.results[0].topology.anomaly_score).all()
    pipe.close()
