"""The reproduction cases of issue 15 (`tests/fixtures/cases/NN/expected.txt`) as tests.

Each test is built from the case's own input (the stub Prometheus' `scenario.py`, the backtest
CSV) and checks what the case's `expected.txt` says a correct product does. Live cases run the
real `PrometheusSource` against the scenario served on 127.0.0.1 and the real `Pipeline`.
"""

from __future__ import annotations

import asyncio
import csv
import importlib.util
import json
import logging
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from aiohttp import web

# Imported here, not first inside a test using capsys: backtest.Progress binds sys.stderr as
# a default argument at import, and capsys' stream is closed after its test.
import exporter.backtest  # noqa: F401
from exporter.cli import main
from exporter.config import parse_config
from exporter.pipeline import Pipeline, load_predictor
from exporter.source.prometheus import PrometheusSource
from exporter.state import StateStore

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "fixtures" / "cases"
STEP = 60.0
NOW = 1_796_040_000.0  # a grid point (multiple of the step)


def _scenario(case: str) -> ModuleType:
    """The case's scenario.py, with the `matrix` helper its stub server injects."""
    spec = importlib.util.spec_from_file_location(f"case{case}", CASES / case / "scenario.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)

    def matrix(series: list[tuple[dict, list]], warnings: Any = None) -> dict:
        return {"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": labels, "values": [[t, v] for t, v in values]}
            for labels, values in series]}}

    mod.matrix = matrix  # type: ignore[attr-defined]
    spec.loader.exec_module(mod)
    return mod


class ScenarioProm:
    """The case's stub Prometheus in-process: `respond(query, start, end, step, ts, n)`."""

    def __init__(self, scenario: ModuleType):
        self.scenario = scenario
        self.calls: dict[str, int] = {}

    async def _query_range(self, request: web.Request) -> web.Response:
        form = await request.post()
        q = str(form["query"])
        start, end = float(str(form["start"])), float(str(form["end"]))
        step = float(str(form["step"]).rstrip("s"))
        ts = [round(start + k * step, 3) for k in range(int((end - start) // step) + 1)]
        self.calls[q] = self.calls.get(q, 0) + 1
        status, body = self.scenario.respond(q, start, end, step, ts, self.calls[q])
        # ensure_ascii as the case's stub: a lone surrogate travels as the escape "\udca0".
        return web.Response(status=status, body=json.dumps(body).encode(),
                            content_type="application/json")

    async def __aenter__(self) -> ScenarioProm:
        app = web.Application()
        app.router.add_post("/api/v1/query_range", self._query_range)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


def _live_config(url: str, labels: list[str], signals: list[dict], state_dir: Path | None,
                 name: str = "nodes") -> Any:
    doc: dict[str, Any] = {
        "source": {"url": url, "timeout": "10s", "retries": 0},
        "interval": "10s",
        "analyses": [{"name": name, "entity_labels": labels, "window": "2h", "step": "1m",
                      "topology": {"bootstrap": "0s"}, "signals": signals}],
    }
    if state_dir is not None:
        doc["state_dir"] = str(state_dir)
    return parse_config(doc)


def _run_live(case: str, labels: list[str], signals: list[dict], cycles: int = 2,
              state_dir: Path | None = None, name: str = "nodes") -> Pipeline:
    """Run `cycles` pipeline cycles against the case's scenario; return the pipeline."""
    async def go() -> Pipeline:
        async with ScenarioProm(_scenario(case)) as prom:
            cfg = _live_config(prom.url, labels, signals, state_dir, name)
            source = PrometheusSource(cfg.source)
            store = StateStore(state_dir) if state_dir is not None else None
            predictor, info = load_predictor(str(ROOT / "models" / "default"))
            assert predictor is not None, info
            pipe = Pipeline(cfg, source, predictor=predictor, state=store, topology_workers=1)
            try:
                for k in range(cycles):
                    await pipe.run_cycle(NOW + STEP * k)
            finally:
                await source.close()
                pipe.close()
            return pipe
    return asyncio.run(go())


def _samples(body: bytes, name: str) -> dict[str, float]:
    out = {}
    for line in body.decode().splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


NODE_SIGNALS = [{"name": "cpu", "query": "cpu_q", "kind": "saturation", "capacity": 1.0},
                {"name": "memory", "query": "mem_q", "kind": "resource", "capacity": 1.0}]


def _promtool_check(body: bytes) -> None:
    if shutil.which("promtool") is None:
        return
    done = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    # Lint complaints are fine (exit 0 only matters for parse errors in the exposition).
    assert b"error while linting" not in done.stdout + done.stderr, done.stderr


# ---------------------------------------------------------------------------- case 02


def test_case02_series_without_entity_label_is_dropped_counted_and_logged_once(caplog):
    with caplog.at_level(logging.WARNING):
        pipe = _run_live("02", ["instance"], NODE_SIGNALS, cycles=2)
    body = pipe.snapshot.body
    levels = _samples(body, "aura_risk_level")
    # Only the two real hosts: no entity with an empty identity, so no critical naming nobody.
    assert sorted(levels) == ['aura_risk_level{analysis="nodes",instance="host-a:9100"}',
                              'aura_risk_level{analysis="nodes",instance="host-b:9100"}']
    assert 'instance=""' not in body.decode()
    # Counted: one label-less series per signal per cycle (2 signals x 2 cycles).
    assert _samples(body, "aura_entities_dropped_total") == {
        'aura_entities_dropped_total{analysis="nodes"}': 4.0}
    dropped_logs = [r for r in caplog.records if "series dropped" in r.getMessage()]
    assert len(dropped_logs) == 1 and "missing_entity_label" in dropped_logs[0].getMessage()
    assert pipe.snapshot.ready
    _promtool_check(body)


# ---------------------------------------------------------------------------- case 06

HTTP_SIGNALS = [{"name": "request_rate", "kind": "other", "query": "rate_q"},
                {"name": "error_ratio", "kind": "errors", "capacity": 1.0, "query": "err_q"},
                {"name": "latency_p99", "kind": "latency", "query": "p99_q"}]


def test_case06_native_histogram_answer_is_a_signal_error_with_no_series(caplog):
    with caplog.at_level(logging.WARNING):
        pipe = _run_live("06", ["service"], HTTP_SIGNALS, cycles=1, name="http")
    body = pipe.snapshot.body
    series = _samples(body, "aura_source_series")
    # 0 series for the histogram signal: AuraSignalNoData (aura_source_series == 0) can fire.
    assert series['aura_source_series{analysis="http",signal="latency_p99"}'] == 0
    assert series['aura_source_series{analysis="http",signal="request_rate"}'] == 2
    errors = _samples(body, "aura_source_query_errors_total")
    assert errors['aura_source_query_errors_total{analysis="http",signal="latency_p99"}'] == 1
    assert errors['aura_source_query_errors_total{analysis="http",signal="request_rate"}'] == 0
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "native histograms" in text and "histogram_quantile" in text
    # The other signals are still analysed.
    assert len(_samples(body, "aura_risk_score")) == 2


def test_case06_generated_rule_fires_on_no_series():
    from exporter.rulegen import alerts

    (nodata,) = [a for a in alerts(parse_config({})) if a.name == "AuraSignalNoData"]
    assert nodata.expr.startswith("aura_source_series") and nodata.expr.endswith("== 0")


# ---------------------------------------------------------------------------- case 08


def test_case08_surrogate_label_drops_that_entity_only(caplog, tmp_path):
    with caplog.at_level(logging.WARNING):
        pipe = _run_live("08", ["instance"], NODE_SIGNALS, cycles=2, state_dir=tmp_path)
    body = pipe.snapshot.body  # encodes: no UnicodeEncodeError
    assert pipe.snapshot.ready and pipe.stats.cycles_total == 2
    assert sorted(_samples(body, "aura_risk_score")) == [
        'aura_risk_score{analysis="nodes",instance="host-a:9100"}',
        'aura_risk_score{analysis="nodes",instance="host-c:9100"}']
    assert not [r for r in caplog.records if "cycle crashed" in r.getMessage()]
    logs = [r.getMessage() for r in caplog.records if "series dropped" in r.getMessage()]
    assert len(logs) == 1 and "invalid_label_value" in logs[0] and "\\udca0" in logs[0]
    assert _samples(body, "aura_entities_dropped_total") == {
        'aura_entities_dropped_total{analysis="nodes"}': 4.0}
    assert _samples(body, "aura_up") == {"aura_up": 1.0}
    _promtool_check(body)


def test_case08_exposition_never_fails_on_unencodable_text():
    from exporter.exposition import _Writer

    w = _Writer()
    w.parts.append('x{instance="host-\udca0"} 1\n')
    assert w.bytes() == b'x{instance="host-?"} 1\n'


# ---------------------------------------------------------------------------- case 09


def _backtest(cfg_path: Path, data: Path, out: Path) -> int:
    return main(["backtest", f"--config.file={cfg_path}", f"--input={data}",
                 f"--output-dir={out}", "--no-plots", "--topology.workers=1"])


def _write_cfg(path: Path, text: str) -> Path:
    path.write_text(text.replace("@ROOT@", str(ROOT)))
    return path


SITES_YML = """interval: 1m
analyses:
  - name: sites
    entity_labels: [site]
    signals:
      - {name: cpu, query: cpu_q, kind: saturation, capacity: 1.0}
      - {name: memory, query: mem_q, kind: resource, capacity: 1.0}
"""


def test_case09_backtest_treats_u00ff_label_values_as_opaque(tmp_path):
    cfg = _write_cfg(tmp_path / "aura.yml", SITES_YML)
    assert _backtest(cfg, CASES / "09" / "data.csv", tmp_path / "bt") == 0
    with open(tmp_path / "bt" / "scores.csv", newline="") as fh:
        sites = {row["site"] for row in csv.DictReader(fh)}
    assert sites == {"paris-01", "l-haÿ-les-roses-01"}


def test_case09_restart_restores_both_entities(tmp_path):
    labels, name = ["site"], "sites"
    first = _run_live("09", labels, NODE_SIGNALS, cycles=2, state_dir=tmp_path, name=name)
    assert len(_samples(first.snapshot.body, "aura_risk_score")) == 2
    again = _run_live("09", labels, NODE_SIGNALS, cycles=2, state_dir=tmp_path, name=name)
    assert again.stats.failures_total.get("state", 0) == 0
    assert sorted(again.runtimes[0].buffer.entities) == [("l-haÿ-les-roses-01",), ("paris-01",)]
    scores = _samples(again.snapshot.body, "aura_risk_score")
    assert sorted(scores) == ['aura_risk_score{analysis="sites",site="l-haÿ-les-roses-01"}',
                              'aura_risk_score{analysis="sites",site="paris-01"}']


def test_case09_entity_keys_cannot_collide():
    from exporter.windows import decode_entity_key, encode_entity_key

    keys = [("a\xffb",), ("a", "b"), ("a,b",), ('a","b',), ("",), ("x\udca0",), ("[1]",)]
    codes = [encode_entity_key(k) for k in keys]
    assert len(set(codes)) == len(keys)
    assert [decode_entity_key(c) for c in codes] == keys
    # State files written before the JSON encoding are still read.
    assert decode_entity_key("a\xffb", 2) == ("a", "b")
    with pytest.raises(ValueError):
        decode_entity_key('["a"]', 2)


# ---------------------------------------------------------------------------- case 13


def test_case13_short_window_is_refused_by_check_config(tmp_path, capsys):
    cfg = _write_cfg(tmp_path / "aura-30m.yml", (CASES / "13" / "aura-30m.yml").read_text())
    assert main(["check-config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "analyses[0].window" in err and "window 30m (trained for 2h)" in err
    ok = _write_cfg(tmp_path / "aura-2h.yml",
                    (CASES / "13" / "aura-30m.yml").read_text().replace("30m", "2h"))
    assert main(["check-config", str(ok)]) == 0


def test_case13_short_window_forecast_abstains_and_status_says_so_live(tmp_path):
    from exporter.lnn.predictor import FailurePredictor

    cfg = _write_cfg(tmp_path / "aura-30m.yml", (CASES / "13" / "aura-30m.yml").read_text())
    data = CASES / "13" / "data.csv"
    assert _backtest(cfg, data, tmp_path / "30m") == 0
    with open(tmp_path / "30m" / "scores.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r["failure_probability_1h"] == "" for r in rows)  # abstained
    assert not any(r["level"] == "2" for r in rows)

    # The status is live: a predictor that abstains for a later analysis says so next cycle.
    from tests.arrays import ArraySource

    predictor = FailurePredictor.load(ROOT / "models" / "default")
    doc = {"analyses": [{"name": "n", "window": "2h", "step": "1m", "signals": NODE_SIGNALS}]}
    src = ArraySource([("h0",)], ("cpu", "memory"), STEP * np.arange(30_000, 30_300),
                      np.full((1, 2, 300), 0.3))
    pipe = Pipeline(parse_config(doc), src, predictor=predictor, topology_workers=1)
    asyncio.run(pipe.run_cycle(STEP * 30_299))
    assert 'status="ok"' in pipe.snapshot.body.decode()
    short = parse_config({**doc, "analyses": [{**doc["analyses"][0], "window": "30m"}]})
    pipe.cfg, pipe.runtimes[0].cfg = short, short.analyses[0]
    asyncio.run(pipe.run_cycle(STEP * 30_299))
    info = _samples(pipe.snapshot.body, "aura_model_info")
    (label,) = info
    assert "abstaining on analysis n: window 30m (trained for 2h)" in label
    pipe.close()


# ---------------------------------------------------------------------------- case 14


# Failed (scores 0.97-1.0, AuraTopologyAnomaly for all three) until the topology rewrite of
# issue 14; passes since, and guards it.
def test_case14_degenerate_windows_get_no_high_anomaly_score(tmp_path):
    data = tmp_path / "data.csv"
    subprocess.run([sys.executable, str(CASES / "14" / "gen.py"), str(data)], check=True)
    cfg = _write_cfg(tmp_path / "aura.yml", """interval: 1m
analyses:
  - name: nodes
    entity_labels: [instance]
    signals:
      - {name: cpu, kind: saturation, capacity: 1.0, query: cpu_q}
      - {name: memory, kind: resource, capacity: 1.0, query: mem_q}
      - {name: network_errors, kind: network, query: err_q}
""")
    assert _backtest(cfg, data, tmp_path / "out") == 0
    with open(tmp_path / "out" / "scores.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for inst in ("idle-const:9100", "all-zero:9100", "two-level:9100"):
        scores = [r["anomaly_score"] for r in rows if r["instance"] == inst]
        assert scores
        values = [float(s) for s in scores if s]
        assert all(math.isfinite(v) for v in values)
        assert all(v <= 0.5 for v in values), (inst, max(values))  # 0 or absent, never high
    with open(tmp_path / "out" / "alerts.csv", newline="") as fh:
        fired = [r for r in csv.DictReader(fh) if r["alertname"] == "AuraTopologyAnomaly"]
    assert not [r for r in fired if r["instance"] != "normal:9100"]


# ---------------------------------------------------------------------------- case 16


def test_case16_selector_with_regex_braces_is_accepted_everywhere(tmp_path):
    from exporter.backtest import alert_semantics
    from exporter.config import load_config
    from exporter.rulegen import alerts, render_rules

    cfg_path = _write_cfg(tmp_path / "aura.yml", (CASES / "16" / "aura.yml").read_text())
    assert main(["check-config", str(cfg_path)]) == 0
    cfg = load_config(cfg_path)
    assert 'cluster=~"prod-[0-9]{2}"' in render_rules(cfg)
    plain = load_config(_write_cfg(tmp_path / "plain.yml", (CASES / "16" / "aura.yml").read_text()
                                   .replace("{2}", "[0-9]")))
    # The selector changes which series the rules read, not the thresholds replayed.
    assert alert_semantics(cfg) == alert_semantics(plain)
    for a in alerts(cfg):
        if a.entity:  # the structured fields say what the expression says
            assert re.fullmatch(rf"{a.metric}\{{.*\}} {re.escape(a.op)} {a.threshold:g}", a.expr)
    assert _backtest(cfg_path, CASES / "13" / "data.csv", tmp_path / "bt") == 0
    assert (tmp_path / "bt" / "alerts.csv").is_file()


# ---------------------------------------------------------------------------- case 17


def test_case17_csv_with_bom_and_crlf_reads_like_plain(tmp_path):
    from exporter.config import parse_config as parse
    from exporter.source.csvfile import CsvSource

    excel = CASES / "17" / "data-excel.csv"
    assert excel.read_bytes().startswith(b"\xef\xbb\xbf") and b"\r\n" in excel.read_bytes()
    analysis = parse({"analyses": [{"name": "nodes", "signals": NODE_SIGNALS}]}).analyses[0]
    a, b = CsvSource(excel, analysis), CsvSource(CASES / "13" / "data.csv", analysis)
    assert a.entities == b.entities
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    cfg = _write_cfg(tmp_path / "aura.yml", (CASES / "13" / "aura-30m.yml").read_text()
                     .replace("30m", "2h"))
    assert _backtest(cfg, excel, tmp_path / "bt") == 0


def test_case13_abstention_is_logged_once_per_analysis(caplog):
    from exporter.lnn.predictor import FailurePredictor
    from exporter.windows import Window

    predictor = FailurePredictor.load(ROOT / "models" / "default")
    doc = {"analyses": [{"name": "n", "window": "30m", "signals": NODE_SIGNALS}]}
    analysis = parse_config(doc).analyses[0]
    window = Window("n", ("instance",), (("h0",),), ("cpu", "memory"), STEP * np.arange(30),
                    np.full((1, 2, 30), 0.3))
    with caplog.at_level(logging.WARNING, logger="exporter.lnn.predictor"):
        for _ in range(3):
            forecast = predictor.predict(window, analysis)
    assert np.isnan(forecast.probability).all()
    logs = [r.getMessage() for r in caplog.records if "forecast abstains" in r.getMessage()]
    assert len(logs) == 1 and "window 30m (trained for 2h)" in logs[0]
