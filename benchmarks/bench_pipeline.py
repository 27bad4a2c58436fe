"""Benchmark: the full pipeline at 1 000 and 10 000 entities x 8 signals x 120 steps.

Each size runs in its own process (so peak RSS is that size's): a simulated fleet is served
in memory (SimulatorSource) to `Pipeline.run_cycle`, one cold cycle (whole window fetched,
baselines empty) then warm cycles (incremental fetch). Printed per size: per-stage seconds,
entities/s, peak RSS of the process and of its persistence workers, and the ratio to a plain
single-process `ripser(cloud, maxdim=1)` loop over the same point clouds measured in the same
run (on `--ripser-sample` clouds, scaled to all entities). With `--prometheus`, the 1 000
case also ingests from a real Prometheus holding the fleet as backfilled history.

    .venv/bin/python benchmarks/bench_pipeline.py --entities 1000 10000 --prometheus

Targets (design §9): >= 200 entities/s at 10 000 entities on 2 cores, peak RSS < 1.5 GiB.
Writes benchmarks/results/pipeline.json. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_queries import (  # noqa: E402
    RESULTS,
    STEP,
    bench_config,
    bench_fleet,
    prometheus_with,
    query_range_requests,
)


def _rss_mib_self() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _children_hwm_mib() -> list[float]:
    """Peak RSS (VmHWM) of this process' live descendants (persistence workers, forkserver)."""
    parent: dict[int, int] = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                parent[int(pid)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    mine, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier and p not in mine}
        mine |= frontier
    out = []
    for pid in sorted(mine):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out.append(int(line.split()[1]) / 1024.0)
        except OSError:
            continue
    return out


def ripser_loop(values: np.ndarray, analysis: Any, sample: int) -> dict[str, float]:
    """Plain single-process ripser over the stage's own clouds (first `sample` entities)."""
    from ripser import ripser

    from exporter.tda.embedding import delay_embed, normalise, pack_clouds, robust_stats

    c = analysis.topology
    center, scale = robust_stats(values[:sample])
    clouds = pack_clouds(delay_embed(normalise(values[:sample], center, scale),
                                     c.embedding_dimension, c.embedding_delay),
                         c.max_points, c.min_points, c.anchor)
    ripser(clouds.points[0, :max(int(clouds.counts[0]), 2)], maxdim=1)  # warm the import
    t0 = time.perf_counter()
    done = 0
    for i in range(len(clouds.counts)):
        n = int(clouds.counts[i])
        if n >= 2:
            ripser(clouds.points[i, :n], maxdim=1)
            done += 1
    sec = time.perf_counter() - t0
    return {"clouds": done, "seconds": sec, "seconds_per_cloud": sec / max(done, 1),
            "points_per_cloud": float(np.mean(clouds.counts))}


def _mib(arrays: Any, seen: set[int] | None = None) -> float:
    """MiB held by the numpy arrays in a dict/list/tuple (recursively), or by one array;
    with `seen`, an array whose memory (its base array) was counted before counts 0."""
    if isinstance(arrays, np.ndarray):
        root = arrays
        while isinstance(root.base, np.ndarray):
            root = root.base
        if seen is not None:
            if id(root) in seen:
                return 0.0
            seen.add(id(root))
        return root.nbytes / 2**20
    if isinstance(arrays, dict):
        return sum(_mib(v, seen) for v in arrays.values())
    if isinstance(arrays, list | tuple):
        return sum(_mib(v, seen) for v in arrays)
    return 0.0


# An entity's per-window score histories (exporter.tda.baseline._Entry), all RAW_HISTORY long.
HISTORIES = ("raw_hist", "vec_hist", "hist_times", "seas_hist", "fis_hist", "smooth_hist",
             "drift_hist", "pooled_hist")


def _stores(pipeline: Any) -> Iterator[Any]:
    """The topology baseline store of each analysis that has one."""
    for rt in pipeline.runtimes:
        store = getattr(rt.topology, "_store", None) if rt.topology is not None else None
        if store is not None:
            yield store


def baseline_breakdown(pipeline: Any) -> dict[str, float]:
    """MiB of the topology baselines' arrays as held in memory (`baselines` above is their
    saved state, which widens some to float64), by part: the reservoir's score clouds, its
    window deciles, its diagrams (H0, H1, H0 medians, times), the per-window score histories
    (raw distance, summaries, times, the five calibration histories), the seasonal hourly
    levels and the fitted models' arrays."""
    parts = dict.fromkeys(("baseline_reservoir_clouds", "baseline_reservoir_deciles",
                           "baseline_reservoir_diagrams", "baseline_histories",
                           "baseline_seasonal_levels", "baseline_models"), 0.0)
    for store in _stores(pipeline):
        for e in store.entries.values():
            r = e.reservoir
            parts["baseline_reservoir_clouds"] += r.cloud_arr.nbytes
            parts["baseline_reservoir_deciles"] += r.deciles.nbytes
            parts["baseline_reservoir_diagrams"] += (r.h0_arr.nbytes + r.h1_arr.nbytes
                                                     + r.h0_medians.nbytes + r.times.nbytes)
            parts["baseline_histories"] += sum(getattr(e, n).nbytes for n in HISTORIES)
            if e.levels is not None:
                lv = e.levels
                parts["baseline_seasonal_levels"] += sum(
                    a.nbytes for a in (lv.hours, lv.means, lv.m2, lv.counts))
            if e.model is not None:
                parts["baseline_models"] += sum(
                    a.nbytes for a in vars(e.model).values() if isinstance(a, np.ndarray)) + sum(
                    x.nbytes for p in getattr(e.model, "prototypes_", []) for x in p)
    return {k: v / 2**20 for k, v in parts.items()}


def memory_breakdown(pipeline: Any, predictor: Any) -> dict[str, float]:
    """MiB per long-lived structure after the last cycle: window buffers, topology baselines
    (their saved state's arrays: what they keep), the decision stage's risk references, the
    served snapshot (text + gzip bytes, and the results it holds beyond the buffers: its
    window is the buffer's array), the model's parameters."""
    seen: set[int] = set()
    out = {"buffers": sum(_mib(rt.buffer.values, seen) for rt in pipeline.runtimes),
           "baselines": sum(_mib(rt.topology.state()) for rt in pipeline.runtimes
                            if rt.topology is not None),
           "decision": sum(_mib(rt.decision.state()) for rt in pipeline.runtimes
                           if rt.decision is not None)}
    out.update(baseline_breakdown(pipeline))
    snap = pipeline.snapshot
    results = 0.0
    for r in snap.results:
        results += _mib(r.window.values, seen)
        for part in (r.topology, r.forecast, r.consensus, *r.votes):
            if part is not None:
                results += _mib([getattr(part, f) for f in vars(part)], seen)
    out["snapshot_bytes"] = (len(snap.body) + len(snap.body_gzip)) / 2**20
    out["snapshot_results"] = results
    net = getattr(predictor, "net_", None)
    out["model"] = (sum(p.numel() * p.element_size() for p in net.parameters()) / 2**20
                    if net is not None else 0.0)
    return out


class StagePeaks:
    """Peak RSS of this process per pipeline stage: the kernel's high-water mark (VmHWM)
    is reset when a stage starts (`/proc/self/clear_refs` 5, Linux) and read when it ends;
    `overall` keeps the largest mark seen, which the resets would otherwise lose."""

    def __init__(self, pipeline: Any) -> None:
        self.stages: dict[str, float] = {}
        self.overall = _hwm_mib()
        stage = pipeline._stage

        @contextlib.contextmanager
        def measured(name: str, *args: Any, **kwargs: Any) -> Iterator[None]:
            self._reset()
            with stage(name, *args, **kwargs):
                yield
            peak = _hwm_mib()
            self.overall = max(self.overall, peak)
            self.stages[name] = max(self.stages.get(name, 0.0), peak)

        pipeline._stage = measured

    def _reset(self) -> None:
        self.overall = max(self.overall, _hwm_mib())
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:  # not allowed here: each stage then shows the peak so far
            pass

    def cycle(self) -> dict[str, float]:
        """The stages' peaks since the last call (MiB), then start again."""
        out, self.stages = self.stages, {}
        self.overall = max(self.overall, _hwm_mib())
        return out


def fill_steady_state(pipeline: Any) -> int:
    """Grow every entity's topology baseline to the size days of cycles give it: the
    reservoir to `baseline_size` windows (one per `baseline_admit_every`) and the score
    histories to RAW_HISTORY values (one per window / score_points: three days), by tiling
    the entity's own rows backwards in time. One warm cycle leaves these nearly empty, and
    the memory they take at steady state (the largest part of the baselines) would not be
    measured. Returns the entities grown.

    The values are the entity's own, repeated: what the next cycle computes from them is
    not a real entity's, but every array has its steady-state shape and dtype, which is what
    the memory figures measure.
    """
    from exporter.tda.baseline import RAW_HISTORY

    grown = 0
    for store in _stores(pipeline):
        for entry in store.entries.values():
            res = entry.reservoir
            n = len(res)
            if n:
                idx = np.arange(store.size) % n
                res.cloud_arr = res.cloud_arr[idx]
                res.h0_arr, res.h1_arr = res.h0_arr[idx], res.h1_arr[idx]
                res.deciles, res.h0_medians = res.deciles[idx], res.h0_medians[idx]
                res.times = res.times[-1] - store.admit_every * np.arange(store.size)[::-1]
            k = len(entry.hist_times)
            if k:
                idx = np.arange(RAW_HISTORY) % k
                for name in HISTORIES:
                    if name != "hist_times":  # the times go back one step each, below
                        setattr(entry, name, getattr(entry, name)[idx])
                entry.hist_times = (entry.hist_times[-1]
                                    - store.raw_every * np.arange(RAW_HISTORY)[::-1])
                entry.fits = None
            grown += bool(n or k)
    return grown


def _hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


async def _cycles(cfg: Any, source: Any, end: float, warm: int, workers: int | None,
                  prom: Any = None, steady: bool = False) -> list[dict[str, Any]]:
    from exporter.pipeline import Pipeline, load_predictor

    predictor, info = load_predictor(cfg.model.path)
    pipeline = Pipeline(cfg, source, predictor=predictor, model_info=info,
                        topology_workers=workers)
    peaks = StagePeaks(pipeline)
    out = []
    try:
        kinds = ["cold"] + ["warm"] * warm + (["grown", "steady"] if steady and warm else [])
        for k, kind in enumerate(kinds):
            now = end - (len(kinds) - 1 - k) * STEP
            if kind == "grown":
                fill_steady_state(pipeline)
                # The fill's own copies are the benchmark's, not the exporter's: its
                # high-water mark is dropped (StagePeaks reads the mark at each stage).
                with contextlib.suppress(OSError):
                    Path("/proc/self/clear_refs").write_text("5")
            before = query_range_requests(prom) if prom is not None else None
            t0 = time.perf_counter()
            snap = await pipeline.run_cycle(now)
            wall = time.perf_counter() - t0
            stages = dict(pipeline.stats.stage_seconds)
            # The snapshot of this cycle was rendered after stage_seconds was filled.
            stages["render"] = pipeline._render_seconds
            n = sum(len(r.entities) for r in snap.results)
            row = {"kind": kind, "seconds": wall,
                   "stage_seconds": stages, "entities": n,
                   "entities_per_second": n / wall if wall > 0 else None,
                   "exposition_bytes": len(snap.body),
                   "model": info.get("status", ""),
                   "stage_peak_rss_mib": peaks.cycle()}
            if prom is not None:
                row["query_range_requests"] = query_range_requests(prom) - before
            out.append(row)
        out[-1]["children_peak_rss_mib"] = _children_hwm_mib()
        out[-1]["peak_rss_mib"] = peaks.overall
        out[-1]["memory_mib"] = memory_breakdown(pipeline, predictor)
    finally:
        pipeline.close()
        await source.close()
    return out


def one(entities: int, args: argparse.Namespace) -> dict[str, Any]:
    from exporter.source.simulator import SimulatorSource

    end = math.floor(time.time() / STEP) * STEP - 600
    t0 = time.perf_counter()
    # --bootstrap: history for the cold start's topology replay too (24 h by default, up to
    # bootstrap_max_entities), so the cold cycle shows what a first start costs.
    extra = 0
    if args.bootstrap:
        from exporter.config import TopologyConfig

        extra = int(float(TopologyConfig().bootstrap) / STEP)
    if args.steady_state:
        extra += 2  # the grown and steady cycles
    fleet = bench_fleet(entities, args.steps, args.warm_cycles + extra, end)
    sim_seconds = time.perf_counter() - t0
    cfg = bench_config(entities, args.steps, args.signals)
    analysis = cfg.analyses[0]
    res: dict[str, Any] = {"entities": entities, "signals": args.signals, "steps": args.steps,
                           "workers": args.workers, "simulate_seconds": sim_seconds}
    res["cycles"] = asyncio.run(_cycles(cfg, SimulatorSource(fleet), end, args.warm_cycles,
                                        args.workers, steady=args.steady_state))
    win = fleet.values[:, : args.signals, -args.steps:]
    loop = ripser_loop(win, analysis, min(args.ripser_sample, entities))
    loop["scaled_seconds_all_entities"] = loop["seconds_per_cloud"] * entities
    res["ripser_loop"] = loop
    warm = [c for c in res["cycles"] if c["kind"] == "warm"] or res["cycles"]
    cycle = float(np.median([c["seconds"] for c in warm]))
    topo = float(np.median([c["stage_seconds"].get("topology", 0.0) for c in warm]))
    steady = [c for c in res["cycles"] if c["kind"] == "steady"]
    if steady:
        res["steady_entities_per_second"] = steady[-1]["entities_per_second"]
        # This cycle's own peak (the grown cycle before it fits every entity's baseline at
        # once, as a fleet started together does once; its peak is in peak_rss_mib).
        res["steady_peak_rss_mib"] = max(steady[-1]["stage_peak_rss_mib"].values())
    res["warm_cycle_seconds_median"] = cycle
    res["warm_entities_per_second"] = entities / cycle
    res["ratio_cycle_to_ripser_loop"] = cycle / loop["scaled_seconds_all_entities"]
    res["ratio_topology_to_ripser_loop"] = topo / loop["scaled_seconds_all_entities"]
    if args.prometheus and entities <= 1000:
        with tempfile.TemporaryDirectory(prefix="aura-bench-p-") as tmp:
            with prometheus_with(fleet, args.signals, Path(tmp)) as (prom, queries):
                from exporter.source.prometheus import PrometheusSource

                pcfg = bench_config(entities, args.steps, args.signals, prom.url, queries)
                res["prometheus_cycles"] = asyncio.run(_cycles(
                    pcfg, PrometheusSource(pcfg.source), end, args.warm_cycles, args.workers,
                    prom))
    # The resets of StagePeaks also reset ru_maxrss: the largest of both marks. Not with
    # --steady-state: ru_maxrss keeps the fill's own copies, which StagePeaks leaves out.
    marks = [c.get("peak_rss_mib", 0.0) for c in res["cycles"]]
    res["peak_rss_mib"] = max(marks if args.steady_state else [_rss_mib_self(), *marks])
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entities", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--signals", type=int, default=8)
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--warm-cycles", type=int, default=2)
    p.add_argument("--topology.workers", dest="workers", type=int, default=None,
                   help="persistence processes (default: all cores)")
    p.add_argument("--ripser-sample", type=int, default=1000)
    p.add_argument("--prometheus", action="store_true",
                   help="1 000-entity case: also ingest from a real, backfilled Prometheus")
    p.add_argument("--bootstrap", action="store_true",
                   help="simulate 24 h more history: the cold cycle includes the topology "
                        "bootstrap replay (entities <= bootstrap_max_entities)")
    p.add_argument("--steady-state", action="store_true",
                   help="after the warm cycles, grow every entity's baseline to its "
                        "steady-state size (fill_steady_state), run one cycle (every entity "
                        "fits its baseline: 'grown') and one more ('steady'): memory and "
                        "speed after days of cycles, not after one")
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--output", default=str(RESULTS / "pipeline.json"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.one is not None:
        print(json.dumps(one(args.one, args)))
        return 0
    load = os.getloadavg()
    out: dict[str, Any] = {"benchmark": "pipeline", "cpus": os.cpu_count(),
                           "loadavg_before": load, "started": time.time(), "runs": []}
    for n in args.entities:
        cmd = [sys.executable, __file__, "--one", str(n), "--signals", str(args.signals),
               "--steps", str(args.steps), "--warm-cycles", str(args.warm_cycles),
               "--ripser-sample", str(args.ripser_sample)]
        if args.workers is not None:
            cmd += ["--topology.workers", str(args.workers)]
        if args.prometheus:
            cmd.append("--prometheus")
        if args.bootstrap:
            cmd.append("--bootstrap")
        if args.steady_state:
            cmd.append("--steady-state")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        out["runs"].append(res)
        _print(res)
    out["loadavg_after"] = os.getloadavg()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2) + "\n")
    print(f"load average before {load[0]:.1f}, after {out['loadavg_after'][0]:.1f} "
          f"({os.cpu_count()} cpus); wrote {args.output}")
    return 0


def _print(res: dict[str, Any]) -> None:
    print(f"== {res['entities']} entities x {res['signals']} signals x {res['steps']} steps "
          f"(workers={res['workers'] or 'all cores'})")
    for c in res["cycles"]:
        stages = " ".join(f"{k}={v:.2f}" for k, v in c["stage_seconds"].items())
        print(f"  {c['kind']:6s} cycle {c['seconds']:.2f}s  {c['entities_per_second']:.0f} "
              f"entities/s  [{stages}]  exposition={c['exposition_bytes'] / 1e6:.1f}MB "
              f"model={c['model']}")
    loop = res["ripser_loop"]
    print(f"  plain ripser loop: {loop['seconds_per_cloud'] * 1e3:.2f} ms/cloud "
          f"({loop['clouds']} clouds, {loop['points_per_cloud']:.0f} points) -> "
          f"{loop['scaled_seconds_all_entities']:.1f}s for all entities")
    print(f"  warm cycle / ripser loop = {res['ratio_cycle_to_ripser_loop']:.2f}; topology stage "
          f"/ ripser loop = {res['ratio_topology_to_ripser_loop']:.2f}")
    for c in res.get("prometheus_cycles", []):
        print(f"  prometheus {c['kind']:4s} cycle {c['seconds']:.2f}s ingest="
              f"{c['stage_seconds'].get('ingest', 0):.2f}s requests="
              f"{c.get('query_range_requests')}")
    for c in res["cycles"]:
        print(f"  {c['kind']:6s} cycle peak RSS per stage (MiB): " + " ".join(
            f"{k}={v:.0f}" for k, v in c.get("stage_peak_rss_mib", {}).items()))
    kids = res["cycles"][-1].get("children_peak_rss_mib", [])
    print(f"  peak RSS: main {res['peak_rss_mib']:.0f} MiB, workers "
          f"{', '.join(f'{k:.0f}' for k in kids) or 'none'} MiB; total "
          f"{res['peak_rss_mib'] + sum(kids):.0f} MiB (target < 1024)")
    mem = res["cycles"][-1].get("memory_mib", {})
    print("  held after the last cycle (MiB): "
          + " ".join(f"{k}={v:.1f}" for k, v in mem.items()))


if __name__ == "__main__":
    sys.exit(main())
