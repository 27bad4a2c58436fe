#!/usr/bin/env python3
"""fleetgen4: an independent synthetic Kubernetes fleet, used only to evaluate AURA.

Provenance. Written by a session briefed only with real-world Kubernetes/service behaviour and
AURA's input formats (/work/shared/design.md, README.md). That session did not read AURA's code
(exporter/), its models, its tests or the other fleet generators (fleetgen.py, fleetgen3.py),
did not run `aura backtest` on this data, and nothing here was adjusted after seeing any AURA
result. Its only contact with AURA was `aura check-config --csv` on the aura.yml it writes.

Usage:
    python benchmarks/fleetgen4.py SEED [OUTDIR] [--days 3] [--scale 1.0]
    (OUTDIR defaults to /tmp/g4/fleet-SEED; numpy + stdlib, deterministic per seed and options)
writes data.csv (timestamp,pod,<signals>; step 30 s; empty cell = missing), incidents.csv
(start,end,pod,kind), truth.json (pods, benign behaviours, fleet events, failures) and aura.yml.
From Python: ``generate(seed, outdir, days=3, scale=1.0, n_failures=None)`` returns the truth.

The fleet: one namespace ("shop") of 4-6 workloads: an HTTP API (Deployment + HPA), a JVM
service (Deployment + HPA), a Kafka consumer on the JVM (Deployment), a PostgreSQL StatefulSet
(primary + replicas, PVCs), often a Redis StatefulSet (AOF on a PVC or a pure cache),
sometimes a second API or JVM service, plus CronJob pods (nightly report, sometimes an hourly
job). Behind Istio sidecars, on a shared multi-zone cluster, under a namespace ResourceQuota
of 45 pods: 25-45 pods are alive at any time at the default scale (completed job pods keep
their restart series until deleted, as kube-state-metrics reports them).

Signals (columns) and units, with the PromQL they stand for in aura.yml:
    memory        container working set / memory limit (ratio, 0..1)          cAdvisor + KSM
    cpu           CPU usage rate / CPU limit (ratio, 0..1; 1 = throttled)     cAdvisor + KSM
    pvc           PVC used / capacity (ratio; PostgreSQL, Redis with AOF)     kubelet volume stats
    latency_p99   request p99 latency in seconds (Istio, API/JVM/cache pods)
    errors_5xx    5xx responses per second (Istio, 5 m rate; API/JVM pods)
    consumer_lag  Kafka consumer records lag max, messages (consumer pods)
    gc_time       JVM GC pause seconds per second (5 m rate; JVM pods)
    restarts      kube_pod_container_status_restarts_total (counter, every pod)
    pool          connection pool in use / max (ratio; Hikari for JVM, DB client pool for
                  the API, connections / max_connections on PostgreSQL)
A signal a pod's workload does not expose is an empty cell.

Benign behaviour (never an incident): daily and weekly traffic cycles with day-to-day variation
and marketing surges; HPA scale-out/in (new pod names, cold pods, pending pods at peaks);
rolling deploys (new ReplicaSet hash, surge, warm-up: JIT CPU, latency, memory ramps), Argo
style canaries with revision-specific levels (promoted or aborted), StatefulSet rolling
restarts (same pod name, counter back to 0); node drains of a node-pool upgrade (several pods
evicted at once); nightly batch (CronJob pod, DB CPU/temp files, Kafka burst and lag that
drains), hourly jobs; JVM heap sawtooth driven by allocation rate; cache warm-up after a
restart (in-process caches; Redis refilled by misses, or reloaded from its AOF), AOF growth and
rewrite (PVC sawtooth, fork memory spike); PostgreSQL log/WAL growth
with nightly rotation; consumer lag spikes at rebalances and producer bursts; noisy-neighbour
CPU bursts on a node; scrape gaps (per pod, per node's kubelet, kube-state-metrics,
Prometheus restart); single liveness-probe restarts and startup-probe restarts; slow leaks
that a routine deploy resets; fleet-wide upstream slowdowns that recover; a DB connection
count that follows the clients' replica count.

Failures (incidents.csv; precursor lengths lognormal, median ~2 h, 20 min-6 h):
    oom_kill           leak (per request, so it slows at night) until the OOMKill, restart
    gc_death_spiral    old generation filling, GC time and latency rising, JVM exits or hangs
    pool_exhaustion    connections leaked until the pool (or max_connections) is full
    consumer_dead      consumer slowing down (poison message / retries), lag runaway, declared
                       dead by its liveness check, restarts, backlog drains after the fix
    pvc_full           PostgreSQL WAL retained by a stuck replication slot fills the PVC,
                       PANIC, CrashLoopBackOff until the volume is expanded
    dependency_outage  the upstream instance its gRPC connections are pinned to degrades
                       (latency, errors creeping up), then fails until it recovers
    crashloop_config   a canary with a bad config: errors from the start, then after a config
                       reload CrashLoopBackOff until the canary is aborted
    sudden_node_lost, sudden_kernel_oom, sudden_crash   no precursor (kind prefixed sudden_)
`start` is when the pod is actually failing, `end` when it serves again (or is replaced).
8-14 failures per 3 days, 2-3 of them sudden. A failure of several pods at once (a lost node,
a sick upstream instance several pods' connections are pinned to) has one incidents.csv row per
pod (at most 14 rows in all), grouped by `group` in truth.json. An outage of the PostgreSQL
primary shows in every client pod (errors, latency, pools; consumers stall): collateral,
recorded in truth.json's fleet events, not incidents.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

GENERATOR = "fleetgen4"
VERSION = 1
STEP = 30
SPD = 86400 // STEP
MINUTE = 2
HOUR = 120
T0_BASE = 1772323200  # 2026-03-01T00:00:00Z
NAMESPACE = "shop"

SIGNALS = [
    "memory",
    "cpu",
    "pvc",
    "latency_p99",
    "errors_5xx",
    "consumer_lag",
    "gc_time",
    "restarts",
    "pool",
]
ROLE_SIGNALS = {
    "api": ["memory", "cpu", "latency_p99", "errors_5xx", "restarts", "pool"],
    "jvm": ["memory", "cpu", "latency_p99", "errors_5xx", "gc_time", "restarts", "pool"],
    "consumer": ["memory", "cpu", "consumer_lag", "gc_time", "restarts", "pool"],
    "cache": ["memory", "cpu", "pvc", "latency_p99", "restarts"],
    "db": ["memory", "cpu", "pvc", "restarts", "pool"],
    "job": ["memory", "cpu", "restarts"],
}
PRECURSOR_SIGNAL = {
    "oom_kill": "memory",
    "gc_death_spiral": "gc_time",
    "pool_exhaustion": "pool",
    "consumer_dead": "consumer_lag",
    "pvc_full": "pvc",
    "dependency_outage": "latency_p99",
    "crashloop_config": "errors_5xx",
}
ELIGIBLE = {
    "oom_kill": ["api", "jvm", "consumer"],
    "gc_death_spiral": ["jvm", "consumer"],
    "pool_exhaustion": ["api", "jvm", "db"],
    "consumer_dead": ["consumer"],
    "pvc_full": ["db"],
    "dependency_outage": ["api", "jvm"],
    "crashloop_config": ["api", "jvm"],
}
ALPH = "bcdfghjklmnpqrstvwxz2456789"
FMT = {
    "memory": "{:.4f}",
    "cpu": "{:.4f}",
    "pvc": "{:.4f}",
    "latency_p99": "{:.4g}",
    "errors_5xx": "{:.4g}",
    "consumer_lag": "{:.0f}",
    "gc_time": "{:.4g}",
    "restarts": "{:.0f}",
    "pool": "{:.4f}",
}


# ----------------------------------------------------------------------------- helpers


def ar1(rng, n, phi, sd):
    """Stationary AR(1) noise of standard deviation sd (truncated-kernel convolution)."""
    if n <= 0:
        return np.zeros(0)
    k = int(min(max(8, 6.0 / (1.0 - phi)), 4000))
    w = rng.standard_normal(n + k)
    y = np.convolve(w, phi ** np.arange(k), mode="full")[k : k + n]
    return y * sd * math.sqrt(1.0 - phi * phi)


def roll_mean(x, w):
    """Causal NaN-aware moving mean over w steps (what a [w*30s] rate window averages)."""
    v = ~np.isnan(x)
    cs = np.concatenate([[0.0], np.cumsum(np.where(v, x, 0.0))])
    cn = np.concatenate([[0], np.cumsum(v)])
    i = np.arange(len(x))
    lo = np.maximum(i - w + 1, 0)
    n = cn[i + 1] - cn[lo]
    return np.where(n > 0, (cs[i + 1] - cs[lo]) / np.maximum(n, 1), np.nan)


def roll_sum(x, w):
    cs = np.concatenate([[0.0], np.cumsum(x)])
    i = np.arange(len(x))
    return cs[i + 1] - cs[np.maximum(i - w + 1, 0)]


def sawtooth(rng, phase, amp):
    """Sawtooth in phase (cycles), each cycle with its own height (GC cycles differ)."""
    cyc = np.floor(phase).astype(int)
    c0 = int(cyc.min()) if len(cyc) else 0
    heights = amp * np.exp(rng.normal(0.0, 0.25, (int(cyc.max()) - c0 + 1) if len(cyc) else 1))
    return heights[cyc - c0] * (phase % 1.0)


def lindley(x):
    """Queue length L_t = max(0, L_{t-1} + x_t), L_{-1} = 0, vectorised."""
    s = np.cumsum(x)
    return s - np.minimum(0.0, np.minimum.accumulate(s))


def interval_mask(g, intervals):
    m = np.zeros(len(g), dtype=bool)
    for a, b in intervals:
        m |= (g >= a) & (g < b)
    return m


def lognormal_precursor(rng):
    """Precursor length in steps: lognormal, median ~2 h, kept within 20 min..6 h."""
    while True:
        s = float(np.exp(rng.normal(math.log(7200.0), 0.6)))
        if 1200.0 <= s <= 21600.0:
            return int(round(s / STEP))


@dataclass
class Pod:
    uid: int
    name: str
    dep: str
    role: str
    workload: str
    created: int
    running: int
    ready: int
    node: str
    zone: str
    revision: str
    birth: str
    end: int = -1
    death: str = ""
    canary: bool = False
    ordinal: int = -1
    term_at: int | None = None
    complete_at: int | None = None
    silent_from: int | None = None
    startup: int = 2
    down: list = field(default_factory=list)
    unready: list = field(default_factory=list)
    restarts: list = field(default_factory=list)
    base_restarts: int = 0
    benign: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    fx: list = field(default_factory=list)


@dataclass
class Dep:
    name: str
    role: str
    workload: str
    replicas: int
    hpa_min: int = 0
    hpa_max: int = 0
    hpa_peak: int = 0
    rev: str = ""
    prev_rev: str = ""
    active: list = field(default_factory=list)
    rollout: dict | None = None
    canary: Pod | None = None
    desired_hist: list = field(default_factory=list)
    startup: tuple = (1, 2)
    deploy_rate: float = 0.0
    canary_prob: float = 0.0
    p: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- the fleet


class Fleet:
    def __init__(self, seed, days=3.0, scale=1.0, n_failures=None, n_sudden=None):
        self.seed = int(seed)
        self.days = float(days)
        self.scale = float(scale)
        self.T = int(round(self.days * SPD))
        kids = np.random.SeedSequence([self.seed, 0x46_47_34]).spawn(9)
        (
            self.r_plan,
            self.r_traffic,
            self.r_life,
            self.r_fail,
            self.r_benign,
            self.r_gap,
            self.r_names,
            self.r_misc,
            self.r_sig,
        ) = [np.random.default_rng(k) for k in kids]
        self.t0 = T0_BASE + 86400 * (self.seed % 7)
        self.tz = int(self.r_plan.choice([-5, -4, 0, 1, 2]))
        self.region = str(self.r_plan.choice(["eu-west-1", "us-east-1", "eu-central-1"]))
        steps = np.arange(self.T)
        lh = (self.t0 + steps * STEP) / 3600.0 + self.tz
        self.hour = lh % 24.0
        self.lday = np.floor(lh / 24.0).astype(int)
        self.weekday = (self.lday + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        self.names_used: set[str] = set()
        self.pods: list[Pod] = []
        self.deps: list[Dep] = []
        self.nodes: list[dict] = []
        self.events: list[dict] = []
        self.failures: list[dict] = []
        self.rev_params: dict = {}
        self.quota = int(round(45 * self.scale))
        self.extra_rows = 0  # incident rows beyond one per failure (failures of several pods)
        self.actions: dict = {}
        n_fail = n_failures
        if n_fail is None:
            n_fail = int(self.r_fail.integers(8, 15))
            n_fail = max(3, int(round(n_fail * self.days / 3.0)))
        self.n_failures = int(n_fail)
        if n_sudden is None:
            n_sudden = int(self.r_fail.integers(2, 4)) if self.days >= 2 else 1
        self.n_sudden = int(min(n_sudden, max(1, self.n_failures - 1)))

    # ------------------------------------------------------------------ names, time
    def uniq(self, make):
        while True:
            s = make()
            if s not in self.names_used:
                self.names_used.add(s)
                return s

    def rand_str(self, n):
        return "".join(ALPH[int(i)] for i in self.r_names.integers(0, len(ALPH), n))

    def new_rev(self):
        return self.uniq(lambda: self.rand_str(int(self.r_names.integers(9, 11))))

    def ts(self, step):
        return int(self.t0 + STEP * int(step))

    def local_window_steps(self, day, h0, h1, weekdays_only=False):
        m = (self.lday == day) & (self.hour >= h0) & (self.hour < h1)
        if weekdays_only:
            m &= self.weekday < 5
        return np.flatnonzero(m)

    def event(self, kind, step, **kw):
        e = {"type": kind, "time": self.ts(step)}
        e.update(kw)
        self.events.append(e)
        return e

    def schedule(self, step, *action):
        now = getattr(self, "now", None)
        if now is not None and step <= now:
            step = now + 1  # this step's actions are already being run
        if step < self.T:
            self.actions.setdefault(int(step), []).append(action)

    # ------------------------------------------------------------------ plan
    def plan_fleet(self):
        r = self.r_plan
        api = str(r.choice(["checkout", "storefront-api", "cart", "search-api", "gateway"]))
        jvm = str(r.choice(["payments", "pricing", "inventory", "catalog-svc"]))
        cons = str(r.choice(["order-worker", "event-indexer", "notification-consumer"]))
        db = str(r.choice(["orders-db", "postgres-main", "accounts-db"]))
        specs = [("api", api), ("jvm", jvm), ("consumer", cons), ("db", db)]
        if r.random() < 0.75:
            specs.append(("cache", str(r.choice(["session-cache", "redis-catalog"]))))
        if r.random() < 0.5:
            if r.random() < 0.5:
                other = [n for n in ["recommendations", "user-api", "reviews"] if n != api]
                specs.append(("api", str(r.choice(other))))
            else:
                other = [n for n in ["shipping", "loyalty", "fraud-check"] if n != jvm]
                specs.append(("jvm", str(r.choice(other))))
        sc = self.scale
        for k, (role, name) in enumerate(specs):
            first = k < 4
            if role == "api":
                mn = max(1, round((int(r.integers(6, 9)) if first else int(r.integers(3, 5))) * sc))
                d = Dep(name, role, "Deployment", mn, hpa_min=mn)
                d.p["ratio"] = float(r.uniform(1.6, 2.0))
                d.startup = (1, 3)
                d.deploy_rate = float(r.uniform(1.0, 2.2))
                d.canary_prob = 0.35
            elif role == "jvm":
                mn = max(1, round((int(r.integers(4, 6)) if first else 3) * sc))
                d = Dep(name, role, "Deployment", mn, hpa_min=mn)
                d.p["ratio"] = float(r.uniform(1.4, 1.7))
                d.startup = (3, 6)
                d.deploy_rate = float(r.uniform(0.4, 1.0))
                d.canary_prob = 0.3
            elif role == "consumer":
                n = max(1, round(int(r.integers(4, 7)) * sc))
                d = Dep(name, role, "Deployment", n)
                d.startup = (2, 4)
                d.deploy_rate = float(r.uniform(0.3, 0.7))
            elif role == "cache":
                d = Dep(name, role, "StatefulSet", 3)
                d.startup = (1, 1)
                d.deploy_rate = 0.08
            else:
                d = Dep(name, role, "StatefulSet", 3)
                d.startup = (2, 4)
                d.deploy_rate = 0.05
            self.deps.append(d)
        # size the fleet: at least ~27-30 pods at the nightly minimum, at most ~42 at peaks
        target = int(round(int(r.integers(28, 32)) * sc))
        grow = [d for d in self.deps if d.workload == "Deployment"]
        k = 0
        while sum(d.replicas for d in self.deps) < target and k < 200:
            d = grow[k % len(grow)]
            d.replicas += 1
            if d.hpa_min:
                d.hpa_min += 1
            k += 1
        for d in self.deps:
            if d.hpa_min:
                d.hpa_peak = max(d.hpa_min + 1, int(round(d.hpa_min * d.p["ratio"])))
                d.hpa_max = d.hpa_peak + 2
        cap = int(round(40 * sc))
        while True:
            tot = sum(d.hpa_max if d.hpa_min else d.replicas for d in self.deps)
            hp = [d for d in self.deps if d.hpa_min and d.hpa_peak > d.hpa_min + 1]
            if tot <= cap or not hp:
                break
            d = max(hp, key=lambda x: x.hpa_peak - x.hpa_min)
            d.hpa_peak -= 1
            d.hpa_max -= 1
        for d in self.deps:
            d.rev = self.new_rev()
            self.new_rev_params(d, d.rev, initial=True)
            self.dep_params(d)

    def new_rev_params(self, d, rev, initial=False):
        r = self.r_plan
        if initial:
            self.rev_params[(d.name, rev)] = {"mem_off": 0.0, "lat_mult": 1.0, "err_mult": 1.0,
                                              "cpu_mult": 1.0}
        else:
            self.rev_params[(d.name, rev)] = {
                "mem_off": float(r.normal(0.0, 0.025)),
                "lat_mult": float(np.exp(r.normal(0.0, 0.06))),
                "err_mult": float(np.exp(r.normal(0.0, 0.35))),
                "cpu_mult": float(np.exp(r.normal(0.0, 0.05))),
            }

    def dep_params(self, d):
        r = self.r_plan
        p = d.p
        p["shift_h"] = float(r.uniform(-0.6, 0.6))
        if d.role == "api":
            p["rps_pod"] = float(r.uniform(40, 140))
            p["lat0"] = float(r.uniform(0.06, 0.2))
            p["err"] = float(np.exp(r.uniform(np.log(1e-4), np.log(1.5e-3))))
            p["timeout"] = float(r.choice([5.0, 10.0, 15.0]))
            p["pool_max"] = int(r.choice([20, 25, 40]))
            p["target"] = float(r.uniform(0.28, 0.4))
        elif d.role == "jvm":
            p["rps_pod"] = float(r.uniform(15, 60))
            p["lat0"] = float(r.uniform(0.08, 0.3))
            p["err"] = float(np.exp(r.uniform(np.log(1e-4), np.log(1e-3))))
            p["timeout"] = float(r.choice([10.0, 30.0]))
            p["pool_max"] = int(r.choice([20, 30, 40]))
            p["target"] = float(r.uniform(0.3, 0.45))
        elif d.role == "consumer":
            p["msgs_pod"] = float(r.uniform(40, 300))  # inflow per pod at the daily peak
            p["headroom"] = float(r.uniform(1.8, 3.0))  # max throughput / peak inflow
            p["pool_max"] = int(r.choice([10, 16]))
            p["partitions"] = int(r.choice([12, 24, 32]))
        elif d.role == "cache":
            p["lat0"] = float(r.uniform(0.0008, 0.003))
            p["maxmem"] = float(r.uniform(0.55, 0.75))
            p["aof"] = bool(r.random() < 0.6)
        elif d.role == "db":
            p["pvc0"] = [float(r.uniform(0.3, 0.62)) for _ in range(3)]
        if d.hpa_min:
            p["rps_total_peak"] = p["rps_pod"] * d.hpa_peak
        elif d.role == "consumer":
            p["msgs_total_peak"] = p["msgs_pod"] * d.replicas

    # ------------------------------------------------------------------ traffic
    def diurnal(self, shift):
        h = (self.hour - shift) % 24.0

        def bump(c, w):
            dd = (h - c + 12.0) % 24.0 - 12.0
            return np.exp(-0.5 * (dd / w) ** 2)

        v = 0.16 + 0.22 * bump(9.0, 1.6) + 0.5 * bump(12.8, 2.4) + 0.78 * bump(20.6, 2.2)
        v = v / 0.95
        wk = self.weekday >= 5
        v = np.where(wk, v * 1.06 + 0.05 * bump(15.0, 3.0), v)
        return v

    def plan_traffic(self):
        r = self.r_traffic
        T = self.T
        ndays = int(self.lday.max() - self.lday.min() + 1)
        daymult = np.exp(r.normal(0.0, 0.08, ndays))
        dm = daymult[self.lday - self.lday.min()]
        user = dm * np.exp(ar1(r, T, 0.995, 0.05))
        surge = np.zeros(T)
        for _ in range(int(r.poisson(0.5 * self.days))):
            s = int(r.choice(np.flatnonzero((self.hour > 10) & (self.hour < 21))))
            amp = float(r.uniform(0.5, 1.4))
            tau = float(r.uniform(10, 30)) * MINUTE
            rise = int(r.integers(2, 6)) * MINUTE
            k = np.arange(T) - s
            shape = np.where(k < 0, 0.0, np.where(k < rise, k / rise, np.exp(-(k - rise) / tau)))
            surge += amp * shape
            self.event("traffic_surge", s, amplitude=round(amp, 3),
                       decay_minutes=round(tau / MINUTE, 1), deployments="user-facing")
        user = user * (1.0 + surge)
        self.user = user
        self.rps = {}
        for d in self.deps:
            if d.role in ("api", "jvm"):
                base = self.diurnal(d.p["shift_h"]) * user * np.exp(ar1(r, T, 0.98, 0.04))
                self.rps[d.name] = d.p["rps_total_peak"] * base
                d.demand = self.rps[d.name] / d.p["rps_pod"]
        # fleet-wide upstream slowdowns (shared dependency, DNS, cloud API): recover alone
        self.up_lat = np.ones(T)
        self.up_err = np.zeros(T)
        self.up_cap = np.ones(T)
        n_up = 1 + int(r.poisson(0.4 * self.days))
        for _ in range(n_up):
            s = int(r.integers(HOUR, max(HOUR + 1, T - HOUR)))
            dur = int(r.integers(10, 50)) * MINUTE
            ramp = int(r.integers(2, 8)) * MINUTE
            sev = float(r.uniform(1.5, 3.0))
            k = np.arange(T) - s
            env = np.clip(np.minimum(k / ramp, (dur - k) / ramp), 0.0, 1.0)
            self.up_lat *= 1.0 + (sev - 1.0) * env
            err = float(r.uniform(0.001, 0.01))
            self.up_err += err * env
            self.up_cap *= 1.0 - 0.4 * env
            self.event("upstream_slowdown", s, end=self.ts(s + dur), latency_factor=round(sev, 2),
                       error_ratio=round(err, 4), scope="all API/JVM pods, consumers slowed")
        # nightly batch (the CronJob drives it): DB load, temp files, Kafka burst
        self.batch = np.zeros(T)
        self.batches = []
        for day in range(int(self.lday.min()), int(self.lday.max()) + 1):
            st = self.local_window_steps(day, 2.0, 2.5)
            if len(st) == 0:
                continue
            s = int(st[0]) + int(r.integers(0, 20)) * 1
            dur = int(r.integers(25, 61)) * MINUTE
            if s + 4 >= T:
                continue
            k = np.arange(T) - s
            self.batch += np.clip(np.minimum(k / (3 * MINUTE), (dur - k) / (3 * MINUTE)), 0, 1)
            burst = float(r.uniform(600, 2400))
            self.batches.append((s, dur, burst))
            self.event("nightly_batch", s, end=self.ts(s + dur), kafka_burst_seconds=round(burst))
        # consumer inflow: follows orders (the first API) plus batch and producer bursts
        api = next(d for d in self.deps if d.role == "api")
        self.inflow_norm = self.rps[api.name] / api.p["rps_total_peak"]
        extra = np.zeros(T)
        for s, _dur, burst in self.batches:
            w = 10 * MINUTE
            extra[s : s + w] += burst / (w * STEP)  # peak-inflow-seconds spread over 10 min
        for _ in range(int(r.poisson(2.0 * self.days))):
            s = int(r.integers(0, T))
            w = int(r.integers(2, 12)) * MINUTE
            amt = float(r.uniform(60, 600))
            extra[s : s + w] += amt / (w * STEP)
            self.event("producer_burst", s, minutes=w / MINUTE, peak_inflow_seconds=round(amt))
        self.inflow_norm = self.inflow_norm + extra
        # DB load: what the apps send
        tot = np.zeros(T)
        for d in self.deps:
            if d.role in ("api", "jvm"):
                tot += self.rps[d.name] / d.p["rps_total_peak"]
        self.db_load = tot / max(1, sum(1 for d in self.deps if d.role in ("api", "jvm")))

    # ------------------------------------------------------------------ nodes and pods
    def add_node(self, step, zone=None, reason="initial"):
        r = self.r_names
        z = zone or f"{self.region}{'abc'[len(self.nodes) % 3]}"
        name = self.uniq(lambda: f"ip-10-0-{int(r.integers(16, 250))}-{int(r.integers(2, 254))}."
                                 f"{self.region}.compute.internal")
        n = {"name": name, "zone": z, "from": step, "to": None, "reason": reason}
        self.nodes.append(n)
        return n

    def node_alive(self, n, i):
        return n["from"] <= i and (n["to"] is None or i < n["to"])

    def pick_node(self, i, zone=None):
        cand = [n for n in self.nodes if self.node_alive(n, i) and (zone is None or n["zone"] == zone)]
        if not cand:
            cand = [n for n in self.nodes if self.node_alive(n, i)]
        counts = {n["name"]: 0 for n in cand}
        for d in self.deps:
            for p in d.active:
                if p.node in counts:
                    counts[p.node] += 1
        score = [counts[n["name"]] + float(self.r_life.uniform(0, 3.0)) for n in cand]
        n = cand[int(np.argmin(score))]
        return n["name"], n["zone"]

    def new_pod(self, d, i, birth, canary=False, ordinal=-1, zone=None, pending=0, attach=0,
                recovery=0, rev=None):
        r = self.r_life
        rev = d.rev if rev is None else rev
        if d.workload == "StatefulSet":
            name = f"{d.name}-{ordinal}"
        else:
            name = self.uniq(lambda: f"{d.name}-{rev}-{self.rand_str(5)}")
        pull = pending + attach + (1 if r.random() < 0.3 else 0)
        startup = int(r.integers(d.startup[0], d.startup[1] + 1))
        running = i + pull
        ready = running + startup + recovery
        node, z = self.pick_node(i, zone)
        p = Pod(len(self.pods), name, d.name, d.role, d.workload, i, running, ready, node, z,
                rev, birth, canary=canary, ordinal=ordinal, startup=startup)
        if birth != "initial" and d.role in ("jvm", "consumer") and r.random() < 0.08:
            # startup probe too tight for a cold JVM: killed once, then starts
            k = running + startup
            p.down.append((k, k + 1))
            p.restarts.append(k + 1)
            p.ready = k + 1 + startup
            p.benign.append({"type": "startup_probe_restart", "time": self.ts(k)})
        if pending:
            p.benign.append({"type": "pending_for_node", "minutes": pending / MINUTE})
        if birth != "initial":
            p.benign.append({"type": "cold_start_warmup", "time": self.ts(running),
                             "reason": birth})
        self.pods.append(p)
        d.active.append(p)
        return p

    def room(self, i):
        """Pods the namespace's ResourceQuota (pods: 45) still admits at step i."""
        n = 0
        for p in self.pods:
            if p.created <= i and (p.end < 0 or p.end > i) \
                    and (p.silent_from is None or p.silent_from > i) \
                    and (p.complete_at is None or p.complete_at > i):
                n += 1
        return self.quota - n

    def new_job_pod(self, jobname, i, run_steps, linger, mem_peak, node_zone=None):
        name = f"{jobname}-{(self.t0 + i * STEP) // 60}-{self.rand_str(5)}"
        self.names_used.add(name)
        node, z = self.pick_node(i, node_zone)
        p = Pod(len(self.pods), name, jobname, "job", "CronJob", i, i + 1, i + 1, node, z, "",
                "cronjob")
        p.complete_at = i + 1 + run_steps
        p.end = p.complete_at + linger
        p.death = "completed"
        p.fx.append({"t": "job", "peak": mem_peak})
        p.benign.append({"type": "cronjob_run", "from": self.ts(i), "to": self.ts(p.complete_at),
                         "memory_peak": round(mem_peak, 3)})
        self.pods.append(p)
        return p

    def terminate(self, p, i, reason):
        if p.end >= 0:
            return
        p.end = i
        p.death = reason
        d = self.dep(p.dep)
        if p in d.active:
            d.active.remove(p)
        if d.canary is p:
            d.canary = None

    def dep(self, name):
        for d in self.deps:
            if d.name == name:
                return d
        raise KeyError(name)

    # ------------------------------------------------------------------ lifecycle
    def initial_pods(self):
        r = self.r_life
        for _ in range(16):  # a shared cluster: other namespaces' pods fill these nodes too
            self.add_node(-30 * SPD)
        for d in self.deps:
            if d.workload == "StatefulSet":
                for k in range(d.replicas):
                    z = f"{self.region}{'abc'[k % 3]}"
                    c = -int(r.integers(2 * SPD, 20 * SPD))
                    p = self.new_pod(d, c, "initial", ordinal=k, zone=z)
                    p.base_restarts = int(r.poisson(0.5))
            else:
                n = d.replicas
                if d.hpa_min:
                    n = int(np.clip(math.ceil(d.demand[0]), d.hpa_min, d.hpa_max))
                for _ in range(n):
                    c = -int(r.integers(2 * HOUR, 40 * HOUR))
                    p = self.new_pod(d, c, "initial")
                    p.base_restarts = int(r.poisson(0.3))

    def plan_lifecycle(self):
        r = self.r_life
        T = self.T
        days = range(int(self.lday.min()), int(self.lday.max()) + 1)
        self.blocked = {d.name: [] for d in self.deps}
        # bad canaries (crashloop_config failures) and a lost node are planned up front
        kinds = self.failure_kinds()
        self.kinds_post = []
        for kind in kinds:
            if kind != "crashloop_config":
                self.kinds_post.append(kind)
                continue
            ok = False
            for _ in range(200):
                d = self.deps[int(r.integers(0, len(self.deps)))]
                if d.role not in ELIGIBLE[kind] or d.workload != "Deployment":
                    continue
                day = int(r.choice(list(days)))
                st = self.local_window_steps(day, 9.5, 17.0, weekdays_only=True)
                if len(st) == 0:
                    st = self.local_window_steps(day, 9.5, 17.0)
                if len(st) == 0:
                    continue
                ps = int(r.choice(st))
                pre = lognormal_precursor(self.r_fail)
                s = ps + pre
                end = s + int(r.integers(20, 120)) * MINUTE
                if ps < HOUR or end >= T - 10:
                    continue
                if any(a < end + HOUR and ps - HOUR < b for a, b in self.blocked[d.name]):
                    continue
                self.blocked[d.name].append((ps - HOUR, end + 30 * MINUTE))
                self.schedule(ps, "bad_canary", d.name, ps, s, end)
                ok = True
                break
            if not ok:
                self.kinds_post.append("oom_kill")
        self.sudden_kinds = []
        for k in range(self.n_sudden):
            if k == 0 and self.days >= 1.0:
                s = int(r.integers(3 * HOUR, T - 3 * HOUR))
                self.schedule(s, "node_lost")
            else:
                self.sudden_kinds.append(str(r.choice(["kernel_oom", "crash"])))
        # routine deploys: weekday business hours, a few on weekends
        for d in self.deps:
            for day in days:
                st = self.local_window_steps(day, 9.5, 17.5)
                if len(st) == 0:
                    continue
                wk = self.weekday[st[0]] >= 5
                n = int(r.poisson(d.deploy_rate * (0.1 if wk else 1.0)))
                for s in sorted(int(x) for x in r.choice(st, size=n)):
                    if any(a <= s < b for a, b in self.blocked[d.name]):
                        continue
                    canary = d.workload == "Deployment" and r.random() < d.canary_prob
                    self.schedule(s, "deploy", d.name, bool(canary))
                    self.blocked[d.name].append((s - 30 * MINUTE, s + 30 * MINUTE))
        # a node-pool upgrade: several nodes drained one after the other
        n_upg = max(1, int(round(self.days / 3.0 + r.random() * 0.6)))
        for _ in range(n_upg):
            s = int(r.integers(2 * HOUR, max(2 * HOUR + 1, T - 3 * HOUR)))
            self.schedule(s, "upgrade", int(r.integers(2, 5)))
        # CronJobs
        for s, dur, _b in self.batches:
            self.schedule(s, "cron", "nightly-report", dur, float(r.uniform(0.55, 0.88)))
        if self.r_plan.random() < 0.5:
            for s in np.flatnonzero(np.diff(np.floor(self.hour)) != 0) + 1:
                self.schedule(int(s) + 1, "cron", "sitemap-refresh", int(r.integers(2, 7)),
                              float(r.uniform(0.2, 0.5)))

    def run_lifecycle(self):
        T = self.T
        self.initial_pods()
        self.last_job = {}
        self.pending_sudden = []
        for i in range(T):
            self.now = i
            for act in self.actions.pop(i, []):
                getattr(self, "act_" + act[0])(i, *act[1:])
            for d in self.deps:
                if d.rollout is not None:
                    self.rollout_step(d, i)
                if d.hpa_min:
                    self.hpa_step(d, i)
        for p in self.pods:
            if p.end < 0:
                p.end = T
                p.death = "alive at end"
        self.pods = [p for p in self.pods if p.created < T]
        for n in self.nodes:
            if n["to"] is not None and n["to"] > T:
                n["to"] = None

    def current(self, d):
        now = getattr(self, "now", 0)
        return [p for p in d.active if not p.canary and (p.term_at is None or p.term_at > now)]

    def hpa_step(self, d, i):
        r = self.r_life
        D = float(d.demand[max(i - 2, 0)])
        cur = self.current(d)
        n = len(cur)
        ratio = D / max(n, 1)
        desired = n if abs(ratio - 1.0) <= 0.1 else math.ceil(D)
        desired = int(np.clip(desired, d.hpa_min, d.hpa_max))
        d.desired_hist.append(desired)
        del d.desired_hist[:-10]
        if desired > n and self.room(i) > 0:
            peak = self.hour[i] > 10
            desired = n + max(0, min(desired - n, self.room(i)))  # quota: the rest is refused
            for _ in range(desired - n):
                pend = int(r.integers(2, 9)) if (peak and r.random() < 0.15) else 0
                self.new_pod(d, i, "hpa_scale_out", pending=pend)
            self.event("hpa_scale", i, deployment=d.name, replicas_from=n, replicas_to=desired)
        elif d.rollout is None:
            stab = max(d.desired_hist)
            if stab < n:
                for p in sorted(cur, key=lambda x: (x.created, x.uid))[stab:]:
                    p.term_at = i + 1
                    self.schedule(i + 1, "term", p, "hpa_scale_in")
                self.event("hpa_scale", i, deployment=d.name, replicas_from=n, replicas_to=stab)

    def rollout_step(self, d, i):
        ro = d.rollout
        if i < ro["next"]:
            return
        old = [p for p in d.active if p.revision != ro["rev"] and p.term_at is None
               and not p.canary and p.created <= i]
        if not old:
            d.rollout = None
            return
        if d.workload == "Deployment":
            n_target = len(self.current(d))
            k = min(len(old), max(1, math.ceil(0.25 * n_target)), self.room(i))
            if k <= 0:
                ro["next"] = i + 1  # quota full: the ReplicaSet retries
                return
            new = [self.new_pod(d, i, "rollout") for _ in range(k)]
            t_term = max(p.ready for p in new) + 1
            for p in sorted(old, key=lambda x: (x.created, x.uid))[:k]:
                p.term_at = t_term
                self.schedule(t_term, "term", p, "rollout")
            ro["next"] = t_term + 1
        else:
            p = max(old, key=lambda x: x.ordinal)
            p.term_at = i + 1
            self.schedule(i + 1, "term", p, "statefulset_rollout")
            gap = int(self.r_life.integers(1, 3))
            q = self.new_pod(d, i + 1 + gap, "statefulset_rollout", ordinal=p.ordinal,
                             zone=p.zone, recovery=int(self.r_life.integers(0, 3)))
            d.active.remove(q)
            self.schedule(q.created, "attach", q)
            ro["next"] = q.ready + 2

    def act_attach(self, i, q):
        self.dep(q.dep).active.append(q)

    def act_term(self, i, p, reason):
        self.terminate(p, i, reason)

    def act_deploy(self, i, depname, canary):
        d = self.dep(depname)
        if d.rollout is not None or d.canary is not None:
            return
        if canary and self.room(i) <= 0:
            self.schedule(i + 10 * MINUTE, "deploy", depname, canary)
            return
        rev = self.new_rev()
        self.new_rev_params(d, rev)
        d.prev_rev = d.rev
        d.rev = rev
        if canary:
            c = self.new_pod(d, i, "canary", canary=True)
            d.canary = c
            dur = int(self.r_life.integers(20, 90)) * MINUTE
            ok = self.r_life.random() > 0.12
            self.schedule(i + dur, "promote" if ok else "abort", d.name, c)
            c.benign.append({"type": "canary", "revision": rev,
                             "levels": self.rev_params[(d.name, rev)],
                             "outcome": "promoted" if ok else "aborted"})
            self.event("deploy", i, deployment=d.name, revision=rev, strategy="canary",
                       outcome="promoted" if ok else "aborted", canary_pod=c.name,
                       canary_minutes=dur / MINUTE)
        else:
            d.rollout = {"rev": rev, "next": i}
            self.event("deploy", i, deployment=d.name, revision=rev or "(config change)",
                       strategy="rolling")

    def act_promote(self, i, depname, c):
        d = self.dep(depname)
        if c.end >= 0:
            return
        c.canary = False
        d.canary = None
        d.rollout = {"rev": d.rev, "next": i}

    def act_abort(self, i, depname, c):
        d = self.dep(depname)
        self.terminate(c, i, "canary_aborted")
        d.rev = d.prev_rev

    def act_bad_canary(self, i, depname, ps, s, end):
        d = self.dep(depname)
        if d.rollout is not None or d.canary is not None:
            self.kinds_post.append("oom_kill")
            return
        rev = self.new_rev()
        self.new_rev_params(d, rev)
        d.prev_rev, d.rev = d.rev, rev
        c = self.new_pod(d, i, "canary", canary=True)
        c.down = [x for x in c.down if x[0] < ps]
        d.canary = c
        self.schedule(end, "abort", d.name, c)
        self.event("deploy", i, deployment=d.name, revision=rev, strategy="canary",
                   outcome="aborted (crash loop)", canary_pod=c.name)
        f = self.add_failure("crashloop_config", c, ps, s, end)
        f["params"] = {"revision": rev}
        err_mult = float(self.r_fail.uniform(8, 40))
        c.fx.append({"t": "err_level", "a": ps, "b": s, "mult": err_mult,
                     "ramp": int(self.r_fail.integers(0, 30)) * MINUTE})
        f["params"]["error_multiplier"] = round(err_mult, 2)
        self.crash_loop(c, s, end)
        c.unready.append((s, end))

    def crash_loop(self, p, s, end):
        """CrashLoopBackOff between s and end: short runs, back-off 10 s .. 5 min."""
        t = s
        back = 10.0
        while t < end:
            dl = max(1, int(round(back / STEP)))
            p.down.append((t, min(t + dl, end)))
            if t + dl < end:
                p.restarts.append(t + dl)
            t = t + dl + 1
            back = min(back * 2.0, 300.0)

    def act_cron(self, i, jobname, run_steps, mem_peak):
        linger = 0
        if jobname == "sitemap-refresh":
            linger = 20
        if self.room(i) <= 0:
            self.schedule(i + 2, "cron", jobname, run_steps, mem_peak)
            return
        p = self.new_job_pod(jobname, i, run_steps, linger, mem_peak)
        prev = self.last_job.get(jobname)
        if jobname == "nightly-report":
            p.end = self.T + 1  # kept (successfulJobsHistoryLimit: 1) until the next run
            if prev is not None:
                prev.end = max(prev.complete_at, i)
        self.last_job[jobname] = p

    def act_upgrade(self, i, n_nodes):
        cand = [n for n in self.nodes if self.node_alive(n, i)]
        order = self.r_life.permutation(len(cand))[:n_nodes]
        for k, j in enumerate(order):
            s = i + k * int(self.r_life.integers(16, 31))
            self.schedule(s, "drain", cand[int(j)]["name"])

    def pods_on(self, node, i):
        return [p for d in self.deps for p in d.active if p.node == node and p.term_at is None
                and p.created <= i]

    def act_drain(self, i, nodename):
        node = next(n for n in self.nodes if n["name"] == nodename)
        if not self.node_alive(node, i):
            return
        if any(p.canary or p.failures for p in self.pods_on(nodename, i)):
            self.schedule(i + 30 * MINUTE, "drain", nodename)  # wait for the canary analysis
            return
        new = self.add_node(i, node["zone"], reason="upgrade surge")
        node["to"] = i
        node["reason_to"] = "drained (node-pool upgrade)"
        pods = self.pods_on(nodename, i)
        per_dep: dict = {}
        names = []
        for p in pods:
            d = self.dep(p.dep)
            j = per_dep.get(d.name, 0)
            per_dep[d.name] = j + 1
            s = i + 2 * j  # the PDB lets one pod of a workload go at a time
            p.term_at = s
            self.schedule(s, "term", p, "evicted (node drain)")
            names.append(p.name)
            if d.workload == "Deployment":
                if p.canary:
                    continue
                self.schedule(s, "replace", d.name, "drain")
            else:
                gap = int(self.r_life.integers(2, 6))
                self.schedule(s + 1, "sts_create", d.name, p.ordinal, p.zone, "drain", gap, 0)
        self.event("node_drain", i, node=nodename, replacement_node=new["name"], pods=names)

    def act_replace(self, i, depname, birth):
        d = self.dep(depname)
        if d.hpa_min and len(self.current(d)) >= d.hpa_max:
            return
        if self.room(i) <= 0:
            self.schedule(i + 2, "replace", depname, birth)
            return
        self.new_pod(d, i, birth)

    def act_sts_create(self, i, depname, ordinal, zone, birth, attach, recovery):
        d = self.dep(depname)
        self.new_pod(d, i, birth, ordinal=ordinal, zone=zone, attach=attach, recovery=recovery)

    def act_node_lost(self, i, tries=0):
        cand = []
        for n in self.nodes:
            if not self.node_alive(n, i):
                continue
            ps = self.pods_on(n["name"], i)
            if not ps or any(p.canary or p.failures or p.ready >= i - 20 for p in ps):
                continue
            cand.append((len(ps), float(self.r_life.random()), n, ps))
        cand.sort(key=lambda x: (x[0], x[1]))
        most = 1 + min(1, max(0, 14 - self.n_failures))
        if (not cand or cand[0][0] > most) and tries < 60 and i + 20 * MINUTE < self.T - 2 * HOUR:
            # the node that dies is one of the emptier ones (surge nodes of an upgrade, ...)
            self.schedule(i + 20 * MINUTE, "node_lost", tries + 1)
            return
        if not cand:
            return
        _, _, node, pods = cand[0]
        self.extra_rows += len(pods) - 1
        node["to"] = i
        node["reason_to"] = "lost (NotReady, instance terminated)"
        delete_at = i + int(self.r_life.integers(16, 40))
        self.schedule(i + int(self.r_life.integers(6, 12)), "add_node", node["zone"])
        group = f"node-lost-{self.ts(i)}"
        for p in pods:
            d = self.dep(p.dep)
            p.silent_from = i
            p.term_at = i + 10
            self.schedule(delete_at, "term", p, "node lost")
            f = self.add_failure("node_lost", p, None, i, None, sudden=True)
            f["group"] = group
            f["params"] = {"node": node["name"], "node_deleted": self.ts(delete_at)}
            if d.workload == "Deployment":
                self.schedule(i + 10 + int(self.r_life.integers(0, 2)), "replace_for", d.name, f)
            else:
                attach = int(self.r_life.integers(4, 14))
                rec = int(self.r_life.integers(2, 10)) if d.role == "db" else 0
                self.schedule(delete_at + 1, "sts_for", d.name, p.ordinal, p.zone, attach, rec, f)
        self.event("node_lost", i, node=node["name"], pods=[p.name for p in pods],
                   node_deleted=self.ts(delete_at))

    def act_add_node(self, i, zone):
        self.add_node(i, zone, reason="autoscaler replacement")

    def act_replace_for(self, i, depname, f):
        if self.room(i) <= 0:
            self.schedule(i + 2, "replace_for", depname, f)
            return
        q = self.new_pod(self.dep(depname), i, "replacement (node lost)")
        f["end_step"] = q.ready
        f["params"]["replacement_pod"] = q.name

    def act_sts_for(self, i, depname, ordinal, zone, attach, rec, f):
        q = self.new_pod(self.dep(depname), i, "recreated (node lost)", ordinal=ordinal,
                         zone=zone, attach=attach, recovery=rec)
        f["end_step"] = q.ready

    # ------------------------------------------------------------------ failures
    def failure_kinds(self):
        r = self.r_fail
        roles = {d.role for d in self.deps}
        kinds = [k for k in PRECURSOR_SIGNAL if any(x in roles for x in ELIGIBLE[k])]
        n = self.n_failures - self.n_sudden
        out = []
        while len(out) < n:
            out.extend(str(k) for k in r.permutation(kinds))
        return out[:n]

    def add_failure(self, kind, p, ps, s, end, sudden=False, signal=None):
        f = {
            "id": len(self.failures),
            "kind": ("sudden_" + kind) if sudden else kind,
            "sudden": bool(sudden),
            "pod": p.name,
            "pod_uid": p.uid,
            "deployment": p.dep,
            "role": p.role,
            "precursor_start_step": ps,
            "start_step": s,
            "end_step": end,
            "signal": None if sudden else (signal or PRECURSOR_SIGNAL[kind]),
            "params": {},
        }
        self.failures.append(f)
        p.failures.append(f["id"])
        return f

    def busy(self, p, a, b):
        """Is this pod (or its name) already part of a failure overlapping [a, b)?"""
        for f in self.failures:
            if f["pod"] != p.name:
                continue
            fa = f["precursor_start_step"] if f["precursor_start_step"] is not None else f["start_step"]
            fb = f["end_step"] if f["end_step"] is not None else f["start_step"] + 2 * HOUR
            if fa - 2 * HOUR < b and a < fb + 2 * HOUR:
                return True
        return False

    def candidates(self, roles, a, b):
        out = []
        for p in self.pods:
            if p.role not in roles or p.canary or p.workload == "CronJob" or p.failures:
                continue
            if p.ready > a - 10 or p.end < b or p.silent_from is not None:
                continue
            if any(x < b and a < y for x, y in p.down):
                continue
            if self.busy(p, a, b):
                continue
            out.append(p)
        return out

    def place_failures(self):
        r = self.r_fail
        T = self.T
        post = {"oom_kill": HOUR, "gc_death_spiral": HOUR, "pool_exhaustion": 2 * HOUR,
                "consumer_dead": 3 * HOUR, "pvc_full": 4 * HOUR, "dependency_outage": 2 * HOUR}
        for kind in self.kinds_post:
            placed = False
            for _ in range(400):
                pre = lognormal_precursor(r)
                lo = pre + HOUR // 2
                hi = T - post[kind] // 2
                if hi <= lo:
                    continue
                s = int(r.integers(lo, hi))
                ps = s - pre
                b = min(T, s + post[kind] // 2)
                if kind == "dependency_outage":
                    cands = self.candidates(ELIGIBLE[kind], ps, b)
                    if not cands:
                        continue
                    p0 = cands[int(r.integers(0, len(cands)))]
                    # the pods whose long-lived gRPC connections landed on the sick instance
                    others = [p for p in cands if p.dep == p0.dep and p is not p0]
                    budget = max(0, 14 - self.n_failures - self.extra_rows)
                    k = min(len(others), int(r.integers(0, 2)), budget)
                    self.extra_rows += k
                    group = [p0] + [others[int(j)] for j in r.permutation(len(others))[:k]]
                    self.fail_dependency(group, ps, s)
                    placed = True
                    break
                cands = self.candidates(ELIGIBLE[kind], ps, b)
                if not cands:
                    continue
                p = cands[int(r.integers(0, len(cands)))]
                getattr(self, "fail_" + kind)(p, ps, s)
                placed = True
                break
            if not placed:
                self.event("failure_not_placed", 0, kind=kind)
        for kind in self.sudden_kinds:
            for _ in range(400):
                s = int(r.integers(HOUR, T - HOUR))
                roles = ["db", "cache", "jvm", "consumer"] if kind == "kernel_oom" else ["api", "jvm"]
                cands = self.candidates(roles, s - HOUR, min(T, s + HOUR))
                if not cands:
                    continue
                p = cands[int(r.integers(0, len(cands)))]
                self.fail_sudden(kind, p, s)
                break

    def restart_at(self, p, s, dl, extra_unready=0):
        p.down.append((s, s + dl))
        p.restarts.append(s + dl)
        up = s + dl + p.startup + extra_unready
        p.unready.append((s, up))
        return up

    def fail_oom_kill(self, p, ps, s):
        r = self.r_fail
        if p.running > s - 6 * HOUR and s - p.ready >= 40 and r.random() < 0.5:
            ps = p.ready + int(r.integers(0, 10))  # the leak is there from the start
        end = self.restart_at(p, s, int(r.integers(1, 3)))
        f = self.add_failure("oom_kill", p, ps, s, end)
        lvl = float(r.uniform(0.985, 0.997))
        pw = float(r.uniform(1.0, 1.8))
        p.fx.append({"t": "mem_to", "a": ps, "b": s, "level": lvl, "pow": pw})
        p.fx.append({"t": "burst", "at": s, "seconds": float(r.uniform(1, 5))})
        f["params"] = {"leak": "per request", "shape_power": round(pw, 2),
                       "last_working_set_ratio": round(lvl, 3)}

    def fail_gc_death_spiral(self, p, ps, s):
        r = self.r_fail
        hang = int(r.integers(1, 6)) if r.random() < 0.5 else 0
        end = self.restart_at(p, s + hang, int(r.integers(1, 3)))
        p.unready.append((s, s + hang))
        f = self.add_failure("gc_death_spiral", p, ps, s, end)
        h0 = float(r.uniform(0.3, 0.5))
        h1 = float(r.uniform(0.95, 0.985))
        p.fx.append({"t": "gc_spiral", "a": ps, "b": s, "h0": h0, "h1": h1, "hang_end": s + hang})
        p.fx.append({"t": "burst", "at": s + hang, "seconds": float(r.uniform(2, 8))})
        f["params"] = {"old_gen_after_gc_from": round(h0, 3), "to": round(h1, 3),
                       "hang_minutes": hang / MINUTE,
                       "exit": "OutOfMemoryError: GC overhead limit exceeded" if not hang
                       else "unresponsive, killed by liveness probe"}

    def fail_pool_exhaustion(self, p, ps, s):
        r = self.r_fail
        f = self.add_failure("pool_exhaustion", p, ps, s, None)
        if p.role == "db":
            end = s + int(r.integers(20, 80))
            p.fx.append({"t": "pool_leak", "a": ps, "b": s, "c": end, "db": True})
            f["params"] = {"what": "max_connections reached (idle in transaction leak)",
                           "fixed_by": "DBA terminated the leaked backends"}
        else:
            kill = s + int(r.integers(10, 50))
            unready = r.random() < 0.5
            end = self.restart_at(p, kill, 1)
            if unready:
                p.unready.append((s + 2, kill))
            p.fx.append({"t": "pool_leak", "a": ps, "b": s, "c": kill, "db": False})
            f["params"] = {"what": "connection leak on an error path", "readiness_fails": unready,
                           "fixed_by": "liveness restart"}
        f["end_step"] = end

    def fail_consumer_dead(self, p, ps, s):
        r = self.r_fail
        resume = s + int(r.integers(10, 50))
        self.restart_at(p, s, int(r.integers(1, 3)))
        t = s + int(r.integers(6, 14))
        while t < resume - 4:
            self.restart_at(p, t, 1)
            t += int(r.integers(8, 20))
        h1 = float(r.uniform(0.05, 0.35))
        catch = float(r.uniform(1.6, 2.6))
        f = self.add_failure("consumer_dead", p, ps, s, None)
        p.fx.append({"t": "lag_slow", "a": ps, "b": s, "resume": resume, "h1": h1, "catch": catch,
                     "fid": f["id"]})
        f["params"] = {"cause": "poison message retried, downstream timeouts",
                       "throughput_left": round(h1, 3), "resumed": self.ts(resume)}

    def fail_pvc_full(self, p, ps, s):
        r = self.r_fail
        fix = s + int(r.integers(20, 90)) * MINUTE
        self.crash_loop(p, s, fix)
        p.down.append((fix, fix + 1))
        p.restarts.append(fix + 1)
        rec = int(r.integers(2, 8))
        end = fix + 1 + p.startup + rec
        p.unready.append((s, end))
        f = self.add_failure("pvc_full", p, ps, s, end)
        clean = fix + int(r.integers(20, 60)) * MINUTE
        p.fx.append({"t": "pvc_fill", "a": ps, "b": s, "fix": fix, "clean": clean,
                     "expand": 1.5})
        f["params"] = {"cause": "WAL retained by an inactive replication slot",
                       "fixed_by": "PVC expanded x1.5, slot dropped",
                       "expanded": self.ts(fix), "slot_dropped": self.ts(clean),
                       "primary": p.ordinal == 0}

    def fail_dependency(self, group, ps, s):
        r = self.r_fail
        recover = s + int(r.integers(10, 60)) * MINUTE
        g = f"dependency-{self.ts(s)}"
        lat_k = float(r.uniform(3.0, 8.0))
        err1 = float(r.uniform(0.02, 0.08))
        err_out = float(r.uniform(0.3, 0.9))
        pw = float(r.uniform(1.5, 3.0))
        for p in group:
            f = self.add_failure("dependency_outage", p, ps, s, recover)
            f["group"] = g
            f["params"] = {"dependency": "upstream instance its gRPC connections are pinned to",
                           "error_ratio_at_outage": round(err_out, 3)}
            p.fx.append({"t": "dep_degrade", "a": ps, "b": s, "c": recover, "lat_k": lat_k,
                         "err1": err1, "err_out": err_out, "pow": pw})

    def fail_sudden(self, kind, p, s):
        r = self.r_fail
        if kind == "kernel_oom":
            rec = int(r.integers(4, 16)) if p.role == "db" else 0
            end = self.restart_at(p, s, int(r.integers(1, 3)), extra_unready=rec)
            f = self.add_failure("kernel_oom", p, None, s, end, sudden=True)
            f["params"] = {"cause": "node under memory pressure, kernel OOM killer picked it"}
        else:
            t = s
            end = s
            for _ in range(int(r.integers(2, 4))):
                end = self.restart_at(p, t, 1)
                t = t + 1 + int(r.integers(2, 5))
            f = self.add_failure("crash", p, None, s, end, sudden=True)
            f["params"] = {"cause": "nil pointer panic on a malformed request, retried by clients"}
        p.fx.append({"t": "burst", "at": s, "seconds": float(r.uniform(2, 6))})

    # ------------------------------------------------------------------ benign per pod
    def benign_pods(self):
        r = self.r_benign
        T = self.T
        normal = [p for p in self.pods if p.workload != "CronJob" and not p.failures]
        # single liveness-probe restarts that recover
        for _ in range(int(r.poisson(3.0 * self.days))):
            for _try in range(50):
                p = normal[int(r.integers(0, len(normal)))]
                lo, hi = max(p.ready + 20, 0), min(p.end, T) - 20
                if hi <= lo or p.silent_from is not None:
                    continue
                s = int(r.integers(lo, hi))
                if any(a - 20 < s < b + 20 for a, b in p.down):
                    continue
                self.restart_at(p, s, 1)
                p.benign.append({"type": "liveness_restart", "time": self.ts(s)})
                break
        # slow leaks that a routine deploy resets before they matter
        long_lived = [p for p in normal if p.death == "rollout" and p.role in ("api", "jvm", "consumer")
                      and p.end - max(p.ready, 0) > 6 * HOUR]
        n = min(len(long_lived), max(1, int(round(r.integers(2, 5) * self.days / 3.0))))
        for j in r.permutation(len(long_lived))[:n]:
            p = long_lived[int(j)]
            amt = float(r.uniform(0.08, 0.28))
            rec = {"type": "slow_leak_reset_by_deploy", "from": self.ts(max(p.ready, 0)),
                   "to": self.ts(p.end), "memory_added": round(amt, 3)}
            p.fx.append({"t": "mem_leak", "a": max(p.ready, 0), "b": p.end, "amount": amt,
                         "record": rec})
            p.benign.append(rec)
        # noisy neighbours: a batch container on a node eats shared CPU / memory bandwidth
        self.nn = []
        for _ in range(int(r.poisson(2.0 * self.days))):
            s = int(r.integers(0, T - 10))
            alive = [n for n in self.nodes if self.node_alive(n, s)]
            node = alive[int(r.integers(0, len(alive)))]
            dur = int(r.integers(5, 40)) * MINUTE
            fac = float(r.uniform(1.25, 1.9))
            self.nn.append((node["name"], s, s + dur, fac))
            hit = [p.name for p in self.pods if p.node == node["name"] and p.created <= s < p.end]
            self.event("noisy_neighbour", s, node=node["name"], end=self.ts(s + dur),
                       cpu_factor=round(fac, 2), pods=hit)
            for p in self.pods:
                if p.node == node["name"] and p.created <= s < p.end:
                    p.benign.append({"type": "noisy_neighbour", "from": self.ts(s),
                                     "to": self.ts(s + dur), "cpu_factor": round(fac, 2)})

    # ------------------------------------------------------------------ signals
    def masks(self, p):
        T = self.T
        c0, c1 = max(p.created, 0), min(p.end, T)
        g = np.arange(c0, c1)
        exist = np.ones(len(g), dtype=bool)
        running = g >= p.running
        if p.complete_at is not None:
            running &= g < p.complete_at
        down = interval_mask(g, p.down)
        running &= ~down
        silent = np.zeros(len(g), dtype=bool)
        if p.silent_from is not None:
            silent = g >= p.silent_from
            running &= ~silent
        ready = running & (g >= p.ready) & ~interval_mask(g, p.unready)
        starts = np.array(sorted([p.running] + [b for _a, b in p.down]))
        idx = np.searchsorted(starts, g, side="right") - 1
        age = np.where(idx >= 0, g - starts[np.maximum(idx, 0)], 0).astype(float)
        first = running & ~np.concatenate([[False], running[:-1]])
        rs = np.sort(np.array(p.restarts, dtype=float)) if p.restarts else np.zeros(0)
        restarts = p.base_restarts + np.searchsorted(rs, g, side="right")
        return {"g": g, "exist": exist, "running": running, "ready": ready, "down": down,
                "silent": silent, "age": age, "first": first, "restarts": restarts.astype(float)}

    def compute_masks(self):
        T = self.T
        self.M = {}
        self.ready_n = {d.name: np.zeros(T) for d in self.deps}
        self.running_n = {d.name: np.zeros(T) for d in self.deps}
        for p in self.pods:
            m = self.masks(p)
            self.M[p.uid] = m
            if p.workload == "CronJob":
                continue
            self.ready_n[p.dep][m["g"]] += m["ready"]
            self.running_n[p.dep][m["g"]] += m["running"]

    def prng(self, p):
        return np.random.default_rng([self.seed, 7, p.uid])

    def nn_factor(self, p, g):
        f = np.ones(len(g))
        for node, a, b, fac in self.nn:
            if node == p.node:
                k = g - a
                env = np.clip(np.minimum(k / 4.0, (b - g) / 4.0), 0, 1)
                f *= 1.0 + (fac - 1.0) * env
        return f

    def fx_arrays(self, p, g, rng):
        n = len(g)
        E = {"lat_mult": np.ones(n), "err_add": np.zeros(n), "err_mult": np.ones(n),
             "burst": np.zeros(n), "lat_floor": np.zeros(n), "cpu_add": np.zeros(n)}
        for e in p.fx:
            if e["t"] == "burst":
                E["burst"][g == e["at"]] += e["seconds"]
            elif e["t"] == "err_level":
                a, b = e["a"], e["b"]
                k = (g - a) / max(e["ramp"], 1)
                env = np.where((g >= a) & (g < b), np.clip(k, 0.3, 1.0), 0.0)
                E["err_mult"] *= 1.0 + (e["mult"] - 1.0) * env
                E["lat_mult"] *= 1.0 + 0.15 * env
            elif e["t"] == "dep_degrade":
                a, b, c = e["a"], e["b"], e["c"]
                u = np.clip((g - a) / max(b - a, 1), 0, 1) ** e["pow"]
                pre = (g >= a) & (g < b)
                out = (g >= b) & (g < c)
                tail = (g >= c) & (g < c + 10 * MINUTE)
                E["lat_mult"] *= np.where(pre, 1.0 + (e["lat_k"] - 1.0) * u, 1.0)
                E["err_add"] += np.where(pre, e["err1"] * u, 0.0)
                E["lat_floor"] = np.where(out, 1.0, E["lat_floor"])  # at the client timeout
                E["err_add"] += np.where(out, e["err_out"] * (0.8 + 0.2 * rng.random(n)), 0.0)
                dec = np.exp(-np.clip(g - c, 0, None) / (3.0 * MINUTE))
                E["lat_mult"] *= np.where(tail, 1.0 + 1.5 * dec, 1.0)
                E["err_add"] += np.where(tail, 0.02 * dec, 0.0)
        return E

    def gc_spiral_mult(self, e, load, g):
        """GC time multiplier of a death spiral `e`: the old generation after GC fills from
        h0 to h1 with cumulative load over [a, b), GC time ~ (1-h0)/(1-h) ^ 2.2; x60 while
        the JVM hangs [b, hang_end); 1 after."""
        u = self.cum_load(load, e["a"], e["b"], g, 1.0)
        h = e["h0"] + (e["h1"] - e["h0"]) * u
        mult = ((1.0 - e["h0"]) / (1.0 - h)) ** 2.2
        hang = (g >= e["b"]) & (g < e["hang_end"])
        return np.where(hang, 60.0, np.where(g >= e["b"], 1.0, mult))

    def cum_load(self, load, a, b, g, pw):
        """0..1 ramp over [a, b) following cumulative load (a per-request leak), ^pw."""
        m = (g >= a) & (g < b)
        u = np.zeros(len(g))
        if m.any():
            c = np.cumsum(np.where(m, load + 0.05, 0.0))
            tot = c[m][-1]
            u = np.where(m, c / max(tot, 1e-9), np.where(g >= b, 1.0, 0.0))
        return np.clip(u, 0, 1) ** pw

    def gen_signals(self):
        T = self.T
        self.compute_masks()
        self.S = {}
        self.cache_cold = np.zeros(T)
        self.db_down = np.zeros(T)
        self.db_pool_full = np.zeros(T)
        self.cache_fill_sum = np.zeros(T)
        self.cache_n = np.zeros(T)
        self.vols = {}
        for roles in (("cache",), ("db",), ("api", "jvm"), ("consumer",), ("job",)):
            for p in sorted((x for x in self.pods if x.role in roles), key=lambda x: x.uid):
                self.S[p.uid] = getattr(self, "sig_" + p.role)(p)
            if roles == ("cache",):
                self.calibrate_db()
                cold = 1.0 - self.cache_fill_sum / np.maximum(self.cache_n, 1)
                self.cache_cold = np.where(self.cache_n > 0, cold, 0.0)
            if roles == ("db",):
                # unplanned primary unavailability (crashes, node loss); planned restarts are
                # switchovers the clients barely notice
                for p in self.pods:
                    if p.role != "db" or p.ordinal != 0:
                        continue
                    m = self.M[p.uid]
                    g = m["g"]
                    bad = interval_mask(g, p.unready) | interval_mask(g, p.down) | m["silent"]
                    self.db_down[g] = np.maximum(self.db_down[g], bad.astype(float))
                edges = np.diff(np.concatenate([[0], (self.db_down > 0).astype(int), [0]]))
                for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1),
                                strict=True):
                    self.event("db_primary_unavailable", int(a), end=self.ts(int(b)),
                               effect="every API/JVM pod: errors and latency up, pools fill; "
                                      "consumers stall (collateral, not incidents)")
        for f in self.failures:
            if f["end_step"] is None:
                f["end_step"] = f["start_step"] + 30 * MINUTE
            f["end_step"] = int(min(f["end_step"], T))

    def db_clients(self, g, primary):
        clients = np.zeros(len(g))
        for x in self.deps:
            if x.role in ("api", "jvm", "consumer"):
                per = (0.5 if primary else 0.15) * x.p["pool_max"] * 0.5
                clients += self.running_n[x.name][g] * per
        return clients

    def calibrate_db(self):
        """max_connections as a DBA sized it: the usual peak at about half of it."""
        for d in self.deps:
            if d.role == "db":
                peak = float(self.db_clients(np.arange(self.T), True).max()) + 30.0
                frac = float(self.r_plan.uniform(0.45, 0.65))
                d.p["max_conn"] = int(math.ceil(peak / frac / 50.0) * 50)

    def base_arrays(self, p):
        m = self.M[p.uid]
        n = len(m["g"])
        return m, n, {s: np.full(n, np.nan) for s in SIGNALS}

    def pod_rps(self, p, m, d):
        g = m["g"]
        rpar = self.rev_params[(d.name, p.revision)]
        return self.rps[d.name][g] * m["ready"] / np.maximum(self.ready_n[d.name][g], 1), rpar

    def warm(self, age, amp, tau):
        return 1.0 + amp * np.exp(-age / max(tau, 1e-6))

    def sig_api(self, p):
        return self.sig_web(p, jvm=False)

    def sig_jvm(self, p):
        return self.sig_web(p, jvm=True)

    def sig_web(self, p, jvm):
        d = self.dep(p.dep)
        rng = self.prng(p)
        m, n, out = self.base_arrays(p)
        g, run, age = m["g"], m["running"], m["age"]
        rps, rpar = self.pod_rps(p, m, d)
        load = rps / d.p["rps_pod"]
        E = self.fx_arrays(p, g, rng)
        nn = self.nn_factor(p, g)
        up = self.up_lat[g]
        # ---- GC (JVM) and heap
        gc = np.zeros(n)
        if jvm:
            g0 = float(rng.uniform(0.004, 0.02))
            gc = g0 * (0.25 + load) * np.exp(rng.normal(0, 0.25, n))
            major = rng.random(n) < 0.004
            gc += np.where(major, rng.uniform(0.2, 1.2, n) / 30.0, 0.0)
            for e in p.fx:
                if e["t"] == "gc_spiral":
                    gc = gc * self.gc_spiral_mult(e, load, g)
                    E["lat_mult"] *= 1.0 + 6.0 * np.clip(gc, 0, 1)
                    E["err_add"] += np.where(gc > 0.25, 0.3 * (gc - 0.25), 0.0)
                    hang = (g >= e["b"]) & (g < e["hang_end"])
                    E["lat_floor"] = np.where(hang, 1.0, E["lat_floor"])
            gc = np.clip(gc, 0, 0.98)
        # ---- CPU
        tgt = d.p["target"]
        idle = float(rng.uniform(0.01, 0.03))
        wa = float(rng.uniform(1.5, 3.0) if jvm else rng.uniform(0.2, 0.9))
        wt = float(rng.uniform(3, 8) if jvm else rng.uniform(1, 4)) * MINUTE
        cpu_raw = (idle + (tgt - idle) * load * rpar["cpu_mult"] * self.warm(age, wa, wt)) * nn
        cpu_raw = cpu_raw + (1.2 * gc if jvm else 0.0) + 0.02 * (age < 3)
        cpu_raw *= np.exp(ar1(rng, n, 0.9, float(rng.uniform(0.04, 0.1))))
        cpu_raw = np.where(run, np.clip(cpu_raw, 0.001, 1.0), np.nan)
        cpu = roll_mean(cpu_raw, 10)
        cpu = np.where(run & ~m["first"], np.minimum(cpu, 0.999), np.nan)
        out["cpu"] = cpu
        # ---- memory
        if jvm:
            m0 = float(rng.uniform(0.55, 0.72))
            s0 = float(rng.uniform(0.25, 0.4))
            tau = float(rng.uniform(2, 6)) * MINUTE
            amp = float(rng.uniform(0.03, 0.09))
            per = float(rng.uniform(6, 30)) * MINUTE
            native = float(rng.uniform(0.01, 0.04))
            phase = float(rng.random()) + np.cumsum((0.2 + load) / per)
            mem = m0 * (1 - (1 - s0) * np.exp(-age / tau)) + sawtooth(rng, phase, amp)
            mem += native * (1 - np.exp(-age / (3 * HOUR)))
            p.benign.append({"type": "jvm_heap_sawtooth", "amplitude": round(amp, 3),
                             "period_minutes_at_peak": round(per / MINUTE / 1.2, 1)})
        else:
            m0 = float(rng.uniform(0.3, 0.55))
            s0 = float(rng.uniform(0.35, 0.6))
            tau = float(rng.uniform(10, 40)) * MINUTE
            amp = float(rng.uniform(0.005, 0.025))
            per = float(rng.uniform(2, 10)) * MINUTE
            phase = float(rng.random()) + np.cumsum((0.2 + load) / per)
            mem = m0 * (1 - (1 - s0) * np.exp(-age / tau)) + sawtooth(rng, phase, amp)
            mem += float(rng.uniform(0.03, 0.1)) * load
        mem += rpar["mem_off"] + ar1(rng, n, 0.995, float(rng.uniform(0.002, 0.008)))
        mem += rng.normal(0, 0.0015, n)
        self.apply_mem_fx(p, g, mem, load)
        out["memory"] = np.where(run, np.clip(mem, 0.01, 0.999), np.nan)
        # ---- latency (Istio sidecar, seconds)
        u = np.clip(np.nan_to_num(cpu_raw, nan=0.0), 0, 0.9)
        kq = float(rng.uniform(0.4, 1.2))
        lw = float(rng.uniform(1.0, 4.0) if jvm else rng.uniform(0.3, 1.0))
        lt = float(rng.uniform(3, 10)) * MINUTE
        # queueing as the CPU quota is approached, plus cold caches / JIT after a start
        lat = d.p["lat0"] * rpar["lat_mult"] * (1 + kq * u * u / (1 - u)
                                                 + lw * np.exp(-age / lt))
        lat *= up * (1.0 + 0.35 * self.cache_cold[g]) * (1.0 + 0.6 * (nn - 1.0))
        lat *= 1.0 + 3.0 * self.db_down[g]
        lat *= E["lat_mult"]
        sd = float(rng.uniform(0.08, 0.2)) * np.sqrt(np.clip(3.0 / np.maximum(load, 0.05), 1, 6))
        lat *= np.exp(rng.normal(0, 1, n) * sd)
        lat *= np.where(rng.random(n) < 0.01, rng.uniform(1.5, 4.0, n), 1.0)
        if jvm:
            lat *= 1.0 + 8.0 * gc
        timeout = d.p["timeout"]
        lat = np.where(E["lat_floor"] > 0, timeout * rng.uniform(0.9, 1.0, n), lat)
        lat = np.minimum(lat, timeout)
        served = roll_sum(m["ready"].astype(float) + (E["burst"] > 0), 10) > 0
        lat_s = roll_mean(np.where(m["ready"] | (E["burst"] > 0), lat, np.nan), 6)
        alive = m["exist"] & ~m["silent"] & (g >= p.running)
        out["latency_p99"] = np.where(alive & served, lat_s, np.nan)
        # ---- errors (5xx per second, 5 m rate)
        ef = d.p["err"] * rpar["err_mult"] * E["err_mult"] + self.up_err[g] + E["err_add"]
        ef += 0.35 * self.db_down[g] + 0.01 * self.db_pool_full[g]
        ef = np.clip(ef, 0, 1)
        cnt = rng.poisson(np.clip(rps * STEP * ef, 0, 1e7)).astype(float)
        cnt += rng.poisson(self.rps[d.name][g] / np.maximum(self.ready_n[d.name][g], 1)
                           * E["burst"]).astype(float)
        if p.death in ("rollout", "hpa_scale_in") and n > 2:
            cnt[-1] += rng.poisson(rps[max(n - 3, 0)] * float(rng.uniform(0, 0.3)))
        err = roll_sum(cnt, 10) / 300.0
        out["errors_5xx"] = np.where(alive, err, np.nan)
        # ---- pool in use (ratio)
        pmax = d.p["pool_max"]
        hold = float(rng.uniform(0.12, 0.3)) * pmax / d.p["rps_pod"]
        busy = rps * hold * up * (1.0 + 1.5 * self.db_down[g] + 0.4 * self.batch[g])
        inuse = rng.poisson(np.clip(busy, 0, 1e6)).astype(float)
        for e in p.fx:
            if e["t"] == "pool_leak":
                uu = self.cum_load(load + 0.3, e["a"], e["b"], g, 1.0)
                leaked = np.floor(uu * pmax)
                leaked = np.where(g >= e["c"], 0.0, leaked)
                full = (g >= e["b"]) & (g < e["c"])
                leaked = np.where(full, pmax, leaked)
                inuse += leaked
                sat = np.clip((inuse - 0.8 * pmax) / (0.2 * pmax), 0, 1)
                # waiting for a connection: latency and errors follow saturation
                lat_add = np.where(full, timeout, d.p["lat0"] * 4 * sat ** 2)
                out["latency_p99"] = np.where(np.isnan(out["latency_p99"]), np.nan,
                                              np.minimum(out["latency_p99"] + lat_add, timeout))
                extra = rng.poisson(np.clip(rps * STEP * np.where(full, 0.85, 0.02 * sat), 0, 1e7))
                out["errors_5xx"] = np.where(alive, err + roll_sum(extra, 10) / 300.0, np.nan)
        pool = np.minimum(inuse, pmax) / pmax
        out["pool"] = np.where(run & (g >= p.running + 1), pool, np.nan)
        if jvm:
            gcr = roll_mean(np.where(run, gc, np.nan), 10)
            out["gc_time"] = np.where(run & ~m["first"], gcr, np.nan)
        out["restarts"] = m["restarts"]
        self.gaps_app_during_down(out, m)
        return out

    def apply_mem_fx(self, p, g, mem, load):
        for e in p.fx:
            if e["t"] == "mem_to":
                a, b = e["a"], e["b"]
                idx = np.flatnonzero(g == b - 1)
                if len(idx) == 0:
                    continue
                u = self.cum_load(load, a, b, g, e["pow"])
                ref = float(np.max(mem[max(idx[0] - 20, 0) : idx[0] + 1]))
                gap = max(e["level"] - ref, 0.0)
                mem += np.where((g >= a) & (g < b), gap * u, 0.0)
                mem[idx[0]] = e["level"]
            elif e["t"] == "mem_leak":
                a, b = e["a"], e["b"]
                u = np.clip((g - a) / max(b - a, 1), 0, 1)
                top = float(np.quantile(mem, 0.99)) if len(mem) else 0.5
                amt = min(e["amount"], max(0.02, 0.87 - top))
                e["record"]["memory_added"] = round(amt, 3)
                mem += np.where(g >= a, amt * u, 0.0)

    def gaps_app_during_down(self, out, m):
        dn = ~m["running"]
        for s in ("memory", "cpu", "gc_time", "pool", "consumer_lag"):
            out[s] = np.where(dn, np.nan, out[s])

    def sig_consumer(self, p):
        d = self.dep(p.dep)
        rng = self.prng(p)
        m, n, out = self.base_arrays(p)
        g, run, age = m["g"], m["running"], m["age"]
        share = m["running"] / np.maximum(self.running_n[d.name][g], 1)
        inflow = d.p["msgs_total_peak"] * self.inflow_norm[g] * share
        cap_pod = d.p["msgs_pod"] * d.p["headroom"] * float(rng.uniform(0.85, 1.15))
        health = np.where(run, 1.0, 0.0) * self.up_cap[g] * (1 - 0.7 * self.db_down[g])
        # eager rebalance: every membership change pauses the group ~30-60 s
        rn = self.running_n[d.name]
        ch = np.flatnonzero(np.diff(rn) != 0) + 1
        pause = np.zeros(self.T, dtype=bool)
        for c in ch:
            pause[c : c + 2] = True
        health = np.where(pause[g], 0.0, health)
        health *= np.where(age < 3, 0.3, 1.0)
        cap = cap_pod * health
        fid = None
        rs_step = 0
        for e in p.fx:
            if e["t"] == "lag_slow":
                a, b, rs = e["a"], e["b"], e["resume"]
                u = np.clip((g - a) / max(b - a, 1), 0, 1) ** 1.2
                # throughput falls just under the inflow, then further: the lag runs away
                slow = inflow * (0.97 - (0.97 - e["h1"]) * u) * health
                cap = np.where((g >= a) & (g < b), np.minimum(cap, slow), cap)
                cap = np.where((g >= b) & (g < rs), 0.0, cap)
                cap = np.where(g >= rs, np.maximum(cap, inflow * e["catch"]) * run, cap)
                fid = e["fid"]
                rs_step = rs
        lag = lindley((inflow - cap) * STEP)
        batch_fetch = rng.poisson(np.clip(inflow * float(rng.uniform(0.3, 2.0)), 0, 1e7))
        lag_obs = lag + batch_fetch
        out["consumer_lag"] = np.where(run & (age >= 1), lag_obs, np.nan)
        if fid is not None:
            f = self.failures[fid]
            base = float(np.nanmedian(lag_obs[(g < f["precursor_start_step"])] if
                                      (g < f["precursor_start_step"]).any() else lag_obs[:1]))
            thr = max(3.0 * base, 50.0)
            after = np.flatnonzero((g >= rs_step) & (lag_obs <= thr))
            f["end_step"] = int(g[after[0]]) if len(after) else int(min(g[-1] + 1, self.T))
            f["params"]["backlog_peak"] = int(np.max(lag))
        processed = np.minimum(inflow + np.concatenate([[0.0], lag[:-1]]) / STEP, cap)
        pl = processed / max(d.p["msgs_pod"], 1e-9)
        # JVM bits
        g0 = float(rng.uniform(0.003, 0.015))
        gc = g0 * (0.3 + pl) * np.exp(rng.normal(0, 0.3, n))
        for e in p.fx:
            if e["t"] == "gc_spiral":
                gc = gc * self.gc_spiral_mult(e, pl, g)
        gc = np.clip(gc, 0, 0.98)
        idle = float(rng.uniform(0.02, 0.05))
        cpu_raw = idle + float(rng.uniform(0.2, 0.35)) * pl * self.warm(age, 1.5, 4 * MINUTE)
        cpu_raw = (cpu_raw + 1.2 * gc) * self.nn_factor(p, g)
        for e in p.fx:
            if e["t"] == "lag_slow":  # retry loop burns CPU while throughput collapses
                a, b = e["a"], e["b"]
                cpu_raw += np.where((g >= a) & (g < b), 0.15 * np.clip((g - a) / max(b - a, 1),
                                                                        0, 1), 0.0)
        cpu_raw *= np.exp(ar1(rng, n, 0.9, 0.08))
        cpu_raw = np.where(run, np.clip(cpu_raw, 0.001, 1.0), np.nan)
        out["cpu"] = np.where(run & ~m["first"], np.minimum(roll_mean(cpu_raw, 10), 0.999), np.nan)
        m0 = float(rng.uniform(0.45, 0.65))
        amp = float(rng.uniform(0.03, 0.08))
        per = float(rng.uniform(8, 30)) * MINUTE
        phase = float(rng.random()) + np.cumsum((0.2 + pl) / per)
        mem = m0 * (1 - 0.65 * np.exp(-age / (4 * MINUTE))) + sawtooth(rng, phase, amp)
        mem += ar1(rng, n, 0.995, 0.004) + self.rev_params[(d.name, p.revision)]["mem_off"]
        self.apply_mem_fx(p, g, mem, pl)
        out["memory"] = np.where(run, np.clip(mem, 0.01, 0.999), np.nan)
        out["gc_time"] = np.where(run & ~m["first"], roll_mean(np.where(run, gc, np.nan), 10),
                                  np.nan)
        pmax = d.p["pool_max"]
        busy = pl * pmax * float(rng.uniform(0.15, 0.35)) * (1 + 0.5 * self.batch[g])
        inuse = rng.poisson(np.clip(busy, 0, 1e6)).astype(float)
        for e in p.fx:
            if e["t"] == "pool_leak":
                uu = self.cum_load(pl + 0.3, e["a"], e["b"], g, 1.0)
                leaked = np.where(g >= e["c"], 0.0, np.floor(uu * pmax))
                leaked = np.where((g >= e["b"]) & (g < e["c"]), pmax, leaked)
                inuse += leaked
        out["pool"] = np.where(run, np.minimum(inuse, pmax) / pmax, np.nan)
        out["restarts"] = m["restarts"]
        p.benign.append({"type": "jvm_heap_sawtooth", "amplitude": round(amp, 3)})
        self.gaps_app_during_down(out, m)
        return out

    def pod_signals(self, p):
        sig = list(ROLE_SIGNALS[p.role])
        if p.role == "cache" and not self.dep(p.dep).p["aof"]:
            sig.remove("pvc")
        return sig

    def ordinal_pods(self, p):
        return [q for q in self.pods if q.dep == p.dep and q.ordinal == p.ordinal]

    def vol_rng(self, p, salt):
        k = [x.name for x in self.deps].index(p.dep)
        return np.random.default_rng([self.seed, salt, k, p.ordinal])

    def cache_volume(self, p, load_full):
        """Redis AOF on the ordinal's PVC over the whole run: grows with writes while the
        server runs, rewritten (compacted) when it doubled; survives pod recreation."""
        key = ("cache", p.dep, p.ordinal)
        if key in self.vols:
            return self.vols[key]
        rng = self.vol_rng(p, 11)
        T = self.T
        serving = np.zeros(T, dtype=bool)
        for q in self.ordinal_pods(p):
            mq = self.M[q.uid]
            serving[mq["g"]] |= mq["ready"]
        snap = float(rng.uniform(0.08, 0.16)) * (1 + np.arange(T) * float(rng.uniform(0, 0.05))
                                                 / SPD)
        wr = float(rng.uniform(0.0005, 0.0015))
        inc = np.where(serving, wr * (0.2 + load_full), 0.0).tolist()
        sn = snap.tolist()
        cur = sn[0] * float(rng.uniform(1.0, 2.0))
        aof = [0.0] * T
        rew = []
        for j in range(T):
            cur += inc[j]
            if cur >= 2.0 * sn[j]:
                cur = sn[j]
                rew.append(j)
            aof[j] = cur
        pvc = 0.02 + np.array(aof) + ar1(rng, T, 0.9, 0.0005)
        self.vols[key] = (pvc, rew)
        return self.vols[key]

    def sig_cache(self, p):
        rng = self.prng(p)
        d = self.dep(p.dep)
        m, n, out = self.base_arrays(p)
        g, run, age = m["g"], m["running"], m["age"]
        api = [x for x in self.deps if x.role == "api"]
        load_full = sum(self.rps[x.name] / x.p["rps_total_peak"] for x in api) / len(api)
        load = load_full[g] * m["ready"]
        # the dataset after each (re)start: reloaded from the AOF in a minute or two when
        # persistence is on, else refilled by cache misses: dF = k * load * (1 - F)
        aof_on = d.p["aof"]
        k = float(rng.uniform(1.0 / (3 * HOUR), 1.0 / (1 * HOUR)))
        kl = np.where(run, k * load, 0.0)
        if aof_on:
            kl = np.where(run, np.maximum(kl, 1.0 / float(rng.uniform(1, 4))), 0.0)
        cl = np.cumsum(kl)
        starts = np.concatenate([[True], age[1:] < age[:-1]])
        seg = np.cumsum(starts) - 1
        firsts = np.flatnonzero(starts)
        base = (cl - kl)[firsts][seg]
        f0 = np.where(seg == 0, 0.9 if p.birth == "initial" else 0.0, 0.0)
        fill = 1.0 - (1.0 - f0) * np.exp(-(cl - base))
        fill = np.where(run, fill, 0.0)
        self.cache_fill_sum[g] += fill * m["ready"]
        self.cache_n[g] += m["ready"]
        mem = 0.03 + fill * d.p["maxmem"] + ar1(rng, n, 0.99, 0.003)
        cow = np.zeros(n)
        rewrites = 0
        if aof_on:
            pvc_full, rew = self.cache_volume(p, load_full)
            for j in rew:
                if g[0] <= j <= g[-1]:
                    k0 = j - g[0]
                    cow[k0 : k0 + 2] += float(rng.uniform(0.03, 0.1))  # fork, copy-on-write
                    rewrites += 1
            out["pvc"] = np.where(m["exist"] & ~m["silent"] & (g >= p.running),
                                  np.clip(pvc_full[g], 0, 1), np.nan)
        mem += cow
        out["memory"] = np.where(run, np.clip(mem, 0.01, 0.999), np.nan)
        cpu_raw = (0.03 + 0.15 * load + 3 * cow) * self.nn_factor(p, g)
        cpu_raw *= np.exp(ar1(rng, n, 0.9, 0.1))
        cpu_raw = np.where(run, np.clip(cpu_raw, 0.001, 1.0), np.nan)
        out["cpu"] = np.where(run & ~m["first"], roll_mean(cpu_raw, 10), np.nan)
        lat = d.p["lat0"] * (1 + 2 * cow) * (1 + 3 * np.clip(cpu_raw, 0, 0.9) ** 3)
        lat *= np.exp(rng.normal(0, 0.15, n)) * self.nn_factor(p, g)
        out["latency_p99"] = np.where(m["ready"], roll_mean(np.where(run, lat, np.nan), 6), np.nan)
        out["restarts"] = m["restarts"]
        p.benign.append({"type": "cache_warmup" + ("_aof_reload_and_rewrite" if aof_on else ""),
                         "fill_tau_hours": round(1.0 / k / HOUR, 2), "aof_rewrites": rewrites})
        self.gaps_app_during_down(out, m)
        return out

    def db_volume(self, p):
        """PostgreSQL data volume of the ordinal over the whole run (survives pod recreation):
        data growth, WAL between checkpoints, server logs rotated at local midnight, batch temp
        files, and any WAL-retention fill with its fix (expansion) and cleanup."""
        key = ("db", p.dep, p.ordinal)
        if key in self.vols:
            return self.vols[key]
        rng = self.vol_rng(p, 12)
        d = self.dep(p.dep)
        T = self.T
        g = np.arange(T)
        load = self.db_load
        p0 = d.p["pvc0"][p.ordinal % 3]
        growth = float(rng.uniform(0.002, 0.01)) / SPD
        wal = float(rng.uniform(0.005, 0.02)) * ((g / float(rng.uniform(10, 30))) % 1)
        hrs = self.hour
        rot = np.concatenate([[False], hrs[1:] < hrs[:-1]])
        lr = float(rng.uniform(0.01, 0.04)) / SPD * 1.5
        seg = np.cumsum(rot)
        incr = lr * (0.3 + load)
        inc = np.cumsum(incr)
        firsts = np.flatnonzero(np.concatenate([[True], seg[1:] != seg[:-1]]))
        logs = inc - (inc - incr)[firsts][seg] + np.where(seg == 0, float(rng.uniform(0, 0.02)),
                                                           0.0)
        pvc = p0 + growth * g + wal + logs + 0.03 * self.batch * float(rng.random())
        pvc += ar1(rng, T, 0.9, 0.0003)
        for q in self.ordinal_pods(p):
            for e in q.fx:
                if e["t"] != "pvc_fill":
                    continue
                a, b, fix, clean = e["a"], e["b"], e["fix"], e["clean"]
                u = self.cum_load(load, a, b, g, 1.0)
                need = 1.0 - pvc[b - 1]
                add = np.where(g < a, 0.0, np.where(g < b, need * u, need))
                add = np.where(g >= clean, 0.0, add)  # the slot is dropped, WAL recycled
                val = pvc + add
                val = np.where((g >= b) & (g < fix), 0.9995 + rng.uniform(0, 0.0005, T), val)
                pvc = np.where(g >= fix, val / e["expand"], val)
        self.vols[key] = pvc
        return pvc

    def sig_db(self, p):
        rng = self.prng(p)
        d = self.dep(p.dep)
        m, n, out = self.base_arrays(p)
        g, run, age = m["g"], m["running"], m["age"]
        primary = p.ordinal == 0
        load = self.db_load[g]
        batch = self.batch[g]
        # memory: shared_buffers plus the page cache it keeps hot
        sb = float(rng.uniform(0.22, 0.3))
        wmax = float(rng.uniform(0.7, 0.86))
        tau = float(rng.uniform(1, 4)) * HOUR
        mem = sb + (wmax - sb) * (1 - np.exp(-age / tau)) + 0.05 * batch
        mem += ar1(rng, n, 0.995, 0.004)
        out["memory"] = np.where(run, np.clip(mem, 0.01, 0.95), np.nan)
        # CPU
        vac = np.zeros(n)
        for _ in range(int(rng.poisson(4 * n / SPD))):
            s = int(rng.integers(0, n))
            vac[s : s + int(rng.integers(10, 40))] += float(rng.uniform(0.05, 0.15))
        base = (0.08 + 0.35 * load) if primary else (0.05 + 0.18 * load)
        cpu_raw = base * (1 + 0.3 * self.cache_cold[g]) + vac + float(rng.uniform(0.15, 0.4)) * batch
        cpu_raw *= self.nn_factor(p, g) * np.exp(ar1(rng, n, 0.9, 0.07))
        cpu_raw = np.where(run, np.clip(cpu_raw, 0.001, 1.0), np.nan)
        out["cpu"] = np.where(run & ~m["first"], roll_mean(cpu_raw, 10), np.nan)
        pvc = self.db_volume(p)[g]
        p.benign.append({"type": "pvc_growth_and_compaction", "base": round(d.p["pvc0"][
            p.ordinal % 3], 3), "log_rotation": "local midnight", "wal_checkpoint_sawtooth": True})
        out["pvc"] = np.where(m["exist"] & ~m["silent"] & (g >= p.running), np.clip(pvc, 0, 1),
                              np.nan)
        # connections / max_connections: every client pod keeps its pool's idle connections
        clients = self.db_clients(g, primary)
        conns = (clients + 5 + 20 * batch + rng.poisson(3, n)) / d.p["max_conn"]
        for e in p.fx:
            if e["t"] == "pool_leak":
                u = self.cum_load(load + 0.3, e["a"], e["b"], g, 1.0)
                conns = np.where(g < e["b"], conns + u * (1.0 - conns), conns)
                full = (g >= e["b"]) & (g < e["c"])
                conns = np.where(full, 1.0, conns)
                if primary:
                    self.db_pool_full[g] = np.maximum(self.db_pool_full[g], full)
        out["pool"] = np.where(run & (age >= 1), np.clip(conns, 0, 1), np.nan)
        out["restarts"] = m["restarts"]
        self.gaps_app_during_down(out, m)
        return out

    def sig_job(self, p):
        rng = self.prng(p)
        m, n, out = self.base_arrays(p)
        g, run = m["g"], m["running"]
        peak = p.fx[0]["peak"]
        k = np.clip((g - p.running) / max(p.complete_at - p.running, 1), 0, 1)
        mem = 0.08 + (peak - 0.08) * k ** 0.7 + rng.normal(0, 0.01, n)
        out["memory"] = np.where(run, np.clip(mem, 0.01, 0.99), np.nan)
        cpu = float(rng.uniform(0.5, 0.9)) * np.exp(rng.normal(0, 0.1, n))
        out["cpu"] = np.where(run & ~m["first"], np.clip(roll_mean(np.where(run, cpu, np.nan), 10),
                                                         0, 0.999), np.nan)
        out["restarts"] = m["restarts"]
        return out

    # ------------------------------------------------------------------ scrape gaps
    def apply_gaps(self):
        r = self.r_gap
        T = self.T
        kubelet = ["memory", "cpu", "pvc"]
        app = ["latency_p99", "errors_5xx", "consumer_lag", "gc_time", "pool"]
        node_gaps: dict = {n["name"]: [] for n in self.nodes}
        for name in node_gaps:
            for _ in range(int(r.poisson(1.0 * self.days))):
                s = int(r.integers(0, T))
                node_gaps[name].append((s, s + int(r.integers(1, 5))))
        ksm = []
        for _ in range(int(r.poisson(0.5 * self.days)) + 1):
            s = int(r.integers(0, T))
            ksm.append((s, s + int(r.integers(2, 7))))
        prom = []
        if r.random() < 0.7:
            s = int(r.integers(0, T))
            prom.append((s, s + int(r.integers(2, 9))))
        self.event("scrape_gaps", 0, kube_state_metrics=[[self.ts(a), self.ts(b)] for a, b in ksm],
                   prometheus_restart=[[self.ts(a), self.ts(b)] for a, b in prom],
                   kubelet_per_node={k: [[self.ts(a), self.ts(b)] for a, b in v]
                                     for k, v in node_gaps.items() if v})
        for p in self.pods:
            out = self.S[p.uid]
            g = self.M[p.uid]["g"]
            if len(g) == 0:
                continue
            pg = []
            for _ in range(int(r.poisson(1.5 * len(g) / SPD))):
                s = int(r.integers(g[0], g[-1] + 1))
                pg.append((s, s + int(r.integers(1, 4))))
            if pg:
                p.benign.append({"type": "scrape_gaps", "intervals":
                                 [[self.ts(a), self.ts(b)] for a, b in pg]})
            mk = interval_mask(g, node_gaps.get(p.node, []))
            ma = interval_mask(g, pg)
            mk_ = interval_mask(g, ksm)
            mp = interval_mask(g, prom)
            for s in kubelet:
                out[s] = np.where(mk | mp, np.nan, out[s])
            for s in app:
                out[s] = np.where(ma | mp, np.nan, out[s])
            out["restarts"] = np.where(mk_ | mp, np.nan, out["restarts"])
            for s in SIGNALS:
                if s not in self.pod_signals(p):
                    out[s] = np.full(len(g), np.nan)

    # ------------------------------------------------------------------ run, outputs
    def build(self):
        self.plan_fleet()
        self.plan_traffic()
        self.plan_lifecycle()
        self.run_lifecycle()
        self.place_failures()
        for f in self.failures:
            if f["kind"] == "sudden_node_lost" and f["end_step"] is None:
                f["end_step"] = min(self.T, f["start_step"] + 20 * MINUTE)
        self.benign_pods()
        self.gen_signals()
        self.apply_gaps()
        return self

    def alive_counts(self):
        """Pods that exist and are not finished jobs or on a lost node, per step."""
        c = np.zeros(self.T)
        for p in self.pods:
            m = self.M[p.uid]
            alive = ~m["silent"]
            if p.complete_at is not None:
                alive &= m["g"] < p.complete_at
            c[m["g"]] += alive
        return c

    def write(self, outdir):
        os.makedirs(outdir, exist_ok=True)
        self.write_data(os.path.join(outdir, "data.csv"))
        self.write_incidents(os.path.join(outdir, "incidents.csv"))
        truth = self.truth()
        with open(os.path.join(outdir, "truth.json"), "w") as fh:
            json.dump(truth, fh, indent=1, sort_keys=False)
        with open(os.path.join(outdir, "aura.yml"), "w") as fh:
            fh.write(aura_yml())
        return truth

    def write_data(self, path):
        gs, ks, cols = [], [], {s: [] for s in SIGNALS}
        names = sorted({p.name for p in self.pods})
        by_name: dict = {}
        for p in self.pods:
            by_name.setdefault(p.name, []).append(p)
        names = [nm for nm in names if any(len(self.M[p.uid]["g"]) for p in by_name[nm])]
        nidx = {nm: i for i, nm in enumerate(names)}
        for nm in names:
            segs = sorted((p for p in by_name[nm] if len(self.M[p.uid]["g"])),
                          key=lambda x: x.created)
            lo = min(int(self.M[p.uid]["g"][0]) for p in segs if len(self.M[p.uid]["g"]))
            hi = max(int(self.M[p.uid]["g"][-1]) for p in segs if len(self.M[p.uid]["g"]))
            g = np.arange(lo, hi + 1)
            arr = {s: np.full(len(g), np.nan) for s in SIGNALS}
            for p in segs:
                pg = self.M[p.uid]["g"]
                for s in SIGNALS:
                    arr[s][pg - lo] = self.S[p.uid][s]
            gs.append(g)
            ks.append(np.full(len(g), nidx[nm]))
            for s in SIGNALS:
                cols[s].append(arr[s])
        g = np.concatenate(gs)
        k = np.concatenate(ks)
        order = np.lexsort((k, g))
        tcol = [str(self.t0 + STEP * int(x)) for x in g[order]]
        pcol = [names[int(x)] for x in k[order]]
        fcols = []
        for s in SIGNALS:
            v = np.concatenate(cols[s])[order]
            fmt = FMT[s]
            fcols.append(["" if x != x else fmt.format(x) for x in v.tolist()])
        with open(path, "w") as fh:
            fh.write("timestamp,pod," + ",".join(SIGNALS) + "\n")
            fh.writelines(",".join(row) + "\n" for row in zip(tcol, pcol, *fcols, strict=True))
        self.rows = len(tcol)

    def write_incidents(self, path):
        with open(path, "w") as fh:
            fh.write("start,end,pod,kind\n")
            for f in sorted(self.failures, key=lambda x: (x["start_step"], x["pod"])):
                fh.write(f"{self.ts(f['start_step'])},{self.ts(f['end_step'])},{f['pod']},"
                         f"{f['kind']}\n")

    def truth(self):
        alive = self.alive_counts()
        pods = []
        for p in sorted(self.pods, key=lambda x: (x.name, x.created)):
            pods.append({
                "pod": p.name,
                "deployment": p.dep,
                "role": p.role,
                "workload": p.workload,
                "revision": p.revision,
                "canary": bool(p.canary or p.birth == "canary"),
                "node": p.node,
                "zone": p.zone,
                "from": self.ts(p.created),
                "to": self.ts(min(p.end, self.T)),
                "running_from": self.ts(p.running),
                "ready_from": self.ts(p.ready),
                "created_by": p.birth,
                "ended_by": p.death,
                "container_restarts": [self.ts(x) for x in sorted(p.restarts)],
                "restart_counter_at_t0": p.base_restarts,
                "benign": p.benign,
                "failures": p.failures,
                "signals": self.pod_signals(p),
            })
        fails = []
        for f in sorted(self.failures, key=lambda x: x["id"]):
            fails.append({
                "id": f["id"],
                "kind": f["kind"],
                "sudden": f["sudden"],
                "pod": f["pod"],
                "deployment": f["deployment"],
                "role": f["role"],
                "precursor_start": None if f["precursor_start_step"] is None
                else self.ts(f["precursor_start_step"]),
                "start": self.ts(f["start_step"]),
                "end": self.ts(f["end_step"]),
                "precursor_minutes": None if f["precursor_start_step"] is None
                else (f["start_step"] - f["precursor_start_step"]) / MINUTE,
                "signal": f["signal"],
                "group": f.get("group"),
                "params": f["params"],
            })
        deps = [{"name": d.name, "role": d.role, "workload": d.workload,
                 "replicas": d.replicas, "hpa": ({"min": d.hpa_min, "max": d.hpa_max,
                                                  "peak_desired": d.hpa_peak} if d.hpa_min else None),
                 "params": {k: v for k, v in d.p.items()}} for d in self.deps]
        return {
            "generator": GENERATOR,
            "version": VERSION,
            "seed": self.seed,
            "t0": self.t0,
            "t_end": self.ts(self.T),
            "step": STEP,
            "days": self.days,
            "scale": self.scale,
            "namespace": NAMESPACE,
            "timezone_offset_hours": self.tz,
            "entity_label": "pod",
            "signals": SIGNALS,
            "role_signals": ROLE_SIGNALS,
            "deployments": deps,
            "pods": pods,
            "nodes": [{"name": n["name"], "zone": n["zone"], "from": self.ts(n["from"]),
                       "to": None if n["to"] is None else self.ts(n["to"]),
                       "added_by": n["reason"], "removed_by": n.get("reason_to")}
                      for n in self.nodes],
            "summary": {
                "pods_total": len({p.name for p in self.pods}),
                "pod_objects": len(self.pods),
                "alive_min": int(alive.min()),
                "alive_max": int(alive.max()),
                "rows": getattr(self, "rows", None),
                "failures": len(self.failures),
                "failure_events": len({f.get("group") or f"f{f['id']}" for f in self.failures}),
                "sudden": sum(1 for f in self.failures if f["sudden"]),
                "sudden_events": len({f.get("group") or f"f{f['id']}" for f in self.failures
                                      if f["sudden"]}),
                "kinds": sorted({f["kind"] for f in self.failures}),
            },
            "fleet_events": sorted(self.events, key=lambda e: e["time"]),
            "failures": fails,
        }


# ----------------------------------------------------------------------------- aura.yml


def aura_yml():
    ns = NAMESPACE
    app = f'namespace="{ns}", container!="", container!="POD", container!="istio-proxy"'
    lim = f'namespace="{ns}", container!="istio-proxy"'
    sig = [
        ("memory",
         f"sum by (pod) (container_memory_working_set_bytes{{{app}}}) / "
         f'sum by (pod) (kube_pod_container_resource_limits{{{lim}, resource="memory"}})',
         "resource", 1.0, "working set / memory limit (OOMKill at 1)"),
        ("cpu",
         f"sum by (pod) (rate(container_cpu_usage_seconds_total{{{app}}}[5m])) / "
         f'sum by (pod) (kube_pod_container_resource_limits{{{lim}, resource="cpu"}})',
         "saturation", 1.0, "CPU used / CPU limit (CFS throttling at 1)"),
        ("pvc",
         f'max by (pod) ((kubelet_volume_stats_used_bytes{{namespace="{ns}"}} / '
         f'kubelet_volume_stats_capacity_bytes{{namespace="{ns}"}}) '
         f"* on (namespace, persistentvolumeclaim) group_left (pod) "
         f'kube_pod_spec_volumes_persistentvolumeclaims_info{{namespace="{ns}"}})',
         "resource", 1.0, "PVC used / capacity (StatefulSets only)"),
        ("latency_p99",
         f"histogram_quantile(0.99, sum by (pod, le) (rate(istio_request_duration_milliseconds_"
         f'bucket{{namespace="{ns}", reporter="destination"}}[5m]))) / 1000 '
         f'or max by (pod) (redis_latency_percentiles_usec{{namespace="{ns}", quantile="99"}}) / 1e6',
         "latency", None, "p99 request latency, seconds"),
        ("errors_5xx",
         f'sum by (pod) (rate(istio_requests_total{{namespace="{ns}", reporter="destination", '
         f'response_code=~"5.."}}[5m])) or sum by (pod) (rate(istio_requests_total{{'
         f'namespace="{ns}", reporter="destination"}}[5m])) * 0',
         "errors", None, "5xx responses per second"),
        ("consumer_lag",
         f"max by (pod) (kafka_consumer_consumer_fetch_manager_metrics_records_lag_max{{"
         f'namespace="{ns}"}})',
         "saturation", None, "Kafka records lag (messages)"),
        ("gc_time",
         f'sum by (pod) (rate(jvm_gc_pause_seconds_sum{{namespace="{ns}"}}[5m]))',
         "saturation", None, "JVM GC pause seconds per second"),
        ("restarts",
         f'sum by (pod) (kube_pod_container_status_restarts_total{{namespace="{ns}", '
         f'container!="istio-proxy"}})',
         "other", None, "container restarts (counter)"),
        ("pool",
         f'max by (pod) (hikaricp_connections_active{{namespace="{ns}"}} / '
         f'hikaricp_connections_max{{namespace="{ns}"}}) '
         f'or max by (pod) (db_client_connections_usage{{namespace="{ns}", state="used"}} / '
         f'db_client_connections_max{{namespace="{ns}"}}) '
         f'or sum by (pod) (pg_stat_activity_count{{namespace="{ns}"}}) / '
         f'max by (pod) (pg_settings_max_connections{{namespace="{ns}"}})',
         "saturation", 1.0, "connection pool in use / max"),
    ]
    lines = [
        f"# AURA config for the '{ns}' namespace (written by fleetgen4; one entity = one pod)",
        "source:",
        "  url: http://prometheus-operated.monitoring.svc:9090",
        "  timeout: 30s",
        "interval: 1m",
        "state_dir: /var/lib/aura",
        "analyses:",
        "  - name: shop-pods",
        "    entity_labels: [pod]",
        "    window: 2h",
        "    step: 30s",
        "    horizons: [1h, 2h, 4h]",
        "    max_entities: 2000",
        "    signals:",
    ]
    for name, q, kind, cap, comment in sig:
        lines.append(f"      - name: {name}   # {comment}")
        assert "'" not in q
        lines.append(f"        query: '{q}'")
        lines.append(f"        kind: {kind}")
        if cap is not None:
            lines.append(f"        capacity: {cap}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- API, CLI


def generate(seed, outdir=None, days=3.0, scale=1.0, n_failures=None, n_sudden=None):
    """Generate one fleet; write it to outdir (if given) and return the truth dict."""
    fleet = Fleet(seed, days=days, scale=scale, n_failures=n_failures, n_sudden=n_sudden).build()
    if outdir is None:
        return fleet.truth()
    return fleet.write(outdir)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("seed", type=int)
    ap.add_argument("outdir", nargs="?")
    ap.add_argument("--days", type=float, default=3.0)
    ap.add_argument("--scale", type=float, default=1.0, help="replica multiplier")
    ap.add_argument("--failures", type=int, default=None)
    a = ap.parse_args(argv)
    out = a.outdir or f"/tmp/g4/fleet-{a.seed}"
    t = time.time()
    truth = generate(a.seed, out, days=a.days, scale=a.scale, n_failures=a.failures)
    s = truth["summary"]
    print(f"{out}: {s['pods_total']} pods ({s['alive_min']}-{s['alive_max']} alive), "
          f"{s['rows']} rows, {s['failure_events']} failures ({s['sudden_events']} sudden) in "
          f"{s['failures']} incident rows, {time.time() - t:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
