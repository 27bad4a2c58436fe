"""benchmarks/bench_pipeline.py's steady-state fill: every entity's topology baseline grown to
the size days of cycles give it, so the memory benchmark measures what a long-running exporter
holds (issue 16), and the pipeline keeps running on it."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from exporter.tda.baseline import RAW_HISTORY

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> Any:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("bench_pipeline",
                                                  ROOT / "benchmarks" / "bench_pipeline.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fill_grows_every_baseline_to_its_steady_state_size(bench: Any) -> None:
    from exporter.pipeline import Pipeline
    from exporter.source.simulator import SimulatorSource

    entities, steps, step = 3, 120, bench.STEP
    end = 1_700_000_000.0
    fleet = bench.bench_fleet(entities, steps, 3, end)
    cfg = bench.bench_config(entities, steps, 8)
    pipe = Pipeline(cfg, SimulatorSource(fleet), topology_workers=1)

    async def run() -> None:
        try:
            await pipe.run_cycle(end - 2 * step)
            await pipe.run_cycle(end - step)
            store = pipe.runtimes[0].topology._store
            before = {k: (len(e.reservoir), len(e.hist_times), e.hist_times[-1])
                      for k, e in store.entries.items()}
            assert before and all(n < store.size and h < RAW_HISTORY
                                  for n, h, _ in before.values())
            small = bench.baseline_breakdown(pipe)
            assert bench.fill_steady_state(pipe) == entities
            for key, e in store.entries.items():
                res = e.reservoir
                assert len(res) == store.size
                assert res.cloud_arr.shape[0] == res.deciles.shape[0] == len(res.h0_medians) \
                    == res.h0_arr.shape[0] == res.h1_arr.shape[0] == store.size
                assert np.all(np.diff(res.times) > 0)
                for name in ("raw_hist", "seas_hist", "fis_hist", "smooth_hist", "drift_hist",
                             "pooled_hist", "vec_hist", "hist_times"):
                    assert len(getattr(e, name)) == RAW_HISTORY, name
                assert e.hist_times[-1] == before[key][2]  # the newest time is kept
                assert np.all(np.diff(e.hist_times) == store.raw_every)
                assert e.raw_hist.dtype == np.float32 and e.vec_hist.dtype == np.float16
            big = bench.baseline_breakdown(pipe)
            assert big["baseline_histories"] > 10 * small["baseline_histories"]
            assert big["baseline_reservoir_clouds"] > 10 * small["baseline_reservoir_clouds"]
            snap = await pipe.run_cycle(end)  # the pipeline runs on the grown baselines
            assert sum(len(r.entities) for r in snap.results) == entities
            assert len(next(iter(store.entries.values())).hist_times) == RAW_HISTORY
        finally:
            pipe.close()

    asyncio.run(run())
