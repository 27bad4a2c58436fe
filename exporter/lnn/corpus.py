"""Training corpora for `aura train`: histories to replay, simulated or the user's own.

`Corpus` holds the histories (values, timestamps, incidents per entity) and their analyses;
`simulator_corpus` builds the shipped model's domain-randomised simulator corpus
(`corpus_plan`, `randomise_domain`; models/README.md says why each part is there);
`history_from_window` turns a fetched window and incidents CSV into a history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from exporter.config import AnalysisConfig, Duration, format_duration
from exporter.incidents import Incident
from exporter.lnn.dataset import History, incidents_to_arrays
from exporter.windows import Window

if TYPE_CHECKING:
    from exporter.source.simulator import SimulatedFleet


@dataclass
class Corpus:
    """Histories to replay; `analyses[i]` (when given) is history i's analysis, else `analysis`.

    strides: steps between replayed cycles per history (None: the --stride argument).
    domain: what was randomised, for the card.
    """

    histories: list[History]
    analysis: AnalysisConfig
    description: str
    analyses: list[AnalysisConfig] | None = None
    strides: list[int] | None = None
    domain: dict[str, Any] | None = None

    def analysis_of(self, i: int) -> AnalysisConfig:
        """The analysis (window, step, signals) history `i` is replayed with."""
        return self.analyses[i] if self.analyses else self.analysis

    def trained_for(self) -> dict[str, list[str]]:
        """The card's `trained_for`: [min, max] window and step over the histories."""
        an = self.analyses or [self.analysis]
        out = {}
        for key in ("window", "step"):
            vals = [float(getattr(a, key)) for a in an]
            out[key] = [format_duration(min(vals)), format_duration(max(vals))]
        return out


def history_from_window(window: Window, incidents: Sequence[Incident]) -> History:
    """A fetched window and its incidents as one `History` (incidents of other entities dropped)."""
    s, e, ent, pred = incidents_to_arrays(incidents, tuple(window.entities))
    return History(window.label_names, tuple(window.entities), window.signals,
                   np.asarray(window.timestamps, float), np.asarray(window.values, float),
                   s, e, ent, pred)


# Domain randomisation of the simulator corpus (see models/README.md): steps and their shares.
CORPUS_STEPS = (15.0, 30.0, 60.0, 120.0, 300.0)
CORPUS_STEP_SHARES = (0.15, 0.15, 0.3, 0.15, 0.25)
# Share of fleets that get the extra benign families (the rest keep the plain simulator).
BENIGN_EXTRA_SHARE = 0.75
# Signals where each simulator family's build-up shows first (exporter/source/sim_scenarios.py).
PRECURSOR_SIGNALS: dict[str, tuple[str, ...]] = {
    "memory_leak": ("memory",),
    "disk_fill": ("disk",),
    "cpu_saturation": ("cpu", "load"),
    "connection_exhaustion": ("connections",),
    "network_degradation": ("network_errors",),
    "cascade": ("latency_seconds", "error_ratio", "connections"),
}
# Replay every 10 minutes of simulated time, whatever the step.
CORPUS_STRIDE_SECONDS = 600.0


@dataclass(frozen=True)
class FleetPlan:
    """One simulated fleet of the corpus: `simulate_fleet` arguments and the domain draw."""

    seed: int
    entities: int
    start: float
    duration: float
    step: float
    families: tuple[str, ...] | None  # None: every failure family; (): a benign-only fleet
    failure_fraction: float
    missing: bool
    benign: tuple[str, ...]  # extra benign families (simulator.BENIGN_FAMILIES)
    randomise: bool  # re-express the signals (randomise_domain) with `seed`


def corpus_plan(fleets: int, seed: int, randomise: bool = True) -> list[FleetPlan]:
    """The fleets `simulator_corpus` builds, drawn (cheaply) from `seed`."""
    from exporter.source.simulator import BENIGN_FAMILIES

    rng = np.random.default_rng(seed)
    plans = []
    for i in range(fleets):
        n_ent = int(rng.choice([8, 12, 16, 24]))
        days = float(rng.choice([1.5, 2.0, 3.0]))
        step = 60.0
        benign: tuple[str, ...] = ()
        if randomise:
            step = float(rng.choice(CORPUS_STEPS, p=CORPUS_STEP_SHARES))
            if rng.random() < BENIGN_EXTRA_SHARE:
                benign = BENIGN_FAMILIES
        plans.append(FleetPlan(
            seed * 1000 + i, n_ent, 1_700_000_000.0 + i * 86400 * 7, days * 86400, step,
            # Every 6th fleet is benign: false alarms must be learned from quiet fleets too.
            () if i % 6 == 5 else None, float(rng.uniform(0.25, 0.5)),
            bool(rng.random() < 0.7), benign, randomise))
    return plans


def simulator_corpus(fleets: int, seed: int, randomise: bool = True,
                     plans: list[FleetPlan] | None = None) -> Corpus:
    """A varied simulated corpus: all families, benign fleets, sizes and noise levels.

    randomise: per fleet, draw the step from CORPUS_STEPS, add the extra benign families
    (`simulator.BENIGN_FAMILIES`) to BENIGN_EXTRA_SHARE of the fleets, and re-express the
    signals (`randomise_domain`: units, offsets, direction, capacity and kind dropped, signal
    subsets, noise with heavy tails, extra seasonality). False gives the fixed 60 s corpus of
    models up to 0.1 (the same fleets for the same seed). plans: the fleets to build instead
    of `corpus_plan(fleets, seed, randomise)` (tests use small ones).
    """
    from dataclasses import replace

    from exporter.source import simulator

    base = simulator.demo_config().analysis()
    plans = corpus_plan(fleets, seed, randomise) if plans is None else plans
    histories, analyses, strides = [], [], []
    steps: dict[str, int] = {}
    domain_counts: dict[str, int] = {}
    for i, p in enumerate(plans):
        fleet = simulator.simulate_fleet(p.seed, p.entities, p.start, p.duration, step=p.step,
                                         families=p.families, failure_fraction=p.failure_fraction,
                                         missing=p.missing, benign=p.benign)
        h = history_from_fleet(fleet, group=i)
        analysis = replace(base, step=Duration(p.step))
        if p.randomise:
            h, analysis, changes = randomise_domain(h, analysis, np.random.default_rng(p.seed))
            for key in changes:
                domain_counts[key] = domain_counts.get(key, 0) + 1
        histories.append(h)
        analyses.append(analysis)
        strides.append(max(1, int(round(CORPUS_STRIDE_SECONDS / p.step))))
        steps[format_duration(p.step)] = steps.get(format_duration(p.step), 0) + 1
    seeds = f"{plans[0].seed}..{plans[-1].seed}" if plans else "none"
    desc = (f"simulator corpus: {len(plans)} fleets (seeds {seeds}, every 6th benign), "
            f"{sum(len(h.entities) for h in histories)} entities, "
            f"{sum(len(h.inc_start) for h in histories)} incidents, families "
            f"{', '.join(simulator.FAMILIES)}, 1.5-3 days")
    if not any(p.randomise or p.benign or p.step != 60 for p in plans):
        return Corpus(histories, base, desc + " at 60 s")
    benign_fleets = sum(1 for p in plans if p.benign)
    desc += (f"; domain-randomised: steps {steps} (fleets per step), extra benign families on "
             f"{benign_fleets} fleets")
    domain = {"steps": steps, "extra_benign_fleets": benign_fleets,
              "benign_families": list(simulator.BENIGN_FAMILIES),
              "signal_changes_fleets": dict(sorted(domain_counts.items()))}
    return Corpus(histories, base, desc, analyses, strides, domain)


def randomise_domain(h: History, analysis: AnalysisConfig, rng: np.random.Generator
                     ) -> tuple[History, AnalysisConfig, list[str]]:
    """Re-express one fleet's signals as another fleet might: same events, other numbers.

    Per fleet: extra daily seasonality (amplitude 0.1-0.6, any phase) and multiplicative noise
    (sigma 0.01-0.1, Student-t tails with 2-5 degrees of freedom) on signals without a
    capacity, small additive heavy-tailed noise on those with one (never pushed past 0.9 of
    the capacity unless already there); per signal: a unit scale 10^(-2..3) (the capacity
    scales with it), a "free" view (capacity - used, direction down), the capacity or the kind
    dropped (kind "other"), an offset on signals without capacity (absolute units); and a
    random subset of 3 or more signals. Returns the new history, analysis and the names of
    the changes made (for the card).
    """
    from dataclasses import replace

    values = np.array(h.values, dtype=np.float64, copy=True)  # [E, S, T]
    sigs = {s.name: s for s in analysis.signals}
    changes: list[str] = []
    tday = h.timestamps / 86400.0
    if rng.random() < 0.4:
        amp, phase = rng.uniform(0.1, 0.6), rng.uniform(0, 1)
        season = 1 + amp * np.cos(2 * np.pi * (tday - phase))
        changes.append("seasonality")
    else:
        season = None
    noise_sigma = float(rng.uniform(0.01, 0.1)) if rng.random() < 0.6 else 0.0
    noise_df = float(rng.choice([2.0, 3.0, 5.0]))
    if noise_sigma:
        changes.append("noise")
    keep = np.ones(len(h.signals), dtype=bool)
    if rng.random() < 0.3 and len(h.signals) > 3:
        k = int(rng.integers(3, len(h.signals)))
        keep[:] = False
        keep[rng.choice(len(h.signals), k, replace=False)] = True
        changes.append("signal_subset")
    new_sigs = []
    for j, name in enumerate(h.signals):
        s = sigs[name]
        x = values[:, j]
        cap = s.capacity
        u = rng.random(6)
        if noise_sigma:
            tail = np.clip(rng.standard_t(noise_df, x.shape), -20, 20) * noise_sigma
            if cap:
                x = np.clip(x + 0.2 * tail * cap, 0, np.maximum(x, 0.9 * cap))
            else:
                x = x * np.exp(tail)
        if season is not None and not cap:
            x = x * season[None, :]
        direction = s.direction
        kind = s.kind
        if cap and u[0] < 0.25:
            x, direction = cap - x, "down"
            changes.append("free_view")
        if cap and u[1] < 0.2 and direction == "up":
            cap = None
            changes.append("capacity_dropped")
        elif not cap and u[2] < 0.25:
            x = x + float(rng.uniform(0.5, 5.0)) * (float(np.nan_to_num(np.nanmedian(np.abs(x)))) or 1.0)
            changes.append("offset")
        if u[3] < 0.5:
            scale = float(10 ** rng.uniform(-2, 3))
            x = x * scale
            cap = cap * scale if cap else cap
            changes.append("units")
        if u[4] < 0.1:
            kind = "other"
            changes.append("kind_other")
        values[:, j] = x
        new_sigs.append(replace(s, capacity=cap, direction=direction, kind=kind))
    names = tuple(n for n, k in zip(h.signals, keep, strict=True) if k)
    # A failure whose build-up shows only in signals the subset dropped has no precursor in
    # this fleet's data: mark it unpredictable (left out of training, kept in test scores).
    predictable = np.array([bool(p) and bool(set(PRECURSOR_SIGNALS.get(str(h.family[e]), names))
                                             & set(names))
                            for p, e in zip(h.inc_predictable, h.inc_entity, strict=True)],
                           dtype=bool)
    new = History(h.label_names, h.entities, names, h.timestamps, values[:, keep],
                  h.inc_start, h.inc_end, h.inc_entity, predictable, h.family, h.group)
    signals = tuple(s for s, k in zip(new_sigs, keep, strict=True) if k)
    return new, replace(analysis, signals=signals), sorted(set(changes))


def history_from_fleet(fleet: SimulatedFleet, group: int) -> History:
    """A simulated fleet, its ground truth and each entity's failure family as one `History`."""
    entities = tuple((e,) if isinstance(e, str) else tuple(e) for e in fleet.entities)
    s, e, ent, pred = incidents_to_arrays(list(fleet.incidents), entities)
    family = np.array(list(fleet.scenarios), dtype=object)
    return History(tuple(fleet.label_names), entities, tuple(fleet.signals),
                   np.asarray(fleet.timestamps, float), np.asarray(fleet.values, float),
                   s, e, ent, pred, family, np.full(len(entities), group, dtype=np.int64))
