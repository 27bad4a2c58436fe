"""Synthetic microservice fleet (service-level metrics) for evaluating AURA.

Provenance: written by a helper session briefed only with real-world microservice behaviour and
AURA's input formats (design.md, README, aura.example.yml); it read no AURA code, models, tests
or other generators and saw no AURA result. The only contact with the product was
`aura check-config --csv` on the aura.yml written here.

Usage::

    python benchmarks/fleetgen6.py SEED [OUTDIR] [--days 3] [--scale 1.0] [--failures N]
    # OUTDIR defaults to /tmp/g6/fleet-SEED

    from benchmarks.fleetgen6 import generate
    truth = generate(61, "/tmp/g6/fleet-61")          # returns truth.json's content

Files written to OUTDIR:

- ``data.csv``: ``timestamp,namespace,service,<signals>``; Unix seconds on a 15 s grid (the span
  starts at 00:00 UTC); one row per service per step of its life, minus the row-level scrape
  gaps listed in truth.json ``scrape_gaps``; empty cell = the service does not expose the signal,
  the sample is missing, or PromQL returns NaN (a histogram quantile or a ratio at zero traffic).
- ``incidents.csv``: ``start,end,namespace,service,kind`` (one row per failure; ``start`` is when
  users are hurt; sudden failures have kind ``sudden_<kind>``).
- ``truth.json``: start, days, step, tz_offset_hours, services (role, runtime, signals, calls,
  life), benign (what, who, start, end), fleet_events, scrape_gaps, failures (namespace, service,
  kind, precursor_start, start, end, sudden, precursor_signal, cause, affected). For a sudden
  failure precursor_start == start. Times are Unix seconds; ends are exclusive.
- ``aura.yml``: one analysis ``services`` (entity_labels [namespace, service], step 15s,
  window 2h, interval 5m, horizons 1h/2h/4h) with a PromQL query per signal (documentation only).

Signals (raw units as PromQL returns them):

- ``rps`` requests (or messages, cache ops, queries) per second:
  ``sum by (namespace, service) (rate(http_server_requests_seconds_count[5m]))``
- ``error_ratio`` 0..1, 5xx / all (NaN at zero traffic; not exposed by caches)
- ``latency_p50_s`` / ``latency_p99_s`` seconds: ``histogram_quantile`` over 5m bucket rates;
  noisy at low traffic (snapped to bucket bounds), NaN at zero traffic, capped at the highest
  finite bucket (10 s)
- ``cpu_ratio`` CPU usage / CPU limit summed over the service's ready pods (rate over 2m)
- ``mem_ratio`` working set / memory limit of the worst pod (caches: used_memory / maxmemory)
- ``pool_in_use_ratio`` in use / max of the service's DB connection pool, HTTP client pool to an
  external provider, or thread pool (databases: connections / max_connections; caches:
  connected clients / maxclients); only where such a pool exists
- ``queue_lag`` messages (Kafka consumer-group lag / RabbitMQ ready messages), consumers only
- ``gc_seconds_per_s`` JVM GC pause seconds per second (worst pod), JVM services only
- ``pods_ready`` ready replicas (HPA, rolling updates, crash loops)

Benign behaviour (truth.json ``benign[].what``; never an incident): daily_cycle,
weekday_weekend, call_graph_propagation, low_traffic_noisy_latency, rolling_deploy,
canary_deploy, rollback, hpa_autoscaling, marketing_traffic_spike, retry_burst,
cache_cold_restart, batch_backlog_dump, consumer_rebalance, nightly_batch_job, search_reindex,
weekly_maintenance, chronic_flaky_errors, external_provider_slow_minutes, gc_memory_sawtooth,
memory_growth_reset_by_deploy, scrape_gap, counter_reset, service_created, service_deleted.
Fleet-wide benign events (``fleet_events``): network_blip, node_pool_upgrade,
prometheus_restart (a row gap on every service).

Failures (precursor 30 min - 6 h unless sudden): pool_leak (connection-pool leak to exhaustion),
memory_leak (leak to OOM-kill crash loop; GC time rises first on JVM services), consumer_lag
(consumer slows down until lag breaches; start = the breach in the data), dependency_cascade
(a dependency slows down, the incident is on the caller whose timeouts fire; ``cause`` names
the dependency), thread_starvation (an external provider slows down; the caller's pool fills),
db_slow_query (database/search latency creeping until statements time out), retry_storm
(partial outage, then retries multiply the load). Sudden (no precursor): cert_expiry
(credential/certificate expiry), bad_deploy (error jump right after a deploy), crash_loop.
A failure ends when the service is fixed/restarted; it then returns to normal.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from datetime import UTC, datetime

import numpy as np

STEP = 15
SIGNALS = [
    "rps", "error_ratio", "latency_p50_s", "latency_p99_s", "cpu_ratio", "mem_ratio",
    "pool_in_use_ratio", "queue_lag", "gc_seconds_per_s", "pods_ready",
]
_BY = "by (namespace, service)"
# name -> (query, kind, direction, capacity)
SIGNAL_META = {
    "rps": (f"sum {_BY} (rate(http_server_requests_seconds_count[5m]))", "other", "down", None),
    "error_ratio": (
        f'sum {_BY} (rate(http_server_requests_seconds_count{{status=~"5.."}}[5m])) / '
        f"sum {_BY} (rate(http_server_requests_seconds_count[5m]))", "errors", "up", 1.0),
    "latency_p50_s": (
        "histogram_quantile(0.5, sum by (namespace, service, le) "
        "(rate(http_server_requests_seconds_bucket[5m])))", "latency", "up", None),
    "latency_p99_s": (
        "histogram_quantile(0.99, sum by (namespace, service, le) "
        "(rate(http_server_requests_seconds_bucket[5m])))", "latency", "up", None),
    "cpu_ratio": (
        f'sum {_BY} (rate(container_cpu_usage_seconds_total{{container!=""}}[2m])) / '
        f'sum {_BY} (kube_pod_container_resource_limits{{resource="cpu"}})',
        "resource", "up", 1.0),
    "mem_ratio": (
        f'max {_BY} (container_memory_working_set_bytes{{container!=""}} / on (namespace, pod, '
        'container) kube_pod_container_resource_limits{resource="memory"})',
        "resource", "up", 1.0),
    "pool_in_use_ratio": (
        f"max {_BY} (hikaricp_connections_active / hikaricp_connections_max)",
        "saturation", "up", 1.0),
    "queue_lag": (f"sum {_BY} (kafka_consumergroup_lag)", "saturation", "up", None),
    "gc_seconds_per_s": (f"max {_BY} (rate(jvm_gc_pause_seconds_sum[5m]))",
                         "saturation", "up", None),
    "pods_ready": (f"sum {_BY} (kube_deployment_status_replicas_ready)", "other", "down", None),
}
BENIGN_FAMILIES = [
    "daily_cycle", "weekday_weekend", "call_graph_propagation", "low_traffic_noisy_latency",
    "rolling_deploy", "canary_deploy", "rollback", "hpa_autoscaling", "marketing_traffic_spike",
    "retry_burst", "cache_cold_restart", "batch_backlog_dump", "consumer_rebalance",
    "nightly_batch_job", "search_reindex", "weekly_maintenance", "chronic_flaky_errors",
    "external_provider_slow_minutes", "gc_memory_sawtooth", "memory_growth_reset_by_deploy",
    "scrape_gap", "counter_reset", "service_created", "service_deleted",
]
FLEET_EVENTS = ["network_blip", "node_pool_upgrade", "prometheus_restart"]
FAILURE_KINDS = ["pool_leak", "memory_leak", "consumer_lag", "dependency_cascade",
                 "thread_starvation", "db_slow_query", "retry_storm"]
SUDDEN_KINDS = ["cert_expiry", "bad_deploy", "crash_loop"]
PRECURSOR_SIGNAL = {
    "pool_leak": "pool_in_use_ratio", "memory_leak": "mem_ratio", "consumer_lag": "queue_lag",
    "dependency_cascade": "latency_p99_s", "thread_starvation": "pool_in_use_ratio",
    "db_slow_query": "latency_p99_s", "retry_storm": "error_ratio",
}
_PREC_RANGE = {  # seconds of precursor
    "pool_leak": (3600, 18000), "memory_leak": (7200, 21600), "consumer_lag": (5400, 12600),
    "dependency_cascade": (1800, 7200), "thread_starvation": (1800, 5400),
    "db_slow_query": (7200, 21600), "retry_storm": (1800, 3600),
}
_BUCKETS = np.array([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75,
                     1.0, 2.5, 5.0, 7.5, 10.0])
_APP_SIGNALS = ["rps", "error_ratio", "latency_p50_s", "latency_p99_s", "pool_in_use_ratio",
                "queue_lag", "gc_seconds_per_s"]

# Catalog: name, role, runtime, zone, deps {name: calls per request}, extras.
# role: gateway | bff | sync | payment | search | consumer | cache | db
_CATALOG = [
    ("api-gateway", "gateway", "go", "app",
     {"web-bff": 0.55, "mobile-bff": 0.45, "auth-service": 1.0}, {"core": 1}),
    ("web-bff", "bff", "node", "app",
     {"catalog-service": 1.2, "search-service": 0.25, "cart-service": 0.3, "user-service": 0.2,
      "recommendation-service": 0.4, "review-service": 0.05, "checkout-service": 0.02,
      "legacy-search-proxy": 0.06}, {"core": 1}),
    ("mobile-bff", "bff", "node", "app",
     {"catalog-service": 1.0, "cart-service": 0.35, "user-service": 0.3, "order-service": 0.05,
      "checkout-service": 0.02, "search-service": 0.2, "loyalty-service": 0.1}, {}),
    ("auth-service", "sync", "go", "app", {"session-cache": 1.0, "users-db": 0.02}, {"core": 1}),
    ("user-service", "sync", "jvm", "app",
     {"users-db": 0.6, "session-cache": 0.5, "profile-service": 0.1}, {}),
    ("profile-service", "sync", "python", "app", {"users-db": 1.0}, {}),
    ("catalog-service", "sync", "jvm", "app",
     {"catalog-cache": 2.0, "catalog-db": 0.3, "pricing-service": 0.5}, {"core": 1}),
    ("pricing-service", "sync", "go", "app", {"catalog-db": 0.2}, {}),
    ("cart-service", "sync", "go", "app",
     {"cart-cache": 2.0, "pricing-service": 0.5, "inventory-service": 0.3, "coupon-service": 0.2},
     {"core": 1}),
    ("inventory-service", "sync", "jvm", "app", {"orders-db": 0.8}, {}),
    ("checkout-service", "sync", "jvm", "app",
     {"cart-service": 1.0, "payment-service": 1.0, "order-service": 1.0,
      "inventory-service": 1.0, "shipping-service": 1.0, "coupon-service": 1.0}, {"core": 1}),
    ("order-service", "sync", "jvm", "app", {"orders-db": 3.0}, {"core": 1}),
    ("payment-service", "payment", "jvm", "app",
     {"orders-db": 1.0, "ext:payment-provider": 1.0}, {"core": 1}),
    ("shipping-service", "sync", "go", "app", {"ext:carrier-api": 1.0}, {}),
    ("recommendation-service", "sync", "python", "app",
     {"reco-cache": 1.0, "catalog-service": 0.2}, {}),
    ("review-service", "sync", "python", "app", {"catalog-db": 1.0}, {"low": 1}),
    ("search-service", "search", "jvm", "app", {}, {"core": 1}),
    ("notification-service", "sync", "go", "app", {"ext:sms-gateway": 1.0}, {"low": 1}),
    ("admin-service", "sync", "python", "app", {"orders-db": 2.0, "users-db": 1.0},
     {"core": 1, "low": 1, "own": 0.25}),
    ("loyalty-service", "sync", "go", "app", {"users-db": 0.5}, {"core": 1, "created": 1}),
    ("coupon-service", "sync", "go", "app", {"catalog-db": 0.3}, {"created": 1}),
    ("legacy-search-proxy", "sync", "python", "app", {"search-service": 1.0},
     {"core": 1, "deleted": 1}),
    ("order-events-consumer", "consumer", "jvm", "data",
     {"orders-db": 2.0, "notification-service": 0.3},
     {"core": 1, "produce": {"order-service": 1.0, "checkout-service": 0.5}, "broker": "kafka"}),
    ("email-worker", "consumer", "python", "data", {"ext:smtp-relay": 1.0},
     {"produce": {"order-service": 0.8, "user-service": 0.02}, "broker": "rabbitmq"}),
    ("search-indexer", "consumer", "jvm", "data", {"search-service": 1.0},
     {"core": 1, "produce": {"catalog-service": 0.004, "admin-service": 3.0}, "broker": "kafka"}),
    ("analytics-ingest", "consumer", "go", "data", {},
     {"produce": {"api-gateway": 0.3}, "broker": "kafka"}),
    ("invoice-worker", "consumer", "python", "data", {"orders-db": 1.0},
     {"produce": {"order-service": 0.05}, "broker": "rabbitmq", "low": 1}),
    ("session-cache", "cache", "redis", "data", {}, {"core": 1}),
    ("cart-cache", "cache", "redis", "data", {}, {}),
    ("catalog-cache", "cache", "memcached", "data", {}, {"core": 1}),
    ("reco-cache", "cache", "redis", "data", {}, {}),
    ("orders-db", "db", "postgres", "data", {}, {"core": 1}),
    ("users-db", "db", "mysql", "data", {}, {}),
    ("catalog-db", "db", "postgres", "data", {}, {"core": 1}),
]
_EXTERNAL = {  # provider: (p50 s, p99 s)
    "ext:payment-provider": (0.18, 0.9), "ext:carrier-api": (0.12, 0.6),
    "ext:sms-gateway": (0.25, 1.2), "ext:smtp-relay": (0.08, 0.5),
}
_NS_PAIRS = [("shop", "shop-data"), ("storefront", "platform"), ("commerce", "data"),
             ("retail", "infra")]
_NS_SINGLE = ["prod", "shop-prod", "commerce"]
_TZ = [-8.0, -7.0, -5.0, -4.0, -3.0, 0.0, 1.0, 2.0, 3.0, 5.5, 8.0, 9.0, 10.0]


def _roll_sum(x: np.ndarray, w: int) -> np.ndarray:
    c = np.concatenate([[0.0], np.cumsum(x, dtype=float)])
    out = np.empty(len(x))
    out[: w - 1] = c[1:w]
    out[w - 1:] = c[w:] - c[:-w]
    return out


def _roll_mean(x: np.ndarray, w: int) -> np.ndarray:
    n = np.minimum(np.arange(1, len(x) + 1), w)
    return _roll_sum(x, w) / n


def _ar1(rng: np.random.Generator, n: int, tau_s: float, sd: float) -> np.ndarray:
    """Stationary AR(1) with correlation time tau_s (seconds) and standard deviation sd."""
    phi = math.exp(-STEP / tau_s)
    e = rng.normal(0.0, sd * math.sqrt(1 - phi * phi), n)
    out = np.empty(n)
    x = rng.normal(0.0, sd)
    blk = 128
    pw = phi ** np.arange(1, blk + 1)
    for a in range(0, n, blk):
        b = min(n, a + blk)
        m = b - a
        p = pw[:m]
        # x_j = phi^j x0 + sum_{k<=j} phi^(j-k) e_k
        y = p * (x + np.cumsum(e[a:b] / p))
        out[a:b] = y
        x = y[-1]
    return out


def _gauss_circ(h: np.ndarray, mu: float, sig: float) -> np.ndarray:
    d = (h - mu + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (d / sig) ** 2)


def _profile(h: np.ndarray, weekend: np.ndarray, kind: str) -> np.ndarray:
    if kind == "office":
        wd = 0.03 + _gauss_circ(h, 11.0, 2.0) + 0.8 * _gauss_circ(h, 15.5, 1.8)
        return np.where(weekend, 0.15 * wd, wd) / 1.05
    wd = 0.18 + 0.5 * _gauss_circ(h, 12.5, 2.8) + 0.62 * _gauss_circ(h, 20.5, 2.2) \
        + 0.3 * _gauss_circ(h, 16.0, 3.5)
    we = 0.2 + 0.4 * _gauss_circ(h, 14.0, 3.2) + 0.5 * _gauss_circ(h, 21.0, 2.4) \
        + 0.2 * _gauss_circ(h, 17.5, 3.0)
    return np.where(weekend, we, wd) / 1.05


class _Svc:
    def __init__(self, name, role, runtime, zone, deps, extra):
        self.name = name
        self.role = role
        self.runtime = runtime
        self.zone = zone
        self.deps = dict(deps)
        self.extra = dict(extra)
        self.ns = ""
        self.produce = dict(extra.get("produce", {}))
        self.low = bool(extra.get("low"))
        self.signals: list[str] = []
        self.life = (0, 0)
        self.pool_kind = None

    @property
    def key(self) -> str:
        return f"{self.ns}/{self.name}"

    @property
    def jvm(self) -> bool:
        return self.runtime == "jvm"


class _Fleet:
    def __init__(self, seed: int, days: float, scale: float, n_failures: int | None):
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.days = float(days)
        self.scale = float(scale)
        self.n_failures_req = n_failures
        self.T = int(round(self.days * 86400 / STEP))
        if self.T < 2 * 3600 // STEP:
            raise ValueError("days too small (need at least 2 hours)")
        self.benign: list[dict] = []
        self.fleet_events: list[dict] = []
        self.scrape_gaps: list[dict] = []
        self.failures: list[dict] = []
        self.busy: dict[str, list[tuple[int, int]]] = {}

    # ------------------------------------------------------------------ helpers
    def ts(self, i: int) -> int:
        return int(self.t0 + STEP * int(i))

    def steps(self, seconds: float) -> int:
        return max(1, int(round(seconds / STEP)))

    def add_benign(self, what, who, a, b, **kw):
        ent = {"what": what, "who": [w if isinstance(w, str) else w.key for w in who],
               "start": self.ts(a), "end": self.ts(min(b, self.T))}
        ent.update(kw)
        self.benign.append(ent)

    def is_free(self, s: _Svc, a: int, b: int) -> bool:
        lo, hi = s.life
        if a < lo or b > hi:
            return False
        return all(b <= x or a >= y for x, y in self.busy.get(s.name, []))

    def mark_busy(self, s: _Svc, a: int, b: int) -> None:
        self.busy.setdefault(s.name, []).append((a, b))

    def arr(self, s: _Svc, key: str, fill: float = 0.0) -> np.ndarray:
        d = self.mods.setdefault(s.name, {})
        if key not in d:
            d[key] = np.full(self.T, fill)
        return d[key]

    def has(self, s: _Svc, key: str) -> bool:
        return key in self.mods.get(s.name, {})

    def decay(self, i0: int, tau: float, amp: float, arr: np.ndarray, mult: bool) -> None:
        """arr[i0:] += amp*exp(-(i-i0)/tau) (or *= 1 + ...); tau in steps."""
        n = min(self.T - i0, int(tau * 7) + 1)
        if n <= 0:
            return
        v = amp * np.exp(-np.arange(n) / tau)
        if mult:
            arr[i0:i0 + n] *= 1.0 + v
        else:
            arr[i0:i0 + n] += v

    def rand_time(self, a: int, b: int) -> int:
        return int(self.rng.integers(a, max(a + 1, b)))

    def local_steps(self, day: int, hour: float) -> int:
        """Step index of local `hour` on local day number `day` (0 = first local day)."""
        t = (self.local_day0 + day) * 86400 + hour * 3600 - self.tz * 3600
        return int(round((t - self.t0) / STEP))

    # ------------------------------------------------------------------ build
    def build(self) -> dict:
        rng = self.rng
        self.tz = float(np.random.default_rng([self.seed, 6]).choice(_TZ))
        base = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())  # a Thursday
        wk = int(rng.integers(0, 40))
        first = int(rng.choice([0, 1, 2, 3]))  # Thu..Sun so that 3 days cross a weekend edge
        self.t0 = base + (7 * wk + first) * 86400
        T = self.T
        idx = np.arange(T)
        tsec = self.t0 + STEP * idx
        loc = tsec + self.tz * 3600
        self.hour = (loc % 86400) / 3600.0
        day_no = np.floor(loc / 86400).astype(np.int64)
        self.local_day0 = int(day_no[0])
        self.n_local_days = int(day_no[-1] - day_no[0]) + 1
        wd = (day_no + 3) % 7
        self.weekend = wd >= 5
        self.weekday_of_day = [int((self.local_day0 + d + 3) % 7) for d in
                               range(self.n_local_days)]
        self.mods: dict[str, dict[str, np.ndarray]] = {}
        self.edge_mult: dict[tuple[str, str], np.ndarray] = {}
        self.ext_mult = {e: np.ones(T) for e in _EXTERNAL}
        self.mem_resets: dict[str, list[int]] = {}
        self.counter_resets: dict[str, list[int]] = {}
        self.rebalances: dict[str, list[tuple[int, int]]] = {}
        self.dumps: dict[str, list[tuple[int, float]]] = {}
        self.app_gaps: dict[str, list[tuple[int, int]]] = {}
        self.row_gaps: dict[str, list[tuple[int, int]]] = {}

        self._select_services()
        self._schedule_failures()
        self._schedule_benign()
        self._simulate()
        self._apply_failures_post()
        self._observe()
        return self._truth()

    # ------------------------------------------------------------------ services
    def _select_services(self) -> None:
        rng = self.rng
        cat = [_Svc(*c) for c in _CATALOG]
        core = [s for s in cat if s.extra.get("core")]
        opt = [s for s in cat if not s.extra.get("core")]
        target = int(round(int(rng.integers(22, 34)) * self.scale))
        target = max(len(core), min(len(cat), target))
        rng.shuffle(opt)
        chosen = core + opt[: target - len(core)]
        names = {s.name for s in chosen}
        # keep catalog order (call graph roots first)
        self.svcs = [s for s in cat if s.name in names]
        for s in self.svcs:
            s.deps = {d: c for d, c in s.deps.items() if d in names or d in _EXTERNAL}
            s.produce = {p: f for p, f in s.produce.items() if p in names}
        self.by = {s.name: s for s in self.svcs}
        called = {d for s in self.svcs for d in s.deps}
        for s in self.svcs:  # orphans are routed by the gateway directly
            if s.role in ("sync", "payment", "search", "bff") and s.name not in called \
                    and not s.extra.get("own"):
                self.by["api-gateway"].deps[s.name] = round(float(rng.uniform(0.02, 0.1)), 3)
        two = len(self.svcs) >= 24 or rng.random() < 0.4
        if two:
            ns_app, ns_data = _NS_PAIRS[int(rng.integers(len(_NS_PAIRS)))]
        else:
            ns_app = ns_data = _NS_SINGLE[int(rng.integers(len(_NS_SINGLE)))]
        self.namespaces = sorted({ns_app, ns_data})
        for s in self.svcs:
            s.ns = ns_app if s.zone == "app" else ns_data
        T = self.T
        for s in self.svcs:
            lo, hi = 0, T
            if s.extra.get("created"):
                lo = self.rand_time(int(T * 0.25), int(T * 0.6))
            if s.extra.get("deleted"):
                hi = self.rand_time(int(T * 0.4), int(T * 0.8))
            s.life = (lo, hi)
            s.hpa = s.role in ("gateway", "bff") or (
                s.role == "sync" and not s.low and rng.random() < 0.55)
            has_db = any(d in self.by and self.by[d].role == "db" for d in s.deps)
            has_ext = any(d in _EXTERNAL for d in s.deps)
            if s.role == "db":
                s.pool_kind = "connections"
            elif s.role == "cache":
                s.pool_kind = "clients"
            elif s.role == "search":
                s.pool_kind = "thread_pool"
            elif s.role == "payment":
                s.pool_kind = "http_pool"
            elif s.role in ("sync", "payment", "consumer") and has_db and s.runtime != "go":
                s.pool_kind = "db_pool"
            elif s.role in ("sync", "payment") and has_ext:
                s.pool_kind = "http_pool"
            elif s.jvm and s.role != "consumer":
                s.pool_kind = "thread_pool"
            sig = ["rps", "error_ratio", "latency_p50_s", "latency_p99_s", "cpu_ratio",
                   "mem_ratio", "pods_ready"]
            if s.role == "cache":
                sig.remove("error_ratio")
            if s.pool_kind:
                sig.append("pool_in_use_ratio")
            if s.role == "consumer":
                sig.append("queue_lag")
            if s.jvm:
                sig.append("gc_seconds_per_s")
            s.signals = [x for x in SIGNALS if x in sig]
        # callers and topological order (callers/producers before callees/consumers)
        self.callers: dict[str, list[tuple[str, float]]] = {s.name: [] for s in self.svcs}
        for s in self.svcs:
            for d, c in s.deps.items():
                if d in self.by:
                    self.callers[d].append((s.name, c))
        pred = {s.name: {c for c, _ in self.callers[s.name]} | set(s.produce) for s in self.svcs}
        order: list[str] = []
        done: set[str] = set()
        while len(order) < len(self.svcs):
            progressed = False
            for s in self.svcs:
                if s.name not in done and pred[s.name] <= done:
                    order.append(s.name)
                    done.add(s.name)
                    progressed = True
            if not progressed:
                raise RuntimeError("call graph has a cycle")
        self.topo = order
        # per-service static parameters
        for s in self.svcs:
            self._params(s)

    def _params(self, s: _Svc) -> None:
        rng = self.rng
        r = s.role
        s.noise_sd = float(rng.uniform(0.03, 0.07))
        s.err_base = float(10 ** rng.uniform(-4.3, -3.2))
        if r == "gateway":
            s.p50, s.p99x = rng.uniform(0.002, 0.004), rng.uniform(5, 9)
        elif r == "bff":
            s.p50, s.p99x = rng.uniform(0.008, 0.02), rng.uniform(4, 8)
        elif r in ("sync", "payment"):
            s.p50, s.p99x = rng.uniform(0.004, 0.03), rng.uniform(4, 10)
        elif r == "search":
            s.p50, s.p99x = rng.uniform(0.012, 0.03), rng.uniform(6, 12)
        elif r == "consumer":
            s.p50, s.p99x = rng.uniform(0.005, 0.03), rng.uniform(4, 9)
        elif r == "cache":
            s.p50, s.p99x = rng.uniform(0.0003, 0.0008), rng.uniform(3, 6)
            s.err_base = 0.0
        else:  # db
            s.p50, s.p99x = rng.uniform(0.001, 0.004), rng.uniform(8, 15)
            s.err_base = float(10 ** rng.uniform(-5, -4))
        s.limit = float(rng.choice([0.5, 1.0, 1.0, 2.0, 2.0, 4.0]))
        if r == "db":
            s.limit = float(rng.choice([4.0, 8.0]))
        s.idle = s.limit * rng.uniform(0.01, 0.04)
        s.target = float(rng.uniform(0.6, 0.75))
        s.mem_base = float(rng.uniform(0.3, 0.6))
        if r == "db":
            s.mem_base = float(rng.uniform(0.7, 0.85))
        if r == "cache":
            s.mem_base = float(rng.uniform(0.5, 0.8))
        s.saw_period = int(rng.integers(8, 40)) if not s.jvm else int(rng.integers(60, 240))
        s.saw_amp = float(rng.uniform(0.02, 0.07)) if r not in ("db", "cache") else 0.005
        s.mem_growth = 0.0
        s.gc0 = float(rng.uniform(0.004, 0.025))
        s.pool_target = float(rng.uniform(0.15, 0.4))
        s.flaky = 0.0

    # ------------------------------------------------------------------ failures
    def _schedule_failures(self) -> None:
        rng = self.rng
        T = self.T
        h6 = self.steps(6 * 3600)
        if self.n_failures_req is None:
            n = int(round(int(rng.integers(10, 15)) * min(1.0, self.days / 3.0)
                          * min(1.0, self.scale)))
            n = max(2, n)
        else:
            n = int(self.n_failures_req)
        n_sudden = int(round(n / 5.0)) if n >= 3 else 0
        kinds: list[tuple[str, bool]] = []
        sk = list(SUDDEN_KINDS)
        rng.shuffle(sk)
        for j in range(n_sudden):
            kinds.append((sk[j % len(sk)], True))
        nk = list(FAILURE_KINDS)
        rng.shuffle(nk)
        j = 0
        while len(kinds) < n and j < 10 * n + 10:
            kinds.append((nk[j % len(nk)], False))
            j += 1
        used: set[str] = set()
        protected = {"api-gateway"}
        elig_base = [s for s in self.svcs if s.life == (0, T) and s.name not in protected]

        def cascade_deps(s: _Svc) -> list[_Svc]:
            # a heavily used synchronous dependency; callers whose tail is set by an
            # external provider (directly or through payment) are left out
            if any(d in _EXTERNAL or (d in self.by and self.by[d].role == "payment")
                   for d in s.deps):
                return []
            return [self.by[d] for d, c in s.deps.items() if d in self.by and c >= 0.25
                    and self.by[d].role in ("sync", "search") and not self.by[d].low
                    and d not in used and self.by[d].life == (0, T)]

        def eligible(kind: str) -> list[_Svc]:
            out = []
            for s in elig_base:
                if s.name in used or (s.low and kind not in SUDDEN_KINDS):
                    continue
                r = s.role
                if kind == "pool_leak":
                    ok = s.pool_kind in ("db_pool", "http_pool") and r != "consumer"
                elif kind == "memory_leak":
                    ok = r in ("sync", "bff", "payment", "consumer", "search")
                elif kind == "consumer_lag":
                    ok = r == "consumer"
                elif kind == "dependency_cascade":
                    ok = r in ("sync", "bff") and not s.low and bool(cascade_deps(s))
                elif kind == "thread_starvation":
                    ok = s.pool_kind == "http_pool" and not s.low
                elif kind == "db_slow_query":
                    ok = r in ("db", "search")
                elif kind == "retry_storm":
                    ok = r in ("sync", "payment", "search") and bool(self.callers[s.name]) \
                        and not s.low
                else:  # sudden kinds
                    ok = r in ("sync", "bff", "payment", "consumer", "search")
                if ok:
                    out.append(s)
            return out

        self.fail_specs = []
        fwin: dict[str, list[tuple[int, int]]] = {}
        extra_kinds = [k for k in FAILURE_KINDS]
        for kind, sudden in kinds:
            cands = eligible(kind)
            k2 = kind
            if not cands:
                # fall back to another non-sudden kind with candidates
                rng.shuffle(extra_kinds)
                for alt in extra_kinds if not sudden else sk:
                    cands = eligible(alt)
                    if cands:
                        k2 = alt
                        break
            if not cands:
                continue
            s = cands[int(rng.integers(len(cands)))]
            if sudden:
                prec = 0
            else:
                lo_p, hi_p = _PREC_RANGE[k2]
                prec = self.steps(float(rng.uniform(lo_p, hi_p)))
            dur = self.steps(float(rng.uniform(15, 60)) * 60)
            tail = self.steps(5400)
            lo = h6 + prec
            hi = T - dur - tail
            if hi <= lo and not sudden:
                prec = max(self.steps(1800), hi - h6 - 1)
                lo = h6 + prec
            if hi <= lo:
                continue
            dep = None
            if k2 == "dependency_cascade":
                deps = cascade_deps(s)
                dep = deps[int(rng.integers(len(deps)))]
            placed = False
            # neighbours in the call graph must not fail at overlapping times (a failure
            # propagates to callers; keep root causes apart)
            near = {s.name} | {c for c, _ in self.callers[s.name]} | set(s.deps)
            if dep is not None:
                near |= {dep.name} | {c for c, _ in self.callers[dep.name]} | set(dep.deps)
            for _ in range(30):
                i1 = self.rand_time(lo, hi)
                a, b = i1 - prec - self.steps(1800), i1 + dur + self.steps(3600)
                if self.is_free(s, max(0, a), min(T, b)) and (
                        dep is None or self.is_free(dep, max(0, a), min(T, b))) and all(
                        b <= x or a >= y for nm in near for x, y in fwin.get(nm, [])):
                    placed = True
                    break
            if not placed:
                continue
            for nm in (s.name,) + ((dep.name,) if dep is not None else ()):
                fwin.setdefault(nm, []).append((a, b + self.steps(1800)))
            used.add(s.name)
            self.mark_busy(s, max(0, a), min(T, b))
            if dep is not None:
                used.add(dep.name)
                self.mark_busy(dep, max(0, a), min(T, b))
            self.fail_specs.append({"svc": s, "kind": k2, "sudden": sudden, "ip": i1 - prec,
                                    "i1": i1, "i2": i1 + dur, "dep": dep})

    # ------------------------------------------------------------------ benign
    def _schedule_benign(self) -> None:
        rng = self.rng
        T = self.T
        S = self.svcs
        full = (0, T)
        keys_all = [s.key for s in S]
        self.add_benign("daily_cycle", keys_all, 0, T, tz_offset_hours=self.tz)
        if self.weekend.any() and (~self.weekend).any():
            self.add_benign("weekday_weekend", keys_all, 0, T)
        self.add_benign("call_graph_propagation", keys_all, 0, T)
        low = [s for s in S if s.low]
        self.add_benign("low_traffic_noisy_latency", low, 0, T)
        self.add_benign("hpa_autoscaling", [s for s in S if s.hpa], 0, T)
        runtime_saw = [s for s in S if s.role not in ("db", "cache")]
        self.add_benign("gc_memory_sawtooth", runtime_saw, 0, T)
        # chronic flaky errors
        failing = {f["svc"].name for f in self.fail_specs}
        flaky_c = [s for s in S if s.role in ("sync", "bff", "payment") and s.life == full
                   and s.name not in failing]
        rng.shuffle(flaky_c)
        for s in flaky_c[: max(1, int(round(len(flaky_c) * 0.15)))]:
            s.flaky = float(rng.uniform(0.003, 0.012))
            self.add_benign("chronic_flaky_errors", [s], 0, T, level=round(s.flaky, 4))
        # memory growth reset by a daily deploy (scheduled restart at a fixed local hour)
        grow_c = [s for s in S if s.role in ("sync", "bff") and s.life == full
                  and s.name not in {f["svc"].name for f in self.fail_specs}]
        rng.shuffle(grow_c)
        daily_hour = float(rng.uniform(5.0, 7.0))
        for s in grow_c[: max(1, len(grow_c) // 6)]:
            # 0.18-0.3 of the limit per day
            s.mem_growth = float(rng.uniform(0.18, 0.3)) / (86400 / STEP)
            s.mem_base = min(s.mem_base, 0.45)
            restarts = []
            for d in range(-1, self.n_local_days + 1):
                i0 = self.local_steps(d, daily_hour + rng.uniform(0, 0.3))
                if 0 < i0 < T - 10:
                    self._restart(s, i0, "daily")
                    restarts.append(i0)
            self.add_benign("memory_growth_reset_by_deploy", [s], 0, T,
                            restarts=[self.ts(i) for i in restarts])
        # rolling deploys during working hours
        dep_c = [s for s in S if s.role in ("gateway", "bff", "sync", "payment", "consumer")]
        n_dep = 0
        for s in dep_c:
            if rng.random() > 0.6:
                continue
            rate = float(rng.uniform(0.7, 3.0))
            for d in range(self.n_local_days):
                weekend = self.weekday_of_day[d] >= 5
                k = rng.poisson(rate * (0.1 if weekend else 1.0))
                for _ in range(k):
                    i0 = self.local_steps(d, float(rng.uniform(9.5, 17.5)))
                    dur = self.steps(900)
                    if i0 < 10 or i0 + dur >= T or not self.is_free(s, i0, i0 + dur):
                        continue
                    d_end = self._restart(s, i0, "deploy")
                    self.mark_busy(s, i0, i0 + dur)
                    self.add_benign("rolling_deploy", [s], i0, d_end)
                    n_dep += 1
        # guarantee at least one rolling deploy
        if n_dep == 0:
            self._force(dep_c, 900, lambda s, i0: self.add_benign(
                "rolling_deploy", [s], i0, self._restart(s, i0, "deploy")))
        # canary deploys
        def canary(s, i0):
            cd = self.steps(float(rng.uniform(20, 60)) * 60)
            pd = self.arr(s, "pods_delta")
            pd[i0:i0 + cd] += 1
            lm = self.arr(s, "lat_mult", 1.0)
            lm[i0:i0 + cd] *= 1.0 + rng.uniform(0.02, 0.08)
            self.arr(s, "err_add")[i0:i0 + cd] += rng.uniform(0.0, 0.001)
            end = self._restart(s, i0 + cd, "deploy")
            self.add_benign("canary_deploy", [s], i0, end)
        for _ in range(int(rng.integers(1, 4))):
            self._force(dep_c, 5400, canary, hours=(10, 17))
        # rollbacks: a deploy with mild extra errors, rolled back after 5-15 min

        def rollback(s, i0):
            self._restart(s, i0, "deploy")
            rd = self.steps(float(rng.uniform(5, 15)) * 60)
            self.arr(s, "err_add")[i0 + 4:i0 + rd] += rng.uniform(0.006, 0.02)
            self.arr(s, "lat_mult", 1.0)[i0 + 4:i0 + rd] *= rng.uniform(1.1, 1.4)
            end = self._restart(s, i0 + rd, "deploy")
            self.add_benign("rollback", [s], i0, end)
        for _ in range(int(rng.integers(1, 3))):
            self._force(dep_c, 3600, rollback, hours=(10, 18))
        # marketing traffic spikes (fleet demand) and retry bursts (one service)
        self.demand_mult = np.ones(T)
        sync_keys = [s for s in S if s.role not in ("consumer",)]
        for _ in range(int(rng.integers(1, 3))):
            d = int(rng.integers(0, self.n_local_days))
            i0 = self.local_steps(d, float(rng.uniform(10, 20)))
            if i0 < 10 or i0 > T - 400:
                i0 = self.rand_time(self.steps(3600), T - 400)
            up = self.steps(float(rng.uniform(2, 6)) * 60)
            hold = self.steps(float(rng.uniform(15, 45)) * 60)
            amp = float(rng.uniform(0.7, 1.4))
            tau = float(rng.uniform(8, 20)) * 60 / STEP
            m = self.demand_mult
            m[i0:i0 + up] *= 1 + amp * np.linspace(0, 1, up)[: len(m[i0:i0 + up])]
            m[i0 + up:i0 + up + hold] *= 1 + amp
            self.decay(i0 + up + hold, tau, amp, m, True)
            self.add_benign("marketing_traffic_spike", sync_keys, i0,
                            int(i0 + up + hold + 4 * tau), peak_factor=round(1 + amp, 2))

        def retry_burst(s, i0):
            dd = self.steps(float(rng.uniform(2, 6)) * 60)
            self.arr(s, "rps_mult", 1.0)[i0:i0 + dd] *= rng.uniform(1.8, 3.0)
            self.arr(s, "err_add")[i0:i0 + dd] += rng.uniform(0.002, 0.008)
            self.add_benign("retry_burst", [s], i0, i0 + dd)
        rb_c = [s for s in S if s.role in ("sync", "payment", "search") and not s.low]
        for _ in range(int(rng.integers(1, 4))):
            self._force(rb_c, 600, retry_burst)
        # cache cold restarts
        caches = [s for s in S if s.role == "cache" and self.callers[s.name]]

        def cold(s, i0):
            self._restart(s, i0, "cache")
            tau = float(rng.uniform(5, 10)) * 60 / STEP
            amp = float(rng.uniform(1.5, 3.5))
            who = [s]
            for c, _ in self.callers[s.name]:
                cs = self.by[c]
                for d in cs.deps:
                    if d in self.by and self.by[d].role == "db":
                        em = self.edge(cs.name, d)
                        self.decay(i0, tau, amp, em, True)
                        who += [cs, self.by[d]]
                self.decay(i0, tau, 0.3, self.arr(cs, "lat_mult", 1.0), True)
            self.mark_busy(s, i0, i0 + self.steps(3600))
            seen = []
            for w in who:
                if w not in seen:
                    seen.append(w)
            self.add_benign("cache_cold_restart", seen, i0, int(i0 + 5 * tau))
        for _ in range(int(rng.integers(1, 3))):
            self._force(caches, 3600, cold, hours=(8, 22))
        # consumers: rebalances and batch backlog dumps
        consumers = [s for s in S if s.role == "consumer"]
        for s in consumers:
            for _ in range(int(rng.poisson(3 * self.days)) + 1):
                i0 = self.rand_time(s.life[0] + 10, s.life[1] - 20)
                dd = int(rng.integers(2, 7))
                if self.is_free(s, i0, i0 + dd + 40):
                    self.rebalances.setdefault(s.name, []).append((i0, i0 + dd))
                    self.add_benign("consumer_rebalance", [s], i0, i0 + dd)
        dumpers = [s for s in consumers if s.name in ("analytics-ingest", "search-indexer")] or \
            consumers[:1]
        for s in dumpers:
            hr = float(rng.uniform(0.5, 3.0))
            for d in range(self.n_local_days + 1):
                i0 = self.local_steps(d, hr + rng.uniform(0, 0.25))
                if 10 < i0 < T - 240 and self.is_free(s, i0, i0 + 360):
                    drain = float(rng.uniform(2400, 5400))
                    self.dumps.setdefault(s.name, []).append((i0, drain))
                    self.add_benign("batch_backlog_dump", [s], i0,
                                    int(i0 + drain / STEP), drain_s=round(drain))
        # nightly batch jobs on databases, search reindex
        dbs = [s for s in S if s.role == "db"]
        for s in dbs:
            hr = float(rng.uniform(1.0, 3.0))
            for d in range(-1, self.n_local_days + 1):
                i0 = self.local_steps(d, hr + rng.uniform(0, 0.2))
                dd = self.steps(float(rng.uniform(30, 90)) * 60)
                if i0 + dd <= 0 or i0 >= T:
                    continue
                a, b = max(0, i0), min(T, i0 + dd)
                self.arr(s, "cpu_add")[a:b] += rng.uniform(0.15, 0.35)
                self.arr(s, "lat_mult", 1.0)[a:b] *= rng.uniform(1.4, 2.2)
                self.arr(s, "pool_add")[a:b] += rng.uniform(0.03, 0.08)
                self.arr(s, "mem_add")[a:b] += rng.uniform(0.01, 0.03)
                self.add_benign("nightly_batch_job", [s], a, b)
        srch = [s for s in S if s.role == "search"]
        for s in srch:
            hr = float(rng.uniform(0.5, 2.5))
            idx_s = self.by.get("search-indexer")
            for d in range(-1, self.n_local_days + 1):
                i0 = self.local_steps(d, hr)
                dd = self.steps(float(rng.uniform(40, 80)) * 60)
                if i0 + dd <= 0 or i0 >= T:
                    continue
                a, b = max(0, i0), min(T, i0 + dd)
                if not self.is_free(s, a, b):
                    continue
                self.arr(s, "cpu_add")[a:b] += rng.uniform(0.2, 0.4)
                self.arr(s, "lat_mult", 1.0)[a:b] *= rng.uniform(1.4, 2.0)
                self.arr(s, "gc_mult", 1.0)[a:b] *= rng.uniform(1.5, 3.0)
                who = [s] + ([idx_s] if idx_s else [])
                self.add_benign("search_reindex", who, a, b)
        # weekly maintenance window: a database failover / minor upgrade
        mdays = [d for d in range(self.n_local_days)
                 if self.local_steps(d, 3.0) > self.steps(3600)
                 and self.local_steps(d, 4.0) < T]
        if dbs and mdays:
            d = mdays[int(rng.integers(len(mdays)))]
            cands = [s for s in dbs if self.is_free(s, self.local_steps(d, 3.0),
                                                    self.local_steps(d, 4.0))]
        if dbs and mdays and cands:
            s = cands[int(rng.integers(len(cands)))]
            i0 = self.local_steps(d, 3.0) + int(rng.integers(0, 40))
            dd = self.steps(float(rng.uniform(20, 45)) * 60)
            self.arr(s, "lat_mult", 1.0)[i0:i0 + dd] *= rng.uniform(1.5, 2.5)
            fo = i0 + int(rng.integers(10, max(11, dd - 10)))
            self.arr(s, "err_add")[fo:fo + 4] += rng.uniform(0.01, 0.03)
            self.arr(s, "pods_delta")[fo:fo + 8] -= 1
            self.mem_resets.setdefault(s.name, []).append(fo)
            who = [s] + [self.by[c] for c, _ in self.callers[s.name]]
            for c, _ in self.callers[s.name]:
                self.arr(self.by[c], "err_add")[fo:fo + 4] += rng.uniform(0.003, 0.01)
            self.add_benign("weekly_maintenance", who, i0, i0 + dd)
        # external provider slow minutes
        for e in _EXTERNAL:
            users = [s for s in S if e in s.deps]
            if not users:
                continue
            t = self.rand_time(0, self.steps(7200))
            while t < T:
                dd = self.steps(float(rng.uniform(1, 4)) * 60)
                self.ext_mult[e][t:t + dd] *= rng.uniform(3, 8)
                self.add_benign("external_provider_slow_minutes", users, t, t + dd, provider=e[4:])
                t += self.steps(float(rng.uniform(1, 3)) * 3600)
        # lifetimes
        for s in S:
            if s.life[0] > 0:
                ramp = self.steps(float(rng.uniform(2, 5)) * 3600)
                a = s.life[0]
                m = self.arr(s, "rps_mult", 1.0)
                m[:a] = 0.0
                r = np.linspace(0.02, 1.0, ramp)[: T - a]
                m[a:a + len(r)] *= r
                self.add_benign("service_created", [s], a, a + len(r))
            if s.life[1] < T:
                b = s.life[1]
                ramp = self.steps(float(rng.uniform(1, 2)) * 3600)
                a = max(0, b - ramp)
                m = self.arr(s, "rps_mult", 1.0)
                m[a:b] *= np.linspace(1.0, 0.0, b - a)
                m[b:] = 0.0
                self.add_benign("service_deleted", [s], a, b)
        # fleet events: network blip, node pool upgrade, prometheus restart
        for _ in range(int(rng.integers(1, 3))):
            i0 = self.rand_time(self.steps(3600), T - 60)
            ns = self.namespaces[int(rng.integers(len(self.namespaces)))]
            dd = int(rng.integers(4, 13))
            who = [s for s in S if s.ns == ns and s.life[0] <= i0 < s.life[1]]
            for s in who:
                if s.role in ("gateway", "bff", "sync", "payment", "search"):
                    self.arr(s, "err_add")[i0:i0 + dd] += rng.uniform(0.004, 0.025)
                self.arr(s, "lat_mult", 1.0)[i0:i0 + dd] *= rng.uniform(1.8, 3.5)
                if s.role != "consumer":
                    self.arr(s, "rps_mult", 1.0)[i0:i0 + dd] *= rng.uniform(0.75, 0.9)
                    self.arr(s, "rps_mult", 1.0)[i0 + dd:i0 + dd + 8] *= rng.uniform(1.05, 1.2)
            self.fleet_events.append({"what": "network_blip", "who": [s.key for s in who],
                                      "start": self.ts(i0), "end": self.ts(i0 + dd + 8),
                                      "namespace": ns})
        # node pool upgrade: one pod of many services restarted within a window
        i0 = self.rand_time(self.steps(8 * 3600), T - self.steps(2 * 3600))
        win = self.steps(float(rng.uniform(40, 90)) * 60)
        who = []
        for s in S:
            if s.role in ("db", "cache") or rng.random() > 0.65:
                continue
            t = self.rand_time(i0, i0 + win)
            if not self.is_free(s, t - 20, t + 60):
                continue
            self._restart(s, t, "pod")
            who.append(s.key)
        self.fleet_events.append({"what": "node_pool_upgrade", "who": who,
                                  "start": self.ts(i0), "end": self.ts(i0 + win)})
        # prometheus restart: every service misses rows for 2-5 min
        i0 = self.rand_time(self.steps(3600), T - 40)
        dd = int(rng.integers(8, 21))
        who = [s for s in S if s.life[0] <= i0 < s.life[1]]
        for s in who:
            self.row_gaps.setdefault(s.name, []).append((i0, min(i0 + dd, s.life[1])))
        self.fleet_events.append({"what": "prometheus_restart", "who": [s.key for s in who],
                                  "start": self.ts(i0), "end": self.ts(i0 + dd)})
        self.scrape_gaps.append({"who": [s.key for s in who], "start": self.ts(i0),
                                 "end": self.ts(i0 + dd), "rows": True})
        # per-target scrape gaps: whole rows (target down) or app metrics only
        for _ in range(max(2, int(rng.poisson(4 * self.days * self.scale)))):
            s = S[int(rng.integers(len(S)))]
            a = self.rand_time(s.life[0] + 40, s.life[1] - 40)
            dd = int(rng.integers(2, 33))
            b = min(a + dd, s.life[1])
            if rng.random() < 0.6:
                self.row_gaps.setdefault(s.name, []).append((a, b))
                self.scrape_gaps.append({"who": [s.key], "start": self.ts(a),
                                         "end": self.ts(b), "rows": True})
            else:
                self.app_gaps.setdefault(s.name, []).append((a, b))
                self.scrape_gaps.append({"who": [s.key], "start": self.ts(a),
                                         "end": self.ts(b), "rows": False,
                                         "signals": [x for x in s.signals
                                                     if x in _APP_SIGNALS]})
            self.add_benign("scrape_gap", [s], a, b)
        # counter resets (exporter restart with a non-zero restart value)
        cr = [s for s in S if s.role in ("gateway", "bff", "sync", "payment")]
        for _ in range(int(rng.integers(1, 4))):
            s = cr[int(rng.integers(len(cr)))]
            i0 = self.rand_time(s.life[0] + 40, s.life[1] - 40)
            self.counter_resets.setdefault(s.name, []).append(i0)
        for s in S:
            for i0 in self.counter_resets.get(s.name, []):
                self.add_benign("counter_reset", [s], i0, i0 + 2)
        self._failure_mods()

    def _force(self, cands, span_s, fn, hours=None):
        """Call fn(s, i0) on a random free candidate (up to 40 tries)."""
        rng = self.rng
        if not cands:
            return False
        span = self.steps(span_s)
        for _ in range(40):
            s = cands[int(rng.integers(len(cands)))]
            if hours is not None:
                d = int(rng.integers(0, self.n_local_days))
                i0 = self.local_steps(d, float(rng.uniform(*hours)))
            else:
                i0 = self.rand_time(self.steps(1800), self.T - span - 10)
            if i0 < s.life[0] + 20 or i0 + span >= min(self.T, s.life[1]):
                continue
            if not self.is_free(s, i0, i0 + span):
                continue
            self.mark_busy(s, i0, i0 + span)
            fn(s, i0)
            return True
        return False

    def edge(self, a: str, b: str) -> np.ndarray:
        if (a, b) not in self.edge_mult:
            self.edge_mult[(a, b)] = np.ones(self.T)
        return self.edge_mult[(a, b)]

    def _restart(self, s: _Svc, i0: int, how: str) -> int:
        """Restart pods of s at step i0 (rolling deploy, daily restart, single pod, cache).
        Returns the step at which the rollout is over."""
        rng = self.rng
        T = self.T
        if i0 >= T:
            return T
        jvm = s.jvm
        if how == "pod":
            d = int(rng.integers(2, 7))
        else:
            d = int(rng.integers(4, 16))
        pdl = self.arr(s, "pods_delta")
        dips = (rng.random(d) < 0.7).astype(float)
        pdl[i0:i0 + d] -= dips[: len(pdl[i0:i0 + d])]
        if how in ("deploy", "daily") and rng.random() < 0.5:
            pdl[i0:i0 + 1] += 1  # surge pod
        warm = 0.3 if how == "pod" else 1.0
        tau = float(rng.uniform(5, 12) if jvm else rng.uniform(2, 6)) * 60 / STEP
        self.decay(i0, tau, warm * rng.uniform(0.6, 2.0 if jvm else 1.0),
                   self.arr(s, "lat_mult", 1.0), True)
        self.decay(i0, tau, warm * rng.uniform(0.2, 0.6), self.arr(s, "cpu_mult", 1.0), True)
        if jvm:
            self.decay(i0, tau, warm * rng.uniform(2.0, 6.0), self.arr(s, "gc_mult", 1.0), True)
        if s.role not in ("cache", "db"):
            k = i0 + int(rng.integers(0, d))
            self.arr(s, "err_add")[k:k + int(rng.integers(1, 3))] += \
                warm * rng.uniform(0.002, 0.012)
        if how != "pod":
            self.mem_resets.setdefault(s.name, []).append(i0 + d)
        if s.role == "consumer":
            self.rebalances.setdefault(s.name, []).append((i0, i0 + int(rng.integers(2, 5))))
        if how in ("deploy", "daily") and rng.random() < 0.15 and s.role != "consumer":
            self.counter_resets.setdefault(s.name, []).append(i0 + d)
        return min(T, i0 + d)

    def _failure_mods(self) -> None:
        """Modifiers for the scheduled failures (before the simulation)."""
        rng = self.rng
        T = self.T
        self.cascade_dep: dict[str, dict] = {}
        for f in self.fail_specs:
            s, kind, ip, i1, i2 = f["svc"], f["kind"], f["ip"], f["i1"], f["i2"]
            n = i1 - ip
            x = np.linspace(0.0, 1.0, n) if n > 0 else np.zeros(0)
            f["affected"] = []
            if kind == "pool_leak":
                f["leak"] = True  # pool_add computed after the simulation (traffic-weighted)
                self._restart(s, i2, "deploy")
            elif kind == "memory_leak":
                self.arr(s, "mem_leak")[ip:i1] = x ** 1.3
                f["crash"] = True
                self._restart(s, i2, "deploy")
            elif kind == "consumer_lag":
                f["cap_target"] = 0.4
            elif kind == "dependency_cascade":
                d = f["dep"]
                # the ramp is applied to the dependency's latency in _latency, sized so that
                # its tail reaches the caller's timeout at the start
                self.cascade_dep[d.name] = f
                self.arr(d, "err_add")[ip:i2] += 0.002 * np.r_[x, np.ones(i2 - i1)]
                f["timeout"] = float(rng.choice([1.0, 2.0, 3.0, 5.0]))
                f["err"] = float(rng.uniform(0.1, 0.4))
            elif kind == "thread_starvation":
                e = [d for d in s.deps if d in _EXTERNAL][0]
                f["provider"] = e
                k = float(rng.uniform(8, 15))
                self.ext_mult[e][ip:i1] *= np.exp(np.log(k) * x ** 1.3)
                self.ext_mult[e][i1:i2] *= k * 1.5
                f["timeout"] = float(rng.choice([5.0, 10.0]))
                f["err"] = float(rng.uniform(0.1, 0.5))
            elif kind == "db_slow_query":
                k = float(rng.uniform(6, 14))
                self.arr(s, "lat_mult", 1.0)[ip:i1] *= np.exp(np.log(k) * x ** 1.6)
                self.arr(s, "lat_mult", 1.0)[i1:i2] *= k * 1.5
                self.arr(s, "cpu_add")[ip:i2] += np.r_[x, np.ones(i2 - i1)] * 0.3
                self.arr(s, "pool_add")[ip:i2] += np.r_[x, np.ones(i2 - i1)] * 0.35
                f["timeout"] = float(rng.choice([5.0, 10.0]))
                f["err"] = float(rng.uniform(0.06, 0.3))
            elif kind == "retry_storm":
                self.arr(s, "err_add")[ip:i1] += rng.uniform(0.015, 0.04) * np.minimum(1, 3 * x)
                self.arr(s, "rps_mult", 1.0)[ip:i1] *= 1 + rng.uniform(0.3, 0.5) * x
                self.arr(s, "rps_mult", 1.0)[i1:i2] *= rng.uniform(3.0, 5.0)
                self.arr(s, "pool_add")[i1:i2] += 1.0
                f["err"] = float(rng.uniform(0.15, 0.5))
                f["timeout"] = float(rng.choice([2.0, 5.0]))
            elif kind == "cert_expiry":
                f["err"] = float(rng.uniform(0.6, 0.98))
                self.arr(s, "lat_mult", 1.0)[i1:i2] *= 0.35
                for d in s.deps:
                    if d in self.by:
                        self.edge(s.name, d)[i1:i2] *= 0.05
                self._restart(s, i2, "deploy")
            elif kind == "bad_deploy":
                self._restart(s, i1 - int(rng.integers(2, 6)), "deploy")
                f["err"] = float(rng.uniform(0.08, 0.4))
                self.arr(s, "lat_mult", 1.0)[i1:i2] *= rng.uniform(1.5, 3.0)
                self._restart(s, i2, "deploy")
            elif kind == "crash_loop":
                f["err"] = float(rng.uniform(0.2, 0.7))
                f["crash"] = True
                self.arr(s, "cpu_mult", 1.0)[i1:i2] *= 1.3
                self._restart(s, i2, "deploy")
            if f.get("crash"):
                pdl = self.arr(s, "pods_delta")
                t = i1
                while t < i2:
                    per = int(rng.integers(12, 25))
                    down = int(rng.integers(4, 10))
                    pdl[t:min(t + down, i2)] -= 1 + int(rng.integers(0, 2))
                    self.mem_resets.setdefault(s.name, []).append(t)
                    t += per
                self.arr(s, "err_add")[i1:i2] += 0.0
                if kind == "memory_leak":
                    f["err"] = float(rng.uniform(0.06, 0.3))
            if kind not in ("consumer_lag",):
                f.setdefault("err", 0.1)
            _ = T

    # ------------------------------------------------------------------ simulation
    def _m(self, s: _Svc, key: str, fill: float) -> np.ndarray:
        if self.has(s, key):
            return self.mods[s.name][key]
        return np.full(self.T, fill)

    def _simulate(self) -> None:
        rng = self.rng
        T = self.T
        # fleet demand
        demand = _profile(self.hour, self.weekend, "web") * np.exp(_ar1(rng, T, 3600, 0.05))
        demand *= self.demand_mult
        office = _profile(self.hour, self.weekend, "office") * np.exp(_ar1(rng, T, 3600, 0.1))
        peak_ext = float(rng.uniform(400, 1500))
        self.rps_true: dict[str, np.ndarray] = {}
        self.lag_true: dict[str, np.ndarray] = {}
        self.prod_rate: dict[str, np.ndarray] = {}
        fail_by = {f["svc"].name: f for f in self.fail_specs}
        for name in self.topo:
            s = self.by[name]
            noise = np.exp(_ar1(rng, T, 600, s.noise_sd))
            if s.role == "gateway":
                base = peak_ext * demand
            elif s.extra.get("own"):
                base = float(s.extra["own"]) * office
            else:
                base = np.zeros(T)
            for c, calls in self.callers[name]:
                e = self.edge_mult.get((c, name))
                inflow = self.rps_true[c] * calls
                base = base + (inflow * e if e is not None else inflow)
            if s.role == "consumer":
                P = np.zeros(T)
                for p, fct in s.produce.items():
                    P = P + self.rps_true[p] * fct
                if not s.produce or P.max() < 0.5:
                    P = P + 0.5 + 0.5 * demand
                P = P * noise
                self.prod_rate[name] = P
                fc = fail_by.get(name)
                if fc is not None and fc["kind"] != "consumer_lag":
                    fc = None
                proc, lag = self._consumer(s, P, fc)
                self.rps_true[name] = proc
                self.lag_true[name] = lag
                continue
            r = base * noise * self._m(s, "rps_mult", 1.0)
            self.rps_true[name] = r
        # sizing, autoscaling, cpu
        self.ready: dict[str, np.ndarray] = {}
        self.u: dict[str, np.ndarray] = {}
        for s in self.svcs:
            self._cpu(s)
        # memory and GC
        self.mem: dict[str, np.ndarray] = {}
        self.gc: dict[str, np.ndarray] = {}
        for s in self.svcs:
            self._memory(s)
        # latency, pools and errors bottom-up
        self.p50: dict[str, np.ndarray] = {}
        self.p99: dict[str, np.ndarray] = {}
        self.err: dict[str, np.ndarray] = {}
        self.pool: dict[str, np.ndarray] = {}
        self.ext_lat = {e: (v[0] * self.ext_mult[e], v[1] * self.ext_mult[e])
                        for e, v in _EXTERNAL.items()}
        for name in reversed(self.topo):
            self._latency(self.by[name], fail_by.get(name))

    def _consumer(self, s: _Svc, P: np.ndarray, f: dict | None):
        rng = self.rng
        T = self.T
        lo, hi = s.life
        p_peak = float(np.quantile(P[lo:hi], 0.99))
        s.p_peak = p_peak
        s.pods_fixed = int(rng.integers(2, 7))
        cap = p_peak * float(rng.uniform(1.8, 2.6))
        s.cap = cap
        capv = np.full(T, cap)
        for a, b in self.rebalances.get(s.name, []):
            capv[a:b] = 0.0
        add = np.zeros(T)
        dumps = self.dumps.get(s.name, [])
        big = 0.0
        for i0, drain in dumps:
            size = max(2e4, (cap - float(P[i0])) * drain)
            add[i0] += size
            big = max(big, size)
        s.lag_thr = max(p_peak * 900.0, big * 1.3, 1000.0)
        lag = self._lag(P, capv, add)
        if f is not None:
            ip, i1, i2 = f["ip"], f["i1"], f["i2"]
            target = f["cap_target"]
            for _ in range(6):
                cm = np.ones(T)
                n = i1 - ip
                m_end = target * max(float(P[i1]), 0.05 * p_peak) / cap
                cm[ip:i1] = np.exp(np.log(m_end) * np.linspace(0, 1, n) ** 1.2)
                cm[i1:] = m_end
                lag = self._lag(P, capv * cm, add)
                hit = np.nonzero(lag[ip:] > s.lag_thr)[0]
                if len(hit) and ip + hit[0] < T - self.steps(3000) \
                        and hit[0] <= self.steps(6 * 3600):
                    start = ip + int(hit[0])
                    break
                target *= 0.5
            else:
                start = None
            if start is None:
                f["drop"] = True
                lag = self._lag(P, capv, add)
            else:
                dur = max(self.steps(600), i2 - i1)
                fix = min(T - self.steps(900), start + dur)
                cm[fix:] = 1.0
                boost = self.steps(float(rng.uniform(60, 120)) * 60)
                cm[fix:fix + boost] = 2.5
                self.arr(s, "pods_delta")[fix:fix + boost] += int(s.pods_fixed * 1.5)
                self.arr(s, "lat_mult", 1.0)[:] *= 1.0 / np.maximum(cm, 0.05) ** 0.8 * \
                    (cm <= 1) + (cm > 1)
                lag = self._lag(P, capv * cm, add)
                below = np.nonzero(lag[fix:] < s.lag_thr)[0]
                end = fix + int(below[0]) if len(below) else T
                f["i1"], f["i2"] = start, max(start + 4, end)
                f["fix"] = fix
        proc = np.empty(T)
        proc[0] = P[0]
        proc[1:] = np.maximum(0.0, P[1:] + (lag[:-1] + add[1:] - lag[1:]) / STEP)
        return proc, lag

    @staticmethod
    def _lag(P: np.ndarray, cap: np.ndarray, add: np.ndarray) -> np.ndarray:
        T = len(P)
        lag = np.empty(T)
        x = 0.0
        pin = (P * STEP).tolist()
        cp = (cap * STEP).tolist()
        ad = add.tolist()
        for i in range(T):
            x += pin[i] + ad[i]
            done = cp[i] if cp[i] < x else x
            x -= done
            lag[i] = x
        return lag

    def _cpu(self, s: _Svc) -> None:
        rng = self.rng
        T = self.T
        r = self.rps_true[s.name]
        lo, hi = s.life
        r_peak = max(float(np.quantile(r[lo:hi], 0.98)), 1e-3)
        cpu_mult = self._m(s, "cpu_mult", 1.0)
        cpu_add = self._m(s, "cpu_add", 0.0)
        pdl = self._m(s, "pods_delta", 0.0)
        if s.hpa:
            p = int(rng.integers(4, 13))
            s.cpu_per_req = max(1e-6, (s.target * p * s.limit * 0.92 - s.idle * p) / r_peak)
            s.minr = max(2, int(math.ceil(p * 0.25)))
            s.maxr = p * 2 + 2
            load = r * s.cpu_per_req * cpu_mult + cpu_add * p * s.limit * s.target
            ready = self._hpa(s, load)
        else:
            if s.role == "consumer":
                R = s.pods_fixed
            elif s.role == "db":
                R = int(rng.integers(1, 4))
            elif s.role == "cache":
                R = int(rng.integers(1, 4))
            elif s.role == "search":
                R = int(rng.integers(3, 6))
            elif s.low:
                R = int(rng.integers(1, 3))
            else:
                R = int(rng.integers(2, 6))
            s.replicas = R
            u_peak = float(rng.uniform(0.35, 0.6)) if not s.low else float(rng.uniform(0.1, 0.2))
            if s.role == "consumer":
                r_peak = max(s.cap, 1e-3)  # full speed while draining
                u_peak = float(rng.uniform(0.55, 0.8))
            s.cpu_per_req = max(1e-6, (u_peak * R * s.limit - s.idle * R) / r_peak)
            load = r * s.cpu_per_req * cpu_mult + cpu_add * R * s.limit
            ready = np.full(T, float(R))
        ready = np.maximum(0.0, ready + pdl)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = (load + s.idle * ready) / (ready * s.limit)
        u[ready <= 0] = np.nan
        self.ready[s.name] = ready
        self.u[s.name] = u
        self.load = load

    def _hpa(self, s: _Svc, load: np.ndarray) -> np.ndarray:
        rng = self.rng
        T = self.T
        lim, tgt, idle = s.limit, s.target, s.idle
        ld = load.tolist()
        spec = max(s.minr, min(s.maxr, int(math.ceil((ld[0] + 1e-9) / (tgt * lim)))))
        ready_n = spec
        pending: list[int] = []
        hist = [spec] * 5
        out = np.empty(T)
        ema = (ld[0] + idle * spec) / (spec * lim)
        delay = int(rng.integers(3, 7))
        for i in range(T):
            if pending and pending[0] <= i:
                while pending and pending[0] <= i:
                    pending.pop(0)
                    ready_n += 1
            u = (ld[i] + idle * ready_n) / (ready_n * lim)
            ema += 0.25 * (min(u, 1.0) - ema)
            if i % 4 == 0:
                ratio = ema / tgt
                desired = spec if abs(ratio - 1.0) <= 0.1 else int(math.ceil(ready_n * ratio))
                desired = max(s.minr, min(s.maxr, desired))
                hist.pop(0)
                hist.append(desired)
                if desired > spec:
                    add = min(desired - spec, max(4, spec))
                    for _ in range(add):
                        pending.append(i + delay + int(rng.integers(0, 3)))
                    pending.sort()
                    spec += add
                else:
                    rec = max(hist)
                    if rec < spec:
                        drop = spec - rec
                        spec = rec
                        while drop and pending:
                            pending.pop()
                            drop -= 1
                        ready_n = max(1, ready_n - drop)
            out[i] = ready_n
        return out

    def _memory(self, s: _Svc) -> None:
        rng = self.rng
        T = self.T
        idx = np.arange(T)
        resets = sorted(self.mem_resets.get(s.name, []))
        last = np.zeros(T, dtype=np.int64)
        for rr in resets:
            if 0 <= rr < T:
                last[rr] = rr
        last = np.maximum.accumulate(last)
        since = idx - last
        if s.role == "cache":
            fill_tau = float(rng.uniform(20, 45)) * 60 / STEP
            has_reset = np.zeros(T, bool)
            for rr in resets:
                if 0 <= rr < T:
                    has_reset[rr:] = True
            f = np.where(has_reset, 1 - 0.93 * np.exp(-since / fill_tau), 1.0)
            mem = s.mem_base * f
        else:
            ph = int(rng.integers(0, s.saw_period))
            saw = s.saw_amp * (((idx + ph) % s.saw_period) / s.saw_period)
            mem = s.mem_base + saw + s.mem_growth * since
            # after a restart the heap/working set fills up over ~10 min
            warm = np.where(since < 400, 0.25 * s.mem_base * np.exp(-since / 40.0), 0.0)
            if resets:
                mem = mem - warm * (last > 0)
        mem = mem + self._m(s, "mem_add", 0.0) + _ar1(rng, T, 300, 0.004)
        if self.has(s, "mem_leak"):
            leak = self.mods[s.name]["mem_leak"]
            mem = mem + leak * (1.02 - mem)
        f = next((x for x in self.fail_specs if x["svc"] is s and x["kind"] == "memory_leak"),
                 None)
        if f is not None:  # crash loop: the worst pod refills to the limit within minutes
            i1, i2 = f["i1"], f["i2"]
            k = np.arange(i2 - i1)
            per = int(rng.integers(14, 24))
            mem[i1:i2] = 0.55 * s.mem_base + (1.0 - 0.55 * s.mem_base) * ((k % per) / per) ** 0.7
        self.mem[s.name] = np.clip(mem, 0.01, 1.0)
        if s.jvm:
            r = self.rps_true[s.name]
            rp = r / np.maximum(self.ready[s.name], 1)
            ref = max(float(np.nanmean(rp[s.life[0]:s.life[1]])), 1e-6)
            g = s.gc0 * (0.3 + 0.7 * (rp / ref) ** 0.8)
            press = np.maximum(0.0, self.mem[s.name] - 0.8) / 0.2
            g = g * (1 + 25 * press ** 2) * self._m(s, "gc_mult", 1.0)
            # occasional full GCs
            fg = rng.random(T) < 0.002
            g = g + fg * rng.uniform(0.2, 1.5, T) / STEP
            self.gc[s.name] = g
            lm = self.arr(s, "lat_mult", 1.0)
            lm *= 1 + 3 * press ** 1.5

    def _latency(self, s: _Svc, f: dict | None) -> None:
        T = self.T
        name = s.name
        u = np.nan_to_num(self.u[name], nan=0.97)
        uu = np.clip(u, 0, 0.97)
        factor = 1 + 0.35 * uu / (1 - uu)
        lm = self._m(s, "lat_mult", 1.0)
        p50 = s.p50 * factor ** 0.6 * lm
        p99 = s.p50 * s.p99x * factor * lm
        r = self.rps_true[name]
        ready = np.maximum(self.ready[name], 1)
        err = np.full(T, s.err_base + s.flaky) + self._m(s, "err_add", 0.0)
        if s.flaky:
            err = err * np.exp(_ar1(self.rng, T, 900, 0.5))
        pooled_lat = np.zeros(T)  # mean latency of what the pool is held for
        tail = np.zeros(T)
        for d, calls in s.deps.items():
            w = min(calls, 1.0)
            if d in _EXTERNAL:
                d50, d99 = self.ext_lat[d]
                derr = np.full(T, 0.001)
            else:
                d50, d99, derr = self.p50[d], self.p99[d], self.err[d]
            e = self.edge_mult.get((name, d))
            if e is not None:
                w = w * np.minimum(e, 1.0)
            p50 = p50 + 0.5 * w * d50
            # the slowest dependency a few per cent of requests touch sets the tail
            # (the mix's p99 is the dependency's 1 - 0.01/w quantile)
            gw = np.clip(np.log(np.maximum(w, 1e-6) / 0.02) / math.log(50.0), 0.0, 1.0)
            tail = np.maximum(tail, np.minimum(1.0, w / 0.02) * (d50 + (d99 - d50) * gw))
            p99 = p99 + 0.15 * w * d99
            err = err + 0.3 * w * derr
            if s.pool_kind == "db_pool" and d in self.by and self.by[d].role == "db":
                pooled_lat = pooled_lat + calls * 1.4 * d50
            elif s.pool_kind == "http_pool" and d in _EXTERNAL:
                pooled_lat = pooled_lat + calls * 1.4 * d50
        p99 = p99 + tail
        if s.pool_kind == "thread_pool":
            pooled_lat = 1.4 * p50
        # pools
        if s.pool_kind in ("db_pool", "http_pool", "thread_pool"):
            in_use = r / ready * pooled_lat
            lo, hi = s.life
            ref = max(float(np.quantile(in_use[lo:hi], 0.98)), 1e-4)
            lo_ps, hi_ps = (50, 400) if s.pool_kind == "thread_pool" else (10, 100)
            s.pool_size = int(min(hi_ps, max(lo_ps, math.ceil(ref / s.pool_target))))
            pool = in_use / s.pool_size * 1.15 + 0.5 / s.pool_size
        elif s.pool_kind == "connections":
            idle_conn = sum(np.maximum(self.ready[c], 1) * 3 for c, _ in self.callers[name]
                            if self.by[c].pool_kind == "db_pool") if self.callers[name] else 0
            active = r * 1.4 * p50
            lo, hi = s.life
            tot = idle_conn + active
            ref = max(float(np.quantile(np.asarray(tot + 0.0)[lo:hi], 0.98)), 1.0)
            s.pool_size = int(math.ceil(ref / self.rng.uniform(0.3, 0.55) / 10.0) * 10)
            pool = tot / s.pool_size
        elif s.pool_kind == "clients":
            conns = sum(np.maximum(self.ready[c], 1) * 50 for c, _ in self.callers[name]) \
                if self.callers[name] else np.full(T, 50.0)
            s.pool_size = 10000 if s.runtime == "redis" else 4096
            pool = (conns + 2) / s.pool_size
        else:
            pool = None
        if pool is not None:
            pool = pool + self._m(s, "pool_add", 0.0)
            if f is not None and f.get("leak"):
                i1, i2, ip = f["i1"], f["i2"], f["ip"]
                cum = np.cumsum(r[ip:i1])
                leak = cum / max(cum[-1], 1e-9) * np.maximum(0.0, 1.02 - pool[i1 - 1])
                pool[ip:i1] += leak
                pool[i1:i2] = 1.05
            over = np.maximum(0.0, pool - 0.85) / 0.15
            p99 = p99 * (1 + 4 * over ** 2)
            p50 = p50 * (1 + 1.5 * over ** 2)
            err = err + 0.01 * np.minimum(np.maximum(0.0, pool - 1.0) * 5, 1.0)
            self.pool[name] = np.clip(pool, 0.0, 1.0)
        p99 = np.maximum(p99, p50 * 1.5)
        fc = self.cascade_dep.get(name)
        if fc is not None:
            ip, i1, i2 = fc["ip"], fc["i1"], fc["i2"]
            base = float(np.median(p99[max(0, ip - 720):ip]))
            fc["timeout"] = max(fc["timeout"], 4 * base)
            k = max(6.0, 0.9 * fc["timeout"] / base)
            ramp = np.ones(T)
            ramp[ip:i1] = np.exp(math.log(k) * np.linspace(0, 1, i1 - ip) ** 1.5)
            ramp[i1:i2] = k * 1.2
            p99 = p99 * ramp
            p50 = p50 * ramp ** 0.8
        self.p50[name] = p50
        self.p99[name] = p99
        self.err[name] = np.clip(err, 0.0, 1.0)

    def _apply_failures_post(self) -> None:
        """Incident-period effects: error floors, timeouts, saturated pools."""
        keep = []
        for f in self.fail_specs:
            if f.get("drop"):
                continue
            s, kind, i1, i2 = f["svc"], f["kind"], f["i1"], f["i2"]
            n = s.name
            if kind != "consumer_lag":
                e = self.err[n]
                e[i1:i2] = np.maximum(e[i1:i2], f["err"] * np.exp(
                    self.rng.normal(0, 0.15, i2 - i1)))
                np.clip(e, 0, 1, out=e)
            to = f.get("timeout")
            if to:
                self.p99[n][i1:i2] = np.maximum(self.p99[n][i1:i2], to * 1.05)
                self.p50[n][i1:i2] = np.maximum(self.p50[n][i1:i2], to * 0.15)
                if n in self.pool and kind in ("dependency_cascade", "thread_starvation",
                                               "retry_storm", "pool_leak"):
                    self.pool[n][i1:i2] = 1.0
            # callers see part of it
            aff = []
            for c, _ in self.callers[n]:
                if kind in ("db_slow_query", "crash_loop", "bad_deploy", "retry_storm",
                            "cert_expiry", "memory_leak", "pool_leak", "thread_starvation",
                            "dependency_cascade"):
                    ce = self.err[c]
                    ce[i1:i2] = np.minimum(1.0, ce[i1:i2] + 0.25 * self.err[n][i1:i2])
                    aff.append(self.by[c].key)
            if kind == "dependency_cascade":
                aff.append(f["dep"].key)
            if kind == "thread_starvation":
                for o in self.svcs:
                    if o is not s and f["provider"] in o.deps:
                        aff.append(o.key)
            f["affected"] = sorted(set(aff))
            keep.append(f)
        self.fail_specs = keep

    # ------------------------------------------------------------------ observation
    def _observe(self) -> None:
        rng = self.rng
        T = self.T
        self.obs: dict[str, dict[str, np.ndarray]] = {}
        for s in self.svcs:
            n = s.name
            o: dict[str, np.ndarray] = {}
            r = np.maximum(self.rps_true[n], 0.0)
            k = rng.poisson(r * STEP).astype(float)
            cnt = _roll_sum(k, 20)
            win = np.minimum(np.arange(1, T + 1), 20) * STEP
            rps = cnt / win
            for i0 in self.counter_resets.get(n, []):
                if 0 <= i0 < T:
                    rps[i0] *= rng.uniform(2.0, 5.0)
            o["rps"] = rps
            zero = cnt <= 0
            if "error_ratio" in s.signals:
                ek = rng.binomial(k.astype(np.int64), np.clip(self.err[n], 0, 1)).astype(float)
                with np.errstate(divide="ignore", invalid="ignore"):
                    er = _roll_sum(ek, 20) / cnt
                er[zero] = np.nan
                o["error_ratio"] = np.clip(er, 0, 1)
            z = _roll_mean(rng.normal(0, 1, T), 20) * math.sqrt(20)
            z2 = rng.normal(0, 1, T)
            sig99 = 0.04 + 0.8 / np.sqrt(1 + 0.01 * cnt)
            p99 = self.p99[n] * np.exp(sig99 * (0.8 * z + 0.3 * z2))
            sig50 = 0.02 + 0.3 / np.sqrt(1 + 0.5 * cnt)
            p50 = self.p50[n] * np.exp(sig50 * (0.8 * z + 0.3 * z2))
            low = cnt < 60
            if low.any():
                j = np.searchsorted(_BUCKETS, p99[low])
                p99[low] = _BUCKETS[np.minimum(j, len(_BUCKETS) - 1)]
            p99 = np.minimum(p99, _BUCKETS[-1])
            p50 = np.minimum(np.minimum(p50, p99), _BUCKETS[-1])
            p99[zero] = np.nan
            p50[zero] = np.nan
            o["latency_p99_s"] = p99
            o["latency_p50_s"] = p50
            u = self.u[n] * (1 + rng.normal(0, 0.03, T))
            o["cpu_ratio"] = np.clip(_roll_mean(np.nan_to_num(u, nan=0.0), 8), 0.0, 1.0)
            o["cpu_ratio"][np.isnan(self.u[n])] = np.nan
            o["mem_ratio"] = np.clip(self.mem[n] + rng.normal(0, 0.002, T), 0.005, 1.0)
            if n in self.pool:
                ps = float(getattr(s, "pool_size", 20))
                if ps < 1000:  # integer gauge of the worst pod; a full pool stays full
                    pv = np.where(self.pool[n] >= 0.97, 1.0, rng.poisson(self.pool[n] * ps) / ps)
                else:
                    pv = self.pool[n] * (1 + rng.normal(0, 0.01, T))
                o["pool_in_use_ratio"] = np.clip(pv, 0.0, 1.0)
            if n in self.lag_true:
                inflight = self.prod_rate[n] * rng.uniform(0.5, 3.0, T)
                o["queue_lag"] = np.round(self.lag_true[n] + inflight)
            if n in self.gc:
                g = _roll_sum(self.gc[n] * STEP, 20) / win
                for i0 in self.counter_resets.get(n, []):
                    if 0 <= i0 < T:
                        g[i0] *= rng.uniform(2.0, 4.0)
                o["gc_seconds_per_s"] = g
            o["pods_ready"] = np.round(self.ready[n])
            # app-level scrape failures and sporadic missing cells
            for a, b in self.app_gaps.get(n, []):
                for x in _APP_SIGNALS:
                    if x in o:
                        o[x][a:b] = np.nan
            for x in o:
                miss = rng.random(T) < 0.0003
                o[x] = np.where(miss, np.nan, o[x])
            self.obs[n] = {x: o[x] for x in s.signals if x in o}

    # ------------------------------------------------------------------ outputs
    def present_mask(self, s: _Svc) -> np.ndarray:
        m = np.zeros(self.T, bool)
        m[s.life[0]:s.life[1]] = True
        for a, b in self.row_gaps.get(s.name, []):
            m[a:b] = False
        return m

    def _truth(self) -> dict:
        svcs = []
        for s in sorted(self.svcs, key=lambda x: (x.ns, x.name)):
            ent = {"namespace": s.ns, "service": s.name, "role": s.role, "runtime": s.runtime,
                   "signals": s.signals, "calls": {d: c for d, c in s.deps.items()},
                   "start": self.ts(s.life[0]), "end": self.ts(s.life[1]), "hpa": bool(s.hpa)}
            if s.produce:
                ent["consumes_from"] = dict(s.produce)
                ent["broker"] = s.extra.get("broker")
            if s.pool_kind:
                ent["pool"] = s.pool_kind
            svcs.append(ent)
        fails = []
        for f in sorted(self.fail_specs, key=lambda x: x["i1"]):
            s = f["svc"]
            sudden = bool(f["sudden"])
            fails.append({
                "namespace": s.ns, "service": s.name, "kind": f["kind"],
                "incident_kind": ("sudden_" if sudden else "") + f["kind"],
                "precursor_start": self.ts(f["i1"] if sudden else f["ip"]),
                "start": self.ts(f["i1"]), "end": self.ts(f["i2"]), "sudden": sudden,
                "precursor_signal": None if sudden else PRECURSOR_SIGNAL[f["kind"]],
                "cause": f["dep"].key if f.get("dep") is not None else (
                    f.get("provider", "")[4:] or None),
                "affected": f.get("affected", []),
            })
        self.truth = {
            "generator": "benchmarks/fleetgen6.py", "seed": self.seed,
            "start": int(self.t0), "end": self.ts(self.T), "days": self.days,
            "step": STEP, "scale": self.scale, "tz_offset_hours": self.tz,
            "namespaces": self.namespaces, "signals": SIGNALS, "services": svcs,
            "benign": sorted(self.benign, key=lambda b: (b["start"], b["what"])),
            "fleet_events": self.fleet_events, "scrape_gaps": self.scrape_gaps,
            "failures": fails,
        }
        return self.truth

    def write(self, outdir: str) -> None:
        os.makedirs(outdir, exist_ok=True)
        T = self.T
        ts_str = [str(self.t0 + STEP * i) for i in range(T)]
        fmt = {"queue_lag": ".0f", "pods_ready": ".0f", "rps": ".5g"}
        per_step: list[list[str]] = [[] for _ in range(T)]
        for s in sorted(self.svcs, key=lambda x: (x.ns, x.name)):
            mask = self.present_mask(s)
            ii = np.nonzero(mask)[0]
            cols = []
            for x in SIGNALS:
                if x not in self.obs[s.name]:
                    cols.append([""] * len(ii))
                    continue
                spec = fmt.get(x, ".4g")
                v = self.obs[s.name][x][ii].tolist()
                cols.append(["" if a != a else format(a, spec) for a in v])
            pre = f"{s.ns},{s.name}"
            for j, row in zip(ii.tolist(), zip(*cols, strict=True), strict=True):
                per_step[j].append(f"{ts_str[j]},{pre}," + ",".join(row))
        with open(os.path.join(outdir, "data.csv"), "w") as fh:
            fh.write("timestamp,namespace,service," + ",".join(SIGNALS) + "\n")
            for lines in per_step:
                if lines:
                    fh.write("\n".join(lines))
                    fh.write("\n")
        with open(os.path.join(outdir, "incidents.csv"), "w") as fh:
            fh.write("start,end,namespace,service,kind\n")
            for f in self.truth["failures"]:
                fh.write(f"{f['start']},{f['end']},{f['namespace']},{f['service']},"
                         f"{f['incident_kind']}\n")
        with open(os.path.join(outdir, "truth.json"), "w") as fh:
            json.dump(self.truth, fh, indent=1)
        with open(os.path.join(outdir, "aura.yml"), "w") as fh:
            fh.write(aura_yaml(self.seed))


def aura_yaml(seed: int | None = None) -> str:
    lines = [
        f"# Written by benchmarks/fleetgen6.py{'' if seed is None else f' (seed {seed})'}:",
        "# service-level metrics of a microservice fleet; queries are documentation only",
        "# (the backtest reads data.csv).",
        "interval: 5m",
        "analyses:",
        "  - name: services",
        "    entity_labels: [namespace, service]",
        "    window: 2h",
        "    step: 15s",
        "    horizons: [1h, 2h, 4h]",
        "    signals:",
    ]
    for name in SIGNALS:
        q, kind, direction, cap = SIGNAL_META[name]
        qq = q.replace("'", "''")
        lines.append(f"      - name: {name}")
        lines.append(f"        query: '{qq}'")
        lines.append(f"        kind: {kind}")
        lines.append(f"        direction: {direction}")
        if cap is not None:
            lines.append(f"        capacity: {cap}")
    return "\n".join(lines) + "\n"


def generate(seed: int, outdir: str | None = None, days: float = 3.0, scale: float = 1.0,
             n_failures: int | None = None) -> dict:
    """Generate one fleet; write data.csv, incidents.csv, truth.json and aura.yml to outdir
    (when given) and return the truth dict."""
    fl = _Fleet(seed, days, scale, n_failures)
    truth = fl.build()
    if outdir:
        fl.write(outdir)
    return truth


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="synthetic microservice fleet for AURA")
    ap.add_argument("seed", type=int)
    ap.add_argument("outdir", nargs="?", default=None)
    ap.add_argument("--days", type=float, default=3.0)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--failures", type=int, default=None)
    a = ap.parse_args(argv)
    out = a.outdir or f"/tmp/g6/fleet-{a.seed}"
    t = time.time()
    truth = generate(a.seed, out, days=a.days, scale=a.scale, n_failures=a.failures)
    ns = sum(1 for f in truth["failures"] if f["sudden"])
    print(f"{out}: {len(truth['services'])} services, {len(truth['failures'])} failures "
          f"({ns} sudden), {time.time() - t:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
