"""Every replay, memory and live figure of issue 16 in one run: the three benchmarks back to
back, then one table of figure, target and verdict, with the load average around each.

    .venv/bin/python benchmarks/bench_footprint.py            # ~6 min on 2 cores
    .venv/bin/python benchmarks/bench_footprint.py --keep DIR # keep the three JSON outputs

Runs, each in its own process (as a user would, so one's memory never counts in another's):
- `bench_backtest.py` (replay: one series of 14 d, fleets of 12 / 24 / 48 entities, slopes);
- `bench_pipeline.py --entities 10000 --warm-cycles 1 --steady-state` (live cycle, topology
  stage against a plain ripser loop in the same run, peak RSS of main and workers,
  per-structure memory; the RSS target is read from the steady cycle, whose baselines have
  the size days of cycles give them, not from the first warm cycle's nearly empty ones);
- `bench_scrape.py --duration 20` (/metrics p50 / p99 of 20 scrapers at 10 000 entities).

The targets are issue 16's. Not a test: figures depend on the machine and its load; the
benchmarks' own JSON files (benchmarks/results/) are left as they were unless --keep points
there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _run(script: str, args: list[str], out: Path) -> dict[str, Any]:
    """Run one benchmark with `--output out`; returns its JSON. Raises CalledProcessError."""
    cmd = [sys.executable, str(HERE / script), *args, "--output", str(out)]
    print(f"$ {' '.join(cmd[1:])}  (load average {os.getloadavg()[0]:.2f})", flush=True)
    subprocess.run(cmd, check=True, cwd=HERE.parent)
    return json.loads(out.read_text())


def _rows(replay: dict[str, Any], live: dict[str, Any],
          scrape: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(figure, value, target, met) for every issue-16 target."""
    batched = [r for r in replay["runs"] if r["batched"] and r.get("jobs", 1) == 1]
    series = max((r for r in batched if r["entities"] == 1), key=lambda r: r["days"])
    fleet = max((r for r in batched if r["entities"] > 1), key=lambda r: r["entities"])
    fleets = sorted((r for r in batched if r["entities"] > 1), key=lambda r: r["entities"])
    days = sorted((r for r in batched if r["entities"] == 1), key=lambda r: r["days"])
    # Linear: the cost of one unit of work does not grow with the size of the replay.
    grow_e = fleets[0]["entity_cycles_per_second"] / fleets[-1]["entity_cycles_per_second"]
    grow_c = days[0]["cycles_per_second"] / days[-1]["cycles_per_second"]
    big = max(live["runs"], key=lambda r: r["entities"])
    warm = [c for c in big["cycles"] if c["kind"] == "warm"][-1]
    kids = sum(big["cycles"][-1].get("children_peak_rss_mib", []))
    # After one warm cycle every entity's baseline is nearly empty; the steady cycle's
    # baselines have the size days of cycles give them (bench_pipeline.fill_steady_state).
    first_rss = max(warm["stage_peak_rss_mib"].values()) + kids
    steady = [c for c in big["cycles"] if c["kind"] == "steady"]
    total_rss = (max(steady[-1]["stage_peak_rss_mib"].values()) + kids) if steady else \
        warm["peak_rss_mib"] + kids
    gzip = [r for r in scrape["runs"] if r["gzip"] and r["pace_seconds"] == 0.0]
    p99 = max(r["p99_ms"] for r in gzip)
    return [
        (f"replay, one series of {series['days']:.0f} d", f"{series['cycles_per_second']:.0f} "
         "cycles/s", ">= 600", series["cycles_per_second"] >= 600),
        (f"replay, {fleet['entities']}-entity fleet", f"{fleet['entity_cycles_per_second']:.0f} "
         "entity-cycles/s", ">= 2 000", fleet["entity_cycles_per_second"] >= 2000),
        ("replay linear in entities and cycles", f"slopes {replay['slope_seconds_per_entity_cycle'] * 1e3:.2f} ms "
         f"per entity-cycle, {replay['slope_seconds_per_cycle'] * 1e3:.2f} ms per cycle; cost "
         f"per unit at the largest / smallest size {grow_e:.2f} (entities), {grow_c:.2f} (cycles)",
         "<= 1.25 both", max(grow_e, grow_c) <= 1.25),
        (f"total RSS at {big['entities']} entities, baselines at their steady-state size "
         "(after days of cycles)", f"{total_rss:.0f} MiB", "< 1 024", total_rss < 1024),
        (f"total RSS at {big['entities']} entities after one warm cycle (baselines nearly "
         "empty; not the target's figure)", f"{first_rss:.0f} MiB", "", first_rss < 1024),
        (f"live warm cycle at {big['entities']} entities",
         f"{big['warm_entities_per_second']:.0f} entities/s", ">= 570",
         big["warm_entities_per_second"] >= 570),
        (f"live cycle at {big['entities']} entities, baselines at steady state",
         f"{big.get('steady_entities_per_second', float('nan')):.0f} entities/s", ">= 570",
         big.get("steady_entities_per_second", 0.0) >= 570),
        ("topology stage / plain ripser loop", f"{big['ratio_topology_to_ripser_loop']:.2f}",
         "<= 0.55", big["ratio_topology_to_ripser_loop"] <= 0.55),
        (f"/metrics p99, {scrape['concurrency']} gzip scrapers back to back, "
         f"{scrape['entities']} entities", f"{p99:.1f} ms", "< 50 ms", p99 < 50),
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keep", type=Path, default=None, help="write the three JSON files here")
    args = p.parse_args()
    before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        replay = _run("bench_backtest.py", [], out / "backtest.json")
        live = _run("bench_pipeline.py", ["--entities", "10000", "--warm-cycles", "1",
                                          "--steady-state"], out / "pipeline.json")
        scrape = _run("bench_scrape.py", ["--duration", "20"], out / "scrape.json")
    after = os.getloadavg()
    print(f"\n== issue 16 targets (load average before {before[0]:.2f}, after {after[0]:.2f}, "
          f"{os.cpu_count()} cpus)")
    for figure, value, target, met in _rows(replay, live, scrape):
        if not target:  # a figure shown for comparison, with no target of its own
            print(f"  info     {figure}: {value}")
            continue
        print(f"  {'met    ' if met else 'NOT MET'}  {figure}: {value} (target {target})")


if __name__ == "__main__":
    main()
