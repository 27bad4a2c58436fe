"""The fleet simulator: determinism, failure families and their precursors, file formats (checked
by the real promtool and Prometheus), the Source protocol and the live scrape target."""

from __future__ import annotations

import asyncio
import csv
import io
import math
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from exporter.cli import main as cli_main
from exporter.config import AnalysisConfig, Duration, SignalConfig
from exporter.source.sim_writers import (
    node_families,
    render_text,
    write_csv,
    write_incidents_csv,
    write_openmetrics,
)
from exporter.source.simulator import (
    BENIGN_FAMILIES,
    FAMILIES,
    SIGNALS,
    SimulatedFleet,
    SimulationError,
    SimulatorSource,
    demo_config,
    demo_fleet,
    simulate_fleet,
)
from exporter.windows import grid
from tests import promstack

T0 = 1_700_006_400.0  # midnight UTC, a multiple of the step
DAY = 86400.0


def _fleet(**kw) -> SimulatedFleet:
    args = {"seed": 3, "entities": 12, "start": T0, "duration": DAY}
    args.update(kw)
    return simulate_fleet(**args)


# ---------------------------------------------------------------------------------------------
# Generation


def test_same_seed_same_fleet_other_seed_other_fleet():
    a, b, c = _fleet(), _fleet(), _fleet(seed=4)
    assert np.array_equal(a.values, b.values, equal_nan=True)
    assert a.incidents == b.incidents and a.scenarios == b.scenarios
    assert not np.array_equal(a.values, c.values, equal_nan=True)
    assert a.values.shape == (12, len(SIGNALS), len(a.timestamps))
    assert a.label_names == ("instance",) and a.entities[7] == ("host-07:9100",)
    assert np.all(np.diff(a.timestamps) == 60) and a.timestamps[0] == T0


def test_benign_background_does_not_depend_on_injected_failures():
    benign, mixed = _fleet(families=[]), _fleet()
    same = [i for i, s in enumerate(mixed.scenarios) if s == "benign"]
    assert same and len(same) < len(mixed.entities)
    assert np.array_equal(benign.values[same], mixed.values[same], equal_nan=True)


def test_benign_fleet_has_no_incidents_and_stays_below_capacity():
    fleet = simulate_fleet(5, 24, T0, 2 * DAY, families=[])
    assert fleet.incidents == () and set(fleet.scenarios) == {"benign"}
    for name in ("memory", "disk"):
        assert np.nanmax(fleet.signal(name)) < 0.92
    # Realism: heterogeneous hosts, some samples missing, daily cycle visible in cpu.
    cpu_mean = np.nanmean(fleet.signal("cpu"), axis=1)
    assert cpu_mean.min() < 0.2 and cpu_mean.max() > 0.3
    missing = np.isnan(fleet.values).mean()
    assert 0.0005 < missing < 0.05
    kinds = {e.kind for e in fleet.events}
    assert {"traffic_surge", "deploy", "scrape_outage"} <= kinds


def _before(fleet: SimulatedFleet, entity: int, name: str, t: float, minutes: float) -> np.ndarray:
    ts = fleet.timestamps
    sel = (ts >= t - minutes * 60) & (ts < t)
    return fleet.signal(name)[entity, sel]


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_fails_with_its_precursor(family):
    fleet = simulate_fleet(11, 12, T0, DAY, families=[family], failure_fraction=0.1)
    own = [i for i in fleet.incidents if i.kind == family]
    assert own, fleet.incidents
    root = own[0]
    e = fleet.entity_index(root.entity[0])
    ts = fleet.timestamps
    assert fleet.scenarios[e] == family
    assert root.end is not None and 600 <= root.end - root.start <= 3600
    # Down (all signals missing) from the failure until the restart, then back.
    down = (ts >= root.start) & (ts < root.end)
    assert np.isnan(fleet.values[e][:, down]).all()
    after = (ts >= root.end + 300) & (ts < root.end + 1800)
    assert np.isfinite(fleet.values[e][:, after]).mean() > 0.9
    pre = root.start - root.precursor_start
    # The same seed without failures is the counterfactual: nothing differs before the build-up.
    benign = simulate_fleet(11, 12, T0, DAY, families=[])
    quiet = ts < root.precursor_start
    np.testing.assert_array_equal(fleet.values[e][:, quiet], benign.values[e][:, quiet])
    if family == "sudden_crash":
        assert root.predictable is False and pre == 0
        return
    assert root.predictable is True
    assert 1800 <= pre <= 6 * 3600 + 1
    if family == "memory_leak":
        assert pre >= 3600
    early = lambda name: np.nanmedian(_before(fleet, e, name, root.precursor_start, 30))  # noqa: E731
    # The last sample before the failure (the build-up ends exactly at `start`).
    late = lambda name: _before(fleet, e, name, root.start, 5)[~np.isnan(  # noqa: E731
        _before(fleet, e, name, root.start, 5))][-1]
    if family in ("memory_leak", "disk_fill"):
        name = "memory" if family == "memory_leak" else "disk"
        assert late(name) > 0.95 and early(name) < late(name) - 0.15
        series = _before(fleet, e, name, root.start, pre / 60)
        assert np.nanmax(series) <= 1.0
    elif family == "cpu_saturation":
        assert late("cpu") > 0.9 and late("latency_seconds") > 3 * early("latency_seconds")
        assert late("load") > 1.4
    elif family == "connection_exhaustion":
        assert late("connections") > 0.9 and late("error_ratio") > 0.1
        assert late("latency_seconds") > 2 * early("latency_seconds")
    elif family == "network_degradation":
        assert late("network_errors") > 20 * early("network_errors") + 10
        assert late("error_ratio") > 0.1
    elif family == "cascade":
        assert late("latency_seconds") > 2 * early("latency_seconds")
        deps = [i for i in own[1:]]
        assert deps, "a cascade needs dependents in the same service"
        for dep in deps:
            d = fleet.entity_index(dep.entity[0])
            assert fleet.services[d] == fleet.services[e] and fleet.scenarios[d] == "cascade"
            assert dep.start > root.start and dep.predictable
            hit = (ts >= dep.start) & (ts < dep.end)
            assert np.nanmin(fleet.signal("error_ratio")[d, hit]) >= 0.2


def test_extra_benign_families_are_written_never_fail_and_leave_the_rest_alone():
    plain = _fleet(families=[], duration=2 * DAY)
    fleet = _fleet(families=[], duration=2 * DAY, entities=24, benign=BENIGN_FAMILIES)
    kinds = {e.kind for e in fleet.events}
    assert set(BENIGN_FAMILIES) <= kinds, set(BENIGN_FAMILIES) - kinds
    assert fleet.incidents == () and set(fleet.scenarios) == {"benign"}
    # Healthy: below the levels failures reach, however it moves.
    for name, top in (("cpu", 0.98), ("memory", 0.9), ("disk", 0.9), ("connections", 0.92)):
        assert np.nanmax(fleet.signal(name)) <= top
    # They move: sawtooth hosts' disk/memory swing by >= 0.1 and come back down.
    for fam, name in (("sawtooth_disk", "disk"), ("sawtooth_memory", "memory")):
        ent = next(e.entities[0] for e in fleet.events if e.kind == fam)
        x = fleet.signal(name)[ent]
        assert np.nanmax(x) - np.nanmin(x) >= 0.1 and np.nanmin(np.diff(x)) < -0.05
    # Opt-in and drawn apart: the default fleet is unchanged, the background too.
    assert np.array_equal(_fleet(families=[], duration=2 * DAY).values, plain.values,
                          equal_nan=True)
    mixed = _fleet(entities=24, duration=2 * DAY, benign=BENIGN_FAMILIES)
    same = [i for i, s in enumerate(mixed.scenarios) if s == "benign"]
    assert np.array_equal(mixed.signal("memory")[same], fleet.signal("memory")[same],
                          equal_nan=True)
    with pytest.raises(SimulationError, match="unknown benign family"):
        _fleet(benign=["coffee_break"])


def test_all_families_in_a_mixed_fleet_and_bad_family_refused():
    fleet = simulate_fleet(1, 48, T0, 3 * DAY)
    assert {i.kind for i in fleet.incidents} == set(FAMILIES)
    assert [i.start for i in fleet.incidents] == sorted(i.start for i in fleet.incidents)
    with pytest.raises(SimulationError, match="unknown failure family"):
        simulate_fleet(1, 4, T0, DAY, families=["meteor_strike"])


# ---------------------------------------------------------------------------------------------
# Files


def test_csv_round_trips_with_the_design_header():
    fleet = _fleet(entities=5, duration=3 * 3600)
    buf = io.StringIO()
    write_csv(fleet, buf)
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert rows[0] == ["timestamp", "instance", *SIGNALS]
    body = rows[1:]
    assert len(body) == len(fleet.entities) * len(fleet.timestamps)
    got = np.full(fleet.values.shape, np.nan)
    for row in body:
        k = int(round((float(row[0]) - fleet.start) / fleet.step))
        e = fleet.entity_index(row[1])
        got[e, :, k] = [float(c) if c else np.nan for c in row[2:]]
    assert np.array_equal(np.isnan(got), np.isnan(fleet.values))
    ok = ~np.isnan(got)
    np.testing.assert_allclose(got[ok], fleet.values[ok], rtol=1e-7)

    inc = io.StringIO()
    write_incidents_csv(_fleet(), inc)
    lines = list(csv.reader(io.StringIO(inc.getvalue())))
    assert lines[0] == ["start", "end", "instance", "kind"]
    assert len(lines) - 1 == len(_fleet().incidents) > 0
    assert all(r[3] in FAMILIES and float(r[1]) > float(r[0]) for r in lines[1:])


def test_openmetrics_is_accepted_by_promtool_and_ends_in_eof(tmp_path: Path):
    promstack.ensure_binaries()
    fleet = _fleet(entities=4, duration=4 * 3600)
    buf = io.StringIO()
    written = write_openmetrics(fleet, buf, until=fleet.end - 3600)
    text = buf.getvalue()
    assert text.endswith("\n# EOF") and "\r" not in text
    stamps = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line[0] != "#"]
    assert len(stamps) == written and max(stamps) <= fleet.end - 3600
    src = tmp_path / "fleet.om"
    src.write_text(text)
    proc = subprocess.run([promstack.PROMTOOL, "tsdb", "create-blocks-from", "openmetrics",
                           str(src), str(tmp_path / "blocks")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    # Every sample made it into the blocks (promtool silently drops out-of-order ones).
    total = sum(int(line.split()[4]) for line in proc.stdout.splitlines()[1:] if line.strip())
    assert total == written


def test_counters_are_monotone_and_preset_ratios_come_back():
    fleet = _fleet(entities=4, duration=6 * 3600)
    fams = {f.name: f for f in node_families(fleet)}
    for fam in fams.values():
        if fam.type == "counter":
            vals = fam.values[~np.isnan(fam.values)]
            assert vals.size and np.all(np.diff(fam.rates[:, 1:], axis=1) > -np.inf)
            for row in fam.values:
                r = row[~np.isnan(row)]
                assert np.all(np.diff(r) >= 0)
    avail = fams["node_memory_MemAvailable_bytes"].values
    total = fams["node_memory_MemTotal_bytes"].values
    np.testing.assert_allclose(1 - avail / total, fleet.signal("memory"), rtol=1e-9)
    idle = fams["node_cpu_seconds_total"]
    rate = np.diff(idle.values, axis=1) / fleet.step  # per series, idle/system/user
    busy = 1 - rate[0::3 * fleet.cpus]  # host e, cpu 0, idle
    want = fleet.signal("cpu")[:, 1:]
    both = np.isfinite(busy) & np.isfinite(want)
    assert both.mean() > 0.98
    np.testing.assert_allclose(busy[both], want[both], atol=1e-6)


def test_node_preset_queries_read_the_backfilled_fleet(tmp_path: Path):
    """The `node` preset's PromQL, unchanged, returns the simulator's own ratios."""
    from exporter.presets import PRESETS

    promstack.ensure_binaries()
    fleet = _fleet(entities=3, duration=3 * 3600, missing=False)
    buf = io.StringIO()
    write_openmetrics(fleet, buf)
    promstack.backfill(buf.getvalue(), tmp_path / "data")
    at = fleet.start + 2 * 3600
    k = int(round((at - fleet.start) / fleet.step))
    queries = {s["name"]: s["query"] for s in PRESETS["node"]["signals"]}
    with promstack.PrometheusProcess(tmp_path / "data") as prom:
        for name, query in queries.items():
            result = prom.query(query, at)
            got = {r["metric"]["instance"]: float(r["value"][1]) for r in result}
            assert sorted(got) == list(fleet.instances), name
            want = fleet.signal(name)[:, k]
            if name in ("cpu", "network_errors", "network_traffic"):
                # rate()[5m] averages the last few steps.
                want = np.nanmean(fleet.signal(name)[:, k - 4:k + 1], axis=1)
                tol = 0.1
            else:
                tol = 1e-5
            np.testing.assert_allclose([got[i] for i in fleet.instances], want, rtol=tol,
                                       atol=1e-6, err_msg=name)


# ---------------------------------------------------------------------------------------------
# Source


def _analysis(names, step=60.0) -> AnalysisConfig:
    return AnalysisConfig(name="fleet", step=Duration(step),
                          signals=tuple(SignalConfig(name=n, query="x") for n in names))


def test_source_returns_grid_aligned_blocks_of_the_requested_signals():
    fleet = _fleet(entities=6, duration=6 * 3600)
    src = SimulatorSource(fleet)
    start, end = fleet.start + 3600 + 17.5, fleet.start + 2 * 3600 + 31
    fetch = asyncio.run(src.fetch(_analysis(["memory", "bogus", "cpu"]), start, end))
    block = fetch.block
    np.testing.assert_array_equal(block.timestamps, grid(start, end, 60))
    assert block.timestamps[-1] <= end and block.signals == ("memory", "bogus", "cpu")
    assert "bogus" in fetch.errors and fetch.series == {"memory": 6, "cpu": 6}
    assert np.isnan(block.values[:, 1]).all()
    k = ((block.timestamps - fleet.start) / 60).astype(int)
    rows = [fleet.entity_index(e[0]) for e in block.entities]
    np.testing.assert_array_equal(block.values[:, 0], fleet.signal("memory")[rows][:, k])
    np.testing.assert_array_equal(block.values[:, 2], fleet.signal("cpu")[rows][:, k])
    # A coarser analysis step reads the sample at or before each of its grid points.
    coarse = asyncio.run(src.fetch(_analysis(["disk"], 300), start, end)).block
    kc = ((coarse.timestamps - fleet.start) // 60).astype(int)
    np.testing.assert_array_equal(coarse.values[:, 0], fleet.signal("disk")[rows][:, kc])
    # Beyond the fleet's timeline there is nothing.
    late = asyncio.run(src.fetch(_analysis(["cpu"]), fleet.end + 60, fleet.end + 600)).block
    assert late.entities == ()


def test_demo_fleet_and_config():
    now = T0 + 12 * 3600 + 600
    fleet = demo_fleet(now)
    assert len(fleet.entities) == 24 and fleet.start <= now - 4 * 3600
    assert fleet.end >= now + 7 * 86400 - 60  # a week past the 12-hour story: a live fleet
    leaks = [i for i in fleet.incidents if i.kind == "memory_leak"]
    assert len(leaks) == 1 and now + 3600 <= leaks[0].start <= now + 3 * 3600
    assert leaks[0].precursor_start < now  # already building when the demo opens
    net = [i for i in fleet.incidents if i.kind == "network_degradation"]
    assert net and net[0].start > leaks[0].start
    assert any(e.kind == "traffic_surge" and now < e.start < leaks[0].start for e in fleet.events)
    cfg = demo_config()
    (analysis,) = cfg.analyses
    assert analysis.name == "fleet" and analysis.window == 7200 and analysis.step == 60
    assert list(analysis.horizons) == [3600, 7200, 14400]
    kinds = {s.name: (s.kind, s.capacity) for s in analysis.signals}
    assert [s.name for s in analysis.signals] == list(SIGNALS)
    assert kinds["memory"] == ("resource", 1.0) and kinds["connections"] == ("resource", 1.0)
    assert kinds["latency_seconds"][0] == "latency" and kinds["error_ratio"][0] == "errors"
    assert kinds["cpu"][0] == "saturation" and kinds["network_errors"][0] == "network"
    fetch = asyncio.run(SimulatorSource(fleet).fetch(analysis, now - 7200 + 60, now))
    assert fetch.block.values.shape == (24, len(SIGNALS), 120) and not fetch.errors


# ---------------------------------------------------------------------------------------------
# Live target


async def _scrape(fleet: SimulatedFleet, clock) -> str:
    from aiohttp.test_utils import TestClient, TestServer

    from exporter.source.simtarget import make_target_app

    async with TestClient(TestServer(make_target_app(fleet, clock), host="127.0.0.1")) as client:
        resp = await client.get("/metrics")
        assert resp.status == 200 and resp.content_type == "text/plain"
        return await resp.text()


def test_live_target_serves_current_values_that_parse_and_lint():
    from prometheus_client.parser import text_string_to_metric_families

    promstack.ensure_binaries()
    fleet = _fleet(entities=5, duration=6 * 3600, missing=False)
    t = fleet.start + 3 * 3600 + 25
    text = asyncio.run(_scrape(fleet, lambda: t))
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    k = 180
    lat = {s.labels["instance"]: s.value for s in fams["aura_sim_latency_seconds"].samples}
    assert sorted(lat) == list(fleet.instances)
    np.testing.assert_allclose([lat[i] for i in fleet.instances],
                               fleet.signal("latency_seconds")[:, k], rtol=1e-5)
    cpu = [s for s in fams["node_cpu_seconds"].samples
           if s.labels == {"instance": fleet.instances[0], "job": "node", "cpu": "0",
                           "mode": "idle"}]
    (idle,) = [f for f in node_families(fleet) if f.name == "node_cpu_seconds_total"]
    assert idle.values[0, k] < cpu[0].value < idle.values[0, k + 1]
    proc = subprocess.run([promstack.PROMTOOL, "check", "metrics"], input=text,
                          capture_output=True, text=True, timeout=30)
    # node_exporter's own MemAvailable/MemTotal names trip the camelCase lint (exit 3); any
    # other finding, or a parse error (exit 1), fails.
    problems = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert proc.returncode in (0, 3), problems
    assert all(p.startswith("node_memory_Mem") and "camelCase" in p for p in problems), problems
    assert asyncio.run(_scrape(fleet, lambda: fleet.end + 3600)) == ""


def test_backfill_and_live_scrapes_join_without_counter_resets(tmp_path: Path):
    from aiohttp import web

    from exporter.source.simtarget import make_target_app

    promstack.ensure_binaries()
    now = time.time()
    fleet = simulate_fleet(2, 3, now - 3 * 3600, 4 * 3600, families=[], missing=False)
    buf = io.StringIO()
    write_openmetrics(fleet, buf, until=now - 60)
    promstack.backfill(buf.getvalue(), tmp_path / "data")

    loop = asyncio.new_event_loop()
    runner = web.AppRunner(make_target_app(fleet, time.time))
    port = promstack.free_port()
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    config = (promstack.DEFAULT_PROMETHEUS_CONFIG + "scrape_configs:\n  - job_name: sim\n"
              "    honor_labels: true\n    static_configs:\n"
              f"      - targets: ['127.0.0.1:{port}']\n")
    try:
        with promstack.PrometheusProcess(tmp_path / "data", config) as prom:
            deadline = time.time() + 30
            while time.time() < deadline and not prom.query('up{job="sim"} == 1'):
                time.sleep(0.5)
            time.sleep(2.5)  # a few live samples after the backfilled ones
            resets = prom.query('resets(node_cpu_seconds_total{mode="idle"}[4h])')
            assert len(resets) == 3 * fleet.cpus
            assert all(float(r["value"][1]) == 0 for r in resets)
            live = prom.query('count_over_time(node_load5[4h])')
            assert all(float(r["value"][1]) > 150 for r in live)
            assert {r["metric"]["instance"] for r in live} == set(fleet.instances)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.run_until_complete(runner.cleanup())
        loop.close()


# ---------------------------------------------------------------------------------------------
# Command line


@pytest.fixture
def far_zone(monkeypatch):
    """The machine's local time 5 h behind UTC, so a parser reading local time is caught."""
    monkeypatch.setenv("TZ", "EST+05")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_cli_writes_csv_and_incidents_and_refuses_bad_args(tmp_path: Path, capsys, far_zone):
    out, inc = tmp_path / "fleet.csv", tmp_path / "incidents.csv"
    # No zone = UTC (exporter.util.parse_time), never the machine's local time.
    rc = cli_main(["simulate", "--scenario=memory_leak,disk_fill", "--entities=6",
                   "--duration=12h", "--step=1m", "--seed=4", "--start=2023-11-14T00:00:00",
                   f"--output={out}", f"--incidents={inc}", "--failure-fraction=0.34"])
    assert rc == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "timestamp,instance," + ",".join(SIGNALS)
    assert len(lines) == 1 + 6 * (12 * 60 + 1)
    assert lines[1].startswith("1699920000,host-00:9100,")
    kinds = {r["kind"] for r in csv.DictReader(inc.open())}
    assert kinds == {"memory_leak", "disk_fill"}
    for bad in (["--scenario=meteor"], ["--duration=soon"], ["--start=yesterday"],
                ["--entities=0"], ["--serve=nope"]):
        capsys.readouterr()
        rc = cli_main(["simulate", *bad, f"--output={tmp_path / 'x.om'}"])
        assert rc == 2, bad
        assert "aura simulate:" in capsys.readouterr().err


def test_cli_openmetrics_never_goes_past_now(tmp_path: Path):
    out = tmp_path / "fleet.om"
    now = time.time()
    assert cli_main(["simulate", "--scenario=benign", "--entities=2", "--duration=2h",
                     f"--start={now - 3600:.0f}", f"--output={out}"]) == 0
    text = out.read_text()
    assert text.endswith("# EOF")
    last = max(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line[0] != "#")
    assert last <= time.time() and last >= now - 120
    assert math.isfinite(last)
    assert render_text([], np.array([]), now) == b""
