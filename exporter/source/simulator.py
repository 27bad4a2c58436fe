"""A simulated fleet with ground truth: data for `aura demo`, backtests, training and backfill.

`simulate_fleet` builds a deterministic fleet (per seed) of hosts with daily cycles, noise,
deploys, surges, batch jobs, drifts and scrape gaps, and failure scenarios with precursors
(memory leak, disk fill, CPU saturation, connection exhaustion, network degradation, cascade)
and without (sudden crash, marked unpredictable). `SimulatorSource` serves it to the pipeline
through the Source protocol; `aura simulate` writes it as the design §5 CSV or as OpenMetrics in
node_exporter names (see exporter/source/sim_writers.py), or serves it live
(exporter/source/simtarget.py).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from exporter.config import AnalysisConfig, Config, Duration, SignalConfig, parse_duration
from exporter.incidents import Incident
from exporter.source import Fetch, SourceError
from exporter.source.sim_scenarios import (
    BENIGN,
    BENIGN_FAMILIES,
    CAPACITIES,
    FAMILIES,
    SIGNALS,
    Event,
    FailurePlan,
    SimulationError,
    Surge,
    generate,
    plan_failures,
    random_surges,
)
from exporter.util import parse_time
from exporter.windows import Window, grid

log = logging.getLogger(__name__)

__all__ = [
    "BENIGN",
    "BENIGN_FAMILIES",
    "CAPACITIES",
    "FAMILIES",
    "SIGNALS",
    "Event",
    "FailurePlan",
    "SimulatedFleet",
    "SimulationError",
    "SimulatorSource",
    "Surge",
    "demo_config",
    "demo_fleet",
    "simulate_fleet",
]

_SERVICE_NAMES = ("checkout", "search", "payments", "catalog", "auth", "inventory", "gateway",
                  "orders")


@dataclass(frozen=True, eq=False)
class SimulatedFleet:
    """A simulated fleet and its ground truth.

    Attributes
    ----------
    label_names: ("instance",) — the entity label columns.
    entities: one label tuple per entity, e.g. ("host-07:9100",).
    services: per entity, the service it belongs to (drives correlated load and cascades;
        not a label column).
    signals, capacities: signal names (SIGNALS) and the exhaustion level of each (or None).
    timestamps: [T] Unix seconds on the step grid (multiples of `step`).
    values: [E, S, T] float64, NaN where a sample is missing (scrape gaps, entity down).
    incidents: failures, sorted by start; `start` is the failure time, not the precursor start.
    scenarios: per entity, the failure family it takes part in, or "benign".
    events: benign events (surges, deploys, batch jobs, drifts, scrape outages) for inspection.
    seed, step: how it was made.
    cpus, memory_bytes, disk_bytes: host sizes used by the node_exporter view.
    """

    label_names: tuple[str, ...]
    entities: tuple[tuple[str, ...], ...]
    services: tuple[str, ...]
    signals: tuple[str, ...]
    capacities: tuple[float | None, ...]
    timestamps: np.ndarray
    values: np.ndarray
    incidents: tuple[Incident, ...]
    scenarios: tuple[str, ...]
    events: tuple[Event, ...]
    seed: int
    step: float
    cpus: int
    memory_bytes: np.ndarray
    disk_bytes: np.ndarray

    @property
    def instances(self) -> tuple[str, ...]:
        return tuple(e[0] for e in self.entities)

    @property
    def start(self) -> float:
        return float(self.timestamps[0])

    @property
    def end(self) -> float:
        return float(self.timestamps[-1])

    def signal(self, name: str) -> np.ndarray:
        """[E, T] values of one signal."""
        return self.values[:, self.signals.index(name)]

    def capacity(self, name: str) -> float | None:
        return self.capacities[self.signals.index(name)]

    def entity_index(self, instance: str) -> int:
        return self.instances.index(instance)


def _families(families: Sequence[str] | None) -> tuple[str, ...]:
    if families is None:
        return FAMILIES
    fams = tuple(families)
    unknown = [f for f in fams if f not in FAMILIES]
    if unknown:
        raise SimulationError(
            f"unknown failure family {', '.join(map(repr, unknown))} (known: {', '.join(FAMILIES)})")
    return fams


def simulate_fleet(
    seed: int,
    entities: int,
    start: float,
    duration: float,
    step: float = 60,
    families: Sequence[str] | None = None,
    failure_fraction: float = 0.3,
    *,
    services: int | None = None,
    failures: Sequence[FailurePlan] | None = None,
    surges: Sequence[Surge] = (),
    missing: bool = True,
    cpus: int = 2,
    benign: Sequence[str] = (),
) -> SimulatedFleet:
    """Simulate a fleet; the same arguments always give the same fleet.

    Parameters
    ----------
    seed: fixes every random draw.
    entities: number of hosts (`host-00:9100`, ...).
    start, duration, step: timeline in Unix seconds; `start` is aligned down to the step.
    families: failure families to inject (None: all of FAMILIES; []: a benign-only fleet).
    failure_fraction: share of the entities that fail once (cascade dependents not counted).
    services: number of services the hosts are grouped into (default: about 6 hosts each).
    failures: explicit failures instead of random ones (entity rows, times; see FailurePlan).
    surges: extra benign traffic surges on top of the random ones.
    missing: inject scrape gaps (False gives gap-free data except while entities are down).
    cpus: CPUs per host in the node_exporter view.
    benign: extra benign families (BENIGN_FAMILIES) on healthy hosts, none by default (then
        the fleet is the same as before they existed); they are drawn from their own stream,
        so the rest of the fleet does not change with them.
    """
    if entities < 1:
        raise SimulationError(f"entities must be >= 1, got {entities}")
    if step <= 0 or duration < step:
        raise SimulationError(f"need step > 0 and duration >= step, got {step} and {duration}")
    if not 0 <= failure_fraction <= 1:
        raise SimulationError(f"failure_fraction must be in [0, 1], got {failure_fraction}")
    fams = _families(families)
    t_start = math.floor(start / step) * step
    ts = grid(t_start, t_start + duration, step)
    n_svc = services or max(1, math.ceil(entities / 6))
    svc = (np.arange(entities) * n_svc // entities).astype(int)
    width = max(2, len(str(entities - 1)))
    names = [f"host-{i:0{width}d}:9100" for i in range(entities)]
    svc_names = [_SERVICE_NAMES[k % len(_SERVICE_NAMES)] + (f"-{k // len(_SERVICE_NAMES)}"
                 if k >= len(_SERVICE_NAMES) else "") for k in range(n_svc)]

    seeds = np.random.SeedSequence(seed).spawn(4)
    benign_rng, plan_rng, fail_rng, extra_rng = (np.random.default_rng(s) for s in seeds)
    memory_bytes = benign_rng.choice([4, 8, 16, 32, 64], entities) * 2.0**30
    disk_bytes = benign_rng.choice([50, 100, 200, 500], entities) * 1e9
    if failures is None:
        plans = plan_failures(plan_rng, svc, ts, step, fams, failure_fraction)
    else:
        plans = list(failures)
        for p in plans:
            if p.family not in FAMILIES or not 0 <= p.entity < entities:
                raise SimulationError(f"bad failure plan {p}")
    all_surges = list(surges) + random_surges(benign_rng, n_svc, ts)
    began = time.perf_counter()
    gen = generate(benign_rng, ts, step, svc, names, plans, all_surges, fail_rng, missing,
                   tuple(benign), extra_rng)
    log.debug("simulated entities=%d steps=%d incidents=%d duration_seconds=%.2f",
              entities, len(ts), len(gen.incidents), time.perf_counter() - began)
    return SimulatedFleet(
        label_names=("instance",),
        entities=tuple((n,) for n in names),
        services=tuple(svc_names[k] for k in svc),
        signals=SIGNALS,
        capacities=CAPACITIES,
        timestamps=ts,
        values=gen.values,
        incidents=tuple(gen.incidents),
        scenarios=tuple(gen.scenarios),
        events=tuple(sorted(gen.events, key=lambda e: e.start)),
        seed=seed,
        step=float(step),
        cpus=cpus,
        memory_bytes=memory_bytes,
        disk_bytes=disk_bytes,
    )


# --------------------------------------------------------------------------------------------
# Demo


def demo_fleet(now: float, entities: int = 24, seed: int = 7, history: float = 26 * 3600,
               future: float = 12 * 3600, step: float = 60) -> SimulatedFleet:
    """The `aura demo` fleet: history before `now` (26 h: the 24 h topology bootstrap plus a
    window, so anomaly scores are calibrated from the first cycle), scripted failures after it.

    A memory leak exhausts host-03 about 2 h after `now` (its build-up started 2 h before),
    a traffic surge hits one service 40 min in (benign), a sudden crash follows at +3.5 h,
    a network degradation at +5 h, a disk fill at +8 h, a CPU saturation at +10 h. The fleet
    runs `future` seconds past `now` because the demo replays it on an accelerated clock.
    """
    if entities < 12:
        raise SimulationError(f"the demo needs at least 12 entities, got {entities}")
    start = math.floor((now - history) / step) * step

    def at(offset: float) -> float:
        return math.floor((now + offset) / step) * step

    h = 3600.0
    scripted = [
        FailurePlan(3, "memory_leak", at(2 * h), 4 * h, 30 * 60, "linear"),
        FailurePlan(entities - 7, "sudden_crash", at(3.5 * h), 0.0, 20 * 60),
        FailurePlan(entities // 2 - 2, "network_degradation", at(5 * h), 2.5 * h, 40 * 60,
                    "accelerating"),
        FailurePlan(entities - 3, "disk_fill", at(8 * h), 5 * h, 45 * 60, "linear"),
        FailurePlan(6, "cpu_saturation", at(10 * h), 3 * h, 25 * 60, "accelerating"),
    ]
    n_svc = max(1, math.ceil(entities / 6))
    surges = [Surge(1 % n_svc, now + 40 * 60, 50 * 60, 1.8)]
    return simulate_fleet(seed, entities, start, history + future, step, failures=scripted,
                          surges=surges, services=n_svc)


# Queries that read the fleet back from a Prometheus holding its OpenMetrics backfill.
_SIM_QUERIES = {
    "latency_seconds": "max by (instance) (aura_sim_latency_seconds)",
    "error_ratio": "max by (instance) (aura_sim_error_ratio)",
    "connections": "max by (instance) (aura_sim_connections_ratio)",
}
_KINDS = {
    "cpu": "saturation", "memory": "resource", "disk": "resource", "load": "saturation",
    "network_errors": "network", "network_traffic": "network", "latency_seconds": "latency",
    "error_ratio": "errors", "connections": "resource",
}


def fleet_signals() -> tuple[SignalConfig, ...]:
    """Signal configs of the simulator's signals (kinds, capacities, queries)."""
    from exporter.presets import PRESETS

    node = {s["name"]: s["query"] for s in PRESETS["node"]["signals"]}
    return tuple(
        SignalConfig(name=name, query=node.get(name) or _SIM_QUERIES[name], capacity=cap,
                     kind=_KINDS[name], direction="up")  # type: ignore[arg-type]
        for name, cap in zip(SIGNALS, CAPACITIES, strict=True)
    )


def demo_config() -> Config:
    """The `aura demo` configuration: one analysis "fleet" over every simulator signal."""
    analysis = AnalysisConfig(
        name="fleet",
        entity_labels=("instance",),
        window=Duration(7200),
        step=Duration(60),
        horizons=(Duration(3600), Duration(7200), Duration(14400)),
        signals=fleet_signals(),
    )
    return Config(analyses=(analysis,))


# --------------------------------------------------------------------------------------------
# Source


class SimulatorSource:
    """The Source protocol over a simulated fleet: slices of the precomputed arrays.

    A grid timestamp reads the latest fleet sample at or before it (as an instant query
    would); a missing sample stays NaN. Entities without any sample in the block are left out,
    as PromQL returns no series for them.
    """

    def __init__(self, fleet: SimulatedFleet):
        self.fleet = fleet

    async def fetch(self, analysis: AnalysisConfig, start: float, end: float) -> Fetch:
        fleet = self.fleet
        ts = grid(start, end, float(analysis.step))
        keys = self._keys(analysis.entity_labels)
        idx = np.floor((ts - fleet.start) / fleet.step + 1e-9).astype(int)
        valid = (idx >= 0) & (idx < len(fleet.timestamps))
        names = tuple(s.name for s in analysis.signals)
        values = np.full((len(keys), len(names), len(ts)), np.nan)
        errors: dict[str, str] = {}
        cols = [fleet.signals.index(n) if n in fleet.signals else -1 for n in names]
        for name, c in zip(names, cols, strict=True):
            if c < 0:
                errors[name] = (f"unknown simulator signal {name!r} "
                                f"(known: {', '.join(fleet.signals)})")
        known = [j for j, c in enumerate(cols) if c >= 0]
        if known and valid.any():
            src = fleet.values[:, [cols[j] for j in known]][:, :, idx[valid]]
            values[np.ix_(np.arange(len(keys)), np.array(known), np.flatnonzero(valid))] = src
        present = ~np.isnan(values).all(axis=(1, 2))
        series = {n: int((~np.isnan(values[:, j])).any(axis=1).sum())
                  for j, n in enumerate(names) if n not in errors}
        block = Window(analysis.name, tuple(analysis.entity_labels),
                       tuple(k for k, p in zip(keys, present, strict=True) if p), names, ts,
                       values[present])
        return Fetch(block, errors, series)

    def _keys(self, label_names: Sequence[str]) -> list[tuple[str, ...]]:
        fleet = self.fleet
        columns = {"instance": fleet.instances, "service": fleet.services,
                   "job": ("node",) * len(fleet.entities)}
        unknown = [n for n in label_names if n not in columns]
        if unknown:
            raise SourceError(f"simulator has no entity label {', '.join(unknown)} "
                              f"(known: {', '.join(columns)})")
        return list(zip(*(columns[n] for n in label_names), strict=True))

    async def close(self) -> None:
        return None


# --------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
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


def parse_scenario(text: str) -> tuple[str, ...] | None:
    """`mixed` -> None (all families), `benign` -> (), else validated family names."""
    text = text.strip()
    if text == "mixed":
        return None
    if text == "benign":
        return ()
    return _families([f.strip() for f in text.split(",") if f.strip()])


def run(args: argparse.Namespace) -> int:
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
    from pathlib import Path

    import yaml

    from exporter.config import format_duration

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
    target.write_text(f"{CONFIG_HEADER}{target.name} --input={Path(csv_path).name}\n"
                      + yaml.safe_dump(doc, sort_keys=False, width=100))
    log.info("msg=\"matching config written\" path=%s", target)
    return str(target)


def _write(path: str, fleet: SimulatedFleet, kind: str, until: float) -> None:
    from exporter.source import sim_writers

    writer = {"csv": sim_writers.write_csv, "openmetrics": sim_writers.write_openmetrics,
              "incidents": sim_writers.write_incidents_csv}[kind]
    if path == "-":
        writer(fleet, sys.stdout, until)
        return
    with open(path, "w", newline="\n", encoding="utf-8", buffering=1 << 20) as out:
        writer(fleet, out, until)
