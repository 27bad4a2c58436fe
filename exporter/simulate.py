"""`aura simulate`: write a simulated fleet as CSV or OpenMetrics, its incidents, or serve it.

The fleet comes from `exporter.source.simulator.simulate_fleet`; files are written by
`exporter.source.sim_writers` (a CSV gets the backtest config that reads it beside it:
d.csv -> d.yml), `--serve` runs `exporter.source.simtarget`'s /metrics target.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import yaml

from exporter.config import format_duration, parse_duration
from exporter.source import sim_writers
from exporter.source.simulator import (
    FAMILIES,
    SimulatedFleet,
    SimulationError,
    demo_config,
    parse_scenario,
    simulate_fleet,
)
from exporter.util import atomic_write, parse_time

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`aura simulate`'s flags: the fleet (scenario, size, timeline, seed) and the outputs."""
    parser.add_argument("--scenario", default="mixed",
                        help="failure families, comma-separated (" + ", ".join(FAMILIES)
                        + "), or 'mixed' (all) or 'benign' (none)")
    parser.add_argument("--entities", type=int, default=24, help="number of simulated hosts")
    parser.add_argument("--duration", default="3d", help="length of the timeline (e.g. 3d, 12h)")
    parser.add_argument("--step", default="1m", help="sample step (e.g. 1m, 30s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same fleet)")
    parser.add_argument("--start", default=None,
                        help="first timestamp, Unix seconds or RFC 3339 (default: now - duration)")
    parser.add_argument("--failure-fraction", dest="failure_fraction", type=float, default=0.3,
                        help="share of the hosts that fail once")
    parser.add_argument("--format", choices=["openmetrics", "csv"], default=None,
                        help="output format (default: csv for *.csv, else openmetrics)")
    parser.add_argument("--output", default=None,
                        help="output file ('-' for stdout); OpenMetrics stops at now; a CSV "
                             "gets its backtest config beside it (d.csv -> d.yml)")
    parser.add_argument("--incidents", default=None, help="write the incidents CSV here")
    parser.add_argument("--serve", default=None, metavar="HOST:PORT",
                        help="serve the fleet's current values on /metrics (node_exporter names)")
    parser.add_argument("--serve.future", dest="serve_future", default="1d",
                        help="with --serve: how far past the end the fleet keeps running")


def run(args: argparse.Namespace) -> int:
    """`aura simulate`: build the fleet, write the files asked for, serve it when asked."""
    def fail(msg: str) -> int:
        print(f"aura simulate: {msg}", file=sys.stderr)
        return 2

    try:
        families = parse_scenario(args.scenario)
    except SimulationError as err:
        return fail(f"--scenario: {err}")
    try:
        duration = parse_duration(args.duration)
        step = parse_duration(args.step)
        future = parse_duration(args.serve_future) if args.serve else 0.0
    except ValueError as err:
        return fail(str(err))
    now = time.time()
    try:
        start = parse_time(args.start) if args.start else now - duration
    except ValueError as err:
        return fail(f"--start: {err}")
    if args.entities < 1:
        return fail(f"--entities must be >= 1, got {args.entities}")
    if step <= 0 or duration < step:
        return fail("--duration must be at least one --step, and --step > 0")
    if not args.output and not args.serve and not args.incidents:
        return fail("nothing to do: give --output, --incidents and/or --serve")
    host_port = None
    if args.serve:
        host, _, port = args.serve.rpartition(":")
        if not port.isdigit():
            return fail(f"--serve: expected HOST:PORT, got {args.serve!r}")
        host_port = (host or "127.0.0.1", int(port))
    fmt = args.format or ("csv" if (args.output or "").endswith(".csv") else "openmetrics")
    try:
        fleet = simulate_fleet(args.seed, args.entities, start, duration + future, step,
                               families, args.failure_fraction)
    except SimulationError as err:
        return fail(str(err))
    # Files hold the requested timeline; OpenMetrics never goes past now (backfill rule).
    until = start + duration
    if fmt == "openmetrics" and until > now:
        log.warning("openmetrics output cut at now cut_seconds=%.0f", until - now)
        until = now
    began = time.perf_counter()
    try:
        if args.output:
            _write(args.output, fleet, fmt, until)
        if args.incidents:
            _write(args.incidents, fleet, "incidents", until)
        config = None
        if args.output and args.output != "-" and fmt == "csv":
            config = write_matching_config(args.output, step)
    except OSError as err:
        return fail(f"cannot write: {err}")
    log.info("simulation written entities=%d steps=%d incidents=%d format=%s seconds=%.2f",
             len(fleet.entities), len(fleet.timestamps), len(fleet.incidents), fmt,
             time.perf_counter() - began)
    if config:  # the next step, on stdout where a new user looks
        incidents = f" --incidents={args.incidents}" if args.incidents else ""
        print(f"backtest it with: aura backtest --config.file={config} --input={args.output}"
              f"{incidents} --output-dir=backtest/")
    if host_port:
        from aiohttp import web

        from exporter.source.simtarget import make_target_app

        app = make_target_app(fleet, time.time)
        print(f"serving simulated fleet on http://{host_port[0]}:{host_port[1]}/metrics",
              file=sys.stderr)
        web.run_app(app, host=host_port[0], port=host_port[1], print=None, access_log=None)
    return 0


CONFIG_HEADER = "# Written by `aura simulate` for the CSV beside it: aura backtest --config.file="


def write_matching_config(csv_path: str, step: float) -> str | None:
    """Write `<csv stem>.yml`, the config whose analysis reads the CSV's columns.

    So the README's path is two commands: `aura simulate ... --output=d.csv`, then
    `aura backtest --config.file=d.yml --input=d.csv`. A file of that name not written by
    `aura simulate` is left alone (logged). Returns the path written, or None.
    """
    target = Path(csv_path).with_suffix(".yml")
    if target.exists() and not target.read_text(errors="replace").startswith(CONFIG_HEADER):
        log.warning("msg=\"matching config not written: file exists\" path=%s", target)
        return None
    analysis = demo_config().analyses[0]
    doc = {"interval": "1m", "analyses": [{
        "name": analysis.name, "entity_labels": list(analysis.entity_labels),
        "window": format_duration(analysis.window), "step": format_duration(step),
        "horizons": [format_duration(h) for h in analysis.horizons],
        "signals": [{"name": sig.name, "query": sig.query, "kind": sig.kind,
                     **({"capacity": sig.capacity} if sig.capacity else {})}
                    for sig in analysis.signals]}]}
    atomic_write(target, f"{CONFIG_HEADER}{target.name} --input={Path(csv_path).name}\n"
                 + yaml.safe_dump(doc, sort_keys=False, width=100))
    log.info("msg=\"matching config written\" path=%s", target)
    return str(target)


def _write(path: str, fleet: SimulatedFleet, kind: str, until: float) -> None:
    writer = {"csv": sim_writers.write_csv, "openmetrics": sim_writers.write_openmetrics,
              "incidents": sim_writers.write_incidents_csv}[kind]
    if path == "-":
        writer(fleet, sys.stdout, until)
        return
    with open(path, "w", newline="\n", encoding="utf-8", buffering=1 << 20) as out:
        writer(fleet, out, until)
