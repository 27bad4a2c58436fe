"""The symptom rule's cost per cycle (exporter/cascade.py), next to a plain numpy loop.

Usage: .venv/bin/python benchmarks/bench_cascade.py [--entities 10000] [--steps 120 480]
       [--at-level 20] [--repeat 3]

A window of E entities x 8 signals x T steps (uniform noise, one entity in 500 with a gap),
`--at-level` entities at a level with a random leading signal, two of the eight signals
propagating (errors, latency): prints the best of `--repeat` runs of `cascade.symptoms`,
and of the same correlations by the library route (`numpy.corrcoef` of each candidate with
every other entity, pair by pair over the steps both have), with their ratio. The product
keeps its own Pearson (gap-free rows standardised once, one matrix-vector product per
candidate) for this ratio; tests/test_cascade.py checks it against numpy.corrcoef.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from exporter.cascade import symptoms


def library_route(v: np.ndarray, at: np.ndarray, lead: np.ndarray, prop: np.ndarray) -> int:
    """The correlations `symptoms` needs, by numpy.corrcoef pair by pair; how many >= 0.9."""
    d = np.diff(v, axis=2)
    hits = 0
    for i in np.flatnonzero(at & prop[lead]):
        x = d[i, lead[i]]
        for k in range(len(d)):
            y = d[k, lead[i]]
            ok = np.isfinite(x) & np.isfinite(y)
            if k != i and ok.sum() >= 10 and np.corrcoef(x[ok], y[ok])[0, 1] >= 0.9:
                hits += 1
    return hits


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--entities", type=int, default=10000)
    p.add_argument("--steps", type=int, nargs="+", default=[120, 480])
    p.add_argument("--at-level", type=int, default=20)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    prop = np.array([False, False, False, False, True, True, False, False])
    for t in args.steps:
        v = rng.random((args.entities, 8, t))
        v[:: 500, :, t // 2] = np.nan
        at = np.zeros(args.entities, dtype=bool)
        at[rng.choice(args.entities, args.at_level, replace=False)] = True
        lead = rng.integers(0, 8, args.entities)
        ours, lib = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            symptoms(v, at, lead, prop)
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            library_route(v, at, lead, prop)
            lib.append(time.perf_counter() - t0)
        n = int(prop[lead[at]].sum())
        print(f"entities={args.entities} steps={t} at_level={args.at_level} "
              f"propagating_candidates={n} symptoms_s={min(ours):.3f} "
              f"numpy_corrcoef_loop_s={min(lib):.3f} ratio={min(lib) / max(min(ours), 1e-9):.0f}x")


if __name__ == "__main__":
    main()
