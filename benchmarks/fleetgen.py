"""Independent fleet generator: synthetic hosts for EVALUATION ONLY (issue 13, item 1b).

Written from scratch without reading AURA's own simulator, so that figures measured on its
fleets say how AURA does on behaviour it was not built from. Never train or tune on it.

    python benchmarks/fleetgen.py --seed 7 --hosts 48 --days 3 --step 60 --out DIR \
        [--families gc_sawtooth,backup ...] [--benign-only] [--failures N] [--sudden N]

writes into DIR
- `data.csv`: `timestamp,instance,<signals>` (design §5), one row per live instance per step,
  Unix seconds, empty cell = missing sample;
- `incidents.csv`: `start,end,instance,kind` (sudden failures have `sudden` in `kind`);
- `aura.yml`: an AURA config (analysis `hosts`, window 2h, step = --step) for `aura backtest`;
- `truth.json`: per host its role, instances (with lifetimes), benign families and failures
  (precursor start, failure start, end, the signal and the level it reached).

Signals (units as node_exporter / client libraries report them after the usual PromQL):
cpu (busy ratio 0..1), memory (used ratio 0..1), disk (used ratio of / 0..1),
latency_seconds (p99 from a histogram), errors_per_second (5xx rate), tcp_retransmit_ratio
(retransmitted / sent segments), open_connections (count, limit 1024), uptime_seconds (time
since the service process started).

Models (an SRE's view, not fitted to any data): traffic = diurnal cycle (per-host phase, i.e.
the users' time zone) x weekend dip x slow log-normal wander; CPU linear in traffic; p99
latency grows with CPU like an M/M/1 queue (1/(1-u)^0.7); open connections follow Little's law
(traffic x latency); errors and retransmits are Poisson counts turned into a rate over a
2-5 min window; noise is AR(1) with Student-t innovations plus rare outlier spikes (GC pauses,
noisy neighbours); restarts reset uptime, re-warm memory/caches (CPU and latency elevated for
minutes) and leave a scrape gap.

Predictable failures (precursor 30 min - 6 h, log-uniform; --precursor changes the range): memory_leak_oom, disk_full,
connection_pool_exhaustion, cpu_saturation, network_degradation, error_buildup. Each drives its
signal to capacity (or to the level at which the service falls over) exactly at the incident
start, with the side effects seen in practice (GC thrash before OOM, queueing latency,
timeouts); then the service restarts (or the host comes back) after a short outage.
Sudden failures (sudden_crash, sudden_host_down) have no precursor.
Benign families (never incidents): see FAMILIES.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

HOUR = 3600.0
DAY = 86400.0
CONN_LIMIT = 1024.0

# name, capacity, kind, query, number format
SIGNALS: tuple[tuple[str, float | None, str, str, str], ...] = (
    ("cpu", 1.0, "saturation",
     '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))', "%.4f"),
    ("memory", 1.0, "resource",
     "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", "%.4f"),
    ("disk", 1.0, "resource",
     '1 - node_filesystem_avail_bytes{mountpoint="/"} / node_filesystem_size_bytes{mountpoint="/"}',
     "%.4f"),
    ("latency_seconds", None, "latency",
     "histogram_quantile(0.99, sum by (instance, le) (rate(http_request_duration_seconds_bucket[5m])))",
     "%.5g"),
    ("errors_per_second", None, "errors",
     'sum by (instance) (rate(http_requests_total{code=~"5.."}[5m]))', "%.4g"),
    ("tcp_retransmit_ratio", None, "network",
     "rate(node_netstat_Tcp_RetransSegs[5m]) / rate(node_netstat_Tcp_OutSegs[5m])", "%.4g"),
    ("open_connections", CONN_LIMIT, "resource",
     "sum by (instance) (http_server_open_connections)", "%.0f"),
    ("uptime_seconds", None, "other",
     'time() - process_start_time_seconds{job="app"}', "%.0f"),
)
SIGNAL_NAMES = tuple(s[0] for s in SIGNALS)
SIG = {name: i for i, name in enumerate(SIGNAL_NAMES)}
APP_SIGNALS = ("latency_seconds", "errors_per_second", "open_connections", "uptime_seconds")

FAMILIES = (
    "deploy_restart",   # restart with warm-up on working-day deploys
    "rollout",          # old instances vanish, new ones (new instance labels) appear
    "batch_job",        # nightly CPU/memory plateau
    "backup",           # nightly local dump (disk up then freed), upload (retransmits, CPU)
    "cron_restart",     # slow memory creep reset by a scheduled daily restart
    "plateau_drift",    # drift that levels off below capacity
    "gc_sawtooth",      # memory (heap) or disk (tmp/compaction) sawtooth that always recovers
    "log_rotation",     # disk log growth rotated away every 6 h
    "daily_surge",      # traffic surge at the same local time each day
    "chronic_errors",   # constant low-level 5xx and/or retransmits
    "scrape_gaps",      # missing cells, rows and runs of scrapes
    "counter_reset",    # counter resets: uptime drops to 0, one-window rate artefacts
    "noisy",            # very noisy entity
)
PREDICTABLE = ("memory_leak_oom", "disk_full", "connection_pool_exhaustion", "cpu_saturation",
               "network_degradation", "error_buildup")
SUDDEN = ("sudden_crash", "sudden_host_down")
FAILURE_SIGNAL = {"memory_leak_oom": "memory", "disk_full": "disk",
                  "connection_pool_exhaustion": "open_connections", "cpu_saturation": "cpu",
                  "network_degradation": "tcp_retransmit_ratio",
                  "error_buildup": "errors_per_second"}
ROLES = ("web", "db", "cache", "batch")
ROLE_SHARE = (0.45, 0.2, 0.15, 0.2)
PORT = {"web": 9100, "db": 9100, "cache": 9100, "batch": 9100}
# Healthy resource levels stay below these fractions of capacity (benign behaviour never fills).
SOFT_CAP = {"memory": 0.9, "disk": 0.92, "open_connections": 0.85 * CONN_LIMIT}


class FleetgenError(ValueError):
    """Invalid generator arguments (unknown family, too short a span, ...)."""


@dataclass
class Failure:
    kind: str
    instance: str
    precursor_start: float
    start: float
    end: float
    signal: str | None = None
    threshold: float | None = None   # level the signal reaches at `start`
    params: dict = field(default_factory=dict)

    @property
    def sudden(self) -> bool:
        return self.kind.startswith("sudden")


@dataclass
class Instance:
    name: str
    start: float          # first sample (inclusive)
    end: float            # last sample (exclusive)
    age0: float           # process uptime at `start`


@dataclass
class Host:
    index: int
    name: str
    role: str
    p: dict                                   # role parameters
    families: dict = field(default_factory=dict)   # family -> its parameters
    instances: list[Instance] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    restarts: list[tuple[float, float, str]] = field(default_factory=list)  # down, up, scope


@dataclass
class Fleet:
    seed: int
    start: float
    end: float
    step: float
    hosts: list[Host]


# --------------------------------------------------------------------------------------------
# Numerical helpers


def _ar1(rng: np.random.Generator, n: int, step: float, tau: float, sd: float,
         df: float = 4.0) -> np.ndarray:
    """AR(1) noise with stationary sd `sd`, correlation time `tau` s, Student-t innovations."""
    phi = math.exp(-step / max(tau, 1e-9))
    e = np.clip(rng.standard_t(df, n), -12, 12) * sd * math.sqrt(max(1 - phi * phi, 1e-12))
    e *= math.sqrt((df - 2) / df)
    if phi < 1e-6:
        return e
    out = np.empty(n)
    block = max(1, int(40 / -math.log(phi)))
    carry = 0.0
    for s in range(0, n, block):
        seg = e[s:s + block]
        k = np.arange(len(seg))
        y = phi ** k * (phi * carry + np.cumsum(seg * phi ** (-k)))
        out[s:s + block] = y
        carry = y[-1]
    return out


def _window_rate(counts: np.ndarray, step: float, window: float) -> np.ndarray:
    """Rate over the trailing `window` s from per-step counts (PromQL `rate` on a counter)."""
    w = max(1, int(round(window / step)))
    c = np.concatenate([[0.0], np.cumsum(counts)])
    idx = np.arange(1, len(counts) + 1)
    lo = np.maximum(idx - w, 0)
    return (c[idx] - c[lo]) / ((idx - lo) * step)


def _local_hour(t: np.ndarray | float, tz: float) -> np.ndarray | float:
    return ((np.asarray(t) / HOUR) + tz) % 24.0


def _weekday(t: np.ndarray | float, tz: float) -> np.ndarray:
    # 1970-01-01 was a Thursday (Monday = 0).
    return (np.floor((np.asarray(t) + tz * HOUR) / DAY).astype(np.int64) + 3) % 7


def _daily(fleet: Fleet, tz: float, hour: float, rng: np.random.Generator,
           jitter: float = 0.0, weekdays_only: bool = False) -> list[float]:
    """Event times at local `hour` each day of the span (+- jitter s)."""
    out = []
    for d in range(-1, int((fleet.end - fleet.start) / DAY) + 2):
        t = fleet.start + d * DAY - tz * HOUR + hour * HOUR + rng.uniform(-jitter, jitter)
        if weekdays_only and _weekday(t, tz) >= 5:
            continue
        out.append(float(t))
    return out


def _shape(s: np.ndarray, kind: str, k: float) -> np.ndarray:
    """Precursor profile 0 -> 1 over s in [0, 1]."""
    s = np.clip(s, 0.0, 1.0)
    if kind == "power":
        return s ** k
    return np.expm1(k * s) / math.expm1(k)


def _snap(fleet: Fleet, t: float) -> float:
    return fleet.start + round((t - fleet.start) / fleet.step) * fleet.step


# --------------------------------------------------------------------------------------------
# Planning: roles, families, failures (every random choice is made here or from per-host
# generators seeded by (seed, host, stream), so output depends only on the arguments).


# Per-role ranges, drawn uniformly per host. Keys: CPU busy ratio at no traffic and per unit of
# traffic; memory floor (OS, sidecars) and the process' warm working set, its warm-up time (s);
# disk used ratio and growth per day; p99 latency (s) at moderate load and its log-noise;
# requests/s at peak; failing share of requests; retransmitted share of segments; idle and
# per-traffic open connections; traffic at the daily trough relative to the peak.
ROLE_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "web": dict(cpu_idle=(0.03, 0.08), cpu_load=(0.2, 0.45), mem_floor=(0.12, 0.22),
                mem_proc=(0.18, 0.35), mem_tau=(300, 1500), disk=(0.2, 0.5),
                disk_growth=(0.0, 0.01), lat=(0.06, 0.25), lat_sigma=(0.08, 0.18),
                rps=(40, 400), err_frac=(3e-4, 3e-3), retrans=(8e-4, 4e-3),
                c0=(30, 120), c1=(80, 280), rmin=(0.15, 0.4)),
    "db": dict(cpu_idle=(0.04, 0.1), cpu_load=(0.12, 0.35), mem_floor=(0.08, 0.15),
               mem_proc=(0.5, 0.65), mem_tau=(1800, 7200), disk=(0.4, 0.65),
               disk_growth=(0.003, 0.02), lat=(0.004, 0.03), lat_sigma=(0.1, 0.25),
               rps=(200, 2000), err_frac=(1e-5, 1e-4), retrans=(4e-4, 2e-3),
               c0=(20, 60), c1=(40, 200), rmin=(0.3, 0.55)),
    "cache": dict(cpu_idle=(0.02, 0.05), cpu_load=(0.05, 0.2), mem_floor=(0.08, 0.15),
                  mem_proc=(0.45, 0.7), mem_tau=(3600, 4 * HOUR), disk=(0.1, 0.3),
                  disk_growth=(0.0, 0.002), lat=(5e-4, 3e-3), lat_sigma=(0.1, 0.3),
                  rps=(1000, 20000), err_frac=(1e-6, 1e-5), retrans=(4e-4, 2e-3),
                  c0=(100, 250), c1=(100, 300), rmin=(0.2, 0.45)),
    "batch": dict(cpu_idle=(0.05, 0.15), cpu_load=(0.05, 0.2), mem_floor=(0.1, 0.2),
                  mem_proc=(0.15, 0.3), mem_tau=(300, 1200), disk=(0.3, 0.6),
                  disk_growth=(0.0, 0.015), lat=(0.5, 4.0), lat_sigma=(0.15, 0.35),
                  rps=(1, 20), err_frac=(2e-3, 1e-2), retrans=(8e-4, 3e-3),
                  c0=(5, 20), c1=(5, 30), rmin=(0.65, 0.9)),
}


def _role_params(role: str, rng: np.random.Generator) -> dict:
    u = rng.uniform
    p = {k: float(u(lo, hi)) for k, (lo, hi) in ROLE_RANGES[role].items()}
    region = rng.choice([-5.0, 1.0, 8.0], p=[0.5, 0.35, 0.15])
    p.update(tz=float(region + u(-1.5, 1.5)), sharp=u(1.0, 2.2), weekend=u(0.5, 0.95),
             wander=u(0.04, 0.12), cpu_sd=u(0.008, 0.03), mem_sd=u(0.002, 0.008),
             spike_p=u(2e-4, 1.5e-3), gap_p=u(0.0, 2e-3), noise=1.0,
             warm_cpu=u(0.05, 0.3), warm_cpu_tau=u(120, 600), warm_lat=u(0.5, 4.0),
             warm_lat_tau=u(180, 900), age0=u(2 * HOUR, 40 * DAY))
    if role == "batch":
        p["sharp"] = 1.0
    return p


# Families that shape the same level cannot share a host (sums would be meaningless).
def _shapes(family: str, params: dict) -> set[str]:
    target = params.get("signal")
    return {
        "gc_sawtooth": {target}, "plateau_drift": {target}, "cron_restart": {"memory"},
        "log_rotation": {"disk"}, "backup": {"disk"}, "rollout": {"restarts"},
        "deploy_restart": {"restarts"},
    }.get(family, set())


def _family_params(family: str, host: Host, rng: np.random.Generator) -> dict:
    u = rng.uniform
    if family == "gc_sawtooth":
        if rng.random() < 0.5:
            return dict(signal="memory", lo=u(0.35, 0.5), hi=u(0.7, 0.85),
                        period=u(10 * 60, 90 * 60))
        return dict(signal="disk", lo=u(0.45, 0.6), hi=u(0.78, 0.88), period=u(2 * HOUR, 4 * HOUR))
    if family == "plateau_drift":
        sig = rng.choice(["memory", "disk", "open_connections"])
        return dict(signal=str(sig), level=u(0.65, 0.85), duration=u(2 * HOUR, 10 * HOUR),
                    frac_start=u(0.1, 0.6))
    if family == "log_rotation":
        return dict(amp=u(0.06, 0.2), keep=u(0.0005, 0.003), every=6 * HOUR,
                    hour=u(0, 6), burst_p=u(0.0, 0.3))
    if family == "backup":
        return dict(hour=u(0.5, 4.0), dump=u(0.05, 0.15), write=u(20 * 60, 60 * 60),
                    upload=u(20 * 60, 60 * 60), cpu=u(0.1, 0.25), retrans=u(2.0, 5.0))
    if family == "batch_job":
        return dict(hour=u(0.0, 3.0), duration=u(HOUR, 3 * HOUR), cpu=u(0.4, 0.75),
                    mem=u(0.12, 0.3))
    if family == "cron_restart":
        return dict(hour=u(2.0, 5.0), creep=u(0.1, 0.3), gap=u(30, 150))
    if family == "deploy_restart":
        return dict(per_day=u(0.7, 2.5), gap=u(20, 180))
    if family == "rollout":
        return dict(hour=u(10, 16), skip_p=u(0.0, 0.3), surge=u(0, 180))
    if family == "daily_surge":
        return dict(hour=u(0, 24), width=u(0.5 * HOUR, 1.5 * HOUR), gain=u(0.8, 2.0))
    if family == "chronic_errors":
        which = rng.choice(["errors", "drops", "both"])
        return dict(errors=u(0.2, 3.0) if which != "drops" else 0.0,
                    retrans=u(0.008, 0.03) if which != "errors" else 0.0)
    if family == "scrape_gaps":
        return dict(cell_p=u(0.01, 0.05), row_p=u(0.005, 0.02), runs_per_day=u(2, 8),
                    run_max=u(5 * 60, 30 * 60))
    if family == "counter_reset":
        return dict(per_day=u(1.0, 4.0), jump=u(5, 200))
    if family == "noisy":
        return dict(noise=u(3.0, 6.0), spikes=u(5, 15))
    raise FleetgenError(f"unknown family {family!r}")


def _compatible(host: Host, family: str, params: dict, failure_kind: str | None,
                any_role: bool = False) -> bool:
    if family in host.families:
        return False
    if family == "rollout" and host.failures:
        return False   # failures are planned on one instance label
    if family == "rollout" and host.role not in ("web", "batch") and not any_role:
        return False   # stateless deployments roll; databases and caches do not
    mine = _shapes(family, params)
    for f, fp in host.families.items():
        if mine & _shapes(f, fp):
            return False
    if failure_kind:
        if family == "rollout":
            return False
        sig = FAILURE_SIGNAL.get(failure_kind)
        if sig and sig in mine:
            return False
        if sig == "memory" and family == "cron_restart":
            return False
        if sig == "disk" and family in ("backup", "log_rotation"):
            return False
    return True


def plan(seed: int, hosts: int = 48, days: float = 3.0, step: float = 60.0,
         families: tuple[str, ...] | None = None, benign_only: bool = False,
         failures: int | None = None, sudden: int | None = None,
         start: float | None = None,
         precursor: tuple[float, float] = (30 * 60, 6 * HOUR)) -> Fleet:
    """Choose roles, benign families and failure schedule for a fleet (no signals yet).

    precursor: (shortest, longest) precursor in seconds, drawn log-uniform per failure.
    """
    if hosts < 1:
        raise FleetgenError("--hosts must be >= 1")
    if step <= 0 or step > 600:
        raise FleetgenError("--step must be in (0, 600] seconds")
    if days * DAY < 12 * HOUR:
        raise FleetgenError("--days must cover at least 12 hours")
    pre_lo, pre_hi = precursor
    if not 5 * 60 <= pre_lo <= pre_hi <= 12 * HOUR:
        raise FleetgenError("--precursor must be MIN,MAX hours with 5 min <= MIN <= MAX <= 12 h")
    # A precursor starts after the first 6 h and its failure ends (recovery <= 40 min) an hour
    # before the end; longer precursors are capped to that, a shortest one beyond it refused.
    room = days * DAY - 6 * HOUR - HOUR - 40 * 60
    if not benign_only and failures != 0 and pre_lo > room:
        raise FleetgenError(f"--precursor: a {pre_lo / HOUR:g} h precursor does not fit a "
                            f"{days:g}-day fleet (at most {max(room, 0) / HOUR:.1f} h)")
    fams = tuple(FAMILIES if families is None else families)
    for f in fams:
        if f not in FAMILIES:
            raise FleetgenError(f"unknown family {f!r} (known: {', '.join(FAMILIES)})")
    rng = np.random.default_rng([seed, 0])
    if start is None:
        monday = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
        start = monday + (seed % 7) * DAY
    n_steps = int(round(days * DAY / step))
    fleet = Fleet(seed, float(start), float(start) + n_steps * step, float(step), [])

    roles = rng.choice(ROLES, size=hosts, p=ROLE_SHARE)
    counts: dict[str, int] = {}
    for i, role in enumerate(roles):
        counts[role] = counts.get(role, 0) + 1
        hrng = np.random.default_rng([seed, 1, i])
        name = f"{role}-{counts[role]:02d}:{PORT[role]}"
        fleet.hosts.append(Host(i, name, str(role), _role_params(str(role), hrng)))

    host_days = hosts * days
    n_pred = 0 if benign_only else (failures if failures is not None
                                     else max(1, round(10 * host_days / 144)))
    n_sud = 0 if benign_only else (sudden if sudden is not None
                                   else max(1, round(3 * host_days / 144)))
    order = [int(i) for i in rng.permutation(hosts)]
    max_failing = max(1, hosts // 3) if not benign_only else 0
    if n_pred + n_sud > max_failing:
        n_pred = min(n_pred, max_failing)
        n_sud = min(n_sud, max_failing - n_pred)
    failing = order[:n_pred]
    crashing = order[n_pred:n_pred + n_sud]

    # Failure kinds round-robin so every kind appears; times stratified over the usable span.
    kinds = [PREDICTABLE[k % len(PREDICTABLE)] for k in range(n_pred)]
    rng.shuffle(kinds)
    span = fleet.end - fleet.start
    for slot, (hi, kind) in enumerate(zip(failing, kinds, strict=True)):
        host = fleet.hosts[hi]
        frng = np.random.default_rng([seed, 2, hi])
        recovery = frng.uniform(5 * 60, 40 * 60)
        max_pre = min(pre_hi, span - 6 * HOUR - recovery - HOUR)
        pre = math.exp(frng.uniform(math.log(pre_lo), math.log(max(max_pre, pre_lo + 1))))
        lo, hi_t = fleet.start + 6 * HOUR + pre + step, fleet.end - recovery - HOUR
        a = lo + (hi_t - lo) * slot / n_pred
        b = lo + (hi_t - lo) * (slot + 1) / n_pred
        tf = _snap(fleet, frng.uniform(a, b))
        t0 = _snap(fleet, tf - pre)
        te = _snap(fleet, tf + recovery)
        host.failures.append(Failure(kind, host.name, t0, tf, te, FAILURE_SIGNAL[kind],
                                     params=_failure_params(kind, host, frng)))
    for j, hi in enumerate(crashing):
        host = fleet.hosts[hi]
        frng = np.random.default_rng([seed, 3, hi])
        kind = SUDDEN[j % len(SUDDEN)]
        tf = _snap(fleet, frng.uniform(fleet.start + 6 * HOUR, fleet.end - HOUR))
        down = frng.uniform(2 * 60, 10 * 60) if kind == "sudden_crash" else frng.uniform(5 * 60, 30 * 60)
        host.failures.append(Failure(kind, host.name, tf, tf, _snap(fleet, tf + max(down, step))))

    _assign_families(fleet, fams, families is not None, rng)
    for host in fleet.hosts:
        _plan_lifecycle(fleet, host)
    return fleet


def _failure_params(kind: str, host: Host, rng: np.random.Generator) -> dict:
    shape = ("exp", rng.uniform(1.5, 4.0)) if rng.random() < 0.4 else ("power", rng.uniform(0.7, 2.2))
    out: dict = dict(shape=shape[0], k=float(shape[1]))
    if kind == "network_degradation":
        out["threshold"] = rng.uniform(0.06, 0.2)
    elif kind == "error_buildup":
        out["frac"] = rng.uniform(0.15, 0.5)   # failing share of requests when it falls over
    elif kind == "connection_pool_exhaustion":
        out["lat_mult"] = rng.uniform(4.0, 15.0)
    elif kind == "disk_full":
        out["err_frac"] = rng.uniform(0.2, 0.8)
    return out


def _assign_families(fleet: Fleet, fams: tuple[str, ...], explicit: bool,
                     rng: np.random.Generator) -> None:
    """Explicit list: round robin over hosts; default: each family on ~8 % of hosts."""
    hosts = fleet.hosts
    n = len(hosts)

    def place(host: Host, f: str) -> bool:
        fk = next((x.kind for x in host.failures if not x.sudden), None)
        frng = np.random.default_rng([fleet.seed, 4, host.index, FAMILIES.index(f)])
        for _ in range(4):   # a few draws of the family's target signal before giving up
            params = _family_params(f, host, frng)
            if _compatible(host, f, params, fk, any_role=explicit):
                _attach(host, f, params)
                return True
        return False

    if explicit:
        for i, host in enumerate(hosts):
            for j in range(math.ceil(len(fams) / n)):
                place(host, fams[(i + j * n) % len(fams)])
    else:
        per = max(1, round(n * 0.08))
        for f in fams:
            placed = 0
            for i in rng.permutation(n):
                if placed < per and place(hosts[int(i)], f):
                    placed += 1
    # A family every host refused in round robin: any compatible host that never fails.
    present = {f for h in hosts for f in h.families}
    for f in fams:
        if f not in present:
            for host in sorted(hosts, key=lambda h: len(h.families)):
                if not host.failures and place(host, f):
                    break


def _attach(host: Host, family: str, params: dict) -> None:
    host.families[family] = params
    if family == "noisy":
        host.p["noise"] = params["noise"]
        host.p["spike_p"] *= params["spikes"]
    if family == "cron_restart":
        # The creep must stay below capacity within one restart period.
        room = SOFT_CAP["memory"] - 0.05 - host.p["mem_floor"] - host.p["mem_proc"]
        if room < 0.05:
            host.p["mem_proc"] = SOFT_CAP["memory"] - 0.12 - host.p["mem_floor"]
            room = 0.07
        params["creep"] = float(min(params["creep"], room))


def _plan_lifecycle(fleet: Fleet, host: Host) -> None:
    """Instances (rollouts) and restart events (deploys, cron, failures, counter resets)."""
    rng = np.random.default_rng([fleet.seed, 6, host.index])
    p, step = host.p, fleet.step
    quiet = [(f.precursor_start - 30 * 60, f.end + 30 * 60) for f in host.failures]

    def free(t: float) -> bool:
        return fleet.start < t < fleet.end - step and not any(a <= t <= b for a, b in quiet)

    restarts: list[tuple[float, float, str]] = []
    if "deploy_restart" in host.families:
        fp = host.families["deploy_restart"]
        for d in range(int((fleet.end - fleet.start) / DAY) + 1):
            for _ in range(int(rng.poisson(fp["per_day"]))):
                t = fleet.start + d * DAY + (rng.uniform(9.5, 17.5) - p["tz"]) * HOUR
                if _weekday(t, p["tz"]) < 5 and free(t):
                    g = max(fp["gap"] * rng.uniform(0.7, 1.3), step)
                    restarts.append((_snap(fleet, t), _snap(fleet, t + g), "app"))
    if "cron_restart" in host.families:
        fp = host.families["cron_restart"]
        times = _daily(fleet, p["tz"], fp["hour"], rng, jitter=60)
        for t in times:
            if free(t):
                restarts.append((_snap(fleet, t), _snap(fleet, t + max(fp["gap"], step)), "app"))
        before = [t for t in times if t <= fleet.start]
        p["age0"] = fleet.start - max(before) if before else rng.uniform(HOUR, DAY)
    for f in host.failures:
        if f.kind == "memory_leak_oom" or f.kind in ("connection_pool_exhaustion",
                                                        "cpu_saturation", "error_buildup"):
            restarts.append((f.start + step, f.end, "app"))
        elif f.kind == "disk_full":
            # Writes fail until someone frees space at `end`; the service is then restarted.
            g = max(rng.uniform(30, 120), step)
            restarts.append((f.end, _snap(fleet, f.end + g), "app"))
        elif f.kind == "network_degradation":
            restarts.append((f.start + step, f.end, "host"))
        elif f.kind == "sudden_crash":
            restarts.append((f.start, f.end, "app"))
        elif f.kind == "sudden_host_down":
            restarts.append((f.start, f.end, "host"))
    host.restarts = sorted(restarts)

    if "rollout" in host.families:
        fp = host.families["rollout"]
        app = {"web": "web-api", "batch": "worker"}.get(host.role, host.role)
        cuts = [t for t in _daily(fleet, p["tz"], fp["hour"], rng, jitter=1800)
                if fleet.start + 2 * HOUR < t < fleet.end - HOUR and rng.random() >= fp["skip_p"]]
        if not cuts:
            cuts = [fleet.start + (fleet.end - fleet.start) * rng.uniform(0.3, 0.7)]
        begin, age0 = fleet.start, p["age0"]
        for k, cut in enumerate(cuts + [fleet.end]):
            rs = "".join(rng.choice(list("bcdfghjklmnpqrstvwxz2456789"), 5))
            name = f"{app}-{rs}{host.index:02d}-{k}:8080"
            surge = round(rng.uniform(0, fp["surge"]) / step) * step if cut < fleet.end else 0.0
            end = min(_snap(fleet, cut) + surge, fleet.end)
            host.instances.append(Instance(name, begin, end, age0))
            begin, age0 = _snap(fleet, cut), 0.0
    else:
        host.instances.append(Instance(host.name, fleet.start, fleet.end, p["age0"]))
    for f in host.failures:
        f.instance = host.instances[0].name


# --------------------------------------------------------------------------------------------
# Rendering one instance's signals


def _traffic(fleet: Fleet, host: Host, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    p = host.p
    h = _local_hour(t, p["tz"])
    # Trough at ~04:30 local, peak in the afternoon/evening; `sharp` narrows the peak.
    diurnal = (0.5 * (1 - np.cos(2 * np.pi * (h - 4.5) / 24))) ** p["sharp"]
    lunch = 0.08 * np.exp(-0.5 * ((h - 12.5) / 0.8) ** 2)
    r = p["rmin"] + (1 - p["rmin"]) * np.clip(diurnal + lunch, 0, 1.1)
    r = r * np.where(_weekday(t, p["tz"]) >= 5, p["weekend"], 1.0)
    r = r * np.exp(_ar1(rng, len(t), fleet.step, 3 * HOUR, p["wander"], df=30))
    if "daily_surge" in host.families:
        fp = host.families["daily_surge"]
        dh = (h - fp["hour"] + 12) % 24 - 12
        r = r * (1 + fp["gain"] * np.exp(-0.5 * (dh * HOUR / fp["width"]) ** 2))
        # Surges are provisioned for: CPU stays below ~0.9 at the peak.
        r = np.minimum(r, (0.88 - p["cpu_idle"]) / p["cpu_load"])
    return r


def _age(fleet: Fleet, host: Host, inst: Instance, t: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Process age (s), app-down mask, host-down mask for an instance's samples."""
    age = t - inst.start + inst.age0
    app_down = np.zeros(len(t), bool)
    host_down = np.zeros(len(t), bool)
    for down, up, scope in host.restarts:
        if not inst.start <= down < inst.end:
            continue
        m = (t >= down) & (t < up)
        (host_down if scope == "host" else app_down)[m] |= True
        after = t >= up
        age[after] = t[after] - up
    return age, app_down | host_down, host_down


def _render(fleet: Fleet, host: Host, inst: Instance, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(t [n], values [S, n]) for one instance; NaN = missing."""
    step = fleet.step
    t = np.arange(inst.start, inst.end - 1e-6, step)
    n = len(t)
    rng = np.random.default_rng([fleet.seed, 7, host.index, k])
    trng = np.random.default_rng([fleet.seed, 8, host.index])  # shared by a host's instances
    t_all = np.arange(fleet.start, fleet.end - 1e-6, step)
    r = _traffic(fleet, host, t_all, trng)[np.searchsorted(t_all, t)]
    p, fam, nz = host.p, host.families, host.p["noise"]
    h = _local_hour(t, p["tz"])
    age, app_down, host_down = _age(fleet, host, inst, t)
    if inst is not host.instances[-1] and len(t):
        # Old pod drains once its successor is up (surge overlap).
        nxt = host.instances[host.instances.index(inst) + 1]
        r = np.where(t >= nxt.start, r * 0.3, r)
    calm = np.full(n, True)
    for f in host.failures:
        if not f.sudden:
            calm &= ~((t >= f.precursor_start) & (t <= f.end))

    def nightly(hour: float, dur: float) -> np.ndarray:
        """Fraction 0..1 into a nightly job that starts at local `hour` and lasts `dur` s."""
        since = ((h - hour) % 24) * HOUR
        return np.where(since < dur, since / dur, -1.0)

    # --- CPU
    warm = np.exp(-age / p["warm_cpu_tau"])
    cpu = p["cpu_idle"] + p["cpu_load"] * r + p["warm_cpu"] * warm
    cpu += _ar1(rng, n, step, 120, p["cpu_sd"] * nz)
    mem_extra = np.zeros(n)
    disk_extra = np.zeros(n)
    lat_mult = np.ones(n)
    retrans_mult = np.ones(n)
    if "batch_job" in fam:
        fp = fam["batch_job"]
        x = nightly(fp["hour"], fp["duration"])
        on = x >= 0
        ramp = np.clip(np.minimum(x * fp["duration"], (1 - x) * fp["duration"]) / 300, 0, 1) * on
        cpu += fp["cpu"] * ramp
        mem_extra += fp["mem"] * np.clip(x * fp["duration"] / 600, 0, 1) * on
        disk_extra += 0.02 * x * on
    if "backup" in fam:
        fp = fam["backup"]
        total = fp["write"] + fp["upload"]
        x = nightly(fp["hour"], total)
        on = x >= 0
        el = x * total
        disk_extra += fp["dump"] * np.clip(el / fp["write"], 0, 1) * on
        uploading = on & (el >= fp["write"])
        cpu += fp["cpu"] * on
        retrans_mult *= np.where(uploading, fp["retrans"], 1.0)
        lat_mult *= np.where(on, 1.3, 1.0)
    spikes = rng.random(n) < p["spike_p"]
    spikes |= np.roll(spikes, 1) & (rng.random(n) < 0.5)
    cpu += spikes * rng.uniform(0.15, 0.6, n)
    cpu = np.clip(cpu, 0.005, 1.0)

    # --- memory
    mem = p["mem_floor"] + p["mem_proc"] * (1 - np.exp(-age / p["mem_tau"])) + 0.03 * r
    if "cron_restart" in fam:
        mem += fam["cron_restart"]["creep"] * np.minimum(age, DAY) / DAY
    mem += _ar1(rng, n, step, 600, p["mem_sd"] * nz)
    # --- disk
    disk = p["disk"] + p["disk_growth"] * (t - fleet.start) / DAY + disk_extra
    disk += _ar1(rng, n, step, 900, 4e-4 * nz, df=30)
    if "log_rotation" in fam:
        fp = fam["log_rotation"]
        since = ((h - fp["hour"]) % 6) * HOUR
        # Log volume follows traffic; a rotation compresses the live log away.
        disk += fp["amp"] * (since / fp["every"]) * (0.6 + 0.4 * r) + fp["keep"] * (t - fleet.start) / DAY
    if "gc_sawtooth" in fam:
        fp = fam["gc_sawtooth"]
        per = fp["period"] * (1 + 0.1 * np.sin(2 * np.pi * t / (5.3 * HOUR)))
        phase = np.cumsum(step / per) % 1.0
        saw = fp["lo"] + (fp["hi"] - fp["lo"]) * phase
        if fp["signal"] == "memory":
            mem = saw + (mem - mem.mean()) * 0.3
        else:
            disk = saw + disk_extra + _ar1(rng, n, step, 900, 3e-4, df=30)
    mem += mem_extra
    if "plateau_drift" in fam and fam["plateau_drift"]["signal"] in ("memory", "disk"):
        fp = fam["plateau_drift"]
        t0 = fleet.start + fp["frac_start"] * (fleet.end - fleet.start)
        grow = 1 - np.exp(-np.clip(t - t0, 0, None) / (fp["duration"] / 3))
        if fp["signal"] == "memory":
            mem += max(fp["level"] - np.median(mem), 0.08) * grow
        else:
            disk += max(fp["level"] - np.median(disk), 0.08) * grow
    mem = np.where(calm, np.minimum(mem, SOFT_CAP["memory"]), mem)
    disk = np.where(calm, np.minimum(disk, SOFT_CAP["disk"]), disk)

    # --- failures: precursors (blend the signal to its limit) and side effects
    err_extra = np.zeros(n)
    conn_force: list[tuple[np.ndarray, np.ndarray]] = []
    err_frac_force = np.full(n, np.nan)
    retrans_force = np.full(n, np.nan)
    for f in host.failures:
        if f.sudden or not inst.start <= f.start < inst.end:
            continue
        fp = f.params
        pre = (t >= f.precursor_start) & (t <= f.start)
        s = np.clip((t - f.precursor_start) / max(f.start - f.precursor_start, step), 0, 1)
        g = _shape(s, fp["shape"], fp["k"]) * pre
        late = np.clip((g - 0.75) / 0.25, 0, 1)
        if f.kind == "memory_leak_oom":
            mem = mem + (1.0 - mem) * g
            cpu = cpu + (1 - cpu) * 0.35 * late ** 2          # GC thrash before the OOM kill
            lat_mult *= 1 + 2.5 * late ** 2
            f.threshold = 1.0
        elif f.kind == "disk_full":
            disk = disk + (1.0 - disk) * g
            full = (t >= f.start) & (t < f.end)
            disk = np.where(full, 1.0, disk)
            err_frac_force = np.where(full, fp["err_frac"], err_frac_force)
            lat_mult *= np.where(full, 3.0, 1.0)
            f.threshold = 1.0
        elif f.kind == "cpu_saturation":
            cpu = cpu + (1.0 - cpu) * g
            err_extra += p["rps"] * r * 0.2 * late ** 2        # timeouts
            f.threshold = 1.0
        elif f.kind == "connection_pool_exhaustion":
            lat_mult *= 1 + (fp["lat_mult"] - 1) * g
            err_extra += p["rps"] * r * 0.1 * late ** 2
            conn_force.append((g, pre))
            f.threshold = CONN_LIMIT
        elif f.kind == "network_degradation":
            base = p["retrans"] * 1.3 + fam.get("chronic_errors", {}).get("retrans", 0.0)
            fp["threshold"] = min(max(fp["threshold"], 4 * base), 0.5)
            level = base * (fp["threshold"] / base) ** g
            retrans_force = np.where(pre & (g > 0), level, retrans_force)
            lat_mult *= 1 + 25 * np.where(pre, level, 0)
            err_extra += p["rps"] * r * 0.3 * np.where(pre, level, 0)
            f.threshold = fp["threshold"]
        elif f.kind == "error_buildup":
            idx = min(int(np.searchsorted(t, f.start)), n - 1)
            chronic = fam.get("chronic_errors", {}).get("errors", 0.0) / (p["rps"] * r[idx])
            base = max(p["err_frac"], 1e-4)
            fp["frac"] = min(max(fp["frac"], 4 * (base + chronic)), 0.9)
            frac = base * (fp["frac"] / base) ** g
            err_frac_force = np.where(pre & (g > 0), frac, err_frac_force)
            cpu = cpu + 0.1 * g * (1 - cpu)                      # client retries
            lat_mult *= 1 + 0.5 * g
            f.threshold = float(fp["frac"] * p["rps"] * r[idx])
    cpu = np.clip(cpu, 0.005, 1.0)
    mem = np.clip(mem, 0.01, 1.0)
    disk = np.clip(disk, 0.01, 1.0)

    # --- latency (p99): queueing on CPU, warm-up, heavy-tailed noise wider at low traffic
    u = np.minimum(cpu, 0.985)
    u0 = p["cpu_idle"] + p["cpu_load"] * 0.5
    q = ((1 - u0) / (1 - u)) ** 0.7
    lat_warm = 1 + p["warm_lat"] * np.exp(-age / p["warm_lat_tau"])
    sig = p["lat_sigma"] * nz ** 0.5 * (1 + 0.4 / np.sqrt(np.maximum(r, 0.05)))
    noise = np.clip(rng.standard_t(3, n), -6, 6) * sig * 0.6
    lat = p["lat"] * q * lat_warm * lat_mult * np.exp(noise)
    lat *= np.where(spikes, rng.uniform(2, 8, n), 1.0)

    # --- connections: Little's law on traffic x latency, re-established after a restart
    conn = (p["c0"] + p["c1"] * r * np.sqrt(lat_mult * lat_warm)) * (1 - np.exp(-age / 90))
    if "plateau_drift" in fam and fam["plateau_drift"]["signal"] == "open_connections":
        fp = fam["plateau_drift"]
        t0 = fleet.start + fp["frac_start"] * (fleet.end - fleet.start)
        grow = 1 - np.exp(-np.clip(t - t0, 0, None) / (fp["duration"] / 3))
        conn += max(fp["level"] * CONN_LIMIT - np.median(conn), 80.0) * grow
    conn = rng.poisson(np.maximum(conn, 0) * 1.0).astype(float)
    conn = np.where(calm, np.minimum(conn, SOFT_CAP["open_connections"]), conn)
    for g, pre in conn_force:
        conn = np.where(pre, np.round(conn + (CONN_LIMIT - conn) * g), conn)
    conn = np.clip(conn, 0, CONN_LIMIT)

    # --- errors (5xx/s) and retransmit ratio: Poisson counts -> rate over a 2-5 min window
    window = max(120.0, step)
    ef = np.where(np.isnan(err_frac_force), p["err_frac"] * (1 + 0.5 * (q - 1)), err_frac_force)
    lam = p["rps"] * r * ef + err_extra + 3.0 * np.exp(-age / 60)   # in-flight requests on restart
    if "chronic_errors" in fam:
        lam += fam["chronic_errors"]["errors"]
    lam *= np.where(spikes, rng.uniform(3, 20, n), 1.0)
    lam = np.where(app_down, 0, lam)
    errs = _window_rate(rng.poisson(lam * step).astype(float), step, window)
    segs = (p["rps"] * r * 12 + 40) * step
    pr = p["retrans"] * (1 + 0.3 * r) * retrans_mult
    if "chronic_errors" in fam:
        pr += fam["chronic_errors"]["retrans"]
    pr = np.where(np.isnan(retrans_force), pr, retrans_force)
    seg_counts = rng.poisson(segs).astype(float)
    rt_counts = rng.binomial(seg_counts.astype(np.int64), np.clip(pr, 0, 1)).astype(float)
    retr = _window_rate(rt_counts, step, window) / np.maximum(_window_rate(seg_counts, step, window), 1e-9)

    uptime = age.copy()
    if "counter_reset" in fam:
        fp = fam["counter_reset"]
        n_resets = int(rng.poisson(fp["per_day"] * n * step / DAY))
        w = max(1, int(round(window / step)))
        for i in rng.integers(1, max(n - 1, 2), n_resets):
            # The exporting process restarted: uptime restarts from 0 and the first window of
            # rate() sees the new counter's start value as one increase.
            uptime[i:] = np.minimum(uptime[i:], t[i:] - t[i])
            errs[i:i + w] += fp["jump"] / window
            retr[i:i + w] += min(0.5, fp["jump"] / (segs[i] / step * window))
            errs[i - 1] = np.nan
    uptime = np.maximum(uptime, 0.0)

    # --- outages: the process (or host) is gone
    cpu = np.where(app_down, p["cpu_idle"] * 0.7, cpu)
    mem = np.where(app_down, p["mem_floor"], mem)
    vals = np.vstack([cpu, mem, disk, lat, errs, retr, conn, uptime])
    raw = vals.copy()
    for name in APP_SIGNALS:
        vals[SIG[name], app_down] = np.nan
    vals[:, host_down] = np.nan
    # rate()/histogram_quantile need two samples after a gap.
    back = np.zeros(n, bool)
    back[1:] = (app_down[:-1]) & ~app_down[1:]
    for name in ("latency_seconds", "errors_per_second", "tcp_retransmit_ratio"):
        vals[SIG[name], back] = np.nan

    # --- scrape gaps: single cells, whole rows, runs
    gap_cell, gap_row, runs, run_max = p["gap_p"], p["gap_p"] / 3, 0.2, 10 * 60.0
    if "scrape_gaps" in fam:
        fp = fam["scrape_gaps"]
        gap_cell, gap_row, runs, run_max = fp["cell_p"], fp["row_p"], fp["runs_per_day"], fp["run_max"]
    vals[rng.random(vals.shape) < gap_cell] = np.nan
    vals[:, rng.random(n) < gap_row] = np.nan
    for _ in range(int(rng.poisson(runs * n * step / DAY))):
        i = int(rng.integers(0, max(n, 1)))
        ln = max(1, int(rng.uniform(2 * 60, run_max) / step))
        vals[:, i:i + ln] = np.nan
    # The failing signal's sample at the incident start defines the incident: never a gap.
    for f in host.failures:
        if not f.sudden and inst.start <= f.start < inst.end:
            i = int(np.searchsorted(t, f.start))
            vals[:, i] = raw[:, i]
    return t, vals


# --------------------------------------------------------------------------------------------
# Output


def generate(fleet: Fleet) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(timestamps [N], instance per row [N], values [N, S]) sorted by time then instance."""
    ts, names, blocks = [], [], []
    for host in fleet.hosts:
        for k, inst in enumerate(host.instances):
            t, v = _render(fleet, host, inst, k)
            ts.append(t)
            names.extend([inst.name] * len(t))
            blocks.append(v.T)
    t = np.concatenate(ts)
    vals = np.concatenate(blocks)
    name_arr = np.array(names)
    order = np.lexsort((name_arr, t))
    return t[order], [str(x) for x in name_arr[order]], vals[order]


def write_csv(path: Path, t: np.ndarray, names: list[str], vals: np.ndarray) -> None:
    fmts = [s[4] for s in SIGNALS]
    with path.open("w") as fh:
        fh.write("timestamp,instance," + ",".join(SIGNAL_NAMES) + "\n")
        for ts, name, row in zip(t.tolist(), names, vals.tolist(), strict=True):
            cells = ["" if v != v else fmt % v for fmt, v in zip(fmts, row, strict=True)]
            stamp = f"{ts:.0f}" if float(ts).is_integer() else repr(ts)
            fh.write(f"{stamp},{name},{','.join(cells)}\n")


def incidents(fleet: Fleet) -> list[Failure]:
    return sorted((f for h in fleet.hosts for f in h.failures), key=lambda f: (f.start, f.instance))


def write_incidents(path: Path, fleet: Fleet) -> None:
    with path.open("w") as fh:
        fh.write("start,end,instance,kind\n")
        for f in incidents(fleet):
            fh.write(f"{int(f.start)},{int(f.end)},{f.instance},{f.kind}\n")


def config_text(step: float) -> str:
    def dur(s: float) -> str:
        return f"{int(s // 60)}m" if s % 60 == 0 else f"{int(s)}s"
    lines = [
        "# Written by benchmarks/fleetgen.py (evaluation only). Queries are for live use;",
        "# `aura backtest --input=data.csv` reads the signal columns instead.",
        "interval: " + dur(max(step, 60.0)),
        "analyses:",
        "  - name: hosts",
        "    entity_labels: [instance]",
        "    window: 2h",
        f"    step: {dur(step)}",
        "    horizons: [1h, 2h, 4h]",
        "    signals:",
    ]
    for name, cap, kind, query, _ in SIGNALS:
        lines.append(f"      - name: {name}")
        lines.append("        query: '" + query.replace("'", "''") + "'")
        if cap is not None:
            lines.append(f"        capacity: {cap:g}")
        lines.append(f"        kind: {kind}")
    return "\n".join(lines) + "\n"


def truth(fleet: Fleet) -> dict:
    return {
        "generator": "benchmarks/fleetgen.py", "seed": fleet.seed, "start": fleet.start,
        "end": fleet.end, "step": fleet.step,
        "signals": {s[0]: {"capacity": s[1], "kind": s[2]} for s in SIGNALS},
        "hosts": [{
            "host": h.name, "role": h.role, "benign": sorted(h.families),
            "family_params": {f: {k: (v if isinstance(v, str) else round(float(v), 6))
                                  for k, v in fp.items()} for f, fp in h.families.items()},
            "instances": [{"instance": i.name, "from": i.start, "to": i.end} for i in h.instances],
            "failures": [{"kind": f.kind, "instance": f.instance, "sudden": f.sudden,
                          "precursor_start": f.precursor_start, "start": f.start, "end": f.end,
                          "signal": f.signal, "threshold": f.threshold} for f in h.failures],
        } for h in fleet.hosts],
    }


def write(out: Path, fleet: Fleet) -> dict:
    """Render and write data.csv, incidents.csv, aura.yml and truth.json; return a summary."""
    out.mkdir(parents=True, exist_ok=True)
    t, names, vals = generate(fleet)
    write_csv(out / "data.csv", t, names, vals)
    write_incidents(out / "incidents.csv", fleet)
    (out / "aura.yml").write_text(config_text(fleet.step))
    (out / "truth.json").write_text(json.dumps(truth(fleet), indent=1) + "\n")
    incs = incidents(fleet)
    return {"rows": len(t), "instances": len(set(names)), "hosts": len(fleet.hosts),
            "predictable": sum(not f.sudden for f in incs), "sudden": sum(f.sudden for f in incs),
            "missing_ratio": round(float(np.isnan(vals).mean()), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--hosts", type=int, default=48)
    ap.add_argument("--days", type=float, default=3.0)
    ap.add_argument("--step", type=float, default=60.0, help="seconds between samples")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--families", nargs="+", default=None,
                    help="benign families to use (space or comma separated; default: all)")
    ap.add_argument("--benign-only", action="store_true", help="healthy hosts, no incidents")
    ap.add_argument("--failures", type=int, default=None, help="predictable failures")
    ap.add_argument("--sudden", type=int, default=None, help="sudden failures")
    ap.add_argument("--start", type=float, default=None, help="first timestamp (Unix seconds)")
    ap.add_argument("--precursor", default="0.5,6",
                    help="shortest,longest precursor in hours (log-uniform; default 0.5,6; "
                         "capped to what --days leaves after the first 6 h)")
    args = ap.parse_args(argv)
    fams = None
    if args.families is not None:
        fams = tuple(x for a in args.families for x in a.split(",") if x)
    try:
        try:
            lo, hi = (float(x) * HOUR for x in args.precursor.split(","))
        except ValueError:
            raise FleetgenError(f"--precursor {args.precursor!r}: expected MIN,MAX hours") from None
        fleet = plan(args.seed, args.hosts, args.days, args.step, fams, args.benign_only,
                     args.failures, args.sudden, args.start, (lo, hi))
    except FleetgenError as err:
        print(f"fleetgen: {err}", file=sys.stderr)
        return 2
    summary = write(Path(args.out), fleet)
    print(" ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
