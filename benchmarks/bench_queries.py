"""Benchmark: Prometheus requests per AURA cycle for 100 vs 1 000 entities (real Prometheus).

A simulated fleet is backfilled into a real Prometheus with promtool; AURA's pipeline then
runs a cold cycle (whole window) and warm cycles (incremental) against it. Requests are read
from Prometheus' own counter `prometheus_http_requests_total{handler="/api/v1/query_range"}`,
so what is counted is what the server saw. Design §2: one query per signal returns all
entities, never one per entity — requests per cycle must not grow with the entity count.

    .venv/bin/python benchmarks/bench_queries.py --entities 100 1000

Writes benchmarks/results/queries.json. Not a test (no assertions); prints the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from benchio import write_results

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
STEP = 60.0


def bench_config(entities: int, steps: int, signals: int, url: str = "http://127.0.0.1:9090",
                 queries: dict[str, str] | None = None) -> Any:
    """One analysis over the simulator's first `signals` signals, window = `steps` steps."""
    from exporter.config import AnalysisConfig, Config, Duration, SourceConfig, replace
    from exporter.source.simulator import fleet_signals

    sigs = fleet_signals()[:signals]
    if queries is not None:
        sigs = tuple(replace(s, query=queries[s.name]) for s in sigs)
    analysis = AnalysisConfig(name="bench", entity_labels=("instance",),
                              window=Duration(steps * STEP), step=Duration(STEP),
                              max_entities=max(entities, 1), signals=sigs)
    return Config(source=SourceConfig(url=url, timeout=Duration(120)), analyses=(analysis,))


def bench_fleet(entities: int, steps: int, extra_steps: int, end: float, seed: int = 1) -> Any:
    """A simulated fleet whose last sample is at `end` (history for the window + warm cycles)."""
    from exporter.source.simulator import simulate_fleet

    duration = (steps + extra_steps) * STEP
    return simulate_fleet(seed, entities, end - duration, duration, STEP, missing=False)


def metric_name(signal: str) -> str:
    return f"aura_bench_{signal}"


@contextmanager
def prometheus_with(fleet: Any, signals: int, workdir: Path) -> Iterator[tuple[Any, dict[str, str]]]:
    """A real Prometheus holding `fleet`'s first signals as gauges; yields (process, queries)."""
    sys.path.insert(0, str(ROOT))
    from tests.promstack import (
        PrometheusProcess,
        backfill,
        ensure_binaries,
        join_openmetrics,
        openmetrics_gauges,
    )

    ensure_binaries()
    names = fleet.signals[:signals]
    inst = {"instance": list(fleet.instances)}
    texts = [openmetrics_gauges(metric_name(s), inst, fleet.timestamps, fleet.signal(s))
             for s in names]
    t0 = time.perf_counter()
    backfill(join_openmetrics(*texts), workdir / "data")
    log.info("backfilled series=%d seconds=%.1f", len(names) * len(fleet.entities),
             time.perf_counter() - t0)
    # Scraping nothing: the only requests Prometheus sees are AURA's.
    with PrometheusProcess(workdir / "data", "global:\n  scrape_interval: 1h\n") as prom:
        yield prom, {s: metric_name(s) for s in names}


log = logging.getLogger("bench")


def query_range_requests(prom: Any) -> float:
    return prom.self_metric("prometheus_http_requests_total", {"handler": "/api/v1/query_range"})


async def measure_cycles(cfg: Any, end: float, warm_cycles: int, prom: Any,
                         topology_workers: int | None) -> dict[str, Any]:
    from exporter.pipeline import Pipeline
    from exporter.source.prometheus import PrometheusSource

    source = PrometheusSource(cfg.source)
    pipeline = Pipeline(cfg, source, topology_workers=topology_workers)
    cycles = []
    try:
        for k in range(warm_cycles + 1):
            now = end - (warm_cycles - k) * STEP
            before = query_range_requests(prom)
            t0 = time.perf_counter()
            snap = await pipeline.run_cycle(now)
            wall = time.perf_counter() - t0
            after = query_range_requests(prom)
            cycles.append({
                "kind": "cold" if k == 0 else "warm",
                "query_range_requests": after - before,
                "seconds": wall,
                "stage_seconds": dict(pipeline.stats.stage_seconds),
                "entities": sum(len(r.entities) for r in snap.results),
                "up": pipeline.stats.up,
            })
    finally:
        pipeline.close()
        await source.close()
    return {"cycles": cycles}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entities", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--signals", type=int, default=8)
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--warm-cycles", type=int, default=3)
    p.add_argument("--topology.workers", dest="workers", type=int, default=None)
    p.add_argument("--output", default=str(RESULTS / "queries.json"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    end = math.floor(time.time() / STEP) * STEP - 600  # never backfill past now
    out: dict[str, Any] = {"benchmark": "queries", "signals": args.signals, "steps": args.steps,
                           "started": time.time(), "loadavg_before": os.getloadavg(),
                           "runs": []}
    for n in args.entities:
        fleet = bench_fleet(n, args.steps, args.warm_cycles, end)
        with tempfile.TemporaryDirectory(prefix="aura-bench-q-") as tmp:
            with prometheus_with(fleet, args.signals, Path(tmp)) as (prom, queries):
                cfg = bench_config(n, args.steps, args.signals, prom.url, queries)
                res = asyncio.run(measure_cycles(cfg, end, args.warm_cycles, prom, args.workers))
        res["entities"] = n
        out["runs"].append(res)
        reqs = [c["query_range_requests"] for c in res["cycles"]]
        ingest = [c["stage_seconds"].get("ingest", float("nan")) for c in res["cycles"]]
        print(f"entities={n} signals={args.signals} query_range requests per cycle: "
              f"cold={reqs[0]:g} warm={np.mean(reqs[1:]) if len(reqs) > 1 else float('nan'):g} "
              f"ingest_seconds cold={ingest[0]:.2f} warm={np.mean(ingest[1:]):.2f}")
    write_results(out, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
