"""Benchmark: `aura backtest` replay speed, batched (default) against cycle by cycle.

Simulated fleets (exporter.source.simulator, fixed seed) at a 5 m step, 9 signals, window
10 h (120 steps), evaluated every 5 m, replayed with `exporter.backtest.replay` (the code
`aura backtest` runs, minus CSV parsing and scoring) and the shipped model. Printed, in one
run with the load average:

- cycles/s on one series of 14 days (target >= 600 cycles/s: the 4 000-cycle case in < 10 s),
- entity-cycles/s on a 48-entity fleet (target >= 2 000),
- three sizes in entities and three in days, with the least-squares slope (seconds per
  entity-cycle) and intercept, so linearity is visible,
- the cycle-by-cycle path (`run_cycle`, as before batching) on the smallest single-series
  case, for the speed-up measured in the same run, and per-stage seconds of every run,
- the largest fleet again with `--jobs` (default 2: the topology stage split by entity
  over processes, exporter/tda/shards.py), for its speed-up in the same run.

    .venv/bin/python benchmarks/bench_backtest.py            # all of the above (~5 min)
    .venv/bin/python benchmarks/bench_backtest.py --quick    # smaller sizes (~1 min)
    .venv/bin/python benchmarks/bench_backtest.py --case 1,14 --topology.workers 1
        # one replay and its main-process CPU; PYTHONPATH=<a git archive> runs older code

Not a test. The model abstains on this window (trained on 2 h at 1 m); its forward still
runs on every row, so the forecast cost is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from typing import Any

import numpy as np

DAY = 86400.0
STEP = 300.0
T0 = 1_700_000_000.0


def _config() -> Any:
    from exporter.config import parse_config
    from exporter.source.simulator import fleet_signals

    sigs = [{"name": s.name, "query": s.query, "kind": s.kind,
             **({"capacity": s.capacity} if s.capacity is not None else {})}
            for s in fleet_signals()]
    return parse_config({"interval": "5m", "analyses": [{
        "name": "fleet", "entity_labels": ["instance"], "window": "10h", "step": "5m",
        "horizons": ["1h", "2h", "4h"], "signals": sigs}]})


def _history(entities: int, days: float, seed: int = 16) -> Any:
    from exporter.source.simulator import simulate_fleet
    from exporter.windows import Window

    fleet = simulate_fleet(seed, entities, T0, days * DAY, STEP, missing=True)
    return Window("fleet", ("instance",), tuple(fleet.entities), tuple(fleet.signals),
                  np.asarray(fleet.timestamps, dtype=np.float64), fleet.values)


def one(entities: int, days: float, *, batched: bool, workers: int | None,
        predictor: Any, info: dict[str, str], jobs: int = 1) -> dict[str, Any]:
    from exporter.backtest import evaluation_times, replay

    cfg = _config()
    analysis = cfg.analyses[0]
    window = _history(entities, days)
    times = evaluation_times(window, analysis, STEP)
    t0 = time.perf_counter()
    c0 = time.process_time()
    _, stages = asyncio.run(replay(cfg, analysis, window, times, predictor=predictor,
                                   model_info=info, topology_workers=workers, progress=None,
                                   batched=batched, jobs=jobs if batched else 1))
    wall = time.perf_counter() - t0
    n = len(times) * entities
    return {"entities": entities, "days": days, "cycles": len(times), "entity_cycles": n,
            "batched": batched, "jobs": jobs if batched else 1, "seconds": wall, "main_cpu_seconds": time.process_time() - c0,
            "cycles_per_second": len(times) / wall, "entity_cycles_per_second": n / wall,
            "stage_seconds": {k: round(v, 3) for k, v in stages.items()}}


def _slope(rows: list[dict[str, Any]]) -> tuple[float, float]:
    x = np.array([r["entity_cycles"] for r in rows], dtype=float)
    y = np.array([r["seconds"] for r in rows])
    a, b = np.polyfit(x, y, 1)
    return float(a), float(b)


def _mode(r: dict[str, Any]) -> str:
    if not r["batched"]:
        return "cycle-by-cycle"
    return "batched" if r.get("jobs", 1) == 1 else f"batched --jobs={r['jobs']}"


def _line(r: dict[str, Any]) -> str:
    stages = " ".join(f"{k}={v:.2f}" for k, v in r["stage_seconds"].items())
    return (f"  {r['entities']:3d} entities x {r['days']:5.2f} d = {r['cycles']:5d} cycles "
            f"{_mode(r)}: {r['seconds']:6.2f}s  "
            f"{r['cycles_per_second']:7.0f} cycles/s  {r['entity_cycles_per_second']:7.0f} "
            f"entity-cycles/s  [{stages}]")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    p.add_argument("--topology.workers", dest="workers", type=int, default=None,
                   help="persistence processes (default: all cores)")
    p.add_argument("--jobs", type=int, default=2,
                   help="also replay the largest fleet with `aura backtest --jobs` this many "
                        "(1: skip)")
    p.add_argument("--model.path", dest="model_path", default="models/default")
    p.add_argument("--output", default=None, help="also write the figures as JSON here")
    p.add_argument("--case", default=None, metavar="ENTITIES,DAYS",
                   help="only this batched replay (e.g. 1,14), with its main-process CPU: "
                        "for before/after runs of the same script (PYTHONPATH=<other tree>)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(message)s")
    from exporter.pipeline import load_predictor

    predictor, info = load_predictor(args.model_path)
    load = os.getloadavg()
    scale = 0.25 if args.quick else 1.0
    days = [d * scale for d in (3.5, 7.0, 14.0)]
    fleet_days = 1.0 * scale + 10 / 24  # window 10 h + evaluated span
    sizes = [12, 24, 48]
    kw = {"workers": args.workers, "predictor": predictor, "info": info}
    if args.case:
        import exporter

        n, d = args.case.split(",")
        r = one(int(n), float(d), batched=True, **kw)
        print(f"{os.path.dirname(os.path.dirname(exporter.__file__))}: {_line(r)} "
              f"main CPU {r['main_cpu_seconds']:.2f}s (load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())})")
        return 0
    print(f"== backtest replay, window 10h at 5m, 9 signals, model {info.get('model')} "
          f"(load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cpus)")
    ref = one(1, days[0], batched=False, **kw)
    series = [one(1, d, batched=True, **kw) for d in days]
    fleet = [one(n, fleet_days, batched=True, **kw) for n in sizes]
    jobs = [one(sizes[-1], fleet_days, batched=True, jobs=args.jobs, **kw)] \
        if args.jobs > 1 else []
    for r in [ref, *series, *fleet, *jobs]:
        print(_line(r))
    a1, b1 = _slope(series)
    a2, b2 = _slope(fleet)
    big, top = series[-1], fleet[-1]
    print(f"one series, {big['days']:.1f} d: {big['cycles_per_second']:.0f} cycles/s "
          f"({big['seconds']:.1f}s; target >= 600)")
    print(f"{top['entities']}-entity fleet: {top['entity_cycles_per_second']:.0f} "
          f"entity-cycles/s (target >= 2000)")
    print(f"linearity in cycles:   {a1 * 1e3:.3f} ms per cycle + {b1:.2f}s")
    print(f"linearity in entities: {a2 * 1e3:.3f} ms per entity-cycle + {b2:.2f}s")
    print(f"batched / cycle-by-cycle speed-up at {ref['cycles']} cycles: "
          f"{ref['seconds'] / series[0]['seconds']:.1f}x")
    if jobs:
        print(f"--jobs={args.jobs} / --jobs=1 on the {top['entities']}-entity fleet: "
              f"{top['seconds'] / jobs[0]['seconds']:.2f}x")
    after = os.getloadavg()
    print(f"load average after {after[0]:.2f} {after[1]:.2f} {after[2]:.2f}")
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"benchmark": "backtest", "loadavg_before": load, "loadavg_after": after,
                       "runs": [ref, *series, *fleet, *jobs],
                       "slope_seconds_per_cycle": a1, "slope_seconds_per_entity_cycle": a2},
                      f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
