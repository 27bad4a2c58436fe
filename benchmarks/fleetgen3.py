#!/usr/bin/env python3
"""fleetgen3: a third independent synthetic fleet generator, for evaluation only (numpy + stdlib).

Written on 2026-12-01 by a helper session briefed only with real-world host and service
behaviour and AURA's input formats (README, design.md): it did not read AURA's simulator
(exporter/source/sim_*), benchmarks/fleetgen.py, the tests or the agents' code, and it was
not adjusted after seeing any AURA result. Never used for training or tuning; seeds 31-33
were the first look (they showed the fleet-wide surges, exporter/decision.py), 34-36 held
out. One change since: sudden failures' kinds are written `sudden_<kind>` in incidents.csv
so that `aura backtest` scores them apart (its incidents CSV has no other way to say so).

Usage: python benchmarks/fleetgen3.py SEED [OUTDIR]
Writes OUTDIR/{data.csv,incidents.csv,truth.json,aura.yml} (default /tmp/g3/fleet-SEED).

Signals (raw units):
  cpu_util          0..1 (capacity 1.0)
  mem_used_bytes    bytes, MemTotal-MemAvailable (RAM differs per role)
  fs_used_bytes     bytes on the data filesystem (disk differs per role)
  open_fds          open file descriptors of the main service (limit 65536)
  latency_p99_s     p99 request/command/job latency, seconds
  http_5xx_rate     5xx responses (or failed jobs) per second
  tcp_retrans_ratio retransmitted / sent TCP segments, 0..1
  uptime_s          main process uptime in seconds (resets on restart)
"""
import csv
import json
import math
import os
import sys

import numpy as np

GIB = 1024 ** 3
STEP = 60
DAYS = 4
N = DAYS * 24 * 3600 // STEP
T0 = 1741305600  # Friday 2025-03-07 00:00:00 UTC
TZ_OFF_H = -5    # fleet serves a US-East audience
FD_LIMIT = 65536
SUDDEN = ("power_loss", "kernel_panic")  # failures without a precursor

SIGNALS = ["cpu_util", "mem_used_bytes", "fs_used_bytes", "open_fds",
           "latency_p99_s", "http_5xx_rate", "tcp_retrans_ratio", "uptime_s"]

ROLES = {
    #        RAM GiB, disk GiB, share of traffic, count range
    "api":    dict(ram=8,  disk=100,  n=(12, 18)),
    "db":     dict(ram=64, disk=1024, n=(4, 6)),
    "worker": dict(ram=16, disk=200,  n=(6, 10)),
    "cache":  dict(ram=32, disk=100,  n=(3, 5)),
    "build":  dict(ram=16, disk=500,  n=(3, 5)),
}

# precursor length (minutes): lognormal(median, sigma), clipped to [20, 480]
PRECURSOR = {
    "memory_leak_oom":        (180, 0.6),
    "disk_full":              (240, 0.55),
    "fd_leak":                (150, 0.6),
    "cpu_runaway":            (40, 0.5),
    "dependency_degradation": (70, 0.6),
    "network_degradation":    (90, 0.6),
}
KIND_ROLES = {
    "memory_leak_oom": ["api", "worker", "cache"],
    "disk_full": ["db", "build", "api", "worker"],
    "fd_leak": ["api", "db", "worker"],
    "cpu_runaway": ["api", "worker"],
    "dependency_degradation": ["api", "worker"],
    "network_degradation": ["api", "db", "cache", "worker"],
    "power_loss": list(ROLES),
    "kernel_panic": list(ROLES),
}
PRECURSOR_SIGNAL = {
    "memory_leak_oom": "mem_used_bytes", "disk_full": "fs_used_bytes",
    "fd_leak": "open_fds", "cpu_runaway": "cpu_util",
    "dependency_degradation": "latency_p99_s", "network_degradation": "tcp_retrans_ratio",
    "power_loss": None, "kernel_panic": None,
}


def ar1(rng, n, tau, sigma):
    """Stationary AR(1) noise with correlation time tau steps and std sigma."""
    a = math.exp(-1.0 / max(tau, 1e-6))
    e = rng.normal(0, sigma * math.sqrt(1 - a * a), n)
    out = np.empty(n)
    x = rng.normal(0, sigma)
    for i in range(n):
        x = a * x + e[i]
        out[i] = x
    return out


def local_hours(idx):
    return ((T0 + idx * STEP) / 3600.0 + TZ_OFF_H) % 24


def local_dow(idx):
    # 0=Mon..6=Sun; T0 is Friday 00:00 UTC
    days = ((T0 + idx * STEP) / 3600.0 + TZ_OFF_H) // 24
    return (days + 3) % 7  # 1970-01-01 was a Thursday


def fleet_traffic(rng, idx):
    h = local_hours(idx)
    base = 0.5 - 0.5 * np.cos(2 * np.pi * (h - 4) / 24)        # min 04:00, max 16:00
    evening = np.exp(-0.5 * ((h - 20.5) / 1.5) ** 2) * 0.25        # evening bump
    shape = 0.18 + 0.82 * base ** 1.3 + evening
    dow = local_dow(idx)
    week = np.where(dow >= 5, 0.62, 1.0)
    week = np.where(dow == 0, 1.05, week)                          # Monday heavier
    slow = 1 + ar1(rng, len(idx), 240, 0.05)
    return shape * week * slow


def win(n, a, b):
    a = max(0, min(n, int(a)))
    b = max(0, min(n, int(b)))
    return a, b


class Host:
    def __init__(self, name, role, rng):
        self.name, self.role, self.rng = name, role, rng
        self.ram = ROLES[role]["ram"] * GIB
        self.disk = ROLES[role]["disk"] * GIB
        self.noise = float(rng.lognormal(0, 0.35))
        self.present = np.ones(N, bool)
        self.restarts = []      # step indices where process uptime resets
        self.reboots = []       # host reboots (uptime reset too)
        self.benign = []
        self.failures = []
        self.first, self.last = 0, N


def build_fleet(seed):
    rng = np.random.default_rng(seed)
    idx = np.arange(N)
    hours = local_hours(idx)
    dow = local_dow(idx)
    traffic = fleet_traffic(rng, idx)

    # fleet-wide traffic surges (marketing mail, retry storm from a partner) that recover
    surges = []
    surge_mult = np.ones(N)
    for _ in range(rng.integers(2, 5)):
        s = int(rng.integers(60, N - 180))
        d = int(rng.integers(20, 100))
        amp = float(rng.uniform(0.4, 1.4))
        ramp = np.clip((idx - s) / 5.0, 0, 1) * np.clip((s + d - idx) / 15.0, 0, 1)
        surge_mult *= 1 + amp * ramp
        surges.append((s, s + d))
    traffic_s = traffic * surge_mult

    hosts = []
    for role, spec in ROLES.items():
        for k in range(int(rng.integers(spec["n"][0], spec["n"][1] + 1))):
            hosts.append(Host(f"{role}-{k + 1:02d}:9100", role, rng))
    # one or two hosts that are just very noisy
    for h in rng.choice(hosts, size=int(rng.integers(1, 3)), replace=False):
        h.noise *= float(rng.uniform(3, 5))
        h.benign.append(dict(kind="noisy_host", start=T0, end=T0 + N * STEP))

    # hosts added and removed mid-run (scale-out, decommission)
    by_role = {r: [h for h in hosts if h.role == r] for r in ROLES}
    added = []
    for r in rng.choice(["api", "worker", "api"], size=int(rng.integers(1, 3)), replace=False):
        h = Host(f"{r}-{len(by_role[r]) + len(added) + 1:02d}:9100", r, rng)
        h.first = int(rng.integers(N // 4, 3 * N // 4))
        h.benign.append(dict(kind="host_added", start=T0 + h.first * STEP, end=T0 + h.first * STEP))
        added.append(h)
    for h in added:
        by_role[h.role].append(h)
    hosts += added
    removable = [h for h in hosts if h.first == 0 and h.role in ("api", "worker", "build")]
    removed = list(rng.choice(removable, size=int(rng.integers(1, 3)), replace=False))
    for h in removed:
        h.last = int(rng.integers(N // 3, N - 60))
        h.benign.append(dict(kind="host_removed", start=T0 + h.last * STEP, end=T0 + h.last * STEP))

    # ---- choose failures (each on a distinct, present host) ----
    n_fail = int(rng.integers(8, 15))
    n_sudden = int(rng.integers(2, 4))
    kinds = list(rng.choice(list(PRECURSOR), size=n_fail - n_sudden, replace=True))
    kinds += list(rng.choice(list(SUDDEN), size=n_sudden))
    used = set(h.name for h in removed)
    plan = []
    for kind in kinds:
        cands = [h for h in hosts if h.role in KIND_ROLES[kind] and h.name not in used and h.first == 0]
        if not cands:
            cands = [h for h in hosts if h.name not in used and h.first == 0]
        h = cands[int(rng.integers(len(cands)))]
        used.add(h.name)
        if kind in PRECURSOR:
            med, sig = PRECURSOR[kind]
            pre = int(np.clip(rng.lognormal(math.log(med), sig), 20, 480))
        else:
            pre = 0
        start = int(rng.integers(pre + 120, N - 150))
        if kind in ("memory_leak_oom", "cpu_runaway", "fd_leak"):
            down = int(rng.integers(4, 25))
        elif kind == "disk_full":
            down = int(rng.integers(20, 75))
        elif kind in ("power_loss", "kernel_panic"):
            down = int(rng.integers(8, 45))
        else:
            down = int(rng.integers(15, 90))
        plan.append((h, kind, start - pre, start, start + down))

    # ---- benign schedules ----
    # rolling deploys for api and worker: weekdays, business hours, 1-3 per day per role
    deploys = []
    for role in ("api", "worker"):
        for day in range(DAYS):
            day_idx = day * 1440
            if local_dow(np.array([day_idx + 900]))[0] >= 5 and rng.random() < 0.8:
                continue
            for _ in range(int(rng.integers(1, 4))):
                local_start = rng.uniform(10, 17.5)  # local hour
                s = int(day_idx + (local_start - TZ_OFF_H) * 60) % N
                deploys.append((role, s))
    # cache and db: occasional config rollout / minor version restart
    for role in ("cache", "db"):
        if rng.random() < 0.7:
            deploys.append((role, int(rng.integers(600, N - 600))))

    # fleet-wide scrape gap (Prometheus restarted) and per-host gaps
    fleet_gaps = []
    if rng.random() < 0.8:
        s = int(rng.integers(200, N - 200))
        fleet_gaps.append((s, s + int(rng.integers(5, 15))))

    signals = {}
    for h in hosts:
        signals[h.name] = synth_host(h, rng, idx, hours, dow, traffic_s, deploys, fleet_gaps,
                                     [p for p in plan if p[0] is h])
    return hosts, signals, plan, surges, fleet_gaps


def synth_host(h, rng, idx, hours, dow, traffic, deploys, fleet_gaps, myplan):
    n = N
    nz = h.noise
    role = h.role
    # per-host load: fleet traffic * own share jitter * own noise
    share = rng.uniform(0.85, 1.15)
    L = traffic * share * (1 + ar1(rng, n, 30, 0.04 * nz))
    L = np.clip(L, 0.02, None)

    # ---- uptime restarts from deploys (rolling, 2-4 min apart) ----
    deploy_steps = []
    peers_offset = int(rng.integers(0, 12))
    for role_d, s in deploys:
        if role_d == role:
            t = s + peers_offset * int(rng.integers(2, 5))
            if 0 < t < n:
                deploy_steps.append(t)
    deploy_steps.sort()

    # ---- CPU ----
    if role == "api":
        cpu = 0.04 + 0.50 * L
    elif role == "db":
        cpu = 0.06 + 0.35 * L
    elif role == "worker":
        cpu = 0.10 + 0.45 * np.clip(L + ar1(rng, n, 20, 0.15), 0, None)
    elif role == "cache":
        cpu = 0.03 + 0.18 * L
    else:  # build: CI jobs during working hours
        cpu = 0.03 + np.zeros(n)
        t = 0
        while t < n:
            busy = 9 <= hours[t] <= 19 and dow[t] < 5
            gap = rng.exponential(25 if busy else 240)
            t += int(gap) + 1
            d = int(rng.integers(4, 40))
            a, b = win(n, t, t + d)
            cpu[a:b] += rng.uniform(0.4, 0.95)
            t = b
    cpu = cpu + ar1(rng, n, 3, 0.02 * nz) + rng.normal(0, 0.012 * nz, n)
    # hourly cron blips (metrics rollups, certificate checks)
    cron_min = int(rng.integers(0, 60))
    cron = ((idx + cron_min) % 60 < 2)
    cpu = cpu + cron * rng.uniform(0.05, 0.15)

    # ---- memory ----
    ram = h.ram
    if role == "api":   # JVM: non-heap + heap sawtooth driven by allocation rate (load)
        nonheap = 1.4 * GIB + ar1(rng, n, 200, 0.03 * GIB)
        heap_max = 4.0 * GIB
        heap = np.empty(n)
        x = 1.2 * GIB
        alloc = (0.02 + 0.10 * L) * GIB  # bytes per minute retained until GC
        for i in range(n):
            x += alloc[i] * rng.uniform(0.6, 1.4)
            if x > heap_max * rng.uniform(0.82, 0.95):
                x = heap_max * rng.uniform(0.25, 0.35)   # major GC
            heap[i] = x
        mem = nonheap + heap
    elif role == "db":  # buffer pool fixed (~70 %) + connections + page cache not counted
        mem = 0.70 * ram + 0.04 * ram * L + ar1(rng, n, 60, 0.004 * ram)
    elif role == "worker":  # python workers: RSS creeping, recycled every N jobs
        mem = np.empty(n)
        x = 4 * GIB
        for i in range(n):
            x += (0.004 + 0.02 * L[i]) * GIB * rng.uniform(0.5, 1.5)
            if x > 9.5 * GIB * rng.uniform(0.9, 1.05):
                x = 4 * GIB * rng.uniform(0.95, 1.05)   # max-requests-per-child recycle
            mem[i] = x
        mem = mem + 1.2 * GIB
    elif role == "cache":  # redis: fills towards maxmemory (75 % RAM), then evicts
        maxmem = 0.75 * ram
        start_fill = rng.uniform(0.35, 0.74)
        fill = np.empty(n)
        x = start_fill * ram
        for i in range(n):
            x += (0.002 + 0.004 * L[i]) * GIB
            x = min(x, maxmem * rng.uniform(0.995, 1.0))
            fill[i] = x
        mem = fill + 1.0 * GIB
    else:
        mem = 2.5 * GIB + (cpu - 0.03) * 9 * GIB  # compilers/linkers
    mem = mem + rng.normal(0, 0.003 * ram * nz, n)

    # ---- filesystem ----
    disk = h.disk
    base_frac = {"api": 0.30, "db": 0.45, "worker": 0.35, "cache": 0.20, "build": 0.35}[role]
    fs = np.full(n, base_frac * disk * rng.uniform(0.8, 1.2))
    fs += np.cumsum(np.full(n, disk * rng.uniform(0.0, 0.01) / 1440))  # slow benign growth
    # logs grow with traffic, rotated+compressed at 00:00 local (90 % of day's logs freed)
    lograte = {"api": 6, "db": 3, "worker": 4, "cache": 0.5, "build": 2}[role] * GIB / 1440
    logs = np.empty(n)
    x = 0.0
    for i in range(n):
        x += lograte * L[i] * 1.5
        if i > 0 and int(hours[i]) == 0 and int(hours[i - 1]) == 23:
            x *= 0.1
        logs[i] = x
    fs += logs
    if role == "db":  # nightly backup 02:00 local: dump grows 40-70 min, uploaded, deleted
        dump = np.zeros(n)
        for day in range(DAYS + 1):
            s = int(day * 1440 + (2 - TZ_OFF_H) * 60 + rng.integers(-5, 10))
            d = int(rng.integers(40, 70))
            a, b = win(n, s, s + d)
            if b > a:
                size = disk * rng.uniform(0.06, 0.1)
                dump[a:b] += np.linspace(0, size, b - a)
                a2, b2 = win(n, b, b + int(rng.integers(10, 25)))
                dump[a2:b2] += size
                cpu[a:b] += rng.uniform(0.2, 0.35)
                h.benign.append(dict(kind="nightly_backup", start=T0 + a * STEP, end=T0 + b2 * STEP))
        fs += dump
    if role == "build":  # docker/workspace cache grows with jobs, pruned by cron at ~80 %
        cache = np.empty(n)
        x = 0.0
        limit = 0.8 * disk - fs[0]
        for i in range(n):
            x += (cpu[i] > 0.3) * disk * 0.0006 * rng.uniform(0.5, 1.5)
            if x > limit and int((idx[i]) % 60) == 17:  # hourly cron: prune when above 80 %
                h.benign.append(dict(kind="docker_prune", start=T0 + i * STEP, end=T0 + (i + 3) * STEP))
                x *= 0.25
            cache[i] = x
        fs += cache

    # ---- fds / connections ----
    if role == "api":
        fds = 600 + 3800 * L
    elif role == "db":
        fds = 900 + 1500 * L + 400      # connection pool + data files
    elif role == "worker":
        fds = 300 + 500 * L
    elif role == "cache":
        fds = 200 + 6000 * L            # client connections
    else:
        fds = 150 + 2500 * np.clip(cpu - 0.03, 0, None)
    fds = fds * (1 + ar1(rng, n, 10, 0.03 * nz)) + rng.normal(0, 15 * nz, n)

    # ---- latency p99 ----
    base_lat = {"api": 0.18, "db": 0.025, "worker": 2.5, "cache": 0.0015, "build": None}[role]
    if base_lat is not None:
        util = np.clip(cpu, 0, 0.95)
        lat = base_lat * (1 + 0.5 * L + 1.5 * util ** 4 / (1.02 - util))
        lat = lat * np.exp(rng.normal(0, 0.12 * nz, n) + ar1(rng, n, 30, 0.05))
        rps = {"api": 450, "db": 1500, "worker": 6, "cache": 9000}[role] * L
        err_frac = float(rng.lognormal(math.log(2e-4), 0.8))
        if role in ("cache", "db"):
            err_frac *= 0.05
        if role == "api" and rng.random() < 0.25:       # chronic low-level errors
            err_frac *= 8
            h.benign.append(dict(kind="chronic_errors", start=T0, end=T0 + N * STEP))
        err = rng.poisson(np.clip(rps * err_frac * 60, 0, None)) / 60.0
    else:
        lat = None
        err = None
    retr = np.clip(float(rng.lognormal(math.log(0.0012), 0.5)) * (1 + 0.3 * L)
                   * np.exp(rng.normal(0, 0.25 * min(nz, 2.0), n)), 0, 1)
    # short benign retransmit bursts (microbursts at top-of-rack, backups)
    for _ in range(int(rng.poisson(2))):
        a, b = win(n, rng.integers(0, n), 0)
        b = min(n, a + int(rng.integers(2, 12)))
        retr[a:b] *= rng.uniform(3, 10)

    # ---- benign events ----
    # batch jobs pinning CPU for ~1 h (workers, build)
    if role in ("worker", "build", "db"):
        for _ in range(int(rng.poisson(1.5 if role != "db" else 0.5))):
            s = int(rng.integers(0, n - 60))
            d = int(rng.integers(40, 90))
            a, b = win(n, s, s + d)
            cpu[a:b] = np.maximum(cpu[a:b], rng.uniform(0.92, 0.99) + rng.normal(0, 0.01, b - a))
            if lat is not None:
                lat[a:b] *= rng.uniform(1.2, 1.8)
            h.benign.append(dict(kind="batch_job", start=T0 + a * STEP, end=T0 + b * STEP))

    # deploy restarts: uptime reset, memory drops and warms, brief latency/error bump
    for t in deploy_steps:
        a, b = win(n, t, t + int(rng.integers(20, 60)))
        h.restarts.append(t)
        warm = np.linspace(0, 1, b - a)
        if role == "api":
            mem[a:b] = mem[a:b] * (0.55 + 0.45 * warm)
        elif role == "db":
            mem[a:b] = mem[a:b] * (0.3 + 0.7 * warm ** 0.5)
        elif role == "worker":
            mem[a:b] = mem[a:b] * (0.6 + 0.4 * warm)
        elif role == "cache":   # redis restart reloads RDB within minutes
            mem[a:b] = mem[a:b] * (0.7 + 0.3 * np.clip(warm * 4, 0, 1))
        c1 = min(n, t + int(rng.integers(3, 10)))
        cpu[t:c1] += rng.uniform(0.1, 0.3)
        fds[t:min(n, t + 2)] *= 0.3
        if lat is not None:
            lat[t:c1] *= rng.uniform(1.5, 3.0)
            err[t:min(n, t + 2)] += rng.uniform(0.2, 3.0)
        h.present[t:min(n, t + int(rng.integers(0, 2)))] = False  # 0-1 missed scrape
        h.benign.append(dict(kind="deploy_restart", start=T0 + t * STEP, end=T0 + b * STEP))

    # kernel patch reboot (planned maintenance): host away 3-8 min
    if rng.random() < 0.12:
        s = int(rng.integers(300, n - 300))
        d = int(rng.integers(3, 9))
        h.present[s:s + d] = False
        h.reboots.append(s + d)
        mem[s + d:s + d + 60] *= np.linspace(0.5, 1, len(mem[s + d:s + d + 60]))
        h.benign.append(dict(kind="maintenance_reboot", start=T0 + s * STEP, end=T0 + (s + d) * STEP))

    # scrape gaps 5-30 min (exporter hiccup, network partition to Prometheus)
    for _ in range(int(rng.poisson(0.5))):
        s = int(rng.integers(0, n - 30))
        d = int(rng.integers(5, 31))
        h.present[s:s + d] = False
        h.benign.append(dict(kind="scrape_gap", start=T0 + s * STEP, end=T0 + (s + d) * STEP))
    for s, e in fleet_gaps:
        h.present[s:e] = False
        h.benign.append(dict(kind="scrape_gap_fleet", start=T0 + s * STEP, end=T0 + e * STEP))

    # noisy host: random spikes on top of the larger noise
    if nz > 2.5:
        for _ in range(int(rng.poisson(25))):
            a = int(rng.integers(0, n - 5))
            b = a + int(rng.integers(1, 5))
            cpu[a:b] += rng.uniform(0.2, 0.5)
            if lat is not None:
                lat[a:b] *= rng.uniform(2, 6)
                err[a:b] += rng.uniform(0.5, 5)

    # ---- failures ----
    for (_, kind, ps, fs_, fe) in myplan:
        pl = fs_ - ps
        a, b = ps, fs_
        x = np.linspace(0, 1, max(pl, 1))
        shape_p = rng.choice([1.0, 1.0, 1.6, 2.2])   # linear or accelerating
        ramp = x ** shape_p
        noise_scale = rng.uniform(0.5, 1.5)
        host_down = False
        if kind == "memory_leak_oom":
            # leak adds on top of normal sawtooth until RAM is exhausted
            target = ram * 0.985
            add = np.clip(target - mem[a:b], 0, None)
            mem[a:b] += add * ramp * rng.uniform(0.97, 1.0)
            mem[a:b] = np.minimum(mem[a:b], ram * 0.995)
            last = min(pl, int(rng.integers(8, 25)))   # thrashing / kswapd
            cpu[b - last:b] += np.linspace(0, rng.uniform(0.2, 0.5), last)
            if lat is not None:
                lat[b - last:b] *= np.linspace(1, rng.uniform(3, 10), last)
            host_down = rng.random() < 0.45   # whole host hung vs. only service killed
        elif kind == "disk_full":
            target = disk * 0.999
            add = np.clip(target - fs[a:b], 0, None)
            fs[a:b] += add * ramp
            if lat is not None:
                lat[b - 10:b] *= np.linspace(1, 2, 10)
        elif kind == "fd_leak":
            add = np.clip(FD_LIMIT - fds[a:b], 0, None)
            fds[a:b] += add * ramp
            fds[a:b] = np.minimum(fds[a:b], FD_LIMIT)
            if lat is not None:
                lat[a:b] *= 1 + 0.6 * ramp
        elif kind == "cpu_runaway":
            cpu[a:b] = cpu[a:b] + (1.0 - cpu[a:b]) * ramp
            if lat is not None:
                lat[a:b] *= 1 + 6 * ramp ** 2
            mem[a:b] += 0.08 * ram * ramp       # thread stacks
            fds[a:b] *= 1 + 0.5 * ramp
        elif kind == "dependency_degradation":
            if lat is not None:
                lat[a:b] *= 1 + rng.uniform(5, 15) * ramp ** 1.5 * np.exp(rng.normal(0, 0.15 * noise_scale, pl))
                err[a:b] += rng.uniform(1, 8) * ramp ** 2 * np.exp(rng.normal(0, 0.4, pl))
            fds[a:b] *= 1 + rng.uniform(0.5, 1.5) * ramp   # stuck outbound connections
            cpu[a:b] *= 1 - 0.3 * ramp                      # threads blocked waiting
        elif kind == "network_degradation":
            retr[a:b] = retr[a:b] + rng.uniform(0.03, 0.12) * ramp * np.exp(rng.normal(0, 0.3, pl))
            if lat is not None:
                lat[a:b] *= 1 + 2 * ramp
                err[a:b] += 0.5 * ramp ** 2 * rng.uniform(0.5, 2)
            host_down = True   # link dies: host unreachable
        elif kind in ("power_loss", "kernel_panic"):
            host_down = True

        # the failure itself
        d0, d1 = fs_, fe
        if host_down:
            h.present[d0:d1] = False
            h.reboots.append(d1)
        else:
            # service down: process crash-loops, host still reports
            cpu[d0:d1] = 0.02 + rng.normal(0, 0.01, d1 - d0)
            if lat is not None:
                lat[d0:d1] = rng.uniform(10, 30)   # timeouts at the LB / client
                err[d0:d1] = rng.uniform(20, 200) * max(1, float(L[d0:d1].mean()))
            if kind == "disk_full":
                fs[d0:d1] = disk * 0.9999
            else:
                for r in range(d0, d1, int(rng.integers(2, 6))):
                    h.restarts.append(r)   # crash loop
            h.restarts.append(d1)
        # recovery: resources back to normal
        if kind == "memory_leak_oom":
            mem[d1:d1 + 40] *= np.linspace(0.5, 1, len(mem[d1:d1 + 40]))
        # disk_full: the runaway file is deleted at recovery (fill only applied before start)
        elif kind == "fd_leak":
            fds[d1:d1 + 2] *= 0.3
        elif kind == "network_degradation":
            pass
        h.failures.append(dict(kind=kind, precursor_start=T0 + ps * STEP, start=T0 + fs_ * STEP,
                               end=T0 + fe * STEP, sudden=pl == 0,
                               precursor_signal=PRECURSOR_SIGNAL[kind]))
        # during a hung period before down for host-level fails nothing else
    # ---- uptime ----
    up = np.empty(n)
    x = float(rng.uniform(2, 60)) * 86400 if h.first == 0 else 0.0
    resets = set(h.restarts) | set(h.reboots)
    for i in range(n):
        if i in resets:
            x = float(rng.uniform(0, 20))
        else:
            x += STEP
        up[i] = x

    # presence window
    h.present[:h.first] = False
    h.present[h.last:] = False
    if h.first > 0:
        mem[h.first:h.first + 60] *= np.linspace(0.5, 1, len(mem[h.first:h.first + 60]))

    cpu = np.clip(cpu, 0, 1)
    mem = np.clip(mem, 0.05 * ram, ram)
    fs = np.clip(fs, 0, disk)
    fds = np.clip(np.round(fds), 10, FD_LIMIT)
    retr = np.clip(retr, 0, 1)
    out = dict(cpu_util=cpu, mem_used_bytes=np.round(mem), fs_used_bytes=np.round(fs),
               open_fds=fds, latency_p99_s=lat,
               http_5xx_rate=None if err is None else np.clip(err, 0, None),
               tcp_retrans_ratio=retr, uptime_s=up)
    return out


FMT = {"cpu_util": "{:.4f}", "mem_used_bytes": "{:.0f}", "fs_used_bytes": "{:.0f}",
       "open_fds": "{:.0f}", "latency_p99_s": "{:.5g}", "http_5xx_rate": "{:.4g}",
       "tcp_retrans_ratio": "{:.5g}", "uptime_s": "{:.0f}"}

AURA_YML = """# AURA config for gen3 fleet (CSV backtest; queries are what we'd run live)
interval: 5m
analyses:
  - name: fleet
    entity_labels: [instance]
    window: 2h
    step: 1m
    horizons: [1h, 2h, 4h]
    signals:
      - name: cpu_util
        query: 1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))
        kind: saturation
        capacity: 1.0
      # RAM differs per host (8/16/32/64 GiB) and capacity must be one number: no capacity set.
      - name: mem_used_bytes
        query: node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes
        kind: resource
      # disk size differs per role (100 GiB .. 1 TiB): no capacity set.
      - name: fs_used_bytes
        query: node_filesystem_size_bytes{mountpoint="/data"} - node_filesystem_avail_bytes{mountpoint="/data"}
        kind: resource
      - name: open_fds
        query: max by (instance) (process_open_fds{job="service"})
        kind: resource
        capacity: 65536
      - name: latency_p99_s
        query: histogram_quantile(0.99, sum by (instance, le) (rate(http_request_duration_seconds_bucket[5m])))
        kind: latency
      - name: http_5xx_rate
        query: sum by (instance) (rate(http_requests_total{code=~"5.."}[5m]))
        kind: errors
      - name: tcp_retrans_ratio
        query: rate(node_netstat_Tcp_RetransSegs[5m]) / rate(node_netstat_Tcp_OutSegs[5m])
        kind: network
      - name: uptime_s
        query: time() - process_start_time_seconds{job="service"}
        kind: other
"""


def main():
    seed = int(sys.argv[1])
    out = sys.argv[2] if len(sys.argv) > 2 else f"/tmp/g3/fleet-{seed}"
    os.makedirs(out, exist_ok=True)
    hosts, sig, plan, surges, fleet_gaps = build_fleet(seed)
    rows = 0
    with open(os.path.join(out, "data.csv"), "w", newline="") as f:
        f.write("timestamp,instance," + ",".join(SIGNALS) + "\n")
        for i in range(N):
            ts = str(T0 + i * STEP)
            for h in hosts:
                if not h.present[i]:
                    continue
                s = sig[h.name]
                cells = []
                for name in SIGNALS:
                    arr = s[name]
                    cells.append("" if arr is None else FMT[name].format(arr[i]))
                f.write(ts + "," + h.name + "," + ",".join(cells) + "\n")
                rows += 1
    incs = sorted((T0 + p[3] * STEP, T0 + p[4] * STEP, p[0].name,
                    f"sudden_{p[1]}" if p[1] in SUDDEN else p[1]) for p in plan)
    with open(os.path.join(out, "incidents.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["start", "end", "instance", "kind"])
        w.writerows(incs)
    truth = dict(seed=seed, t0=T0, step_s=STEP, steps=N,
                 fleet_events=[dict(kind="traffic_surge", start=T0 + a * STEP, end=T0 + b * STEP) for a, b in surges],
                 hosts={})
    for h in hosts:
        truth["hosts"][h.name] = dict(role=h.role, ram_bytes=h.ram, disk_bytes=h.disk,
                                      noise_factor=round(h.noise, 3),
                                      benign=sorted(h.benign, key=lambda e: e["start"]),
                                      failures=h.failures)
    with open(os.path.join(out, "truth.json"), "w") as f:
        json.dump(truth, f, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    with open(os.path.join(out, "aura.yml"), "w") as f:
        f.write(AURA_YML)
    n_sud = sum(1 for p in plan if p[1] in SUDDEN)
    print(f"seed={seed} hosts={len(hosts)} failures={len(plan)} predictable={len(plan) - n_sud} "
          f"sudden={n_sud} rows={rows}")


if __name__ == "__main__":
    main()
