#!/usr/bin/env python3
"""fleetgen5 - an independent synthetic VM / bare-metal fleet for evaluating AURA.

Provenance
----------
Written by a helper session that was briefed only with real-world fleet behaviour (what SREs
see from node_exporter and application exporters on on-prem / cloud VM fleets) and with AURA's
input formats (docs: design.md sections 3 and 5, the `signals:` keys of aura.example.yml).  It
read no AURA exporter code, no models, no tests other than its own, no other fleet generator in
this repository, and saw no AURA result on this data or any other.  numpy + stdlib only;
deterministic per seed.

Usage
-----
    python benchmarks/fleetgen5.py SEED [OUTDIR] [--days 8] [--scale 1.0] [--failures N]
    # OUTDIR defaults to /tmp/g5/fleet-SEED
    from benchmarks.fleetgen5 import generate
    truth = generate(seed, outdir=None, days=8.0, scale=1.0, n_failures=None)

Writes `data.csv` (timestamp,instance,<signals>; one row per entity per minute of its lifetime,
empty cell = no sample), `incidents.csv` (start,end,instance,kind), `truth.json` and `aura.yml`.
`--failures N` sets the total number of failures (about a fifth of them sudden).

The fleet (scale 1.0: ~40 hosts, ~43 instance labels over the span)
------------------------------------------------------------------
db_primary (MySQL or PostgreSQL, bare metal), db_replica, kafka brokers, Elasticsearch data
nodes, edge proxies (nginx / HAProxy), JVM and Go app servers, batch/ETL workers and
storage/backup nodes.  `instance` is either `10.42.3.17:9100` (cloud VMs) or
`db-replica-04.dc2:9100` (named hosts).  Timestamps are whole minutes; the span starts at 00:00
UTC on a Monday, Wednesday or Thursday; the company's local time zone (daily cycle) is UTC-5..+2.

Signals (raw, as the PromQL would return them)
-----------------------------------------------
cpu_util             ratio 0-1  1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))
mem_used_ratio       ratio 0-1  1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes
disk_used_ratio      ratio 0-1  1 - node_filesystem_avail_bytes{mountpoint="/var"}
                                  / node_filesystem_size_bytes{mountpoint="/var"}
disk_io_latency_s    seconds    mean read+write latency per I/O:
                                (rate(node_disk_read_time_seconds_total[5m])
                                 + rate(node_disk_write_time_seconds_total[5m]))
                                / (rate(node_disk_reads_completed_total[5m])
                                 + rate(node_disk_writes_completed_total[5m]))
net_rx_drops_per_s   1/s        rate of node_network_receive_{errs,drop}_total, physical NICs
http_p99_latency_s   seconds    histogram_quantile(0.99, ... http_request_duration_seconds_bucket)
                                (edge proxies and app servers only)
errors_per_s         1/s        5xx rate (edge, app), failed produce requests (kafka), aborted
                                clients / query errors (mysqld_exporter, postgres_exporter)
replication_lag_s    seconds    mysql_slave_status_seconds_behind_master or pg_replication_lag
                                (replicas only)
open_fds             count      process_open_fds of the main service (limit 65536 fleet-wide)
ecc_corrected_per_s  1/s        rate(node_edac_correctable_errors_total[5m]) (bare metal only)
uptime_s             seconds    node_time_seconds - node_boot_time_seconds

Counter-derived columns are 5-minute rates of Poisson per-minute counts, so they come in
multiples of 1/300 and are missing for two minutes after each (re)start.

Benign behaviour (truth.json "benign", never incidents)
-------------------------------------------------------
daily + weekly traffic (weekdays busier, Monday-morning peak, day-to-day variation, an
optional public holiday), nightly DB backups (CPU, I/O latency, a local dump filling /var then
deleted; lag on the backup replica), Sunday full backups (bigger), storage nodes receiving and
pruning backups, logrotate sawtooth, PostgreSQL vacuum / MySQL optimize, Elasticsearch segment
merges and daily index deletion, Kafka retention cleanups, JVM heap sawtooth, buffer-pool /
page-cache memory near 90 % and cache warm-up after reboots, a patch day with rolling reboots
(uptime resets, cold caches), Puppet runs every 30 min, hourly cron, nightly ETL at 100 % CPU,
marketing-email traffic surges on edge+app, slow-upstream episodes (all app servers' p99 up
20-60 min), replication-lag spikes during backups and ETL loads, chronic NIC drop rates, noisy
hosts, single-host scrape gaps, Prometheus restarts (whole fleet gap), scale-out hosts,
decommissioned hosts, a migrated host (new label), slow drifts that plateau below the limits,
rolling app deploys (process restarts: counters reset, fds and heap drop, JIT warm-up).

Failures (incidents.csv; precursor lengths lognormal, median ~3 h, 30 min - 30 h)
--------------------------------------------------------------------------------
disk_full_logs        app/edge: log explosion after a config push; fill follows traffic, with
                      a second step-up; service fails when /var is full.
disk_full_wal         db/kafka: stuck replication slot / retention disabled; fill follows the
                      write load (slow: median ~8 h).
disk_full_tmp         batch/storage/db: runaway temp file or core dumps (staircase, accelerating).
memory_leak_oom       app/es: leak proportional to requests on top of the normal sawtooth; swap
                      pressure (CPU, I/O, p99) at the end; host hangs, then reboots.
fd_leak               app/edge/kafka: open fds climb (bursty) to the 65536 limit; EMFILE errors.
replication_lag_runaway  replica falls further behind with partial catch-ups until it is
                      pulled from the pool and re-cloned (lag missing while re-cloning).
disk_degradation      bare metal: I/O latency rising with ever more frequent spikes, iowait CPU;
                      host dies, comes back hours later.
ecc_degradation       bare metal: corrected ECC error bursts growing (slow: median ~8 h); crash.
conn_pool_exhaustion  app: pool leaking connections; p99 and 5xx climb, fds rise; restart.
broker_isr            kafka: NIC drops and failed produce requests climbing in steps as
                      partitions fall out of ISR; broker taken out.
sudden_power_loss, sudden_kernel_panic, sudden_network_partition: no precursor; the host stops
reporting (the first two reboot, the partition does not).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

STEP = 60
DAY = 86400
HOUR = 3600
FD_LIMIT = 65536

# name, unit, kind, direction, capacity, query, printf format
SIGNALS = [
    ("cpu_util", "ratio", "saturation", "up", 1.0,
     '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))', "%.4f"),
    ("mem_used_ratio", "ratio", "resource", "up", 1.0,
     "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", "%.4f"),
    ("disk_used_ratio", "ratio", "resource", "up", 1.0,
     '1 - node_filesystem_avail_bytes{mountpoint="/var",fstype!="tmpfs"}'
     ' / node_filesystem_size_bytes{mountpoint="/var",fstype!="tmpfs"}', "%.5f"),
    ("disk_io_latency_s", "seconds", "latency", "up", None,
     "sum by (instance) (rate(node_disk_read_time_seconds_total[5m])"
     " + rate(node_disk_write_time_seconds_total[5m]))"
     " / sum by (instance) (rate(node_disk_reads_completed_total[5m])"
     " + rate(node_disk_writes_completed_total[5m]))", "%.5g"),
    ("net_rx_drops_per_s", "1/s", "network", "up", None,
     'sum by (instance) (rate(node_network_receive_errs_total{device!~"lo|veth.*|docker.*"}[5m])'
     ' + rate(node_network_receive_drop_total{device!~"lo|veth.*|docker.*"}[5m]))', "%.6g"),
    ("http_p99_latency_s", "seconds", "latency", "up", None,
     "histogram_quantile(0.99, sum by (instance, le)"
     " (rate(http_request_duration_seconds_bucket[5m])))", "%.4g"),
    ("errors_per_s", "1/s", "errors", "up", None,
     'sum by (instance) (rate(http_requests_total{code=~"5.."}[5m]))'
     " or sum by (instance) (rate(kafka_server_brokertopicmetrics_failedproducerequests_total[5m]))"
     " or rate(mysql_global_status_aborted_clients[5m])"
     " or sum by (instance) (rate(pg_stat_database_xact_rollback[5m]))", "%.6g"),
    ("replication_lag_s", "seconds", "latency", "up", None,
     "mysql_slave_status_seconds_behind_master or pg_replication_lag", "%.6g"),
    ("open_fds", "count", "resource", "up", float(FD_LIMIT),
     'process_open_fds{job=~"app|edge|kafka|elasticsearch"}', "%d"),
    ("ecc_corrected_per_s", "1/s", "errors", "up", None,
     "sum by (instance) (rate(node_edac_correctable_errors_total[5m]))", "%.6g"),
    ("uptime_s", "seconds", "other", None, None,
     "node_time_seconds - node_boot_time_seconds", "%d"),
]
SIG_NAMES = [s[0] for s in SIGNALS]
RATE_COLS = ("cpu_util", "disk_io_latency_s", "net_rx_drops_per_s", "http_p99_latency_s",
             "errors_per_s", "ecc_corrected_per_s")
BASE_SIGS = ("cpu_util", "mem_used_ratio", "disk_used_ratio", "disk_io_latency_s",
             "net_rx_drops_per_s", "uptime_s")

# role: (count at scale 1, extra signals, bare-metal probability, named-host probability)
ROLES = {
    "db_primary": (2, ("errors_per_s",), 1.0, 1.0),
    "db_replica": (5, ("errors_per_s", "replication_lag_s"), 0.8, 1.0),
    "kafka": (4, ("errors_per_s", "open_fds"), 0.75, 0.8),
    "es_data": (5, ("open_fds",), 0.6, 0.7),
    "edge": (4, ("http_p99_latency_s", "errors_per_s", "open_fds"), 0.0, 0.5),
    "app_jvm": (7, ("http_p99_latency_s", "errors_per_s", "open_fds"), 0.0, 0.2),
    "app_go": (6, ("http_p99_latency_s", "errors_per_s", "open_fds"), 0.0, 0.2),
    "batch": (4, (), 0.25, 0.3),
    "storage": (3, (), 1.0, 1.0),
}
HOSTNAME = {"db_primary": "db-primary", "db_replica": "db-replica", "kafka": "kafka",
            "es_data": "es-data", "edge": "edge-lb", "app_jvm": "app-jvm", "app_go": "api-go",
            "batch": "etl-worker", "storage": "backup"}

# failure kind: (eligible roles, primary signal, precursor median hours, outage (min, max) h)
FAILURES = {
    "disk_full_logs": (("edge", "app_jvm", "app_go"), "disk_used_ratio", 3.0, (0.3, 2.0)),
    "disk_full_wal": (("db_primary", "db_replica", "kafka"), "disk_used_ratio", 8.0, (0.5, 3.0)),
    "disk_full_tmp": (("batch", "storage", "db_replica"), "disk_used_ratio", 2.5, (0.3, 2.0)),
    "memory_leak_oom": (("app_jvm", "app_go", "es_data"), "mem_used_ratio", 3.5, (0.15, 1.0)),
    "fd_leak": (("app_jvm", "app_go", "edge", "kafka"), "open_fds", 3.0, (0.15, 1.5)),
    "replication_lag_runaway": (("db_replica",), "replication_lag_s", 2.5, (2.0, 8.0)),
    "disk_degradation": (("db_primary", "db_replica", "es_data", "kafka", "storage"),
                         "disk_io_latency_s", 4.0, (2.0, 12.0)),
    "ecc_degradation": (("db_primary", "db_replica", "es_data", "kafka", "storage", "batch"),
                        "ecc_corrected_per_s", 8.0, (1.0, 8.0)),
    "conn_pool_exhaustion": (("app_jvm", "app_go"), "http_p99_latency_s", 1.5, (0.2, 1.0)),
    "broker_isr": (("kafka",), "errors_per_s", 2.0, (0.3, 2.0)),
}
FAIL_WEIGHTS = {"disk_full_logs": 1.2, "disk_full_wal": 1.0, "disk_full_tmp": 0.8,
                "memory_leak_oom": 1.3, "fd_leak": 0.9, "replication_lag_runaway": 0.9,
                "disk_degradation": 0.9, "ecc_degradation": 0.7, "conn_pool_exhaustion": 1.0,
                "broker_isr": 0.7}
SUDDEN = {"sudden_power_loss": ((0.25, 4.0), True), "sudden_kernel_panic": ((0.1, 0.7), True),
          "sudden_network_partition": ((0.15, 1.5), False)}


# ----------------------------------------------------------------------------- helpers
def ar1(rng, n, tau, sigma):
    """Stationary AR(1)-like noise with correlation time `tau` steps and std `sigma`."""
    tau = max(float(tau), 0.3)
    k = np.exp(-np.arange(int(5 * tau) + 1) / tau)
    k /= np.sqrt((k ** 2).sum())
    e = rng.normal(0.0, sigma, n + len(k) - 1)
    return np.convolve(e, k, "valid")[:n]


def lognoise(rng, n, tau, sigma):
    return np.exp(ar1(rng, n, tau, sigma) - sigma * sigma / 2)


def pulse(n, i0, i1, rise=5.0, fall=5.0):
    """0..1 trapezoid between i0 and i1 with exponential-ish soft edges."""
    x = np.arange(n, dtype=float)
    up = 1.0 / (1.0 + np.exp(np.clip(-(x - i0 - 2 * rise) / max(rise, 0.5), -60, 60)))
    down = 1.0 / (1.0 + np.exp(np.clip((x - i1 + 2 * fall) / max(fall, 0.5), -60, 60)))
    return up * down


def rate5m(counts):
    """Per-minute counts -> Prometheus rate(...[5m]) (per second)."""
    c = np.concatenate([np.zeros(4), counts])
    return np.convolve(c, np.ones(5), "valid") / 300.0


def poisson_rate(rng, lam_per_s):
    lam = np.clip(np.nan_to_num(lam_per_s) * 60.0, 0, 1e7)
    return rate5m(rng.poisson(lam).astype(float))


def lognormal_hours(rng, median, sigma=0.85, lo=0.5, hi=30.0):
    return float(np.clip(median * math.exp(rng.normal(0, sigma)), lo, hi))


class Ctx:
    pass


# ----------------------------------------------------------------------------- calendar
def build_calendar(rng, days):
    c = Ctx()
    c.rng = rng
    base_monday = 19359  # 2023-01-02, days since epoch
    start_day = base_monday + 7 * int(rng.integers(0, 150)) + int(rng.choice([0, 2, 3]))
    c.t0 = start_day * DAY
    c.n = int(round(days * DAY / STEP))
    c.times = c.t0 + STEP * np.arange(c.n, dtype=np.int64)
    c.tz = int(rng.choice([-5, 0, 1, 2]))
    tl = c.times + c.tz * HOUR
    c.hod = (tl % DAY) / HOUR
    c.lday = tl // DAY
    c.dow = ((c.lday + 3) % 7).astype(int)  # 0 = Monday
    c.weekend = c.dow >= 5
    c.benign = []
    return c


def local_index(c, day, hour):
    """Step index of local `hour` on local day number `day` (may be out of range)."""
    return int(round((day * DAY - c.tz * HOUR + hour * HOUR - c.t0) / STEP))


def local_days(c):
    return range(int(c.lday[0]) - 1, int(c.lday[-1]) + 2)


def ev(c, what, i0, i1, who, **kw):
    i0 = max(int(i0), 0)
    i1 = min(int(i1), c.n)
    if i1 <= 0 or i0 >= c.n or i1 <= i0:
        return
    d = {"what": what, "start": int(c.times[i0]), "end": int(c.t0 + STEP * i1),
         "who": who}
    d.update(kw)
    c.benign.append(d)


def circ_gauss(h, mu, s):
    d = (h - mu + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (d / s) ** 2)


def build_traffic(c):
    rng, h = c.rng, c.hod
    wd = (0.16 + 0.72 * circ_gauss(h, 10.5, 2.3) + 0.78 * circ_gauss(h, 15.0, 2.6)
          + 0.42 * circ_gauss(h, 20.5, 1.8))
    we = 0.18 + 0.42 * circ_gauss(h, 12.5, 3.5) + 0.38 * circ_gauss(h, 20.0, 2.5)
    shape = np.where(c.weekend, we, wd)
    mult = np.array([1.08, 1.03, 1.0, 0.98, 0.9, 1.0, 0.95])[c.dow]
    shape = shape * mult
    mon = c.dow == 0
    shape = shape + np.where(mon, 0.35 * circ_gauss(h, 9.0, 1.3), 0.0)
    days = list(local_days(c))
    for d in days:
        i0, i1 = local_index(c, d, 0), local_index(c, d + 1, 0)
        m = math.exp(rng.normal(0, 0.06))
        shape[max(i0, 0):max(i1, 0)] *= m
    for d in days:
        i0 = local_index(c, d, 7)
        if 0 <= i0 < c.n and c.dow[i0] == 0:
            ev(c, "monday_peak", local_index(c, d, 7.5), local_index(c, d, 11.5), "fleet")
    # an optional public holiday on a weekday
    wk = [d for d in days if 0 <= local_index(c, d, 12) < c.n
          and c.dow[local_index(c, d, 12)] < 5]
    if wk and rng.random() < 0.5:
        d = int(rng.choice(wk))
        i0, i1 = max(local_index(c, d, 0), 0), min(local_index(c, d + 1, 0), c.n)
        shape[i0:i1] = we[i0:i1] * 0.95
        ev(c, "quiet_day", i0, i1, "fleet", note="public holiday: weekend-like traffic")
    # marketing-email surges (weekdays, office hours)
    surge = np.ones(c.n)
    n_surge = max(1, rng.poisson(0.6 * len(wk))) if wk else 0
    for d in rng.choice(wk, size=n_surge) if wk else []:
        if True:
            i0 = local_index(c, int(d), rng.uniform(9, 17))
            amp = rng.uniform(0.6, 2.0)
            dur = rng.uniform(30, 90)
            x = np.arange(c.n) - i0
            s = np.where(x >= 0, (1 - np.exp(-np.maximum(x, 0) / 4.0))
                         * np.exp(-np.maximum(x, 0) / dur), 0.0)
            surge += amp * s
            ev(c, "traffic_surge", i0, i0 + 3 * dur, ["edge", "app_jvm", "app_go"],
               amplitude=round(amp, 2), note="marketing email")
    c.traffic = shape * surge * lognoise(rng, c.n, 20, 0.04)
    c.surge = surge
    # slow upstream episodes: every app server's latency rises together
    c.upstream = np.zeros(c.n)
    n_up = max(1, rng.poisson(0.35 * c.n / 1440))
    for _ in range(n_up):
        i0 = int(rng.integers(0, c.n))
        dur = rng.uniform(20, 60)
        amp = rng.uniform(0.4, 2.5)
        c.upstream += amp * pulse(c.n, i0, i0 + dur, 3, 4) * lognoise(rng, c.n, 3, 0.2)
        ev(c, "slow_upstream", i0, i0 + dur + 10, ["app_jvm", "app_go", "edge"],
           added_p99_s=round(amp, 2))
    # database write load: traffic plus nightly ETL loads
    c.etl_load = np.zeros(c.n)
    for d in days:
        i0 = local_index(c, d, 2.0 + rng.uniform(-0.3, 0.5))
        dur = rng.uniform(60, 150) * (0.5 if c.dow[min(max(i0, 0), c.n - 1)] >= 5 else 1.0)
        c.etl_load += rng.uniform(0.8, 2.0) * pulse(c.n, i0, i0 + dur, 5, 8)
        ev(c, "etl_bulk_writes", i0, i0 + dur, ["db_primary", "db_replica"])
    c.write = 0.6 * c.traffic + c.etl_load


# ----------------------------------------------------------------------------- fleet
def build_fleet(c, scale):
    rng = c.rng
    ents = []
    used_ip = set()
    counters = {}

    def name(role, named):
        if named:
            k = counters.get(role, 0) + 1
            counters[role] = k
            return f"{HOSTNAME[role]}-{k:02d}.dc{int(rng.integers(1, 3))}:9100"
        while True:
            ip = f"10.42.{int(rng.integers(1, 9))}.{int(rng.integers(10, 250))}:9100"
            if ip not in used_ip:
                used_ip.add(ip)
                return ip

    for role, (cnt, extra, p_bare, p_named) in ROLES.items():
        k = max(1, int(round(cnt * scale)))
        for j in range(k):
            bare = rng.random() < p_bare
            e = {"role": role, "bare": bool(bare), "start_i": 0, "end_i": c.n,
                 "sigs": set(BASE_SIGS) | set(extra), "prng": int(rng.integers(0, 2**31))}
            if bare:
                e["sigs"].add("ecc_corrected_per_s")
            if role == "db_primary":
                e["flavor"] = "postgresql" if j % 2 else "mysql"
            elif role == "db_replica":
                e["flavor"] = "postgresql" if j % 3 == 2 else "mysql"
            elif role == "edge":
                e["flavor"] = "haproxy" if j % 2 else "nginx"
            e["instance"] = name(role, bare or rng.random() < p_named)
            ents.append(e)
    # lifetime changes: scale-out, decommission, migration
    n = c.n
    for _ in range(max(1, int(round(2 * scale)))):
        role = str(rng.choice(["app_go", "app_jvm", "es_data"]))
        e = {"role": role, "bare": False, "start_i": int(rng.uniform(0.3, 0.7) * n),
             "end_i": n, "sigs": set(BASE_SIGS) | set(ROLES[role][1]),
             "prng": int(rng.integers(0, 2**31)), "scale_out": True}
        e["instance"] = name(role, False)
        ents.append(e)
        ev(c, "scale_out", e["start_i"], e["start_i"] + 60, [e["instance"]])
    cands = [e for e in ents if e["role"] in ("batch", "app_go", "app_jvm") and e["start_i"] == 0]
    for e in rng.choice(len(cands), size=min(len(cands), max(1, int(round(scale)))),
                        replace=False):
        e = cands[int(e)]
        e["end_i"] = int(rng.uniform(0.4, 0.85) * n)
        e["decommissioned"] = True
        ev(c, "decommission", e["end_i"] - 30, e["end_i"], [e["instance"]])
    cands = [e for e in ents if e["role"] in ("es_data", "app_go", "kafka") and e["start_i"] == 0
             and e["end_i"] == n]
    if cands:
        old = cands[int(rng.integers(0, len(cands)))]
        m = int(rng.uniform(0.35, 0.75) * n)
        new = dict(old)
        new["sigs"] = set(old["sigs"])
        new["bare"] = False
        new["sigs"].discard("ecc_corrected_per_s")
        new["instance"] = name(old["role"], False)
        new["start_i"] = m + int(rng.integers(3, 20))
        new["migrated_from"] = old["instance"]
        new["prng"] = int(rng.integers(0, 2**31))
        old["end_i"] = m
        old["migrated_to"] = new["instance"]
        ents.append(new)
        ev(c, "migration", m - 10, new["start_i"] + 30, [old["instance"], new["instance"]])
    return ents


def plan_schedules(c, ents):
    """Host quirks, patch-day reboots and app deploys (decided before failures)."""
    rng = c.rng
    for e in ents:
        e["flags"] = {k: False for k in ("noisy", "chronic_nic", "chronic_ecc", "drift")}
    for flag, frac, pool in (("noisy", 0.1, ents), ("chronic_nic", 0.15, ents),
                             ("drift", 0.12, ents),
                             ("chronic_ecc", 0.12, [e for e in ents if e["bare"]])):
        if pool:
            k = max(1, int(round(frac * len(pool))))
            for j in rng.choice(len(pool), size=min(k, len(pool)), replace=False):
                pool[int(j)]["flags"][flag] = True
    for e in ents:
        e["reboots"] = []    # (index, down minutes, reason)
        e["deploys"] = []
    days = [d for d in local_days(c) if 0 <= local_index(c, d, 10) < c.n
            and c.dow[local_index(c, d, 10)] in (1, 2, 3)]
    c.patch_day = None
    if days:
        d = days[int(rng.integers(0, len(days)))]
        c.patch_day = d
        order = [e for e in ents if rng.random() < 0.85]
        rng.shuffle(order)
        t = local_index(c, d, 9.0)
        who = []
        for e in order:
            t += int(rng.integers(4, 14))
            if e["start_i"] + 60 <= t < e["end_i"] - 10:
                e["reboots"].append((t, int(rng.integers(2, 7)), "patch"))
                who.append(e["instance"])
        if who:
            ev(c, "patch_rolling_reboots", local_index(c, d, 9.0), t + 10, who,
               note="kernel/package patching; uptime resets, cold caches")
    for d in local_days(c):
        i = local_index(c, d, 14.0)
        if not (0 <= i < c.n) or c.dow[i] >= 5 or rng.random() < 0.35:
            continue
        t = local_index(c, d, rng.uniform(13.5, 16.0))
        who = []
        for e in ents:
            if e["role"] in ("app_jvm", "app_go"):
                t += int(rng.integers(2, 6))
                if e["start_i"] + 30 <= t < e["end_i"] - 5:
                    e["deploys"].append(t)
                    who.append(e["instance"])
        ev(c, "rolling_deploy", t - 5 * len(who), t + 10, who,
           note="process restarts: counters reset, heap and fds drop, JIT warm-up")


def schedule_failures(c, ents, n_total, scale):
    rng = c.rng
    if n_total is None:
        n_pre = int(round(rng.integers(9, 14) * scale))
        n_sud = int(round(rng.integers(2, 4) * scale))
    else:
        n_sud = int(round(0.2 * n_total))
        n_pre = n_total - n_sud
    span_h = c.n / 60.0
    lead = int(min(12 * 60, 0.2 * c.n))
    fails = []
    busy = set()
    kinds = list(FAILURES)
    w = np.array([FAIL_WEIGHTS[k] for k in kinds])
    plan = [str(k) for k in rng.choice(kinds, size=n_pre, p=w / w.sum())]
    plan += [str(k) for k in rng.choice(list(SUDDEN), size=n_sud)]
    for kind in plan:
        for _attempt in range(60):
            if kind in FAILURES:
                roles, sig, med, (olo, ohi) = FAILURES[kind]
                hi = min(30.0, 0.6 * span_h)
                L = lognormal_hours(rng, med, lo=min(2.0 if med >= 8 else 0.5, hi), hi=hi)
                if _attempt > 30:
                    L = max(0.5, L * 0.5)
            else:
                roles, sig, L = tuple(ROLES), None, 0.0
                olo, ohi = SUDDEN[kind][0]
            cands = [e for e in ents if e["role"] in roles and e["instance"] not in busy
                     and (sig is None or sig in e["sigs"])]
            if kind in ("disk_degradation", "ecc_degradation"):
                cands = [e for e in cands if e["bare"]]
            if not cands:
                break
            e = cands[int(rng.integers(0, len(cands)))]
            D = int(round(rng.uniform(olo, ohi) * 60))
            Lm = int(round(L * 60))
            lo_s = e["start_i"] + lead + Lm
            hi_s = min(e["end_i"], c.n) - D - 30
            if hi_s <= lo_s:
                continue
            s = int(rng.integers(lo_s, hi_s))
            p0 = s - Lm
            clash = any(p0 - 90 <= r[0] <= s + D + 60 for r in e["reboots"])
            clash = clash or any(p0 - 30 <= d <= s + D + 30 for d in e["deploys"])
            if clash:
                continue
            busy.add(e["instance"])
            f = {"instance": e["instance"], "kind": kind, "signal": sig,
                 "sudden": kind in SUDDEN, "p0_i": p0, "s_i": s, "e_i": s + D,
                 "precursor_hours": round(L, 3), "outage_minutes": D}
            fails.append(f)
            e.setdefault("failures", []).append(f)
            break
    fails.sort(key=lambda f: f["s_i"])
    return fails


# ----------------------------------------------------------------------------- signals
def gen_entity(c, e):
    rng = np.random.default_rng(e["prng"])
    n, role = c.n, e["role"]
    T = c.traffic
    hod = c.hod
    who = [e["instance"]]
    out = {}
    noisy = e["flags"]["noisy"]
    nz = 2.5 if noisy else 1.0
    if noisy:
        ev(c, "noisy_host", e["start_i"], e["end_i"], who, note="high-variance host")
    e["down"] = np.zeros(n, bool)
    e["proc_restarts"] = list(e["deploys"])
    weight = rng.uniform(0.7, 1.3)
    load = T * weight
    rbt = [r[0] for r in e["reboots"]]
    boot_idx = [e["start_i"]] + rbt if e["start_i"] > 0 else rbt
    # time since last boot (minutes) for cache warm-up
    since_boot = np.full(n, 1e6)
    for b in boot_idx:
        x = np.arange(n) - b
        since_boot = np.where(x >= 0, np.minimum(since_boot, x), since_boot)
    cold = np.exp(-since_boot / rng.uniform(120, 360))  # 1 right after boot, -> 0

    # ---------------- CPU
    cpu_base = {"edge": (0.04, 0.35), "app_jvm": (0.06, 0.45), "app_go": (0.03, 0.3),
                "db_primary": (0.05, 0.3), "db_replica": (0.03, 0.18), "kafka": (0.05, 0.25),
                "es_data": (0.08, 0.3), "batch": (0.02, 0.05), "storage": (0.02, 0.04)}[role]
    drive = c.write if role in ("db_primary", "db_replica") else load
    cpu = (cpu_base[0] + cpu_base[1] * drive * rng.uniform(0.8, 1.2)) \
        * lognoise(rng, n, 8, 0.12 * nz)
    cpu += np.abs(ar1(rng, n, 1.5, 0.015 * nz))
    # puppet every 30 min (host-specific offset), hourly cron
    off = int(rng.integers(0, 30))
    for i in range(off, n, 30):
        dur = int(rng.integers(1, 4))
        cpu[i:i + dur] += rng.uniform(0.04, 0.22)
    for i in np.nonzero((np.round(hod * 60) % 60) == 0)[0]:
        cpu[i:i + 2] += rng.uniform(0.01, 0.08)
    ev(c, "config_management_runs", e["start_i"], e["end_i"], who, period_min=30, offset_min=off)
    ev(c, "cron_jobs", e["start_i"], e["end_i"], who, note="hourly at :00, cron.daily 06:25")
    # ---------------- memory
    mem_lvl = {"edge": (0.18, 0.35), "app_jvm": (0.5, 0.68), "app_go": (0.22, 0.45),
               "db_primary": (0.8, 0.9), "db_replica": (0.78, 0.9), "kafka": (0.3, 0.45),
               "es_data": (0.75, 0.9), "batch": (0.15, 0.3), "storage": (0.12, 0.3)}[role]
    mbase = rng.uniform(*mem_lvl)
    mem = np.full(n, mbase) + ar1(rng, n, 30, 0.006 * nz) + 0.02 * (load - 0.6) * \
        (role in ("edge", "app_go", "app_jvm"))
    if role in ("db_primary", "db_replica", "es_data", "storage", "kafka"):
        mem = mem - (mbase - 0.25) * cold   # buffer pool / caches warm up after boot
        ev(c, "page_cache_buffer_pool", e["start_i"], e["end_i"], who, level=round(mbase, 3),
           note="memory high by design; warms up after reboots")
    # ---------------- disk used
    dlvl = {"edge": (0.22, 0.5), "app_jvm": (0.2, 0.55), "app_go": (0.15, 0.45),
            "db_primary": (0.45, 0.66), "db_replica": (0.45, 0.66), "kafka": (0.45, 0.62),
            "es_data": (0.5, 0.68), "batch": (0.2, 0.45), "storage": (0.5, 0.66)}[role]
    disk = np.full(n, rng.uniform(*dlvl))
    log_slope = {"edge": (0.01, 0.05), "app_jvm": (0.004, 0.02), "app_go": (0.003, 0.015)} \
        .get(role, (0.001, 0.006))
    ls = rng.uniform(*log_slope)
    lr = ls * T / T.mean() / 1440.0
    rot_h = 6.42 if rng.random() < 0.7 else 0.0
    rots = [local_index(c, d, rot_h) + int(rng.integers(0, 4)) for d in local_days(c)]
    disk += sawtooth(lr, rots, n, keep=rng.uniform(0.05, 0.15))
    ev(c, "logrotate", e["start_i"], e["end_i"], who, at_local_hour=rot_h,
       growth_per_day=round(ls, 4))
    # ---------------- disk latency
    hdd = role == "storage" or (role == "batch" and e["bare"])
    lat0 = rng.uniform(0.004, 0.012) if hdd else rng.uniform(0.0003, 0.0018)
    iol = np.ones(n) + 0.5 * drive
    # ---------------- network drops
    chronic = e["flags"]["chronic_nic"]
    lam = np.where(rng.random(n) < 0.0015, rng.uniform(0.5, 20), 0.0)  # rare blips
    lam = np.convolve(lam, np.ones(3), "same")
    if chronic:
        lam = lam + rng.uniform(0.02, 0.5) * (0.5 + load)
        ev(c, "chronic_nic_drops", e["start_i"], e["end_i"], who)
    # ---------------- app metrics
    p99 = err_lam = None
    rps = None
    fds = None
    if role in ("edge", "app_jvm", "app_go"):
        rps = load * (rng.uniform(300, 1500) if role == "edge" else rng.uniform(80, 500))
        b = rng.uniform(0.04, 0.12) if role == "edge" else rng.uniform(0.08, 0.35)
        p99 = b * (1 + 0.35 * load ** 2) * lognoise(rng, n, 4, 0.13 * nz) \
            + c.upstream * rng.uniform(0.8, 1.1)
        perr = rng.uniform(1e-4, 6e-4)
        err_lam = rps * perr * (1 + 8 * np.minimum(c.upstream, 1.5) + 0.5 * (c.surge - 1))
        fds = (rng.uniform(150, 400) + (rng.uniform(2000, 12000) if role == "edge"
                                        else rng.uniform(100, 600)) * load)
        fds = fds * lognoise(rng, n, 10, 0.05) + 40 * np.maximum(c.upstream, 0)
    elif role in ("db_primary", "db_replica"):
        err_lam = rng.uniform(0.002, 0.05) * (0.3 + c.write)
    elif role == "kafka":
        err_lam = np.where(rng.random(n) < 0.004, rng.uniform(0.05, 2), 0.0)
    if role == "kafka":
        fds = rng.uniform(6000, 18000) + 500 * load
    elif role == "es_data":
        fds = rng.uniform(2000, 6000) + 150 * load
    lag = None
    if role == "db_replica":
        lag = np.abs(ar1(rng, n, 3, 0.6)) * (0.5 + c.write) + 2.0 * np.maximum(c.etl_load - 0.5, 0)
        lag += rng.uniform(20, 200) * np.maximum(c.etl_load - 0.8, 0) ** 2 * \
            lognoise(rng, n, 10, 0.4)

    # ---------------- role behaviour
    days = list(local_days(c))
    if role in ("db_primary", "db_replica"):
        growth = rng.uniform(0.002, 0.006) / 1440
        disk += growth * np.arange(n)
        backup_here = role == "db_primary" and e["flavor"] == "mysql" or \
            role == "db_replica" and e["instance"].endswith("-01.dc1:9100") or rng.random() < 0.4
        for d in days:
            i0 = local_index(c, d, 1.0) + int(rng.integers(-10, 20))
            if not (-600 < i0 < n):
                continue
            sunday = c.dow[min(max(i0, 0), n - 1)] == 6
            if not backup_here and not sunday:
                continue
            dur = rng.uniform(200, 330) if sunday else rng.uniform(40, 120)
            snap = rng.uniform(0.1, 0.2) if sunday else rng.uniform(0.04, 0.1)
            snap = min(snap, 0.9 - disk.max())
            up = rng.uniform(20, 60)
            x = np.arange(n) - i0
            fill = np.clip(x / dur, 0, 1) * (x < dur + up)
            disk += max(snap, 0) * fill
            p = pulse(n, i0, i0 + dur, 2, 3)
            cpu += rng.uniform(0.15, 0.4) * p
            iol *= 1 + rng.uniform(2, 6) * p * (2 if sunday else 1)
            if lag is not None:
                lag += rng.uniform(60, 600) * (3 if sunday else 1) * \
                    np.clip(x / dur, 0, 1) ** 1.5 * (x < dur) * lognoise(rng, n, 5, 0.3)
                catch = (x >= dur) & (x < dur + 40)
                lag[catch] += (rng.uniform(60, 600) * np.exp(-(x[catch] - dur) / 6.0))
            ev(c, "weekly_full_backup" if sunday else "nightly_backup", i0, i0 + dur + up,
               who, snapshot_fill=round(float(snap), 3))
        # vacuum / optimize
        for d in days:
            i0 = local_index(c, d, 3.5) + int(rng.integers(0, 30))
            if not (0 <= i0 < n) or (e.get("flavor") == "mysql" and c.dow[i0] != 5):
                continue
            dur = rng.uniform(20, 70)
            amt = rng.uniform(0.01, 0.04)
            x = np.arange(n) - i0
            disk += amt * np.clip(x / dur, 0, 1) * (x < dur) - \
                amt * rng.uniform(0.2, 0.6) * (x >= dur)
            p = pulse(n, i0, i0 + dur, 2, 2)
            cpu += rng.uniform(0.1, 0.3) * p
            iol *= 1 + rng.uniform(1, 3) * p
            ev(c, "vacuum_compaction", i0, i0 + dur, who, flavor=e.get("flavor"))
    elif role == "es_data":
        r = rng.uniform(0.02, 0.05) * T / T.mean() / 1440
        i = 0
        while True:
            i += int(rng.exponential(100)) + 20
            if i >= n:
                break
            dur = rng.uniform(5, 25)
            amt = rng.uniform(0.003, 0.02)
            x = np.arange(n) - i
            disk += amt * np.clip(x / dur, 0, 1) - amt * rng.uniform(0.94, 1.06) * (x >= dur + 2)
            cpu += rng.uniform(0.1, 0.35) * pulse(n, i, i + dur, 1, 1)
            iol *= 1 + 1.5 * pulse(n, i, i + dur, 1, 1)
        dels = [local_index(c, d, 0.5 - c.tz) for d in days]
        disk += sawtooth(r, dels, n, keep=0.0)
        ev(c, "segment_merges", e["start_i"], e["end_i"], who)
        ev(c, "index_rollover_deletion", e["start_i"], e["end_i"], who, note="daily ILM")
    elif role == "kafka":
        r = rng.uniform(0.06, 0.16) * T / T.mean() / 1440
        g = np.concatenate([[0.0], np.cumsum(r)])
        i, dels = 0, []
        while i < n:
            i += int(rng.uniform(60, 240))
            dels.append(i)
        idx = np.arange(n)
        last = np.searchsorted(np.array(dels), idx, side="right") - 1
        ld = np.where(last >= 0, np.array(dels)[np.maximum(last, 0)], -240)
        back = ld - 1440
        gb = np.where(back >= 0, g[np.clip(back, 0, n)], back * r.mean())
        disk += g[1:] - gb - r.mean() * 1440
        ev(c, "kafka_retention_cleanup", e["start_i"], e["end_i"], who, every_minutes="60-240")
    elif role == "batch":
        for d in days:
            i0 = local_index(c, d, 22.0 + rng.uniform(0, 2.5))
            if not (-400 < i0 < n):
                continue
            wkend = c.dow[min(max(i0, 0), n - 1)] >= 5
            dur = rng.uniform(120, 360) * (0.5 if wkend else 1.0)
            p = pulse(n, i0, i0 + dur, 3, 3)
            cpu = cpu * (1 - p) + p * np.clip(rng.uniform(0.93, 0.99) + ar1(rng, n, 2, 0.015),
                                              0, 1)
            mem += rng.uniform(0.35, 0.62) * p
            spill = min(rng.uniform(0.03, 0.15), 0.9 - disk.max())
            x = np.arange(n) - i0
            disk += spill * np.clip(x / (0.7 * dur), 0, 1) * (x < dur)
            iol *= 1 + rng.uniform(1, 3) * p
            ev(c, "nightly_etl_full_cpu", i0, i0 + dur, who, spill=round(float(spill), 3))
    elif role == "storage":
        idx = np.arange(n)
        for d in days:
            i0 = local_index(c, d, 1.5) + int(rng.integers(0, 30))
            if not (-400 < i0 < n):
                continue
            sunday = c.dow[min(max(i0, 0), n - 1)] == 6
            amt = rng.uniform(0.04, 0.08) if sunday else rng.uniform(0.008, 0.025)
            dur = rng.uniform(180, 300) if sunday else rng.uniform(60, 150)
            x = idx - i0
            prune = local_index(c, d, 5.5) - i0 + (60 if sunday else 0)
            disk += amt * np.clip(x / dur, 0, 1) - amt * rng.uniform(0.9, 1.1) * (x >= prune)
            p = pulse(n, i0, i0 + dur, 3, 3)
            cpu += rng.uniform(0.2, 0.45) * p
            iol *= 1 + rng.uniform(1, 3) * p
            ev(c, "weekly_full_backup" if sunday else "backup_receive_prune", i0, i0 + prune,
               who)
    if role == "app_jvm":
        phase = np.cumsum(load * rng.uniform(1 / 40, 1 / 15))
        amp = rng.uniform(0.03, 0.08)
        saw = amp * (phase % 1.0)
        mem += saw
        ev(c, "jvm_heap_sawtooth", e["start_i"], e["end_i"], who, amplitude=round(amp, 3))
    elif role == "app_go":
        phase = np.cumsum(load * rng.uniform(1 / 6, 1 / 2))
        mem += rng.uniform(0.008, 0.025) * (phase % 1.0)   # Go GC cycles (GOGC=100)
    # deploys: process restarts (heap, fds, JIT warm-up)
    for t in e["deploys"]:
        x = np.arange(n) - t
        w = np.exp(-np.maximum(x, 0) / 8.0) * (x >= 0)
        cpu += (0.3 if role == "app_jvm" else 0.08) * w
        if p99 is not None:
            p99 = p99 * (1 + (1.5 if role == "app_jvm" else 0.3) * w)
    # patching: cold caches => higher I/O and latency for hours
    iol *= 1 + 1.5 * cold * (role in ("db_primary", "db_replica", "es_data"))
    if p99 is not None:
        p99 = p99 * (1 + 0.5 * cold)
    # slow drift that plateaus below limits (benign)
    if e["flags"]["drift"]:
        i0 = int(rng.integers(e["start_i"], max(e["start_i"] + 1, e["end_i"] - 600)))
        dur = rng.uniform(600, 2000)
        x = np.arange(n) - i0
        if rng.random() < 0.6:
            amt = min(rng.uniform(0.05, 0.15), 0.88 - disk.max())
            disk += max(amt, 0) * np.clip(1 - np.exp(-np.maximum(x, 0) / (dur / 3)), 0, 1)
            what = "disk"
        else:
            amt = min(rng.uniform(0.05, 0.12), 0.9 - mem.max())
            mem += max(amt, 0) * np.clip(1 - np.exp(-np.maximum(x, 0) / (dur / 3)), 0, 1)
            what = "memory"
        ev(c, "slow_drift_plateau", i0, i0 + dur, who, signal=what, amount=round(float(amt), 3))
    # scrape gaps
    i = e["start_i"]
    while True:
        i += int(rng.exponential(1440 / 0.6))
        if i >= e["end_i"]:
            break
        g = int(rng.integers(1, 7))
        e["down"][i:i + g] = True
        ev(c, "scrape_gap", i, i + g, who)
    e["gen"] = dict(cpu=cpu, mem=mem, disk=disk, lat0=lat0, iol=iol, lam=lam, p99=p99,
                    err_lam=err_lam, fds=fds, lag=lag, rps=rps, nz=nz, rng=rng, load=load)
    e["ecc_lam"] = np.zeros(n)
    if e["bare"] and e["flags"]["chronic_ecc"]:
        b = np.where(rng.random(n) < 0.003, rng.uniform(0.01, 0.2), 0.0)
        e["ecc_lam"] = np.convolve(b, np.ones(15), "same")
        ev(c, "chronic_ecc_corrected", e["start_i"], e["end_i"], who,
           note="a DIMM with occasional corrected-error bursts, never fails")
    return out


def sawtooth(rate, resets, n, keep=0.1):
    """Accumulate `rate`; at each reset index drop to `keep` of what was accumulated."""
    out = np.empty(n)
    acc = 0.0
    cs = np.cumsum(rate)
    pts = sorted(r for r in resets if 0 < r < n) + [n]
    prev, base = 0, 0.0
    for r in pts:
        seg = cs[prev:r] - (cs[prev - 1] if prev > 0 else 0.0)
        out[prev:r] = base + seg
        acc = base + (seg[-1] if len(seg) else 0.0)
        base = keep * acc
        prev = r
    return out


# ----------------------------------------------------------------------------- failures
def cum_norm(x):
    c = np.cumsum(np.maximum(x, 0))
    return c / c[-1] if c[-1] > 0 else np.linspace(0, 1, len(x))


def apply_failure(c, e, f):
    g = e["gen"]
    rng = np.random.default_rng([e["prng"], 7])
    n = c.n
    p0, s, end = f["p0_i"], f["s_i"], f["e_i"]
    L = s - p0
    kind = f["kind"]
    seg = slice(p0, s)
    u = np.linspace(0, 1, L, endpoint=False) if L > 0 else np.zeros(0)
    load = g["load"]
    params = {}
    reboot = False
    service_down = False
    if kind.startswith("disk_full"):
        if kind == "disk_full_logs":
            step_at = rng.uniform(0.3, 0.8)
            r = load[seg] * (1 + rng.uniform(1, 3) * (u > step_at)) * lognoise(rng, L, 5, 0.3)
            params.update(step_up_at=round(step_at, 2))
        elif kind == "disk_full_wal":
            r = c.write[seg] * lognoise(rng, L, 20, 0.2)
        else:
            k = max(3, int(rng.uniform(4, 12)))
            times = np.sort(rng.uniform(0, 1, k) ** 0.6)
            r = np.zeros(L)
            for t in times:
                j = int(t * L)
                r[j:j + int(rng.integers(1, 6))] += rng.uniform(0.5, 1.5)
            r += 0.05 * u ** 2
            params.update(chunks=k)
        shape = cum_norm(r)
        need = 1.0 - g["disk"][s - 1] + 0.002
        g["disk"][seg] += need * shape
        g["disk"][s:end] = 1.0 - rng.uniform(0, 0.0005, end - s)
        g["iol"][seg] *= 1 + 0.5 * shape
        service_down = True
        params.update(fill=round(float(need), 3))
    elif kind == "memory_leak_oom":
        shape = cum_norm(load[seg] * lognoise(rng, L, 30, 0.2))
        top = rng.uniform(0.975, 0.995)
        need = top - g["mem"][s - 1]
        g["mem"][seg] += need * shape
        press = np.clip((g["mem"][seg] - 0.92) / 0.07, 0, 1)
        g["cpu"][seg] += 0.4 * press ** 2
        g["iol"][seg] *= 1 + 6 * press ** 2
        if g["p99"] is not None:
            g["p99"][seg] *= 1 + 3 * press ** 2
        reboot = True
        params.update(leaked=round(float(need), 3))
    elif kind == "fd_leak":
        r = load[seg] * np.where(rng.random(L) < 0.03, rng.uniform(3, 15, L), 1.0)
        shape = cum_norm(r)
        need = FD_LIMIT - g["fds"][s - 1]
        g["fds"][seg] += need * shape
        near = np.clip((g["fds"][seg] - 0.97 * FD_LIMIT) / (0.03 * FD_LIMIT), 0, 1)
        if g["err_lam"] is not None:
            g["err_lam"][seg] += (g["rps"][seg] if g["rps"] is not None else 50) * 0.05 * near
        service_down = True
    elif kind == "replication_lag_runaway":
        stall = np.clip(u ** rng.uniform(0.7, 1.6) + ar1(rng, L, 20, 0.12), 0, 1)
        catchup = rng.random(L) < 0.004
        d = stall * (0.6 + 0.6 * c.write[seg] / c.write.mean()) - 0.2
        d[catchup] -= rng.uniform(20, 80, catchup.sum())
        lag = np.zeros(L)
        acc = float(g["lag"][p0])
        for i in range(L):
            acc = max(0.0, acc + 60 * d[i])
            lag[i] = acc
        final = lag[-1]
        tgt = min(0.9 * L * 60, rng.uniform(1800, 7200))
        if final < tgt:
            lag += (tgt - final) * u ** 2
        g["lag"][seg] = lag + np.abs(g["lag"][seg])
        g["lag"][s:end] = np.nan
        g["iol"][s:end] *= 4
        g["cpu"][s:end] += 0.2
        params.update(lag_at_removal_s=round(float(g["lag"][s - 1]), 1))
    elif kind == "disk_degradation":
        sev = np.exp(rng.uniform(2.0, 3.5) * u ** 1.5) - 1
        spikes = (rng.random(L) < 0.002 + 0.05 * u ** 2) * rng.lognormal(1.5, 0.8, L)
        mult = 1 + sev * lognoise(rng, L, 5, 0.3) + spikes * (1 + sev)
        g["iol"][seg] *= mult
        g["cpu"][seg] += 0.05 * np.log1p(mult)
        if g["err_lam"] is not None:
            g["err_lam"][seg] += 0.01 * np.log1p(mult)
        reboot = True
        params.update(final_multiplier=round(float(mult[-30:].mean()), 1))
    elif kind == "ecc_degradation":
        lam = 0.01 * np.exp(rng.uniform(4, 6) * u)
        burst = rng.gamma(0.4, 2.5, L)
        e["ecc_lam"][seg] += lam * burst
        reboot = True
    elif kind == "conn_pool_exhaustion":
        cap_end = min(0.25, 0.45 * float(load[s - 30:s].mean()) / rng.uniform(1.2, 1.6))
        capf = 1 - (1 - cap_end) * u ** rng.uniform(1.0, 2.0)
        rho = np.clip(0.45 * load[seg] / capf, 0, 3)
        q = np.clip(rho, 0, 0.985)
        wait = rng.uniform(1.0, 3.0) * u ** 1.5 * lognoise(rng, L, 3, 0.25)
        g["p99"][seg] = g["p99"][seg] * (1 + wait + 0.075 * q / (1 - q)) + \
            np.minimum(30.0, 5 * np.maximum(rho - 0.9, 0))
        params.update(pool_capacity_left=round(float(cap_end), 3))
        g["err_lam"][seg] += g["rps"][seg] * np.clip(rho - 0.95, 0, 0.5)
        g["fds"][seg] += 400 * u * load[seg]
        service_down = True
    elif kind == "broker_isr":
        k = int(rng.integers(3, 8))
        st = np.zeros(L)
        for t in np.sort(rng.uniform(0, 1, k)):
            st += u >= t
        g["lam"][seg] += (st / k) * rng.uniform(2, 30) * lognoise(rng, L, 5, 0.4)
        g["err_lam"][seg] += (st / k) ** 1.5 * rng.uniform(1, 10) * load[seg]
        g["cpu"][seg] += 0.1 * st / k
        reboot = True
    elif kind in ("sudden_power_loss", "sudden_kernel_panic"):
        reboot = True
    elif kind == "sudden_network_partition":
        pass
    # outage
    if service_down and not reboot:
        if g["p99"] is not None:
            g["p99"][s:end] = np.nan
        if g["err_lam"] is not None:
            base = g["rps"][s:end] if g["rps"] is not None else 5.0
            g["err_lam"][s:end] = base * rng.uniform(0.3, 1.0)
        g["cpu"][s:end] *= 0.4
        if kind == "fd_leak":
            g["fds"][s:end] = FD_LIMIT - rng.integers(0, 30, end - s)
        e["proc_restarts"].append(end)
    else:
        e["down"][s:end] = True
        if reboot:
            e["reboots"].append((end, 0, kind))
    # after the fix: caches cold after a reboot, the bad DIMM replaced
    if reboot and e["role"] in ("db_primary", "db_replica", "es_data", "storage", "kafka"):
        x = np.arange(n - end)
        g["mem"][end:] -= (g["mem"][end:] - 0.25).clip(0) * np.exp(-x / rng.uniform(120, 360))
    if kind == "ecc_degradation":
        e["ecc_lam"][end:] = 0.0
    f["params"] = params


# ----------------------------------------------------------------------------- assemble
def finalize(c, e):
    g = e["gen"]
    rng = g["rng"]
    n = c.n
    cols = {}
    cols["cpu_util"] = np.clip(g["cpu"], 0.002, 1.0)
    cols["mem_used_ratio"] = np.clip(g["mem"], 0.03, 0.999)
    cols["disk_used_ratio"] = np.clip(g["disk"] + ar1(rng, n, 2, 0.0003), 0.01, 1.0)
    cols["disk_io_latency_s"] = g["lat0"] * g["iol"] * lognoise(rng, n, 2, 0.25 * g["nz"])
    cols["net_rx_drops_per_s"] = poisson_rate(rng, g["lam"])
    if g["p99"] is not None:
        cols["http_p99_latency_s"] = np.maximum(g["p99"], 0.002)
    if g["err_lam"] is not None:
        cols["errors_per_s"] = poisson_rate(rng, g["err_lam"])
    if g["lag"] is not None:
        lag = g["lag"]
        if e.get("flavor") == "mysql":
            lag = np.floor(lag)
        cols["replication_lag_s"] = lag
    if g["fds"] is not None:
        cols["open_fds"] = np.minimum(np.round(g["fds"]), FD_LIMIT)
    if "ecc_corrected_per_s" in e["sigs"]:
        cols["ecc_corrected_per_s"] = poisson_rate(rng, e["ecc_lam"])
    # boots and uptime
    boot0 = -int(rng.uniform(1, 200) * 1440) if e["start_i"] == 0 else e["start_i"]
    boots = sorted({boot0} | {r[0] + r[1] for r in e["reboots"]})
    for r in e["reboots"]:
        e["down"][r[0]:r[0] + r[1]] = True
    idx = np.arange(n)
    bidx = np.array(boots)
    last = bidx[np.searchsorted(bidx, idx, side="right") - 1]
    cols["uptime_s"] = (idx - last) * 60.0 + rng.integers(20, 59)
    # process restarts and reboots: rates missing for two minutes
    for b in list(bidx[bidx >= 0]) + e["proc_restarts"]:
        for k in RATE_COLS:
            if k in cols and k != "cpu_util" or (k == "cpu_util" and b in boots):
                cols[k][b:b + 2] = np.nan
    for b in e["proc_restarts"]:
        x = idx - b
        if "open_fds" in cols and e["role"] in ("app_jvm", "app_go", "edge"):
            cols["open_fds"] = np.where((x >= 0) & (x < 20), cols["open_fds"] * (0.3 + x / 28),
                                        cols["open_fds"])
    dead = e["down"] | (np.isin(idx, c.prom_gap))
    for k in cols:
        cols[k] = np.where(dead, np.nan, cols[k]).astype(float)
    return cols


def fmt_col(vals, fmt):
    if fmt == "%d":
        return ["" if v != v else str(int(v)) for v in vals.tolist()]
    return ["" if v != v else fmt % v for v in vals.tolist()]


def write_yaml(path, signals_present):
    lines = [
        "# AURA configuration for the fleetgen5 fleet (node_exporter + role exporters).",
        "source:",
        "  url: http://prometheus.monitoring.svc:9090",
        "  timeout: 30s",
        "interval: 5m",
        "analyses:",
        "  - name: nodes",
        "    entity_labels: [instance]",
        "    window: 2h",
        "    step: 1m",
        "    horizons: [1h, 2h, 4h]",
        "    max_entities: 5000",
        "    signals:",
    ]
    for name, unit, kind, direction, cap, query, _ in SIGNALS:
        if name not in signals_present:
            continue
        lines.append(f"      - name: {name}            # {unit}")
        lines.append(f"        query: {json.dumps(query)}")
        lines.append(f"        kind: {kind}")
        if direction is not None:
            lines.append(f"        direction: {direction}")
        if cap is not None:
            lines.append(f"        capacity: {cap:g}")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def generate(seed, outdir=None, days=8.0, scale=1.0, n_failures=None):
    seed = int(seed)
    outdir = outdir or f"/tmp/g5/fleet-{seed}"
    os.makedirs(outdir, exist_ok=True)
    rng = np.random.default_rng(seed)
    c = build_calendar(rng, days)
    build_traffic(c)
    ents = build_fleet(c, scale)
    plan_schedules(c, ents)
    fails = schedule_failures(c, ents, n_failures, scale)
    # whole-fleet Prometheus restarts
    c.prom_gap = np.zeros(0, int)
    for _ in range(1 + int(rng.random() < 0.5 * days / 8)):
        i0 = int(rng.integers(0, c.n))
        g = int(rng.integers(2, 7))
        c.prom_gap = np.concatenate([c.prom_gap, np.arange(i0, min(i0 + g, c.n))])
        ev(c, "prometheus_restart", i0, i0 + g, "fleet")
    for e in ents:
        gen_entity(c, e)
    for f in fails:
        e = next(x for x in ents if x["instance"] == f["instance"])
        apply_failure(c, e, f)
    # assemble rows
    blocks_t, blocks_e, blocks_c = [], [], {k: [] for k in SIG_NAMES}
    for j, e in enumerate(ents):
        cols = finalize(c, e)
        sl = slice(e["start_i"], e["end_i"])
        m = e["end_i"] - e["start_i"]
        blocks_t.append(np.arange(e["start_i"], e["end_i"]))
        blocks_e.append(np.full(m, j))
        for k in SIG_NAMES:
            v = cols.get(k) if k in e["sigs"] else None
            blocks_c[k].append(v[sl] if v is not None else np.full(m, np.nan))
    ti = np.concatenate(blocks_t)
    ei = np.concatenate(blocks_e)
    order = np.lexsort((ei, ti))
    names = np.array([e["instance"] for e in ents])
    strs = [[str(t) for t in c.times[ti[order]].tolist()], names[ei[order]].tolist()]
    fmts = {s[0]: s[6] for s in SIGNALS}
    for k in SIG_NAMES:
        strs.append(fmt_col(np.concatenate(blocks_c[k])[order], fmts[k]))
    with open(os.path.join(outdir, "data.csv"), "w") as fh:
        fh.write(",".join(["timestamp", "instance"] + SIG_NAMES) + "\n")
        step = 200000
        for a in range(0, len(order), step):
            fh.write("\n".join(",".join(r) for r in zip(*[s[a:a + step] for s in strs], strict=True)))
            fh.write("\n")
    ts = lambda i: int(c.t0 + STEP * i)  # noqa: E731
    with open(os.path.join(outdir, "incidents.csv"), "w") as fh:
        fh.write("start,end,instance,kind\n")
        for f in fails:
            fh.write(f"{ts(f['s_i'])},{ts(f['e_i'])},{f['instance']},{f['kind']}\n")
    write_yaml(os.path.join(outdir, "aura.yml"), SIG_NAMES)
    for b in c.benign:   # fleet-wide events named by role: list the instances alive then
        if isinstance(b["who"], list) and b["who"] and all(w in ROLES for w in b["who"]):
            b["roles"] = b["who"]
            b["who"] = [e["instance"] for e in ents if e["role"] in b["roles"]
                        and ts(e["start_i"]) < b["end"] and ts(e["end_i"]) > b["start"]]
    truth = {
        "generator": "fleetgen5", "seed": seed, "days": days, "scale": scale,
        "start": int(c.t0), "end": int(c.t0 + STEP * c.n), "step": STEP,
        "tz_offset_hours": c.tz,
        "signals": {s[0]: {"unit": s[1], "kind": s[2], "direction": s[3], "capacity": s[4],
                           "query": s[5]} for s in SIGNALS},
        "entities": [{"instance": e["instance"], "role": e["role"],
                      "flavor": e.get("flavor"), "bare_metal": e["bare"],
                      "signals": sorted(e["sigs"]),
                      "start": ts(e["start_i"]), "end": ts(e["end_i"]),
                      "scale_out": e.get("scale_out", False),
                      "decommissioned": e.get("decommissioned", False),
                      "migrated_from": e.get("migrated_from"),
                      "migrated_to": e.get("migrated_to")} for e in ents],
        "benign": sorted(c.benign, key=lambda b: (b["start"], b["what"])),
        "failures": [{"instance": f["instance"], "kind": f["kind"], "signal": f["signal"],
                      "sudden": f["sudden"],
                      "precursor_start": None if f["sudden"] else ts(f["p0_i"]),
                      "start": ts(f["s_i"]), "end": ts(f["e_i"]),
                      "precursor_hours": f["precursor_hours"],
                      "outage_minutes": f["outage_minutes"],
                      "parameters": f.get("params", {})} for f in fails],
    }
    with open(os.path.join(outdir, "truth.json"), "w") as fh:
        json.dump(truth, fh, indent=1)
    return truth


def main(argv=None):
    ap = argparse.ArgumentParser(description="fleetgen5: synthetic VM fleet for AURA evaluation")
    ap.add_argument("seed", type=int)
    ap.add_argument("outdir", nargs="?")
    ap.add_argument("--days", type=float, default=8.0)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--failures", type=int, default=None)
    a = ap.parse_args(argv)
    t = time.time()
    truth = generate(a.seed, a.outdir, a.days, a.scale, a.failures)
    out = a.outdir or f"/tmp/g5/fleet-{a.seed}"
    print(f"{out}: {len(truth['entities'])} instances, {len(truth['failures'])} failures, "
          f"{len(truth['benign'])} benign events, {time.time() - t:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
