"""The console's view models, history, alerts and HTTP side (no browser; see
tests/test_console_browser.py for the pages)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import functools
import gzip
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, replace

import aiohttp
import bcrypt
import numpy as np
import pytest
from aiohttp import web

from exporter.config import Config, ConsensusConfig
from exporter.console import alerts as console_alerts
from exporter.console import fleetmap, views
from exporter.console.diagram import entity_diagram
from exporter.console.health import exporter_health
from exporter.console.history import History
from exporter.results import AnalysisResult, Consensus
from exporter.server import make_app
from exporter.webconfig import WebConfig, load_web_config
from exporter.windows import Window

XSS = "<script>window.__xss=1</script><img src=x onerror=window.__xss=2>"


@functools.lru_cache(maxsize=1)
def demo_snapshots(cycles: int = 3) -> tuple:
    """`cycles` consecutive snapshots of the 12-entity demo fleet (one simulated minute apart)."""
    from exporter.pipeline import Pipeline, load_predictor
    from exporter.source.simulator import SimulatorSource, demo_config, demo_fleet

    cfg = demo_config()
    now = 1_800_000_000.0
    fleet = demo_fleet(now, entities=12)
    predictor, info = load_predictor(cfg.model.path)
    pipeline = Pipeline(cfg, SimulatorSource(fleet), predictor=predictor, model_info=info,
                        topology_workers=1)
    try:
        snaps = tuple(asyncio.run(pipeline.run_cycle(now + 60 * k)) for k in range(cycles))
    finally:
        pipeline.close()
    return cfg, snaps


def with_entity_names(snapshot, names: dict[str, str]):
    """The snapshot with entity label values renamed (old -> new), e.g. to an XSS payload."""
    results = []
    for r in snapshot.results:
        keys = tuple(tuple(names.get(v, v) for v in k) for k in r.entities)
        window = dataclasses.replace(r.window, entities=keys)
        results.append(dataclasses.replace(r, entities=keys, window=window))
    return dataclasses.replace(snapshot, results=tuple(results))


def _result(level, risk, values, *, analysis="a") -> AnalysisResult:
    e = len(level)
    entities = tuple((f"e{i}",) for i in range(e))
    window = Window(analysis, ("instance",), entities, ("cpu",),
                    np.arange(values.shape[2], dtype=float) * 60, values)
    consensus = Consensus(("x",), np.asarray(risk, dtype=float), np.asarray(level),
                          np.ones(e, dtype=int), ("none",) * e, np.full(e, np.nan),
                          np.ones((e, 1)), np.ones((e, 1), dtype=bool), ("",) * e)
    return AnalysisResult(analysis, ("instance",), entities, ("cpu",), window,
                          consensus=consensus)


@dataclass
class _Snap:
    results: tuple = ()
    created: float = 0.0
    body: bytes = b"aura_up 1.0\n"
    ready: bool = True

    @property
    def body_gzip(self) -> bytes:
        return gzip.compress(self.body)


# ------------------------------------------------------------------------------ history


def test_history_is_bounded_by_span_and_spacing():
    h = History(span=3600, spacing=300)
    r = _result([0, 1], [0.1, 0.6], np.ones((2, 1, 5)))
    recorded = [h.record(t, (r,)) for t in range(0, 7200 + 1, 60)]
    assert sum(recorded) == 7200 // 300 + 1  # one frame per 300 s
    assert h.frames("a") == 3600 // 300 + 1  # only the last hour kept
    times, values = h.series("a", ("e1",))
    assert times[0] == 7200 - 3600 and times[-1] == 7200
    assert values.shape == (13, 4) and np.allclose(values[:, 0], 0.6) and (values[:, 1] == 1).all()
    assert h.series("a", ("nobody",))[0].size == 0


def test_history_follows_entity_churn():
    h = History(span=1000, spacing=1)
    h.record(0, (_result([0, 0], [0.1, 0.2], np.ones((2, 1, 3))),))
    # e0 disappears, e1 moves to row 0 (a new result with a single entity named e1).
    r = _result([2], [0.9], np.ones((1, 1, 3)))
    r = dataclasses.replace(r, entities=(("e1",),))
    h.record(10, (r,))
    times, values = h.series("a", ("e1",))
    assert times.tolist() == [0, 10] and np.allclose(values[:, 0], [0.2, 0.9])
    t, aligned = h.aligned("a", (("e0",), ("e1",)), 0)
    assert np.allclose(aligned[0], [0.1, 0.2]) and np.isnan(aligned[1, 0])
    assert aligned[1, 1] == pytest.approx(0.9)


# ------------------------------------------------------------------------------ fleet view


def test_entity_without_recent_samples_is_no_data_never_ok():
    values = np.ones((3, 1, 10))
    values[1, :, -2:] = np.nan  # scrapes of e1 stopped
    r = _result([0, 0, -1], [0.33, 0.33, np.nan], values)
    a = views.fleet_analysis(r)
    col = {c: i for i, c in enumerate(a.columns)}
    assert a.ints[:, col["nodata"]].tolist() == [0, 1, 0]
    assert views.level_counts((a,)) == {"critical": 0, "warning": 0, "ok": 1, "undecided": 1,
                                        "nodata": 1}
    rows = a.rows()
    assert rows[2][col["risk"]] is None and rows[2][col["level"]] == -1
    assert rows[0][col["risk"]] == 33


def test_diff_sends_only_changed_rows_and_everything_when_entities_change():
    values = np.ones((3, 1, 10))
    s1 = views.fleet_state(_Snap((_result([0, 0, 0], [0.1, 0.2, 0.3], values),)), 1, {})
    s2 = views.fleet_state(_Snap((_result([0, 1, 0], [0.1, 0.7, 0.3], values),)), 2, {})
    d = views.diff(s1, s2)
    assert d["type"] == "diff" and d["base"] == 1 and d["seq"] == 2
    [a] = d["analyses"]
    # Row 1 changed level (0 -> 1) and risk (20 -> 70): gap 2 from the start index -1.
    assert a["cols"] == {"level": {"i": [2], "v": [1]}, "risk": {"i": [2], "v": [70]}}
    r3 = _result([0, 0], [0.1, 0.2], np.ones((2, 1, 10)))
    d3 = views.diff(s2, views.fleet_state(_Snap((r3,)), 3, {}))
    assert d3["analyses"][0]["full"] is True and len(d3["analyses"][0]["rows"]) == 2


def test_fast_json_text_equals_the_plain_encoding():
    values = np.ones((3, 1, 10))
    values[2, :, -2:] = np.nan
    s1 = views.fleet_state(_Snap((_result([0, -1, 2], [0.1, np.nan, 0.9], values),)), 1,
                           {"up": 1.0})
    s2 = views.fleet_state(_Snap((_result([0, 1, 2], [0.1, 0.7, 0.9], values),)), 2, {})
    assert json.loads(s1.to_text()) == s1.to_json()
    assert views.diff(None, s1) == s1.to_json()
    cols = views.diff(s1, s2)["analyses"][0]["cols"]
    # Applying the diff to the old rows gives the new rows (as fleet.js does).
    rows = s1.analyses[0].rows()
    index = {c: j for j, c in enumerate(s1.analyses[0].columns)}
    for col, change in cols.items():
        row = -1
        for gap, value in zip(change["i"], change["v"], strict=True):
            row += gap
            rows[row][index[col]] = value
    assert rows == s2.analyses[0].rows()
    # Rows are encoded a chunk at a time: across chunk boundaries, and with no rows at all.
    for e in (0, views.ROWS_PER_CHUNK, 2 * views.ROWS_PER_CHUNK + 1):
        level = np.arange(e) % 4 - 1
        risk = np.where(np.arange(e) % 3 == 0, np.nan, np.linspace(0, 1, e))
        a = views.fleet_state(_Snap((_result(level, risk, np.ones((e, 1, 10))),)), 1, {})
        assert json.loads(a.to_text()) == a.to_json()


def test_fleet_map_separates_two_groups_and_keeps_its_orientation():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.1, (20, 6))
    b = rng.normal(3, 0.1, (20, 6))
    pos = fleetmap.embed(np.vstack([a, b]))
    assert np.isfinite(pos).all() and pos.min() >= 0 and pos.max() <= 1
    gap = abs(pos[:20, 0].mean() - pos[20:, 0].mean())
    assert gap > 0.6  # the first component splits the groups across the map
    assert np.allclose(fleetmap.embed(np.vstack([a, b])[::-1])[::-1], pos, atol=1e-9)
    feats = np.vstack([a, b])
    feats[3] = np.nan
    assert np.isnan(fleetmap.embed(feats)[3]).all()
    assert fleetmap.outliers(np.array([0.2, 0.5, np.nan])).tolist() == [False, True, False]
    # One far outlier does not squeeze the others: the axes come from the rest.
    far = np.vstack([a, b, np.full((1, 6), 1e3)])
    fit = np.ones(41, dtype=bool)
    fit[-1] = False
    pos = fleetmap.embed(far, fit=fit)
    inner = fleetmap.INNER_HI - fleetmap.INNER_LO
    assert np.ptp(pos[:40, 0]) == pytest.approx(inner)
    # ... and the outlier is drawn in the compressed margin, inside the map, not on its border.
    assert fleetmap.INNER_HI < pos[40].max() < 0.98 and pos.min() > 0.02
    # Farther stays farther along an axis (the break keeps the order).
    farther = fleetmap.embed(np.vstack([far, np.full((1, 6), 2e3)]), fit=np.append(fit, False))
    assert farther[41, 0] > farther[40, 0]


def test_fleet_map_clusters_two_groups_and_leaves_a_blob_whole():
    rng = np.random.default_rng(1)
    two = np.vstack([rng.normal(-1, 0.1, (30, 2)), rng.normal(1, 0.1, (20, 2))])
    member = np.ones(50, dtype=bool)
    member[0] = False  # an outlier: in no cluster
    c = fleetmap.clusters(two, member)
    assert c[0] == -1
    assert set(c[1:30].tolist()) == {0} and set(c[30:].tolist()) == {1}  # numbered by x
    blob = rng.normal(0, 1, (400, 2))
    assert set(fleetmap.clusters(blob).tolist()) == {0}
    big = np.vstack([rng.normal(-1, 0.2, (6000, 2)), rng.normal(1, 0.2, (4000, 2))])
    nan = big.copy()
    nan[5] = np.nan
    c = fleetmap.clusters(nan)
    assert c[5] == -1 and np.bincount(c[c >= 0]).tolist() == [5999, 4000]
    assert np.array_equal(fleetmap.clusters(nan), c)  # deterministic


def test_noisy_circle_has_one_long_h1_bar():
    t = np.linspace(0, 2 * np.pi, 120, endpoint=False)
    rng = np.random.default_rng(1)
    values = np.stack([np.cos(t), np.sin(t)]) + rng.normal(0, 0.02, (2, 120))
    from exporter.config import TopologyConfig

    d = entity_diagram(values, dataclasses.replace(TopologyConfig(), anchor=False))
    lifetimes = sorted((b[1] - b[0] for b in d["h1"]), reverse=True)
    assert lifetimes[0] > 5 * (lifetimes[1] if len(lifetimes) > 1 else 0.01)
    curve = d["betti_curve"]
    assert max(curve["b1"]) >= 1 and curve["b0"][-1] == 1
    # Exact step functions: counts (integers >= 0) stepping at every birth and death, 0 after
    # the last death.
    for b in ("b0", "b1"):
        assert all(isinstance(v, int) and v >= 0 for v in curve[b])
    assert curve["b1"][-1] == 0 and curve["scale"] == sorted(set(curve["scale"]))
    ends = {round(x, 4) for bar in d["h1"] for x in bar} | {x for _, x in d["h0"]}
    assert ends <= {round(s, 4) for s in curve["scale"]}
    for s, b1 in zip(curve["scale"], curve["b1"], strict=True):
        assert b1 == sum(lo <= s < hi for lo, hi in d["h1"])


def test_health_reads_the_exposition():
    body = (b"# TYPE aura_up gauge\naura_up 0.0\n"
            b"# TYPE aura_cycle_duration_seconds gauge\naura_cycle_duration_seconds 1.5\n"
            b"# TYPE aura_cycles_total counter\naura_cycles_total 7.0\n"
            b"# TYPE aura_cycle_failures_total counter\n"
            b'aura_cycle_failures_total{stage="ingest"} 2.0\n'
            b'aura_cycle_failures_total{stage="agents"} 1.0\n'
            b"# TYPE aura_up_other gauge\naura_up_other 5\n")
    h = exporter_health(body, 10.0, True)
    assert h["up"] == 0.0 and h["cycle_seconds"] == 1.5 and h["cycles"] == 7.0
    assert h["failures"] == 3.0 and h["last_success"] is None


def test_promql_link_restricts_the_signal_query_to_the_entity():
    expr = views.signal_expr('rate(x{job="n"}[5m])', ("instance", "job"), ('h"1', "n"))
    assert expr == ('(rate(x{job="n"}[5m])) and on(instance, job) label_replace('
                    'label_replace(vector(1), "instance", "h\\"1", "", ""), "job", "n", "", "")')
    url = views.promql_url("http://prom:9090/", "up")
    assert url == "http://prom:9090/graph?g0.expr=up&g0.tab=0&g0.range_input=1d"


# ------------------------------------------------------------------------------ demo snapshot


def test_consensus_arithmetic_reproduces_the_consensus_risk():
    cfg, snaps = demo_snapshots()
    from exporter.agents import agent_weights

    r = snaps[-1].results[0]
    weights = agent_weights(cfg.agents)
    checked = 0
    for i in range(len(r.entities)):
        votes, arith = views.consensus_arithmetic(r, i, cfg.agents.consensus, weights)
        assert len(votes) == len(r.votes)
        assert arith["level"] == int(r.consensus.level[i])
        if arith["risk"] is not None:
            assert arith["trimmed_mean"] == pytest.approx(arith["consensus_risk"], abs=1e-3)
            assert arith["risk"] == pytest.approx(float(r.consensus.risk[i]), abs=1e-4)
            checked += 1
        assert arith["ballots"] == int(r.consensus.voters[i])
        threshold = getattr(r.consensus, "threshold", None)
        assert arith["gate"] == (None if threshold is None or not np.isfinite(threshold[i])
                                 else pytest.approx(float(threshold[i]), abs=1e-4))
    assert checked == len(r.entities)


def test_entity_detail_of_the_leaking_host():
    cfg, snaps = demo_snapshots()
    r = snaps[-1].results[0]
    found = views.find_entity(snaps[-1], "fleet", {"instance": "host-03:9100"})
    assert found is not None and found[0] is r
    h = History(spacing=1)
    for s in snaps:
        h.record(s.created, s.results)
    from exporter.console.routes import Console  # noqa: F401  (the route builds the same)

    d = views.entity_detail(r, found[1], config=cfg, history=h, band=views.fleet_band(r),
                            prometheus_url="http://prom:9090",
                            runbook_url=cfg.rules.runbook_url)
    json.dumps(d)  # JSON-ready
    i = found[1]
    assert d["level"] == int(r.consensus.level[i]) and d["action"] == r.consensus.action[i]
    assert d["risk"] == pytest.approx(float(r.consensus.risk[i]), abs=1e-4)
    memory = next(s for s in d["signals"] if s["name"] == "memory")
    assert memory["capacity"] == 1.0 and len(memory["band"][0]) == len(memory["values"])
    # A unit only where the signal's name states one (Prometheus' base-unit suffixes).
    units = {s["name"]: s["unit"] for s in d["signals"]}
    assert units == {name: {"latency_seconds": "seconds", "error_ratio": "ratio"}.get(name)
                     for name in r.signals}, units
    assert "label_replace(vector(1)" in urllib.parse.unquote_plus(memory["promql"])
    assert len(d["history"]["times"]) == len(snaps)
    expected = {2: "AuraFailurePredicted.md", 1: "AuraFailureRisk.md"}.get(d["level"])
    assert (d["runbook"] or "").endswith(expected) if expected else d["runbook"] is None


def test_signal_unit_is_the_base_unit_its_name_ends_with():
    assert views.signal_unit("latency_seconds") == "seconds"
    assert views.signal_unit("heap_used_bytes") == "bytes"
    assert views.signal_unit("ratio") == "ratio"
    assert views.signal_unit("memory") is None  # a 0..1 ratio by the preset, but not named so
    assert views.signal_unit("requests_total") is None  # a count, no unit
    assert views.signal_unit("bytes_in") is None


def test_alerts_follow_the_generated_rules_and_their_for():
    cfg, snaps = demo_snapshots()
    parsed = {a.name: console_alerts.parse(a.expr)
              for a in __import__("exporter.rulegen", fromlist=["alerts"]).alerts(cfg)}
    assert parsed["AuraFailureRisk"][0] == "aura_risk_level"
    base = _result([1, 0], [0.7, 0.1], np.ones((2, 1, 5)))
    h = History(spacing=60)
    for_ = float(cfg.rules.failure_risk_for)
    for k in range(int(for_ // 60) + 1):
        h.record(k * 60.0, (base,))
    early = console_alerts.evaluate(_Snap((base,), created=for_ - 60), cfg, h, {})
    late = console_alerts.evaluate(_Snap((base,), created=for_), cfg, h, {})

    def state(data, name):
        return [(x["labels"]["instance"], x["state"])
                for a in data["alerts"] if a["name"] == name for x in a["active"]]

    assert state(early, "AuraFailureRisk") == [("e0", "pending")]
    assert state(late, "AuraFailureRisk") == [("e0", "firing")]
    assert state(late, "AuraFailurePredicted") == []
    # keep_firing_for: e0's level drops after the alert fired; it fires on, kept, until
    # rules.keep_firing_for after the first frame without the condition, then resolves.
    keep = float(cfg.rules.keep_firing_for)
    assert keep > 0
    calm = _result([0, 0], [0.1, 0.1], np.ones((2, 1, 5)))
    h.record(for_ + 60, (calm,))
    kept = console_alerts.evaluate(_Snap((calm,), created=for_ + 120), cfg, h, {})
    (row,) = [x for a in kept["alerts"] if a["name"] == "AuraFailureRisk" for x in a["active"]]
    assert (row["labels"]["instance"], row["state"]) == ("e0", "firing")
    assert row["kept_until"] == for_ + 60 + keep and row["since"] == for_
    gone = console_alerts.evaluate(_Snap((calm,), created=for_ + 60 + keep), cfg, h, {})
    assert state(gone, "AuraFailureRisk") == []
    down = console_alerts.evaluate(_Snap((base,), created=0), cfg, h, {"up": 0.0})
    assert any(a["name"] == "AuraSourceDown" and a["active"] for a in down["alerts"])
    assert not any(a["name"] == "AuraSourceDown" and a["active"] for a in late["alerts"])
    assert {a["name"]: a["evaluated"] for a in late["alerts"]}["AuraDown"] == "prometheus only"
    # The per-analysis fleet-wide event: active where the decision stage held one.
    quiet = replace(base, consensus=replace(base.consensus, fleet_wide_entities=2,
                                            fleet_wide_needed=3))
    wide = replace(base, analysis="b", consensus=replace(base.consensus, fleet_wide_entities=4,
                                                         fleet_wide_needed=3))
    data = console_alerts.evaluate(_Snap((quiet, wide), created=for_), cfg, h, {})
    (fleet,) = [a for a in data["alerts"] if a["name"] == "AuraFleetWideEvent"]
    assert fleet["evaluated"] == "console (now, without for:)"
    assert fleet["active"] == [{"analysis": "b", "state": "active", "value": 4}]


# ------------------------------------------------------------------------------ HTTP


async def _serve(app):
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


@contextlib.asynccontextmanager
async def _served(app):
    """`app` on 127.0.0.1: (base URL, a client session), cleaned up on exit."""
    runner, port = await _serve(app)
    try:
        async with aiohttp.ClientSession() as s:
            yield f"http://127.0.0.1:{port}", s
    finally:
        await runner.cleanup()


def basic_auth_config(tmp_path) -> WebConfig:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  prom: '{hashed}'\n")
    return load_web_config(path)


async def _receive(ws) -> dict:
    """One console WebSocket message: gzip-compressed JSON in a binary frame."""
    return json.loads(gzip.decompress(await ws.receive_bytes(timeout=10)))


def _basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth_covers_pages_assets_api_and_websocket(tmp_path):
    cfg, snaps = demo_snapshots()
    web_cfg = basic_auth_config(tmp_path)

    async def go():
        runner, port = await _serve(make_app(lambda: snaps[0], web_cfg, config=cfg))
        base = f"http://127.0.0.1:{port}"
        paths = ["/", "/entity?analysis=fleet&instance=host-03:9100", "/alerts",
                 "/console/static/fleet.js", "/console/static/console.css",
                 "/api/v1/console/fleet", "/api/v1/console/alerts",
                 "/api/v1/console/entity?analysis=fleet&instance=host-03:9100"]
        try:
            async with aiohttp.ClientSession() as s:
                for path in paths:
                    async with s.get(base + path) as r:
                        assert r.status == 401, path
                    async with s.get(base + path, headers=_basic("prom", "s3cret")) as r:
                        assert r.status == 200, path
                with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                    await s.ws_connect(base + "/api/v1/console/ws")
                assert info.value.status == 401
                async with s.ws_connect(base + "/api/v1/console/ws",
                                        headers=_basic("prom", "s3cret")) as ws:
                    assert (await _receive(ws))["type"] == "full"
        finally:
            await runner.cleanup()

    asyncio.run(go())


def test_tls_serves_the_console_and_its_websocket(tmp_path):
    import ssl
    import subprocess

    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    (tmp_path / "web.yml").write_text("tls_server_config:\n  cert_file: cert.pem\n"
                                      "  key_file: key.pem\n")
    web_cfg = load_web_config(tmp_path / "web.yml")
    cfg, snaps = demo_snapshots()

    async def go():
        runner = web.AppRunner(make_app(lambda: snaps[0], web_cfg, config=cfg))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=web_cfg.ssl_context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        client = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        try:
            async with aiohttp.ClientSession() as s:
                async with s.get(f"https://127.0.0.1:{port}/", ssl=client) as r:
                    assert r.status == 200 and "console.css" in await r.text()
                async with s.ws_connect(f"wss://127.0.0.1:{port}/api/v1/console/ws",
                                        ssl=client) as ws:
                    assert (await _receive(ws))["type"] == "full"
        finally:
            await runner.cleanup()

    asyncio.run(go())


def test_alerts_view_lists_incidents_recorded_by_the_webhook(tmp_path):
    from exporter.incident_recorder import IncidentRecorder, make_handler

    cfg, snaps = demo_snapshots()
    cfg = dataclasses.replace(cfg, state_dir=str(tmp_path))
    recorder = IncidentRecorder(tmp_path, cfg.incidents, {"fleet": ("instance",)})
    alert = {"status": "firing", "labels": {"alertname": "NodeDown", "instance": XSS},
             "annotations": {}, "startsAt": "2027-01-15T08:00:00Z",
             "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "a1"}
    body = json.dumps({"version": "4", "groupKey": "{}", "truncatedAlerts": 0,
                       "status": "firing", "receiver": "aura", "groupLabels": {},
                       "commonLabels": {}, "commonAnnotations": {}, "externalURL": "",
                       "alerts": [alert]})

    async def go():
        app = make_app(lambda: snaps[0], WebConfig(), config=cfg,
                       incidents_handler=make_handler(recorder))
        runner, port = await _serve(app)
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as s:
                async with s.get(base + "/api/v1/console/alerts") as r:
                    assert (await r.json())["incidents"] == {
                        "configured": True, "incidents": [], "total": 0, "skipped": 0}
                async with s.post(base + "/api/v1/alerts", data=body) as r:
                    assert r.status == 200, await r.text()
                async with s.get(base + "/api/v1/console/alerts") as r:
                    inc = (await r.json())["incidents"]
                assert inc["total"] == 1
                [row] = inc["incidents"]
                assert row["labels"] == {"instance": XSS} and row["kind"] == "NodeDown"
                assert row["start"] == 1_800_000_000.0 and row["end"] is None
        finally:
            await runner.cleanup()

    asyncio.run(go())


def test_live_update_and_websockets_do_not_take_scrape_slots():
    cfg, snaps = demo_snapshots()
    current = {"snap": snaps[0]}

    async def go():
        app = make_app(lambda: current["snap"], WebConfig(), config=cfg, max_requests=1)
        runner, port = await _serve(app)
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as s:
                sockets = [await s.ws_connect(base + "/api/v1/console/ws") for _ in range(3)]
                firsts = [await _receive(ws) for ws in sockets]
                assert all(f["type"] == "full" for f in firsts)
                async with s.get(base + "/metrics") as r:  # the only request slot is free
                    assert r.status == 200
                current["snap"] = snaps[1]
                started = time.monotonic()
                update = await _receive(sockets[0])
                assert time.monotonic() - started < 5
                assert update["type"] == "diff" and update["base"] == firsts[0]["seq"]
                assert update["created"] == snaps[1].created
                for ws in sockets:
                    await ws.close()
        finally:
            await runner.cleanup()

    asyncio.run(go())


def _live(app):
    """The console's snapshot watcher (exporter.console.live.Live) mounted on `app`."""
    return next(r.handler.__self__ for r in app.router.routes()
                if r.resource is not None and r.resource.canonical == "/api/v1/console/ws")


def test_fleet_state_is_built_when_published_and_a_socket_since_it_gets_only_diffs():
    cfg, snaps = demo_snapshots()
    current = {"snap": snaps[0]}

    async def go():
        app = make_app(lambda: current["snap"], WebConfig(), config=cfg)
        live = _live(app)
        async with _served(app) as (base, s):
            # No console open: the watcher still builds the state of a new snapshot, so the
            # first page view does not wait for it.
            for _ in range(100):
                if live.state is not None and live.state.created == snaps[0].created:
                    break
                await asyncio.sleep(0.05)
            assert live.state is not None and live.state.created == snaps[0].created
            async with s.get(base + "/api/v1/console/fleet") as r:
                first = await r.json()
            assert first["seq"] == live.state.seq
            # A page holding that state: its socket sends no full state, only the next diff.
            ws = await s.ws_connect(f"{base}/api/v1/console/ws?since={first['seq']}")
            current["snap"] = snaps[1]
            update = await _receive(ws)
            assert update["type"] == "diff" and update["base"] == first["seq"]
            # Any other seq (an older state, another server's): the full state first.
            other = await s.ws_connect(f"{base}/api/v1/console/ws?since={first['seq']}")
            assert (await _receive(other))["type"] == "full"
            for w in (ws, other):
                await w.close()

    asyncio.run(go())


def test_a_page_opened_during_a_build_gets_the_previous_state_at_once_then_the_new_one():
    cfg, snaps = demo_snapshots()
    current = {"snap": snaps[0]}
    gate = threading.Event()

    async def go():
        app = make_app(lambda: current["snap"], WebConfig(), config=cfg)
        live, build = _live(app), _live(app)._build
        async with _served(app) as (base, s):
            async with s.get(base + "/api/v1/console/fleet") as r:
                first = await r.json()
            # Hold the next build until the page is open (a slow build on a busy machine).
            live._build = lambda *a: (gate.wait(20), build(*a))[1]
            current["snap"] = snaps[1]
            for _ in range(100):
                if live._lock.locked():
                    break
                await asyncio.sleep(0.02)
            assert live._lock.locked()
            started = time.monotonic()
            async with s.get(base + "/api/v1/console/fleet") as r:
                during = await r.json()
            assert during["seq"] == first["seq"] and time.monotonic() - started < 5
            ws = await s.ws_connect(f"{base}/api/v1/console/ws?since={during['seq']}")
            gate.set()
            # No client when the build began, so no diff: the page gets the full new state.
            update = await _receive(ws)
            assert update["type"] == "full" and update["seq"] == first["seq"] + 1
            assert update["created"] == snaps[1].created
            await ws.close()

    try:
        asyncio.run(go())
    finally:
        gate.set()


def test_console_pages_forbid_inline_script_and_escape_nothing_server_side():
    cfg, snaps = demo_snapshots()
    snap = with_entity_names(snaps[0], {"host-03:9100": XSS})

    async def go():
        runner, port = await _serve(make_app(lambda: snap, WebConfig(), config=cfg))
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as s:
                async with s.get(base + "/") as r:
                    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
                    assert XSS not in await r.text()  # data never reaches the HTML
                async with s.get(base + "/api/v1/console/fleet") as r:
                    data = await r.json()
                    assert [XSS] in data["analyses"][0]["entities"]
                async with s.get(base + "/api/v1/console/entity",
                                 params={"analysis": "fleet", "instance": XSS}) as r:
                    assert r.status == 200 and (await r.json())["labels"]["instance"] == XSS
                async with s.get(base + "/api/v1/console/entity",
                                 params={"analysis": "fleet", "instance": "nobody"}) as r:
                    assert r.status == 404
                params = {"analysis": "fleet", "instance": XSS}
                async with s.get(base + "/api/v1/console/report",
                                 params={**params, "format": "html"}) as r:
                    page = await r.text()
                    assert r.status == 200 and "attachment" in r.headers["Content-Disposition"]
                    assert XSS not in page and "&lt;script&gt;" in page
                    assert "<script" not in page and page.count("<svg") >= 10  # history + 9
                    assert "raise_memory_limit" in page or "none" in page
                async with s.get(base + "/api/v1/console/report",
                                 params={**params, "format": "md"}) as r:
                    text = await r.text()
                    assert text.startswith("# AURA incident report: ")
                    assert "| agent | risk | confidence | counts as | action | reasons |" in text
                    assert r.headers["Content-Disposition"].endswith('.md"')
                    assert "<" not in r.headers["Content-Disposition"]
        finally:
            await runner.cleanup()

    asyncio.run(go())


def test_default_config_when_none_given():
    assert isinstance(ConsensusConfig(), ConsensusConfig) and Config().analyses == ()


# ------------------------------------------------------------------------------ Alertmanager

AM_CONFIG = """
route: {receiver: blackhole, group_wait: 1s, group_interval: 1s, repeat_interval: 1h}
receivers: [{name: blackhole}]
"""


def _am_post(url, path, body):
    import urllib.request
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 (loopback only)
        return json.loads(r.read() or b"null")


def seed_alertmanager(url: str) -> str:
    """Two alerts (one AURA's, labelled with XSS) and two silences (one for AURA's alerts)
    posted to a real Alertmanager; returns the AURA silence's id."""
    _am_post(url, "/api/v2/alerts", [
        {"labels": {"alertname": "AuraFailurePredicted", "instance": XSS, "analysis": "fleet"},
         "annotations": {"summary": "fails soon"}},
        {"labels": {"alertname": "NodeDown", "instance": "other"}}])
    silence = _am_post(url, "/api/v2/silences", {
        "matchers": [{"name": "alertname", "value": "AuraFailure.*", "isRegex": True,
                      "isEqual": True}],
        "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "test", "comment": "maintenance"})
    _am_post(url, "/api/v2/silences", {  # not for AURA's alerts: not shown
        "matchers": [{"name": "alertname", "value": "NodeDown", "isRegex": False}],
        "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "test", "comment": "other"})
    return str(silence["silenceID"])


def test_alerts_view_shows_the_real_alertmanagers_alerts_and_silences(tmp_path):
    from exporter.config import AlertmanagerConfig
    from tests.promstack import AlertmanagerProcess, ensure_binaries, free_port

    ensure_binaries()
    cfg, snaps = demo_snapshots()

    async def console_alerts(config):
        runner, port = await _serve(make_app(lambda: snaps[0], WebConfig(), config=config))
        try:
            async with aiohttp.ClientSession() as s:
                async with s.get(f"http://127.0.0.1:{port}/api/v1/console/alerts") as r:
                    assert r.status == 200
                    return (await r.json())["alertmanager"]
        finally:
            await runner.cleanup()

    with AlertmanagerProcess(tmp_path / "am", AM_CONFIG) as am:
        silence = seed_alertmanager(am.url)
        with_am = dataclasses.replace(cfg, alertmanager=AlertmanagerConfig(url=am.url + "/"))
        view = asyncio.run(console_alerts(with_am))
    assert view["configured"] and view["error"] is None and view["url"] == am.url
    [alert] = view["alerts"]
    assert alert["labels"] == {"alertname": "AuraFailurePredicted", "instance": XSS,
                               "analysis": "fleet"}
    assert alert["summary"] == "fails soon"
    assert alert["silence_url"].startswith(am.url + "/#/silences/new?filter=%7B")
    assert urllib.parse.unquote(alert["silence_url"].split("filter=")[1]) == (
        '{alertname="AuraFailurePredicted",analysis="fleet",instance="'
        + XSS.replace('"', '\\"') + '"}')  # labels as Alertmanager returns them (sorted)
    [sil] = view["silences"]
    assert sil["id"] == silence and sil["state"] == "active"
    assert sil["matchers"] == 'alertname=~"AuraFailure.*"' and sil["comment"] == "maintenance"
    assert sil["url"] == f"{am.url}/#/silences/{silence}"
    # Alertmanager gone: the page still answers, with the reason.
    gone = dataclasses.replace(cfg, alertmanager=AlertmanagerConfig(
        url=f"http://127.0.0.1:{free_port()}", timeout=3))
    view = asyncio.run(console_alerts(gone))
    assert view["configured"] and view["alerts"] == [] and "ClientConnectorError" in view["error"]
    assert asyncio.run(console_alerts(cfg)) == {"configured": False}


def test_alertmanager_config_errors_name_the_key():
    from exporter.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as info:
        parse_config({"alertmanager": {"url": "am:9093", "timeout": "0s",
                                       "basic_auth": {"username": "a"},
                                       "authorization": {"credentials_file": "t"}}},
                     require_queries=False)
    text = str(info.value)
    assert "alertmanager.url: expected an http(s) URL" in text
    assert "alertmanager.timeout: must be > 0" in text
    assert "alertmanager: at most one of basic_auth and authorization" in text


def test_demo_story_tells_the_prediction_then_the_arrival():
    from exporter.console.story import Failure

    cfg, snaps = demo_snapshots()
    at = snaps[0].created + 3600
    story = [Failure("fleet", {"instance": "host-03:9100"}, "memory_leak", at, at + 1800)]

    async def get(snap, failures):
        runner, port = await _serve(make_app(lambda: snap, WebConfig(), config=cfg,
                                             story=failures))
        try:
            async with aiohttp.ClientSession() as s:
                async with s.get(f"http://127.0.0.1:{port}/api/v1/console/story") as r:
                    return await r.json()
        finally:
            await runner.cleanup()

    before = asyncio.run(get(snaps[0], story))
    assert before["enabled"] and not before["arrived"]
    assert before["failure"]["labels"] == {"instance": "host-03:9100"}
    p = before["prediction"]
    assert p["action"] and p["signal"] and set(p["agents"]) <= {"topology", "forecast",
                                                                 "capacity", "network",
                                                                 "stability"}
    # The entity report from the demo says its time is simulated.
    from exporter.console.story import Story

    async def report(snap, failures):
        runner, port = await _serve(make_app(lambda: snap, WebConfig(), config=cfg,
                                             story=failures))
        try:
            async with aiohttp.ClientSession() as s:
                url = (f"http://127.0.0.1:{port}/api/v1/console/report?format=md&analysis=fleet"
                       "&instance=host-03:9100")
                async with s.get(url) as r:
                    return await r.text()
        finally:
            await runner.cleanup()

    assert "(simulated time, 60x real: aura demo)" in asyncio.run(
        report(snaps[0], Story(tuple(story), 60.0)))
    assert "simulated" not in asyncio.run(report(snaps[0], ()))
    after = asyncio.run(get(dataclasses.replace(snaps[0], created=at + 60), story))
    assert after["arrived"] and after["failure"]["at"] == at
    assert asyncio.run(get(snaps[0], ())) == {"enabled": False}


def test_story_quotes_the_forecast_of_the_first_warning_of_the_latest_run():
    from exporter.console.story import Failure, _first_warned

    h = History(span=86400, spacing=60)
    for t, level, ttf in ((0, 1, 9000), (600, 0, np.nan), (1200, 1, 6840), (1800, 2, 5000)):
        r = _result([level], [0.5], np.ones((1, 1, 5)))
        c = dataclasses.replace(r.consensus, time_to_failure=np.array([ttf]))
        assert h.record(t, (dataclasses.replace(r, consensus=c),))
    f = Failure("a", {"instance": "e0"}, "memory_leak", 12000)
    assert _first_warned(h, f, ("e0",)) == (1200, 6840)  # the run since 1200, its forecast then
    assert _first_warned(h, f, ("nobody",)) == (None, None)
    # The host then goes down (no data: undecided) and the failure arrives: the warning
    # that ran up to it is still the one told (helper-54 saw "did not warn" after 1h54m of
    # warnings); frames after the arrival are not a warning of it.
    for t, level in ((2400, -1), (3000, -1), (13000, 0), (13600, 1)):
        r = _result([level], [0.5], np.ones((1, 1, 5)))
        assert h.record(t, (r,))
    assert _first_warned(h, f, ("e0",)) == (1200, 6840)


def test_baseline_view_is_the_entitys_own_reservoir():
    from exporter.tda.baseline import medoid
    from exporter.tda.features import summaries

    assert medoid(np.array([[0.0], [1.0], [3.0], [10.0]])) == 1
    cfg, snaps = demo_snapshots()
    r = snaps[-1].results[0]
    store = r.topology.baseline
    key = ("host-03:9100",)
    res = store.entries[key].reservoir
    view = store.view(key)
    assert view.windows == len(res) > 0 and view.fitted
    assert (view.first, view.last) == (res.times[0], res.times[-1])
    np.testing.assert_allclose(view.deciles, np.nanmedian(res.deciles, axis=0), rtol=1e-6)
    # The representative is the reservoir's medoid under the score's L1 between summaries.
    vecs = np.nan_to_num(summaries(res.diagrams))
    j = int(np.argmin(np.abs(vecs[:, None] - vecs[None]).sum(axis=(1, 2))))
    assert view.at == res.times[j]
    np.testing.assert_array_equal(view.diagram[0], res.diagrams[j][0])
    np.testing.assert_array_equal(view.diagram[1], res.diagrams[j][1])
    assert len(view.cloud) == len(res.clouds[j]) and len(view.diagram[0]) == len(view.cloud)
    assert store.view(("no-such-host",)) is None


def test_entity_page_draws_its_own_baseline_else_the_fleets():
    from exporter.console.history import History as Hist
    from exporter.console.live import Live
    from exporter.console.routes import Console
    from exporter.tda.baseline import BaselineStore

    cfg, snaps = demo_snapshots()
    r = snaps[-1].results[0]
    i = r.entities.index(("host-03:9100",))
    h = Hist(86400)
    console = Console(Live(lambda: snaps[-1], h), h, cfg)
    d = console._detail(r, i)
    json.dumps(d)
    view = r.topology.baseline.view(r.entities[i])
    b = d["baseline"]
    assert b["windows"] == view.windows and b["fitted"] and b["recomputed"]
    # The baseline diagram: one H0 point per point of the reservoir window's cloud (+ the
    # anchor, which has the infinite bar), as many as the reservoir's stored diagram has.
    assert len(b["baseline"]["h0"]) == len(view.cloud) == b["stored"]["h0"]
    assert len(b["current"]["h0"]) == cfg.analyses[0].topology.score_points
    for s, sig in enumerate(d["signals"]):
        assert sig["band_source"] == "own"
        lo, hi = sig["band"]
        assert len(lo) == len(sig["values"]) and len(set(lo)) == 1 and len(set(hi)) == 1
        assert lo[0] == pytest.approx(view.deciles[s, 0], abs=1e-5)
        assert hi[0] == pytest.approx(view.deciles[s, -1], abs=1e-5)
    from exporter.console.report import html_report

    assert html_report(d).count(f"(band: own baseline, {view.windows} healthy windows)") == \
        len(d["signals"])
    # The leaking host's memory is above its own healthy band.
    memory = next(sig for sig in d["signals"] if sig["name"] == "memory")
    assert memory["values"][-1] > memory["band"][1][0]
    # No reservoir for the entity yet (a new one, or no topology): the fleet's band, so named.
    fresh = BaselineStore(r.signals, 72, 3600.0, 1200.0)
    for topo in (dataclasses.replace(r.topology, baseline=fresh),
                 dataclasses.replace(r.topology, baseline=None)):
        d = console._detail(dataclasses.replace(r, topology=topo), i)
        assert d["baseline"] is None
        fleet = views.fleet_band(r)
        for s, sig in enumerate(d["signals"]):
            assert sig["band_source"] == "fleet"
            assert sig["band"][0] == views._series(fleet[0, s])
        assert html_report(d).count("(band: fleet)") == len(d["signals"])


def test_every_asset_a_page_references_is_served_and_shipped_as_package_data():
    """The console's assets are hand-written package data (no build step generates them): each
    script, stylesheet and image a served page names must answer 200 from the package's
    static/ folder, and be matched by pyproject's package-data globs so a pip install has it."""
    import re
    import tomllib
    from pathlib import Path

    from exporter.console import routes

    root = Path(__file__).resolve().parents[1]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["exporter.console"]
    package = routes.STATIC.parent
    shipped = {p.relative_to(package).as_posix() for p in routes.STATIC.rglob("*") if p.is_file()}
    # setuptools expands package-data globs like Path.glob in the package folder.
    assert shipped <= {p.relative_to(package).as_posix() for g in globs for p in package.glob(g)}
    cfg, snaps = demo_snapshots()
    ref = re.compile(r'<(?:script|link|img)\b[^>]*?\b(?:src|href)="([^"]+)"')

    async def go():
        async with _served(make_app(lambda: snaps[0], WebConfig(), config=cfg)) as (base, s):
            seen = set()
            for path in routes.PAGES:
                async with s.get(base + path, params={"analysis": "fleet",
                                                      "instance": "host-03:9100"}) as r:
                    assert r.status == 200, path
                    urls = ref.findall(await r.text())
                static = [u for u in urls if u.startswith("/console/static/")]
                assert len(static) >= 3, (path, urls)  # the stylesheet and two scripts
                for url in static:
                    async with s.get(base + url) as r:
                        assert r.status == 200, url
                        name = url.removeprefix("/console/")
                        assert await r.read() == (routes.STATIC.parent / name).read_bytes()
                    seen.add(name)
            return seen

    seen = asyncio.run(go())
    assert seen <= shipped and "static/fleet.js" in seen and "static/console.css" in seen
