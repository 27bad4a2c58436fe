"""The simulator's generative model: a benign fleet, then failure scenarios written over it.

Everything is vectorised over entities ([E, T] arrays per signal); per-event Python loops only
touch the few index ranges an event covers. All randomness comes from one `numpy.random.Generator`
drawn in a fixed order, so a seed fixes the fleet.

Units follow node_exporter-style ratios so the `node` preset reads the same numbers back:
cpu/memory/disk/connections/error_ratio are 0..1, load is load5 per core, network_errors is
errors+drops per second, network_traffic bytes per second, latency_seconds a p99 in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from exporter.incidents import Incident

SIGNALS: tuple[str, ...] = (
    "cpu",
    "memory",
    "disk",
    "load",
    "network_errors",
    "network_traffic",
    "latency_seconds",
    "error_ratio",
    "connections",
)
# The level at which the signal's resource is exhausted (None: no hard ceiling).
CAPACITIES: tuple[float | None, ...] = (1.0, 1.0, 1.0, None, None, None, None, None, 1.0)

FAMILIES: tuple[str, ...] = (
    "memory_leak",
    "disk_fill",
    "cpu_saturation",
    "connection_exhaustion",
    "network_degradation",
    "cascade",
    "sudden_crash",
)
BENIGN = "benign"
# Extra benign behaviour (opt-in: `simulate_fleet(..., benign=BENIGN_FAMILIES)`): healthy hosts
# that move, spike, fill and empty, but never fail. Written after the failures, on hosts whose
# scenario is BENIGN (entity-agnostic ones, marked *, on every host); each is an `Event` kind.
BENIGN_FAMILIES: tuple[str, ...] = (
    "deploy_warmup",  # restart: short gap, cpu spike, latency and memory cache warming back up
    "rollout_vanish",  # planned rollout: the old host's series end, or a new host's begin
    "batch_heavy",  # daytime batch job driving cpu to 0.85-0.97 and load up for 0.5-2 h
    "nightly_backup",  # 1-3 h at night: traffic x2-4, cpu and latency up, snapshot on disk
    "cron_restart_creep",  # memory creeps up, a cron restart every 4-24 h resets it
    "plateau_drift",  # memory/disk/connections climb 0.15-0.4 then level off below 0.88
    "sawtooth_disk",  # disk fills lo -> hi (<= 0.88) over 0.5-6 h, then GC/rotation empties it
    "sawtooth_memory",  # heap grows lo -> hi (<= 0.88) over 10 min-3 h, then a full GC
    "daily_surge",  # the same 0.5-2 h traffic surge every day (x1.5-2.5)
    "chronic_errors",  # errors/drops at a steady low level, with bursts
    "scrape_gaps",  # * long scrape outages (10-60 min) and ragged single misses
    "counter_reset",  # * rate signals read 0 or spike for one sample (a counter reset)
    "noisy_entity",  # * heavy-tailed noise and frequent outliers on every signal
)

_HOUR = 3600.0
_DAY = 86400.0
_IDX = {name: i for i, name in enumerate(SIGNALS)}


class SimulationError(ValueError):
    """Bad simulator parameters (unknown family, empty fleet, non-positive step...)."""


@dataclass(frozen=True)
class Event:
    """A benign event written into the fleet (surge, deploy, batch, drift, outage)."""

    start: float
    end: float
    kind: str
    entities: tuple[int, ...]


@dataclass(frozen=True)
class FailurePlan:
    """One failure to inject: entity row, family, failure time, precursor and downtime.

    `variant` picks the shape of the build-up: "linear" or "accelerating".
    """

    entity: int
    family: str
    t_fail: float
    precursor: float
    down: float
    variant: str = "linear"


@dataclass(frozen=True)
class Surge:
    """A benign traffic surge on one service (`factor` times the normal load)."""

    service: int
    start: float
    duration: float
    factor: float


def _iir1(x: np.ndarray, a: float, y0: np.ndarray) -> np.ndarray:
    """y[t] = a*y[t-1] + x[t] along axis 1, from y[-1] = y0 (a loop over time, not entities).

    Kept in numpy: importing scipy.signal alone costs ~1.7 s, ten times the whole simulation.
    """
    y = np.empty_like(x)
    prev = y0.astype(float)
    for k in range(x.shape[1]):
        prev = a * prev + x[:, k]
        y[:, k] = prev
    return y


def _ar1(rng: np.random.Generator, shape: tuple[int, int], step: float, tau: float,
         sigma: float | np.ndarray) -> np.ndarray:
    """Smooth stationary noise: AR(1) with time constant `tau` seconds and std `sigma`."""
    a = math.exp(-step / tau)
    sig = np.broadcast_to(np.asarray(sigma, dtype=float), (shape[0],))[:, None]
    w = rng.standard_normal(shape) * math.sqrt(1 - a * a)
    x0 = rng.standard_normal(shape[0])  # start in the stationary state instead of at zero
    return _iir1(w, a, x0) * sig


def _ewma(x: np.ndarray, step: float, tau: float) -> np.ndarray:
    """Exponential moving average along time (how the kernel smooths load5)."""
    a = math.exp(-step / tau)
    return _iir1((1 - a) * x, a, x[:, 0])


def _bump(ts: np.ndarray, start: float, duration: float, rise: float, fall: float) -> np.ndarray:
    """0..1 plateau from `start` for `duration`, with linear ramps `rise` and `fall`."""
    up = np.clip((ts - start) / max(rise, 1.0), 0, 1)
    down = np.clip((start + duration + fall - ts) / max(fall, 1.0), 0, 1)
    return np.minimum(up, down)


def _soft_cap(x: np.ndarray, knee: float, cap: float) -> np.ndarray:
    """Identity below `knee`, then bends smoothly towards `cap` (never reaches it)."""
    over = np.maximum(x - knee, 0)
    return np.where(x > knee, knee + (cap - knee) * np.tanh(over / (cap - knee)), x)


def shape_curve(s: np.ndarray, variant: str) -> np.ndarray:
    """Build-up shape on s in [0, 1] -> [0, 1]: linear, or accelerating (exponential)."""
    if variant == "accelerating":
        k = 3.0
        return np.expm1(k * s) / math.expm1(k)
    return s


# --------------------------------------------------------------------------------------------
# Failure plans


def plan_failures(rng: np.random.Generator, services: np.ndarray, ts: np.ndarray, step: float,
                  families: tuple[str, ...], fraction: float) -> list[FailurePlan]:
    """Random failures: `fraction` of the entities fail once, families dealt round-robin."""
    n_ent = len(services)
    n_fail = int(round(fraction * n_ent)) if families else 0
    if n_fail == 0 or len(ts) < 2:
        return []
    t0, t_end = float(ts[0]), float(ts[-1])
    order = [families[i] for i in rng.permutation(len(families))]
    plans: list[FailurePlan] = []
    claimed: set[int] = set()
    for entity in rng.permutation(n_ent):
        if len(plans) >= n_fail:
            break
        entity = int(entity)
        if entity in claimed:
            continue
        family = order[len(plans) % len(order)]
        lo_p = _HOUR if family == "memory_leak" else 0.5 * _HOUR
        precursor = 0.0 if family == "sudden_crash" else float(rng.uniform(lo_p, 6 * _HOUR))
        down = float(rng.uniform(600, 3600))
        variant = "accelerating" if rng.random() < 0.5 else "linear"
        lo = t0 + precursor + 0.5 * _HOUR
        hi = t_end - down - 600
        if hi < lo and family != "sudden_crash":
            # A short fleet: shrink the build-up to fit, but never below 30 minutes.
            precursor = min(precursor, 0.9 * (t_end - down - 600 - 0.5 * _HOUR - t0))
            lo = t0 + precursor + 0.5 * _HOUR
            if precursor < 0.5 * _HOUR:
                continue
        if hi < lo:
            continue
        t_fail = float(np.round(rng.uniform(lo, hi) / step) * step)
        claimed.add(entity)
        if family == "cascade":
            # Dependents (same service) degrade with their dependency; they fail no other way.
            claimed.update(int(i) for i in np.flatnonzero(services == services[entity]))
        plans.append(FailurePlan(entity, family, t_fail, precursor, down, variant))
    return plans


def random_surges(rng: np.random.Generator, n_services: int, ts: np.ndarray) -> list[Surge]:
    """Benign traffic surges: about two per service per three days, 20-90 minutes each."""
    t0, t_end = float(ts[0]), float(ts[-1])
    days = max((t_end - t0) / _DAY, 1e-6)
    surges = []
    for svc in range(n_services):
        for _ in range(int(rng.poisson(0.7 * days))):
            surges.append(Surge(svc, float(rng.uniform(t0, t_end)),
                                float(rng.uniform(20, 90)) * 60, float(rng.uniform(1.3, 1.9))))
    return surges


# --------------------------------------------------------------------------------------------
# The benign fleet


@dataclass
class Generated:
    """The generative model's output: values [E, S, T], ground-truth incidents, scripted events
    (failures and benign episodes) and each entity's scenario family.
    """
    values: np.ndarray  # [E, S, T]
    incidents: list[Incident]
    events: list[Event]
    scenarios: list[str]


def generate(rng: np.random.Generator, ts: np.ndarray, step: float, services: np.ndarray,
             names: list[str], plans: list[FailurePlan], surges: list[Surge],
             fail_rng: np.random.Generator, missing: bool = True,
             benign: tuple[str, ...] = (), benign_rng: np.random.Generator | None = None,
             ) -> Generated:
    """Values [E, S, T] of a fleet with the given failures and surges, plus ground truth.

    `rng` draws the benign fleet and `fail_rng` the failures' details, so the same seed gives
    the same benign background whichever failures are injected. `benign` names extra benign
    families (BENIGN_FAMILIES) drawn from `benign_rng`; with none, nothing else is drawn.
    """
    n_ent, n_t = len(services), len(ts)
    n_svc = int(services.max()) + 1 if n_ent else 0
    shape = (n_ent, n_t)
    events: list[Event] = []
    tday = ts / _DAY

    # -- load: daily cycle per service, entity-specific phase/amplitude, correlated noise.
    svc_amp = rng.uniform(0.2, 0.5, n_svc)
    svc_phase = rng.uniform(0.45, 0.7, n_svc)  # daily peak between 11:00 and 17:00 UTC
    amp = svc_amp[services] * rng.uniform(0.8, 1.2, n_ent)
    phase = svc_phase[services] + rng.normal(0, 0.03, n_ent)
    svc_noise = _ar1(rng, (n_svc, n_t), step, 1800, 0.06)
    surge = np.ones((n_svc, n_t))
    for s in surges:
        bump = _bump(ts, s.start, s.duration, 300, 600)
        surge[s.service] *= 1 + (s.factor - 1) * bump
        members = tuple(int(i) for i in np.flatnonzero(services == s.service))
        events.append(Event(s.start, s.start + s.duration, "traffic_surge", members))
    load = 1 + amp[:, None] * np.cos(2 * np.pi * (tday[None, :] - phase[:, None]))
    load = load * (1 + svc_noise[services]) * surge[services]
    load = load + _ar1(rng, shape, step, 600, 0.05)
    load = np.maximum(load, 0.05)

    # -- restarts: rolling deploys per service, plus recoveries after failures.
    restart = np.zeros(shape, dtype=bool)
    days = max((ts[-1] - ts[0]) / _DAY, 1e-6) if n_t else 0.0
    for svc in range(n_svc):
        team = np.flatnonzero(services == svc)
        for _ in range(int(rng.poisson(0.8 * days)) if len(team) else 0):
            t_dep = float(rng.uniform(ts[0], ts[-1]))
            offsets = t_dep + np.cumsum(rng.uniform(60, 240, len(team)))
            for ent, t_r in zip(team.tolist(), offsets.tolist(), strict=True):
                k = int(np.searchsorted(ts, t_r))
                if k < n_t:
                    restart[ent, k] = True
            events.append(Event(t_dep, float(offsets[-1]), "deploy", tuple(team.tolist())))
    for p in plans:
        k = int(np.searchsorted(ts, p.t_fail + p.down))
        if k < n_t:
            restart[p.entity, k] = True
    idx = np.arange(n_t)
    last = np.maximum.accumulate(np.where(restart, idx[None, :], -10**9), axis=1)
    # Before the first restart in range the process has been up a random while already.
    uptime0 = rng.uniform(2, 48, n_ent) * _HOUR
    since = np.where(last >= 0, (idx[None, :] - last) * step, uptime0[:, None] + idx[None, :] * step)
    restart_spike = np.exp(-since / rng.uniform(120, 300, n_ent)[:, None])

    # -- nightly batch jobs on a third of the hosts.
    batch = np.zeros(shape)
    has_batch = rng.random(n_ent) < 0.35
    batch_hour = rng.uniform(1, 4, n_ent)
    batch_len = rng.uniform(30, 90, n_ent) * 60
    for ent in np.flatnonzero(has_batch).tolist():
        first_day = math.floor(ts[0] / _DAY) - 1
        for day in range(first_day, math.floor(ts[-1] / _DAY) + 1):
            t_b = day * _DAY + batch_hour[ent] * _HOUR
            if t_b + batch_len[ent] < ts[0] or t_b > ts[-1]:
                continue
            batch[ent] = np.maximum(batch[ent], _bump(ts, t_b, batch_len[ent], 120, 120))
            events.append(Event(t_b, t_b + batch_len[ent], "batch_job", (int(ent),)))

    # -- benign drifts that plateau (logistic step in one signal).
    drift = {name: np.zeros(shape) for name in ("cpu", "memory", "disk", "latency_seconds")}
    for ent in np.flatnonzero(rng.random(n_ent) < 0.25).tolist():
        name = ("cpu", "memory", "disk", "latency_seconds")[int(rng.integers(4))]
        t_c = float(rng.uniform(ts[0], ts[-1]))
        width = float(rng.uniform(0.3, 1.5)) * _HOUR
        size = float(rng.uniform(0.05, 0.15)) if name != "latency_seconds" else float(
            rng.uniform(0.2, 0.6))
        drift[name][ent] = size / (1 + np.exp(-(ts - t_c) / width))
        events.append(Event(t_c - 2 * width, t_c + 2 * width, f"drift_{name}", (int(ent),)))

    # -- cpu: heterogeneous baselines (idle 10 % .. busy 60 %), heteroscedastic noise, outliers.
    idle = rng.uniform(0.02, 0.08, n_ent)
    level = rng.uniform(0.08, 0.45, n_ent)
    cpu = idle[:, None] + (level - idle)[:, None] * load
    cpu = cpu + rng.uniform(0.25, 0.45, n_ent)[:, None] * batch + 0.3 * restart_spike
    cpu = cpu * (1 + drift["cpu"] / np.maximum(level, 0.1)[:, None])
    cpu = cpu + rng.standard_normal(shape) * (0.01 + 0.04 * cpu)
    cpu = _outliers(rng, cpu, 0.001, add=(0.15, 0.4))
    cpu = np.clip(_soft_cap(cpu, 0.85, 0.98), 0.005, 1.0)

    # -- memory: base + cache warming since the last restart + GC sawtooth + load coupling.
    mem_base = rng.uniform(0.12, 0.5, n_ent)
    cache = rng.uniform(0.03, 0.15, n_ent)[:, None] * (
        1 - np.exp(-since / (rng.uniform(1, 6, n_ent) * _HOUR)[:, None]))
    gc = rng.random(n_ent) < 0.5
    gc_amp = np.where(gc, rng.uniform(0.02, 0.08, n_ent), 0.0)
    gc_period = rng.uniform(5, 40, n_ent) * 60
    sawtooth = ((ts[None, :] + rng.uniform(0, 1, n_ent)[:, None] * gc_period[:, None])
                % gc_period[:, None]) / gc_period[:, None]
    memory = mem_base[:, None] + cache + gc_amp[:, None] * sawtooth + 0.03 * (load - 1)
    memory = memory + drift["memory"] + _ar1(rng, shape, step, 900, 0.006)
    memory = np.clip(memory, 0.02, 0.9)

    # -- disk: base + log growth rotated nightly + batch temp files + drift.
    disk_base = rng.uniform(0.15, 0.6, n_ent)
    growth = rng.uniform(0.0, 0.03, n_ent)
    rot = rng.uniform(0, _DAY, n_ent)
    logs = growth[:, None] * (((ts[None, :] - rot[:, None]) % _DAY) / _DAY)
    disk = disk_base[:, None] + logs + rng.uniform(0.02, 0.08, n_ent)[:, None] * batch
    disk = disk + drift["disk"] + rng.standard_normal(shape) * 0.0008
    disk = np.clip(disk, 0.01, 0.9)

    # -- load5 per core: smoothed run queue, grows faster than cpu near saturation.
    runq = cpu * rng.uniform(0.7, 1.3, n_ent)[:, None] + 6 * np.maximum(cpu - 0.9, 0) ** 1.5
    load5 = np.maximum(_ewma(runq, step, 300) + rng.standard_normal(shape) * 0.02, 0.0)

    # -- network: traffic follows load; errors are rare, bursty, mostly tiny.
    scale = 10 ** rng.uniform(5, 7.5, n_ent)
    traffic = scale[:, None] * load * (1 + 0.5 * batch)
    traffic = traffic * np.exp(rng.standard_normal(shape) * (0.05 + 0.05 * load))
    traffic = _outliers(rng, traffic, 0.001, mul=(1.5, 3.0))
    err_base = 10 ** rng.uniform(-3, -1, n_ent)
    # Whole errors counted per step (mostly zero), bursty through a gamma-mixed rate.
    net_rate = _outliers(rng, err_base[:, None] * load * rng.gamma(0.5, 2.0, shape), 0.001,
                         mul=(20, 200))
    net_err = rng.poisson(net_rate * step) / step

    # -- latency p99: queueing on cpu, lognormal noise, outliers; errors/connections follow it.
    lat_base = rng.uniform(0.03, 0.3, n_ent)
    latency = lat_base[:, None] * (0.7 + 0.3 * load) / (1 - 0.75 * np.minimum(cpu, 0.97))
    latency = latency * (1 + drift["latency_seconds"])
    latency = latency * np.exp(rng.standard_normal(shape) * (0.08 + 0.04 * load))
    latency = _outliers(rng, latency, 0.001, mul=(2, 5))
    # Relative to the host's own typical latency: errors and pool use follow slowness.
    # (From parameters, not a statistic of the series: later events must not shift the past.)
    rel = latency / (lat_base / (1 - 0.75 * level))[:, None]
    err_ratio = 10 ** rng.uniform(-4, -2.5, n_ent)[:, None] * np.exp(
        rng.standard_normal(shape) * 0.5) * rel ** 1.5
    err_ratio = np.clip(_outliers(rng, err_ratio, 0.0005, mul=(5, 20)), 0, 1)
    conn_base = rng.uniform(0.06, 0.25, n_ent)  # pools sized for the daily peak, not surges
    conns = conn_base[:, None] * load * rel ** 0.5 * np.exp(rng.standard_normal(shape) * 0.05)
    conns = np.clip(_soft_cap(conns, 0.7, 0.92), 0, 1)

    sig = {
        "cpu": cpu, "memory": memory, "disk": disk, "load": load5, "network_errors": net_err,
        "network_traffic": traffic, "latency_seconds": latency, "error_ratio": err_ratio,
        "connections": conns,
    }
    incidents: list[Incident] = []
    scenarios = [BENIGN] * n_ent
    down = np.zeros(shape, dtype=bool)
    for p in plans:
        incidents.extend(_apply_failure(fail_rng, p, ts, services, names, sig, down, scenarios))
    extra_gaps = np.zeros(shape, dtype=bool)
    if benign:
        extra_gaps = apply_benign(benign_rng or np.random.default_rng(0), ts, step, services,
                                  sig, scenarios, benign, events)

    values = np.stack([sig[name] for name in SIGNALS], axis=1)
    values[extra_gaps[:, None, :].repeat(len(SIGNALS), axis=1)] = np.nan
    if missing:
        gaps = _missing(rng, ts, step, n_ent, events)
        values[gaps[:, None, :].repeat(len(SIGNALS), axis=1)] = np.nan
        # One signal's query failing alone (rarer than a whole failed scrape).
        values[rng.random(values.shape) < 0.0003] = np.nan
    values[down[:, None, :].repeat(len(SIGNALS), axis=1)] = np.nan
    incidents.sort(key=lambda i: (i.start, i.entity))
    return Generated(values, incidents, events, scenarios)


def apply_benign(rng: np.random.Generator, ts: np.ndarray, step: float, services: np.ndarray,
                 sig: dict[str, np.ndarray], scenarios: list[str], families: tuple[str, ...],
                 events: list[Event]) -> np.ndarray:
    """Write the extra benign `families` into `sig` ([E, T] per signal, in place).

    Every draw is made for every host, in a fixed order, whichever hosts end up healthy, so a
    seed fixes the draws. A host-specific family lands on a host whose scenario is BENIGN with
    probability 0.35 (several may stack); the entity-agnostic ones (scrape_gaps, counter_reset,
    noisy_entity) on any host with probability 0.2. Returns the [E, T] mask of extra
    missing scrapes. Events are appended with the family as `kind`.
    """
    unknown = [f for f in families if f not in BENIGN_FAMILIES]
    if unknown:
        raise SimulationError(f"unknown benign family {', '.join(map(repr, unknown))} "
                              f"(known: {', '.join(BENIGN_FAMILIES)})")
    n_ent, n_t = sig["cpu"].shape
    gaps = np.zeros((n_ent, n_t), dtype=bool)
    if n_t < 2:
        return gaps
    t0, t1 = float(ts[0]), float(ts[-1])
    days = max((t1 - t0) / _DAY, 1e-6)
    healthy = np.array([s == BENIGN for s in scenarios])
    anywhere = {"scrape_gaps", "counter_reset", "noisy_entity"}
    hours = (ts % _DAY) / _HOUR

    def note(kind: str, start: float, end: float, ent: int) -> None:
        events.append(Event(float(start), float(end), kind, (int(ent),)))

    for fam in BENIGN_FAMILIES:  # fixed order: draws do not depend on which are enabled
        hit = rng.random(n_ent) < (0.2 if fam in anywhere else 0.35)
        u = rng.random((n_ent, 8))  # per-host parameters of this family
        # A stream per host: other hosts do not shift it.
        sub_seeds = np.asarray(rng.integers(2**63, size=n_ent), dtype=np.int64)
        if fam not in families:
            continue
        for e in np.flatnonzero(hit & (healthy | (fam in anywhere))).tolist():
            _benign_one(fam, np.random.default_rng(int(sub_seeds[e])), u[e], e, ts, step, hours,
                        days, sig, gaps, note)
    # Healthy hosts stay below the levels a failure reaches (the simulator's own ceilings).
    for name, top in (("cpu", 0.98), ("memory", 0.9), ("disk", 0.9), ("connections", 0.92),
                      ("error_ratio", 1.0)):
        sig[name][healthy] = np.clip(sig[name][healthy], 0.0, top)
        np.clip(sig[name], 0.0, 1.0, out=sig[name])
    return gaps


def _benign_one(fam: str, rng: np.random.Generator, u: np.ndarray, e: int, ts: np.ndarray,
                step: float, hours: np.ndarray, days: float, sig: dict[str, np.ndarray],
                gaps: np.ndarray, note: Callable[[str, float, float, int], None]) -> None:
    """One benign family on host `e`; `u` holds 8 uniform draws for its parameters."""
    t0, t1 = float(ts[0]), float(ts[-1])
    n_t = len(ts)

    def span(lo: float, hi: float, x: float) -> float:
        return lo + (hi - lo) * float(x)

    if fam == "deploy_warmup":
        for _ in range(max(1, int(rng.poisson(1.0 * days)))):
            t_r = float(rng.uniform(t0, t1))
            since = ts - t_r
            after = since >= 0
            warm = np.where(after, np.exp(-np.maximum(since, 0) / span(300, 1800, u[0])), 0.0)
            gaps[e, (since >= 0) & (since < span(30, 180, u[1]))] = True
            sig["cpu"][e] += 0.35 * warm * (since < 900)
            sig["latency_seconds"][e] *= 1 + span(0.5, 3.0, u[2]) * warm
            mem = sig["memory"][e]
            sig["memory"][e] = np.where(after, mem - span(0.05, 0.2, u[3]) * warm, mem)
            note(fam, t_r, t_r + 1800, e)
    elif fam == "rollout_vanish":
        t_r = float(rng.uniform(t0 + 0.2 * (t1 - t0), t1 - 0.1 * (t1 - t0)))
        if u[0] < 0.5:
            gaps[e, ts >= t_r] = True  # old host drained and removed
            note(fam, t_r, t1, e)
        else:
            gaps[e, ts < t_r] = True  # new host joins mid-way, cold
            sig["latency_seconds"][e] *= 1 + 1.5 * np.exp(-np.clip(ts - t_r, 0, None) / 900)
            note(fam, t0, t_r, e)
    elif fam == "batch_heavy":
        for _ in range(max(1, int(rng.poisson(1.2 * days)))):
            t_b, dur = float(rng.uniform(t0, t1)), span(1800, 7200, rng.random())
            bump = _bump(ts, t_b, dur, 300, 300)
            cpu = sig["cpu"][e]
            sig["cpu"][e] = cpu + (span(0.85, 0.97, u[1]) - cpu).clip(0) * bump
            sig["load"][e] += span(0.5, 2.0, u[2]) * bump
            sig["latency_seconds"][e] *= 1 + 0.5 * bump
            note(fam, t_b, t_b + dur, e)
    elif fam == "nightly_backup":
        start_h, dur = span(0, 5, u[0]), span(1, 3, u[1]) * _HOUR
        snap = span(0.02, 0.12, u[2])
        for day in range(math.floor(t0 / _DAY) - 1, math.floor(t1 / _DAY) + 1):
            t_b = day * _DAY + start_h * _HOUR
            if t_b + dur < t0 or t_b > t1:
                continue
            bump = _bump(ts, t_b, dur, 300, 300)
            sig["network_traffic"][e] *= 1 + span(1, 3, u[3]) * bump
            sig["cpu"][e] += span(0.1, 0.3, u[4]) * bump
            sig["load"][e] += span(0.2, 1.0, u[4]) * bump
            sig["latency_seconds"][e] *= 1 + span(0.2, 1.0, u[5]) * bump
            # The snapshot grows through the backup and is deleted when it ends.
            inside = (ts >= t_b) & (ts < t_b + dur)
            sig["disk"][e, inside] += snap * (ts[inside] - t_b) / dur
            note(fam, t_b, t_b + dur, e)
    elif fam == "cron_restart_creep":
        period = span(4, 24, u[0]) * _HOUR
        phase = float(u[1]) * period
        mem = sig["memory"][e]
        room = max(0.05, 0.85 - float(np.nanmax(mem)))
        age = (ts - t0 + phase) % period
        sig["memory"][e] = mem + span(0.4, 1.0, u[2]) * room * age / period
        sig["latency_seconds"][e] *= 1 + span(0.0, 0.5, u[3]) * age / period
        first = t0 + (period - phase)
        for t_r in np.arange(first, t1, period).tolist():
            gaps[e, (ts >= t_r) & (ts < t_r + span(30, 120, u[4]))] = True
        note(fam, t0, t1, e)
    elif fam == "plateau_drift":
        name = ("memory", "disk", "connections")[int(u[0] * 3)]
        x = sig[name][e]
        top = span(0.6, 0.88, u[1])
        size = max(0.0, min(span(0.15, 0.4, u[2]), top - float(np.nanmax(x))))
        t_c, width = float(rng.uniform(t0, t1)), span(0.5, 4, u[3]) * _HOUR
        sig[name][e] = x + size / (1 + np.exp(-(ts - t_c) / width))
        note(fam, t_c - 3 * width, t_c + 3 * width, e)
    elif fam in ("sawtooth_disk", "sawtooth_memory"):
        name = "disk" if fam == "sawtooth_disk" else "memory"
        lo_p, hi_p = (0.5, 6.0) if name == "disk" else (1 / 6, 3.0)
        period = span(lo_p, hi_p, u[0]) * _HOUR
        x = sig[name][e]
        hi = span(0.7, 0.88, u[1])
        amp = max(0.05, min(span(0.15, 0.45, u[2]), hi - float(np.nanmedian(x)) - 0.02))
        frac = ((ts - t0 + float(u[3]) * period) % period) / period
        sig[name][e] = np.minimum(x + amp * frac, hi + 0.02)
        note(fam, t0, t1, e)
    elif fam == "daily_surge":
        start_h, dur, factor = span(0, 24, u[0]), span(0.5, 2, u[1]) * _HOUR, span(1.5, 2.5, u[2])
        into = (ts - start_h * _HOUR) % _DAY  # seconds since today's surge began
        bump = np.clip(into / 600, 0, 1) * np.clip((dur + 900 - into) / 900, 0, 1)
        f = 1 + (factor - 1) * bump
        sig["network_traffic"][e] *= f
        sig["cpu"][e] *= 1 + 0.5 * (f - 1)
        sig["load"][e] *= 1 + 0.5 * (f - 1)
        sig["connections"][e] = np.minimum(sig["connections"][e] * f, 0.85)
        sig["latency_seconds"][e] *= 1 + 0.3 * (f - 1)
        note(fam, t0, t1, e)
    elif fam == "chronic_errors":
        level = 10 ** span(-2.5, -1.2, u[0])
        noise = np.exp(rng.standard_normal(n_t) * 0.6)
        burst = rng.random(n_t) < 0.01
        sig["error_ratio"][e] += level * noise * np.where(burst, span(3, 10, u[1]), 1.0)
        sig["network_errors"][e] += rng.poisson(10 ** span(-0.5, 1.5, u[2]) * step, n_t) / step
        note(fam, t0, t1, e)
    elif fam == "scrape_gaps":
        gaps[e] |= rng.random(n_t) < span(0.005, 0.05, u[0])
        for _ in range(int(rng.poisson(2.0 * days))):
            t_o, length = float(rng.uniform(t0, t1)), span(10, 60, rng.random()) * 60
            gaps[e, (ts >= t_o) & (ts < t_o + length)] = True
            note(fam, t_o, t_o + length, e)
    elif fam == "counter_reset":
        for _ in range(max(1, int(rng.poisson(2.0 * days)))):
            k = int(rng.integers(n_t))
            for name in ("network_traffic", "network_errors"):
                sig[name][e, k] = 0.0 if rng.random() < 0.5 else sig[name][e, k] * span(
                    5, 50, rng.random())
            note(fam, float(ts[k]), float(ts[k]), e)
    elif fam == "noisy_entity":
        df = span(1.5, 4.0, u[0])
        level = span(0.03, 0.15, u[1])
        for name in sig:
            x = sig[name][e]
            tail = np.clip(rng.standard_t(df, n_t), -30, 30) * level
            if name in ("cpu", "memory", "disk", "connections"):
                # Ratios: additive, never pushed to the levels a failure reaches.
                sig[name][e] = np.clip(x + 0.2 * tail * np.maximum(x, 0.05), 0,
                                       np.maximum(x, 0.9))
            else:
                sig[name][e] = x * np.exp(tail)
        note(fam, t0, t1, e)


def _outliers(rng: np.random.Generator, x: np.ndarray, prob: float,
              add: tuple[float, float] | None = None,
              mul: tuple[float, float] | None = None) -> np.ndarray:
    """Rare single-sample outliers (additive or multiplicative)."""
    hit = rng.random(x.shape) < prob
    if add is not None:
        return x + hit * rng.uniform(*add, x.shape)
    assert mul is not None
    return x * np.where(hit, rng.uniform(*mul, x.shape), 1.0)


def _missing(rng: np.random.Generator, ts: np.ndarray, step: float, n_ent: int,
             events: list[Event]) -> np.ndarray:
    """Failed scrapes: scattered single samples plus short outages (2-10 min) per entity."""
    gaps = rng.random((n_ent, len(ts))) < 0.001
    days = max((ts[-1] - ts[0]) / _DAY, 1e-6)
    for ent in range(n_ent):
        for _ in range(int(rng.poisson(0.3 * days))):
            t_o = float(rng.uniform(ts[0], ts[-1]))
            length = float(rng.uniform(2, 10)) * 60
            gaps[ent, (ts >= t_o) & (ts < t_o + length)] = True
            events.append(Event(t_o, t_o + length, "scrape_outage", (ent,)))
    return gaps


# --------------------------------------------------------------------------------------------
# Failure families


def _apply_failure(rng: np.random.Generator, p: FailurePlan, ts: np.ndarray,
                   services: np.ndarray, names: list[str], sig: dict[str, np.ndarray],
                   down: np.ndarray, scenarios: list[str]) -> list[Incident]:
    """Write one failure's build-up and downtime; return its incidents."""
    e = p.entity
    pre = (ts >= p.t_fail - p.precursor) & (ts < p.t_fail)
    s = (ts[pre] - (p.t_fail - p.precursor)) / max(p.precursor, 1.0)
    f = shape_curve(s, p.variant)
    # The last 15 % of the build-up: the system starts to visibly suffer.
    late = np.clip((s - 0.85) / 0.15, 0, 1) ** 2
    if p.family not in FAMILIES:
        raise SimulationError(f"unknown failure family {p.family!r}")
    scenarios[e] = p.family
    incidents = [Incident(p.t_fail, p.t_fail + p.down, (names[e],), p.family,
                          p.family != "sudden_crash", p.t_fail - p.precursor)]
    if p.family == "memory_leak":
        m = sig["memory"][e, pre]
        sig["memory"][e, pre] = m + (1.0 - m) * f
        sig["cpu"][e, pre] = np.minimum(sig["cpu"][e, pre] + 0.35 * late, 1.0)  # GC thrash
        sig["latency_seconds"][e, pre] *= 1 + 3 * late
    elif p.family == "disk_fill":
        d = sig["disk"][e, pre]
        sig["disk"][e, pre] = d + (1.0 - d) * f
        sig["error_ratio"][e, pre] = np.minimum(sig["error_ratio"][e, pre] + 0.1 * late, 1)
    elif p.family == "cpu_saturation":
        c = sig["cpu"][e, pre]
        g = s ** 1.3
        sig["cpu"][e, pre] = c + (0.995 - c) * g
        target = rng.uniform(2, 4)
        ld = sig["load"][e, pre]
        sig["load"][e, pre] = ld + (target - ld) * s ** 2
        sig["latency_seconds"][e, pre] *= 1 + 2 * s ** 2 + 30 * late ** 1.5
        sig["error_ratio"][e, pre] = np.minimum(sig["error_ratio"][e, pre] + 0.3 * late, 1)
    elif p.family == "connection_exhaustion":
        c = sig["connections"][e, pre]
        sig["connections"][e, pre] = c + (1.0 - c) * shape_curve(s, p.variant) ** 1.1
        sig["latency_seconds"][e, pre] *= 1 + 1.5 * s + 10 * late
        sig["error_ratio"][e, pre] = np.minimum(sig["error_ratio"][e, pre] + 0.5 * late, 1)
    elif p.family == "network_degradation":
        base = float(np.median(sig["network_errors"][e]))
        peak = rng.uniform(50, 500)
        lo = math.log10(max(base * 10, 1e-2))
        sig["network_errors"][e, pre] += 10 ** (lo + (math.log10(peak) - lo) * f)
        sig["latency_seconds"][e, pre] *= 1 + 2 * s ** 2
        sig["error_ratio"][e, pre] = np.minimum(sig["error_ratio"][e, pre] + 0.4 * s ** 3, 1)
        sig["network_traffic"][e, pre] *= 1 - 0.3 * s ** 2
    elif p.family == "cascade":
        sig["latency_seconds"][e, pre] *= 1 + 3 * f
        sig["error_ratio"][e, pre] = np.minimum(sig["error_ratio"][e, pre] + 0.2 * f ** 3, 1)
        c = sig["connections"][e, pre]
        sig["connections"][e, pre] = c + (0.9 - c) * f
        deps = [int(i) for i in np.flatnonzero(services == services[e]) if i != e][:3]
        for d in deps:
            scenarios[d] = "cascade"
            lag = float(rng.uniform(60, 300))
            start, end = p.t_fail + lag, p.t_fail + p.down + 120
            # Upstream slowness shows, weaker, before the dependency falls over.
            sig["latency_seconds"][d, pre] *= 1 + 0.5 * f
            hit = (ts >= start) & (ts < end)
            sig["latency_seconds"][d, hit] *= rng.uniform(3, 8)
            sig["error_ratio"][d, hit] = np.maximum(sig["error_ratio"][d, hit],
                                                    rng.uniform(0.2, 0.6))
            sig["connections"][d, hit] = np.maximum(sig["connections"][d, hit], 0.85)
            sig["cpu"][d, hit] *= 0.7
            incidents.append(Incident(start, end, (names[d],), "cascade", True,
                                      p.t_fail - p.precursor))
    down[e, (ts >= p.t_fail) & (ts < p.t_fail + p.down)] = True
    return incidents
