"""Tests for benchmarks/fleetgen5.py (independent synthetic fleet for evaluating AURA)."""
from __future__ import annotations

import csv
import importlib.util
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("fleetgen5", ROOT / "benchmarks" / "fleetgen5.py")
fg = importlib.util.module_from_spec(_spec)
sys.modules["fleetgen5"] = fg
_spec.loader.exec_module(fg)

KINDS = {"resource", "latency", "errors", "network", "saturation", "other"}
RATIO_COLS = ("cpu_util", "mem_used_ratio", "disk_used_ratio")
INSTANCE_RE = re.compile(r"^(10\.42\.\d+\.\d+|[a-z0-9-]+-\d\d\.dc\d):9100$")
ALWAYS_BENIGN = {
    "monday_peak", "traffic_surge", "slow_upstream", "etl_bulk_writes", "scale_out",
    "decommission", "migration", "patch_rolling_reboots", "rolling_deploy",
    "prometheus_restart", "noisy_host", "config_management_runs", "cron_jobs", "logrotate",
    "chronic_nic_drops", "page_cache_buffer_pool", "nightly_backup", "weekly_full_backup",
    "vacuum_compaction", "segment_merges", "index_rollover_deletion",
    "kafka_retention_cleanup", "nightly_etl_full_cpu", "backup_receive_prune",
    "jvm_heap_sawtooth", "slow_drift_plateau", "scrape_gap", "chronic_ecc_corrected",
}


def load(outdir):
    outdir = Path(outdir)
    with open(outdir / "data.csv") as fh:
        rd = csv.reader(fh)
        header = next(rd)
        rows = list(rd)
    with open(outdir / "incidents.csv") as fh:
        inc = list(csv.DictReader(fh))
    truth = json.loads((outdir / "truth.json").read_text())
    return header, rows, inc, truth


def load_fast(outdir):
    """(header, timestamps, instances, float matrix with nan = empty) of a big data.csv."""
    txt = (Path(outdir) / "data.csv").read_text()
    head, body = txt.split("\n", 1)
    header = head.split(",")
    filled = body.replace(",,", ",nan,").replace(",,", ",nan,").replace(",\n", ",nan\n")
    m = np.loadtxt(io.StringIO(filled), delimiter=",",
                   usecols=[0] + list(range(2, len(header))), ndmin=2)
    inst = np.array([line.split(",", 2)[1] for line in body.splitlines()])
    return header, m[:, 0].astype(np.int64), inst, m[:, 1:]


def series(ts, inst, m):
    """instance -> (timestamps, matrix of floats, nan = empty)."""
    out = {}
    order = np.argsort(inst, kind="stable")
    names, first = np.unique(inst[order], return_index=True)
    bounds = list(first) + [len(order)]
    for k, name in enumerate(names):
        sel = order[bounds[k]:bounds[k + 1]]
        out[str(name)] = (ts[sel], m[sel])
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("g5small")
    truth = fg.generate(11, str(d), days=1.5, scale=0.5)
    return d, truth, load(d)


@pytest.fixture(scope="module")
def default(tmp_path_factory):
    d = tmp_path_factory.mktemp("g5default")
    truth = fg.generate(3, str(d))
    header, ts, inst, m = load_fast(d)
    with open(d / "incidents.csv") as fh:
        inc = list(csv.DictReader(fh))
    return d, header, len(ts), inc, truth, series(ts, inst, m)


def test_files_and_formats(small):
    d, truth, (header, rows, inc, _) = small
    for f in ("data.csv", "incidents.csv", "truth.json", "aura.yml"):
        assert (d / f).is_file()
    assert header[:2] == ["timestamp", "instance"]
    assert header[2:] == fg.SIG_NAMES
    assert 8 <= len(header) - 2 <= 11
    seen = set()
    for r in rows:
        assert len(r) == len(header)
        assert r[0].isdigit() and int(r[0]) % 60 == 0
        assert INSTANCE_RE.match(r[1]), r[1]
        assert (r[0], r[1]) not in seen
        seen.add((r[0], r[1]))
    # one row per entity per step of its lifetime
    n = sum((e["end"] - e["start"]) // 60 for e in truth["entities"])
    assert len(rows) == n
    assert truth["start"] % 86400 == 0
    styles = {bool(re.match(r"^10\.", e["instance"])) for e in truth["entities"]}
    assert styles == {True, False}
    # some signals are not exposed by some roles
    for e in truth["entities"]:
        if e["role"] == "batch":
            assert "http_p99_latency_s" not in e["signals"]
    j = header.index("replication_lag_s")
    assert any(r[j] == "" for r in rows) and any(r[j] != "" for r in rows)


def test_determinism(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    fg.generate(5, str(a), days=1.0, scale=0.4)
    fg.generate(5, str(b), days=1.0, scale=0.4)
    fg.generate(6, str(c), days=1.0, scale=0.4)
    for f in ("data.csv", "incidents.csv", "truth.json", "aura.yml"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    assert (a / "data.csv").read_bytes() != (c / "data.csv").read_bytes()


def test_incidents_only_for_failures(small, default):
    for truth, inc in ((small[1], small[2][2]), (default[4], default[3])):
        fails = truth["failures"]
        assert len(inc) == len(fails)
        lives = {e["instance"]: (e["start"], e["end"]) for e in truth["entities"]}
        for row, f in zip(inc, fails, strict=True):
            s, e = int(row["start"]), int(row["end"])
            assert (s, e, row["instance"], row["kind"]) == (f["start"], f["end"], f["instance"],
                                                           f["kind"])
            assert truth["start"] <= s < e <= truth["end"]
            assert lives[row["instance"]][0] <= s and e <= lives[row["instance"]][1]
            assert row["kind"].startswith("sudden_") == f["sudden"]
            if f["sudden"]:
                assert f["precursor_start"] is None
            else:
                assert truth["start"] <= f["precursor_start"] < s
                assert 0.5 <= f["precursor_hours"] <= 30.0
        assert len({f["instance"] for f in fails}) == len(fails)


def test_default_fleet_size_and_failures(default):
    _, header, n_rows, inc, truth, per = default
    n_inst = len(per)
    assert 30 <= len(truth["entities"]) <= 55 and n_inst == len(truth["entities"])
    sudden = [f for f in truth["failures"] if f["sudden"]]
    slow = [f for f in truth["failures"] if not f["sudden"]]
    assert 2 <= len(sudden) <= 3
    assert 8 <= len(slow) <= 14
    assert truth["end"] - truth["start"] == 8 * 86400
    assert pytest.approx(n_rows, rel=0.25) == 40 * 8 * 1440


def test_every_benign_family_present(default):
    truth = default[4]
    fams = {b["what"] for b in truth["benign"]}
    missing = ALWAYS_BENIGN - fams
    assert not missing, missing
    failing = {f["instance"] for f in truth["failures"]}
    for b in truth["benign"]:
        assert b["start"] < b["end"]
    # benign events happen on hosts that never fail too
    who = {w for b in truth["benign"] if isinstance(b["who"], list) for w in b["who"]}
    assert who - failing


def test_signals_in_plausible_ranges(default):
    _, header, _, _, _, per = default
    allm = np.vstack([m for _, m in per.values()])
    col = {h: allm[:, i] for i, h in enumerate(header[2:])}
    for h in RATIO_COLS:
        v = col[h][~np.isnan(col[h])]
        assert v.min() >= 0 and v.max() <= 1.0
    v = col["mem_used_ratio"]
    assert np.nanpercentile(v, 95) > 0.8          # buffer pools / caches look "full"
    for h in ("disk_io_latency_s", "http_p99_latency_s"):
        v = col[h][~np.isnan(col[h])]
        assert v.min() > 0 and v.max() < 60 and np.median(v) < 1
    for h in ("net_rx_drops_per_s", "errors_per_s", "ecc_corrected_per_s", "replication_lag_s"):
        v = col[h][~np.isnan(col[h])]
        assert v.min() >= 0
    v = col["net_rx_drops_per_s"]
    assert np.allclose(np.round(v[~np.isnan(v)] * 300), v[~np.isnan(v)] * 300, atol=0.02)
    v = col["open_fds"][~np.isnan(col["open_fds"])]
    assert v.max() <= fg.FD_LIMIT and v.min() > 0
    assert np.nanmin(col["uptime_s"]) >= 0
    # every column has missing samples somewhere, and whole rows go missing (host down)
    assert all(np.isnan(c).any() for c in col.values())
    assert np.isnan(allm).all(axis=1).any()


def test_daily_and_weekly_cycle(default):
    _, header, _, _, truth, per = default
    tz = truth["tz_offset_hours"]
    j = header.index("cpu_util") - 2
    edge = [e["instance"] for e in truth["entities"] if e["role"] in ("edge", "app_go")]
    ts = np.concatenate([per[i][0] for i in edge])
    cpu = np.concatenate([per[i][1][:, j] for i in edge])
    loc = ts + tz * 3600
    hod = (loc % 86400) // 3600
    dow = (loc // 86400 + 3) % 7
    day = np.nanmedian(cpu[(hod >= 10) & (hod < 16) & (dow < 5)])
    night = np.nanmedian(cpu[(hod >= 2) & (hod < 5) & (dow < 5)])
    weekend = np.nanmedian(cpu[(hod >= 10) & (hod < 16) & (dow >= 5)])
    assert day > 1.5 * night
    assert day > 1.15 * weekend


def test_benign_alarming_patterns(default):
    _, header, _, _, truth, per = default
    failing = {f["instance"] for f in truth["failures"]}
    j = header.index("cpu_util") - 2
    batch = [e["instance"] for e in truth["entities"]
             if e["role"] == "batch" and e["instance"] not in failing]
    assert any(np.nanmax(per[i][1][:, j]) > 0.9 for i in batch)
    ju = header.index("uptime_s") - 2
    resets = 0
    for _ts, m in per.values():
        u = m[:, ju]
        ok = ~np.isnan(u)
        resets += int((np.diff(u[ok]) < 0).sum())
    assert resets >= 5                    # patch-day reboots
    jl = header.index("replication_lag_s") - 2
    reps = [e["instance"] for e in truth["entities"]
            if e["role"] == "db_replica" and e["instance"] not in failing]
    assert max((np.nanmax(per[i][1][:, jl]) for i in reps), default=999) > 60   # lag spikes that catch up


def test_precursor_visible(default):
    _, header, _, _, truth, per = default
    for f in truth["failures"]:
        ts, m = per[f["instance"]]
        if f["sudden"]:
            down = (ts >= f["start"]) & (ts < f["end"])
            assert np.isnan(m[down]).all(), f
            continue
        v = m[:, header.index(f["signal"]) - 2]
        p0, s = f["precursor_start"], f["start"]
        a = np.nanmedian(v[(ts >= p0 - 3 * 3600) & (ts < p0 + 600)])
        b = np.nanmedian(v[(ts >= s - 900) & (ts < s)])
        assert b > a, f
        if f["signal"] in RATIO_COLS:
            assert b - a >= 0.03, (f, a, b)
        else:
            assert b >= 1.5 * a + 1e-6, (f, a, b)
        if f["signal"] == "disk_used_ratio":
            assert np.nanmax(v[(ts >= s) & (ts < f["end"])]) > 0.99
        if f["signal"] == "open_fds":
            assert np.nanmax(v[(ts >= s - 600) & (ts < f["end"])]) > 0.95 * fg.FD_LIMIT


def test_aura_yml(small):
    d, truth, (header, *_rest) = small
    cfg = yaml.safe_load((d / "aura.yml").read_text())
    assert len(cfg["analyses"]) == 1
    a = cfg["analyses"][0]
    assert a["entity_labels"] == ["instance"]
    assert a["window"] == "2h" and a["step"] == "1m" and cfg["interval"] == "5m"
    assert a["horizons"] == ["1h", "2h", "4h"]
    names = [s["name"] for s in a["signals"]]
    assert names == header[2:]
    for s in a["signals"]:
        assert s["kind"] in KINDS
        assert isinstance(s["query"], str) and len(s["query"]) > 10
    caps = {s["name"]: s.get("capacity") for s in a["signals"]}
    assert caps["disk_used_ratio"] == 1 and caps["mem_used_ratio"] == 1
    assert caps["open_fds"] == fg.FD_LIMIT


def test_check_config_accepts(small):
    aura = ROOT / ".venv" / "bin" / "aura"
    if not aura.exists():
        pytest.skip("aura not installed")
    r = subprocess.run([str(aura), "check-config", "--csv", str(small[0] / "aura.yml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_lifetimes(default):
    _, _, _, _, truth, per = default
    ents = truth["entities"]
    assert any(e["scale_out"] for e in ents)
    assert any(e["decommissioned"] for e in ents)
    mig = [e for e in ents if e["migrated_from"]]
    assert mig
    for e in ents:
        ts = per[e["instance"]][0]
        assert ts.min() == e["start"] and ts.max() == e["end"] - 60
    old = next(e for e in ents if e["instance"] == mig[0]["migrated_from"])
    assert old["end"] <= mig[0]["start"] and old["role"] == mig[0]["role"]


def test_cli(tmp_path):
    out = tmp_path / "cli"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fleetgen5.py"), "7", str(out),
                        "--days", "1", "--scale", "0.3", "--failures", "4"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    truth = json.loads((out / "truth.json").read_text())
    assert truth["days"] == 1.0 and len(truth["failures"]) <= 4
