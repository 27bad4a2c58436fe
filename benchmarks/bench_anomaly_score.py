"""Benchmark: steady-state cost and memory of the anomaly score's calibration per cycle.

`BaselineStore.score` at E entities x S signals with full own histories (432 raw distances,
seasonal deviations, Fisher statistics and their averages; a full ring of hourly levels,
seasonal.SLOTS hours), fused
(exporter/tda/seasonal.py) and the plain ECDF of the raw distance (FUSION off), in one run.
The persistence itself is not included (benchmarks/bench_topology.py, bench_pipeline.py);
a cold benchmark never reaches this path (no history yet).

    .venv/bin/python benchmarks/bench_anomaly_score.py --entities 10000

Not a test.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entities", type=int, default=10000)
    p.add_argument("--signals", type=int, default=8)
    p.add_argument("--cycles", type=int, default=3)
    args = p.parse_args()
    from exporter.tda import baseline, seasonal
    from exporter.tda.baseline import RAW_HISTORY, BaselineStore, Reservoir, _Entry
    from exporter.tda.embedding import Clouds

    e, s = args.entities, args.signals
    rng = np.random.default_rng(0)
    store = BaselineStore(tuple(f"s{i}" for i in range(s)), 72, 3600.0, 600.0)
    now = 10 * 86400.0
    hours = np.arange(int(now // 3600) - seasonal.SLOTS, int(now // 3600))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(e):
        entry = _Entry(Reservoir(12, s))
        for name in ("raw_hist", "seas_hist", "fis_hist", "smooth_hist"):
            setattr(entry, name, rng.exponential(size=RAW_HISTORY).astype(np.float32))
        entry.hist_times = now - 600.0 * np.arange(RAW_HISTORY)[::-1]
        levels = entry.levels = seasonal.SeasonalLevels(s)
        levels.hours[hours % seasonal.SLOTS] = hours
        levels.means[:] = rng.normal(size=(seasonal.SLOTS, s))
        levels.counts[:] = 6
        store.entries[(f"h{i}",)] = entry
    added = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    keys = tuple(store.entries)
    raw = rng.exponential(size=e)
    coarse = Clouds(rng.normal(size=(e, 13, s)), np.full(e, 13))
    print(f"{e} entities x {s} signals: entries with histories and levels "
          f"{added / e / 1024:.1f} KiB each (traced; empty reservoir included)")
    for fused in (False, True):
        baseline.FUSION = fused
        times = []
        for k in range(args.cycles):  # the first fused cycle fits tails and references
            t0 = time.perf_counter()
            store.score(keys, raw, now + 60.0 * k, coarse)
            times.append(time.perf_counter() - t0)
        print(f"{'fused' if fused else 'ECDF only'}: score() first {times[0]:.3f} s, then "
              f"{min(times[1:]):.3f} s per cycle ({1e6 * min(times[1:]) / e:.0f} us/entity)")


if __name__ == "__main__":
    main()
