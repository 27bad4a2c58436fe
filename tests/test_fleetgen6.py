"""Tests of benchmarks/fleetgen6.py (synthetic microservice fleet, service-level metrics)."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("fleetgen6", ROOT / "benchmarks" / "fleetgen6.py")
fg = importlib.util.module_from_spec(_spec)
sys.modules["fleetgen6"] = fg
_spec.loader.exec_module(fg)

HEADER = ["timestamp", "namespace", "service"] + fg.SIGNALS
AURA = ROOT / ".venv" / "bin" / "aura"


def _read(path: Path, only: set[str] | None = None):
    """rows per 'ns/service': (timestamps, values[n, signals]); only: keep these services."""
    out: dict[str, tuple[list[float], list[list[float]]]] = {}
    with open(path / "data.csv") as fh:
        header = fh.readline().rstrip("\n").split(",")
        for line in fh:
            p = line.rstrip("\n").split(",")
            k = p[1] + "/" + p[2]
            if only is not None and k not in only:
                continue
            ts, vals = out.setdefault(k, ([], []))
            ts.append(float(p[0]))
            vals.append([float(x) if x else math.nan for x in p[3:]])
    return header, {k: (np.array(t), np.array(v)) for k, (t, v) in out.items()}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("small")
    truth = fg.generate(5, str(d), days=1.0, scale=0.5, n_failures=4)
    header, data = _read(d)
    return d, truth, header, data


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    d = tmp_path_factory.mktemp("full")
    truth = fg.generate(61, str(d))
    return d, truth


def test_files_header_grid(small):
    d, truth, header, data = small
    for f in ("data.csv", "incidents.csv", "truth.json", "aura.yml"):
        assert (d / f).exists()
    assert header == HEADER
    assert truth["step"] == 15
    assert truth["start"] % 86400 == 0
    for _k, (ts, _v) in data.items():
        assert np.all(ts % 15 == 0)
        assert np.all(np.diff(ts) > 0)  # unique and sorted per entity
        assert ts[0] >= truth["start"] and ts[-1] < truth["end"]


def test_rows_match_life_minus_gaps(small):
    d, truth, _h, data = small
    step = truth["step"]
    keys = set()
    with open(d / "data.csv") as fh:
        next(fh)
        for line in fh:
            p = line.split(",", 3)
            keys.add((p[0], p[1], p[2]))
    assert len(keys) == sum(len(ts) for ts, _ in data.values())  # no duplicate rows
    assert {f"{s['namespace']}/{s['service']}" for s in truth["services"]} == set(data)
    for s in truth["services"]:
        k = f"{s['namespace']}/{s['service']}"
        expected = set(range(s["start"], s["end"], step))
        for g in truth["scrape_gaps"]:
            if g["rows"] and k in g["who"]:
                expected -= set(range(g["start"], g["end"], step))
        assert set(data[k][0].astype(int).tolist()) == expected, k


def test_services_fleet_shape(full):
    _d, truth = full
    svcs = truth["services"]
    assert 20 <= len(svcs) <= 35
    roles = {s["role"] for s in svcs}
    assert {"gateway", "sync", "consumer", "cache", "db", "search", "payment"} <= roles
    assert 1 <= len(truth["namespaces"]) <= 2
    assert any(s["start"] > truth["start"] for s in svcs)  # created
    assert any(s["end"] < truth["end"] for s in svcs)  # deleted
    for s in svcs:
        assert 8 - 2 <= len(s["signals"]) <= 10
        if s["role"] == "consumer":
            assert "queue_lag" in s["signals"]
        if "gc_seconds_per_s" in s["signals"]:
            assert s["runtime"] == "jvm"


def test_determinism(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    ta = fg.generate(11, str(a), days=0.5, scale=0.5, n_failures=0)
    tb = fg.generate(11, str(b), days=0.5, scale=0.5, n_failures=0)
    assert ta == tb
    for f in ("data.csv", "incidents.csv", "truth.json", "aura.yml"):
        assert (a / f).read_bytes() == (b / f).read_bytes()
    tc = fg.generate(12, None, days=0.5, scale=0.5, n_failures=0)
    assert tc != ta


def _check_incidents(d: Path, truth: dict):
    with open(d / "incidents.csv") as fh:
        assert fh.readline().strip() == "start,end,namespace,service,kind"
        fh.seek(0)
        rows = list(csv.DictReader(fh))
    fails = truth["failures"]
    assert len(rows) == len(fails)
    t0 = truth["start"]
    names = set()
    for r, f in zip(rows, fails, strict=True):
        assert int(r["start"]) == f["start"] and int(r["end"]) == f["end"]
        assert (r["namespace"], r["service"]) == (f["namespace"], f["service"])
        assert r["kind"] == ("sudden_" if f["sudden"] else "") + f["kind"]
        assert f["start"] >= t0 + 6 * 3600 and f["precursor_start"] >= t0 + 6 * 3600
        assert f["start"] < f["end"] <= truth["end"]
        if f["sudden"]:
            assert f["precursor_start"] == f["start"] and f["kind"] in fg.SUDDEN_KINDS
        else:
            assert f["kind"] in fg.FAILURE_KINDS
            assert 1800 <= f["start"] - f["precursor_start"] <= 6 * 3600 + 60
        names.add((f["namespace"], f["service"]))
    assert len(names) == len(fails)  # distinct services


def test_incidents_small(small):
    d, truth, _h, _data = small
    assert 3 <= len(truth["failures"]) <= 4
    _check_incidents(d, truth)


def test_incidents_and_families_full(full):
    d, truth = full
    fails = truth["failures"]
    assert 10 <= len(fails) <= 14
    n_sudden = sum(f["sudden"] for f in fails)
    assert 1 <= n_sudden <= 4
    assert len({f["kind"] for f in fails}) >= 6
    _check_incidents(d, truth)
    whats = {b["what"] for b in truth["benign"]}
    assert set(fg.BENIGN_FAMILIES) <= whats
    assert not whats & (set(fg.FAILURE_KINDS) | set(fg.SUDDEN_KINDS))
    assert {e["what"] for e in truth["fleet_events"]} >= {"network_blip", "node_pool_upgrade"}
    assert any(len(e["who"]) >= 10 for e in truth["fleet_events"])
    for b in truth["benign"]:
        assert b["start"] <= b["end"] and b["who"] is not None


def test_signal_ranges_and_exposure(small):
    _d, truth, _h, data = small
    idx = {s: i for i, s in enumerate(fg.SIGNALS)}
    for s in truth["services"]:
        k = f"{s['namespace']}/{s['service']}"
        v = data[k][1]
        for name in fg.SIGNALS:
            col = v[:, idx[name]]
            if name not in s["signals"]:
                assert np.all(np.isnan(col)), (k, name)
                continue
            c = col[~np.isnan(col)]
            assert len(c) > 0.5 * len(col), (k, name)
            assert np.all(c >= 0)
            if name in ("error_ratio", "cpu_ratio", "mem_ratio", "pool_in_use_ratio"):
                assert np.all(c <= 1.0), (k, name)
            if name.startswith("latency"):
                assert np.all(c > 0) and np.all(c <= 10.0)
            if name in ("pods_ready", "queue_lag"):
                assert np.all(c == np.round(c))
            if name == "pods_ready":
                assert c.max() <= 60
        p50, p99 = v[:, idx["latency_p50_s"]], v[:, idx["latency_p99_s"]]
        ok = ~np.isnan(p50) & ~np.isnan(p99)
        assert np.all(p50[ok] <= p99[ok] + 1e-12)


def test_daily_cycle_and_propagation(small):
    _d, truth, _h, data = small
    ns = {s["service"]: s["namespace"] for s in truth["services"]}
    ts, v = data[f"{ns['api-gateway']}/api-gateway"]
    rps = v[:, fg.SIGNALS.index("rps")]
    hour = ((ts + truth["tz_offset_hours"] * 3600) % 86400 // 3600).astype(int)
    means = np.array([np.nanmean(rps[hour == h]) for h in range(24)])
    assert means.max() > 2.0 * means.min()
    assert 2 <= int(np.argmin(means)) <= 7  # night trough, local time
    # downstream traffic follows upstream traffic (hour by hour)
    failing = {f["service"] for f in truth["failures"]}
    down = [x for x in ("web-bff", "auth-service", "catalog-service", "cart-service")
            if x not in failing]
    t2, v2 = data[f"{ns[down[0]]}/{down[0]}"]
    h2 = ((t2 + truth["tz_offset_hours"] * 3600) % 86400 // 3600).astype(int)
    m2 = np.array([np.nanmean(v2[h2 == h, 0]) for h in range(24)])
    assert np.corrcoef(means, m2)[0, 1] > 0.9
    # autoscaling moves pods_ready on HPA services
    hpa = [s for s in truth["services"] if s["hpa"]]
    moved = 0
    for s in hpa:
        pr = data[f"{s['namespace']}/{s['service']}"][1][:, fg.SIGNALS.index("pods_ready")]
        pr = pr[~np.isnan(pr)]
        moved += pr.max() - pr.min() >= 2
    assert moved >= 2


def test_low_traffic_latency_noisy(small):
    _d, truth, _h, data = small
    low = next(b for b in truth["benign"] if b["what"] == "low_traffic_noisy_latency")["who"]
    assert low
    j = fg.SIGNALS.index("latency_p99_s")
    for k in low:
        p99 = data[k][1][:, j]
        assert np.isnan(p99).any() or np.nanstd(np.log(p99)) > 0.3


def _window(ts, col, a, b):
    m = (ts >= a) & (ts < b)
    return col[m]


def _precursor_and_incident(d: Path, truth: dict):
    keys = {f"{f['namespace']}/{f['service']}" for f in truth["failures"]}
    _h, data = _read(d, keys)
    for f in truth["failures"]:
        k = f"{f['namespace']}/{f['service']}"
        ts, v = data[k]
        err = v[:, fg.SIGNALS.index("error_ratio")]
        p99 = v[:, fg.SIGNALS.index("latency_p99_s")]
        inc = (ts >= f["start"]) & (ts < f["end"])
        # users are hurt during the incident
        if f["kind"] == "consumer_lag":
            lag = v[:, fg.SIGNALS.index("queue_lag")]
            before = np.nanmedian(_window(ts, lag, f["precursor_start"] - 3 * 3600,
                                          f["precursor_start"]))
            assert np.nanmin(lag[inc]) > 10 * max(before, 10), k
        else:
            assert np.nanmean(err[inc]) > 0.04 or np.nanmean(p99[inc]) > 1.0, (k, f["kind"])
        if f["sudden"]:
            # no precursor: the 2 h before look like the day before
            e0 = np.nanmean(_window(ts, err, f["start"] - 7200, f["start"]))
            assert e0 < 0.03, k
            continue
        col = v[:, fg.SIGNALS.index(f["precursor_signal"])]
        base = np.nanmedian(_window(ts, col, f["precursor_start"] - 3 * 3600,
                                    f["precursor_start"]))
        pre = np.nanmean(_window(ts, col, f["start"] - 900, f["start"]))
        assert pre > 1.5 * base and pre > base + 0.005, (k, f["kind"], base, pre)


def test_precursors_small(small):
    d, truth, _h, _data = small
    _precursor_and_incident(d, truth)


def test_precursors_full(full):
    d, truth = full
    _precursor_and_incident(d, truth)


def test_full_rows(full):
    d, truth = full
    with open(d / "data.csv") as fh:
        assert fh.readline().rstrip("\n").split(",") == HEADER
        n = sum(1 for _ in fh)
    steps = int(truth["days"] * 86400 / truth["step"])
    assert n > 0.9 * steps * (len(truth["services"]) - 3)


def test_aura_yml(small):
    yaml = pytest.importorskip("yaml")
    d, _truth, header, _data = small
    cfg = yaml.safe_load((d / "aura.yml").read_text())
    assert cfg["interval"] == "5m"
    (an,) = cfg["analyses"]
    assert an["entity_labels"] == ["namespace", "service"] == header[1:3]
    assert an["step"] == "15s" and an["window"] == "2h"
    assert an["horizons"] == ["1h", "2h", "4h"]
    assert [s["name"] for s in an["signals"]] == header[3:]
    kinds = {"resource", "latency", "errors", "network", "saturation", "other"}
    for s in an["signals"]:
        assert s["kind"] in kinds and s["direction"] in ("up", "down") and s["query"]
        if s["name"].endswith("_ratio"):
            assert s["capacity"] == 1.0
    if not AURA.exists():
        pytest.skip("no .venv/bin/aura")
    r = subprocess.run([str(AURA), "check-config", "--csv", str(d / "aura.yml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_cli(tmp_path):
    out = tmp_path / "cli"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fleetgen6.py"), "3", str(out),
                        "--days", "0.5", "--scale", "0.5", "--failures", "0"],
                       capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    assert "services" in r.stdout
    truth = json.loads((out / "truth.json").read_text())
    assert truth["failures"] == [] and truth["days"] == 0.5
    assert (out / "incidents.csv").read_text().strip() == "start,end,namespace,service,kind"
