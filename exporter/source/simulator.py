"""A simulated fleet with ground truth: data for `aura demo`, backtests, training and backfill.

`simulate_fleet` builds a deterministic fleet (per seed) of hosts with daily cycles, noise,
deploys, surges, batch jobs, drifts and scrape gaps, and failure scenarios with precursors
(memory leak, disk fill, CPU saturation, connection exhaustion, network degradation, cascade)
and without (sudden crash, marked unpredictable). `SimulatorSource` serves it to the pipeline
through the Source protocol. `aura simulate` (exporter/simulate.py) writes it as the design §5
CSV or as OpenMetrics in node_exporter names (exporter/source/sim_writers.py), or serves it
live (exporter/source/simtarget.py).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from exporter.config import AnalysisConfig, Config, Duration, SignalConfig
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
        """The `instance` label of each entity, in row order."""
        return tuple(e[0] for e in self.entities)

    @property
    def start(self) -> float:
        """First sample time (Unix seconds)."""
        return float(self.timestamps[0])

    @property
    def end(self) -> float:
        """Last sample time (Unix seconds)."""
        return float(self.timestamps[-1])

    def signal(self, name: str) -> np.ndarray:
        """[E, T] values of one signal."""
        return self.values[:, self.signals.index(name)]

    def capacity(self, name: str) -> float | None:
        """The signal's capacity (its units), None without one; ValueError for an unknown name."""
        return self.capacities[self.signals.index(name)]

    def entity_index(self, instance: str) -> int:
        """Row of the entity with that `instance` label; ValueError when there is none."""
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
               future: float = 7 * 86400, step: float = 60) -> SimulatedFleet:
    """The `aura demo` fleet: history before `now` (26 h: the 24 h topology bootstrap plus a
    window, so anomaly scores are calibrated from the first cycle), scripted failures after it.

    A memory leak exhausts host-03 about 2 h after `now` (its build-up started 2 h before),
    a traffic surge hits one service 40 min in (benign), a sudden crash follows at +3.5 h,
    a network degradation at +5 h, a disk fill at +8 h, a CPU saturation at +10 h. The fleet
    runs `future` seconds past `now` because the demo replays it on an accelerated clock: a
    week by default (0.5 s to simulate; 2.8 h of a demo at x60), so a console opened late
    still shows a live fleet, healthy after the story (12 h of it sent every entity to "no
    data" 12 real minutes in: a new user's first look found a grey fleet).
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
        """The fleet's samples of `analysis`' signals on its step grid within [start, end] (see the class)."""
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
        """Nothing to release."""
        return None


def parse_scenario(text: str) -> tuple[str, ...] | None:
    """`mixed` -> None (all families), `benign` -> (), else validated family names."""
    text = text.strip()
    if text == "mixed":
        return None
    if text == "benign":
        return ()
    return _families([f.strip() for f in text.split(",") if f.strip()])
