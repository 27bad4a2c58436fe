"""Tests of benchmarks/fleetgen4.py, the independent synthetic Kubernetes fleet (fast: small
fleets of one day, plus one default-size fleet for the fleet-level promises)."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("fleetgen4", ROOT / "benchmarks" / "fleetgen4.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fleetgen4", mod)  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


fg = _load()
SMALL = {"days": 1.0, "scale": 0.5, "n_failures": 5}


def _read(outdir):
    out = Path(outdir)
    with open(out / "data.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    with open(out / "incidents.csv", newline="") as fh:
        inc = list(csv.reader(fh))
    truth = json.loads((out / "truth.json").read_text())
    return rows, inc, truth


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("g4small")
    fg.generate(11, out, **SMALL)
    return out


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    out = tmp_path_factory.mktemp("g4full")
    fg.generate(3, out)
    return out


def test_files_and_formats(small):
    rows, inc, truth = _read(small)
    assert rows[0] == ["timestamp", "pod"] + fg.SIGNALS
    assert 7 <= len(fg.SIGNALS) <= 9
    t0, step = truth["t0"], truth["step"]
    assert step == 30
    seen = set()
    for r in rows[1:]:
        assert len(r) == 2 + len(fg.SIGNALS)
        ts = int(r[0])
        assert (ts - t0) % step == 0 and t0 <= ts < truth["t_end"]
        assert r[1]
        key = (ts, r[1])
        assert key not in seen
        seen.add(key)
        for c in r[2:]:
            if c:
                v = float(c)
                assert math.isfinite(v)
                assert "nan" not in c.lower() and "inf" not in c.lower()
    assert inc[0] == ["start", "end", "pod", "kind"]
    for r in inc[1:]:
        assert int(r[0]) <= int(r[1])
    for key in ("generator", "seed", "t0", "step", "pods", "fleet_events", "failures"):
        assert key in truth
    assert truth["generator"] == "fleetgen4" and truth["seed"] == 11


def test_signals_by_role_and_ranges(small):
    rows, _inc, truth = _read(small)
    sig = fg.SIGNALS
    allowed = defaultdict(set)
    role = {}
    for p in truth["pods"]:
        allowed[p["pod"]].update(p["signals"])
        role[p["pod"]] = p["role"]
    present = defaultdict(lambda: defaultdict(int))
    count = defaultdict(int)
    for r in rows[1:]:
        pod = r[1]
        count[pod] += 1
        for s, c in zip(sig, r[2:], strict=True):
            if not c:
                continue
            assert s in allowed[pod], (pod, s)
            present[pod][s] += 1
            v = float(c)
            if s in ("memory", "cpu", "pvc", "pool"):
                assert 0.0 <= v <= 1.0, (pod, s, v)
            if s in ("latency_p99", "errors_5xx", "consumer_lag", "gc_time", "restarts"):
                assert v >= 0.0
    for pod, n in count.items():
        if role[pod] == "job" or n < 60:
            continue
        # a long-lived service pod has its resource signals most of the time (gaps are brief)
        if role[pod] != "job":
            assert present[pod]["restarts"] >= 0.9 * n, pod
        assert present[pod]["memory"] >= 0.5 * n, pod
    assert any(role[p] == "db" and present[p]["pvc"] for p in present)
    assert all(not present[p]["pvc"] for p in present if role[p] in ("api", "jvm", "consumer"))


def test_restart_counter_never_decreases_within_a_pod_object(small):
    rows, _inc, truth = _read(small)
    last = {}
    sts = {p["pod"] for p in truth["pods"] if p["workload"] == "StatefulSet"}
    k = 2 + fg.SIGNALS.index("restarts")
    for r in rows[1:]:
        if r[1] in sts or not r[k]:
            continue  # a recreated StatefulSet pod keeps its name and starts again at 0
        v = float(r[k])
        assert v >= last.get(r[1], 0.0), r[:2]
        last[r[1]] = v


def test_incidents_match_truth(small):
    rows, inc, truth = _read(small)
    pods_in_data = {r[1] for r in rows[1:]}
    span = defaultdict(lambda: [10**12, 0])
    for r in rows[1:]:
        s = span[r[1]]
        t = int(r[0])
        s[0], s[1] = min(s[0], t), max(s[1], t)
    tf = {(f["start"], f["end"], f["pod"], f["kind"]): f for f in truth["failures"]}
    assert len(inc) - 1 == len(truth["failures"]) >= 3
    for r in inc[1:]:
        key = (int(r[0]), int(r[1]), r[2], r[3])
        assert key in tf, key
        f = tf[key]
        assert r[2] in pods_in_data
        assert span[r[2]][0] <= f["start"] <= span[r[2]][1]
        assert r[3].startswith("sudden_") == f["sudden"]
        if f["sudden"]:
            assert f["precursor_start"] is None and f["signal"] is None
        else:
            assert f["signal"] in fg.SIGNALS
            pod = next(p for p in truth["pods"] if p["pod"] == f["pod"])
            assert f["signal"] in pod["signals"]
            assert truth["t0"] <= f["precursor_start"] < f["start"]
            assert 19 <= (f["start"] - f["precursor_start"]) / 60 <= 361


def test_precursor_is_visible_in_its_signal(small):
    rows, _inc, truth = _read(small)
    series = defaultdict(dict)
    for r in rows[1:]:
        series[r[1]][int(r[0])] = r
    for f in truth["failures"]:
        if f["sudden"] or f["kind"] == "crashloop_config":
            continue
        k = 2 + fg.SIGNALS.index(f["signal"])
        s = series[f["pod"]]
        ps, st = f["precursor_start"], f["start"]
        first = [float(s[t][k]) for t in range(ps, ps + 600, 30) if t in s and s[t][k]]
        last = [float(s[t][k]) for t in range(st - 600, st, 30) if t in s and s[t][k]]
        if first and last:
            assert max(last) > max(first), f["kind"]


def test_deterministic_per_seed(tmp_path, small):
    a = tmp_path / "a"
    fg.generate(11, a, **SMALL)
    for name in ("data.csv", "incidents.csv", "truth.json", "aura.yml"):
        assert (a / name).read_bytes() == (Path(small) / name).read_bytes(), name
    b = tmp_path / "b"
    fg.generate(12, b, **SMALL)
    assert (b / "data.csv").read_bytes() != (a / "data.csv").read_bytes()


def test_default_fleet_promises(full):
    rows, inc, truth = _read(full)
    s = truth["summary"]
    assert 25 <= s["alive_min"] and s["alive_max"] <= 45
    assert 4 <= len(truth["deployments"]) <= 6
    events = {f.get("group") or f["id"] for f in truth["failures"]}
    sudden = {f.get("group") or f["id"] for f in truth["failures"] if f["sudden"]}
    assert 8 <= len(events) <= 14
    assert 2 <= len(sudden) <= 3
    per_pod = defaultdict(int)
    for r in rows[1:]:
        per_pod[r[1]] += 1
    assert max(per_pod.values()) == 8640  # 3 days of 30 s steps
    types = {e["type"] for e in truth["fleet_events"]}
    for t in ("deploy", "hpa_scale", "node_drain", "nightly_batch", "upstream_slowdown"):
        assert t in types, t
    benign = {b["type"] for p in truth["pods"] for b in p["benign"]}
    for t in ("cold_start_warmup", "jvm_heap_sawtooth", "liveness_restart",
              "pvc_growth_and_compaction", "slow_leak_reset_by_deploy"):
        assert t in benign, t


def test_aura_yml(small):
    yaml = pytest.importorskip("yaml")
    path = Path(small) / "aura.yml"
    cfg = yaml.safe_load(path.read_text())
    (an,) = cfg["analyses"]
    assert an["entity_labels"] == ["pod"] and an["step"] == "30s"
    assert an["horizons"] == ["1h", "2h", "4h"]
    names = [s["name"] for s in an["signals"]]
    assert names == fg.SIGNALS
    kinds = {"resource", "latency", "errors", "network", "saturation", "other"}
    for s in an["signals"]:
        assert s["kind"] in kinds and s["query"]
        if "capacity" in s:
            assert isinstance(s["capacity"], float)
    try:
        from exporter.config import load_config
    except ImportError:
        return
    loaded = load_config(str(path))
    got = getattr(loaded, "analyses", None)
    if got:
        assert [getattr(x, "name", None) for x in got[0].signals] == fg.SIGNALS
