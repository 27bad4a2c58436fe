"""PrometheusSource / HistorySource: recorded-shape decoding, then a real Prometheus."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import numpy as np
import pytest

from exporter.config import AnalysisConfig, Duration, SignalConfig, SourceConfig
from exporter.source import SourceError
from exporter.source.history import HistorySource
from exporter.source.prometheus import (
    PrometheusSource,
    QueryError,
    decode_query_range,
    split_grid,
)
from exporter.windows import WindowBuffer, grid
from tests import promstack

STEP = 60.0
T = 180  # backfilled steps

# A body in the exact shape Prometheus 2.x returns for query_range (compact JSON, values as
# [unix_seconds, "string"], NaN/Inf spelled as Go does).
RECORDED = (
    b'{"status":"success","data":{"resultType":"matrix","result":['
    b'{"metric":{"instance":"n1:9100","job":"node"},"values":[[1700000040,"0.25"],'
    b'[1700000100,"0.5"],[1700000160,"NaN"]]},'
    b'{"metric":{"instance":"n2:9100"},"values":[[1700000100,"+Inf"],[1700000160,"1e-3"]]},'
    b'{"metric":{"job":"x"},"values":[]},'
    b'{"metric":{"instance":"n\\"3\\"\\\\values\\":[","job":"node"},"values":[[1700000040.5,"-2"]]}'
    b']},"warnings":["partial response"]}'
)


def analysis(name: str, signals: dict[str, str], labels=("instance",), window=7200.0,
             step=STEP) -> AnalysisConfig:
    return AnalysisConfig(
        name=name,
        entity_labels=tuple(labels),
        window=Duration(window),
        step=Duration(step),
        signals=tuple(SignalConfig(name=k, query=q) for k, q in signals.items()),
    )


def test_decode_recorded_shape():
    dec = decode_query_range(RECORDED, ["instance"])
    # The series without `instance` names no entity: left out and counted, not entity "".
    assert dec.keys == [("n1:9100",), ("n2:9100",), None, ('n"3"\\values":[',)]
    assert dec.dropped == {"missing_entity_label": (1, 'job="x"')}
    assert dec.counts.tolist() == [3, 2, 0, 1]
    assert dec.timestamps.tolist() == [1700000040, 1700000100, 1700000160, 1700000100,
                                       1700000160, 1700000040.5]
    np.testing.assert_array_equal(dec.values, [0.25, 0.5, np.nan, np.inf, 1e-3, -2.0])
    assert dec.warnings == ["partial response"]


def test_decode_fast_path_matches_json_path():
    # Whitespace defeats the fast path; the fallback must give the same answer.
    spaced = json.dumps(json.loads(RECORDED), indent=1).encode()
    a, b = decode_query_range(RECORDED, ["instance", "job"]), decode_query_range(
        spaced, ["instance", "job"])
    assert a.keys == b.keys
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    np.testing.assert_array_equal(a.values, b.values)


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b'{"status":"error","errorType":"bad_data","error":"parse error"}', "bad_data: parse error"),
        (b'{"status":"success","data":{"resultType":"vector","result":[]}}', "resultType"),
        (b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},'
         b'"values":[[1,"abc"]]}]}}', "non-numeric"),
        (b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},'
         b'"values":[[1,"1"]', "invalid JSON"),
        (b"<html>bad gateway</html>", "invalid JSON"),
        (b'[1,2]', "not a JSON object"),
    ],
)
def test_decode_errors(body, fragment):
    with pytest.raises(QueryError, match=fragment.replace("(", r"\(")):
        decode_query_range(body, ["instance"])


def test_split_grid_respects_limit():
    ts = grid(0, 60 * 25_000, 60)
    chunks = split_grid(ts, 11_000)
    assert [round((e - s) / 60) + 1 for s, e in chunks] == [11_000, 11_000, 3_001]
    assert chunks[0][0] == 0 and chunks[-1][1] == ts[-1]
    assert all(b[0] - a[1] == 60 for a, b in zip(chunks, chunks[1:], strict=False))


# ------------------------------------------------------------------------------------------
# Real Prometheus with backfilled data ending just before now


def expected(n: int, offset: float) -> np.ndarray:
    """Known values: series i at step k is offset + i + k / 1000 (exact in float text)."""
    return offset + np.arange(n)[:, None] + np.arange(T)[None, :] / 1000.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    promstack.ensure_binaries()
    end = np.floor((time.time() - 300) / STEP) * STEP  # never backfill past now
    ts = end - STEP * np.arange(T - 1, -1, -1)
    small = [f"s{i}:9100" for i in range(5)]
    big = [f"b{i:02d}:9100" for i in range(50)]
    churn_vals = np.full((5, T), 7.0)
    churn_vals[3, :150] = np.nan  # "late" appears at step 150
    churn_vals[4, 61:] = np.nan  # "gone" stops after step 60
    text = promstack.join_openmetrics(
        promstack.openmetrics_gauges("aura_t_small", {"instance": small, "job": ["a"] * 5}, ts,
                                     expected(5, 0.0)),
        promstack.openmetrics_gauges("aura_t_small2", {"instance": small}, ts,
                                     expected(5, 100.0)),
        promstack.openmetrics_gauges("aura_t_big", {"instance": big}, ts, expected(50, 0.0)),
        promstack.openmetrics_gauges("aura_t_big2", {"instance": big}, ts, expected(50, 100.0)),
        promstack.openmetrics_gauges(
            "aura_t_churn", {"instance": ["c0", "c1", "c2", "late", "gone"]}, ts, churn_vals),
    )
    data = tmp_path_factory.mktemp("prom") / "data"
    promstack.backfill(text, data)
    with promstack.PrometheusProcess(data) as prom:
        yield prom, ts


def run(coro):
    return asyncio.run(coro)


async def _fetch(url: str, an: AnalysisConfig, start: float, end: float, **kw):
    src = PrometheusSource(SourceConfig(url=url), **kw)
    try:
        return await src.fetch(an, start, end), src.http.requests_total
    finally:
        await src.close()


def test_fetch_every_entity_full_window_right_values(stack):
    prom, ts = stack
    an = analysis("small", {"x": "aura_t_small", "y": "aura_t_small2"})
    got, _ = run(_fetch(prom.url, an, ts[60] - 1.0, ts[-1] + 0.5))
    block = got.block
    assert got.errors == {}
    assert got.series == {"x": 5, "y": 5}
    np.testing.assert_array_equal(block.timestamps, ts[60:])
    assert block.entities == tuple((f"s{i}:9100",) for i in range(5))
    np.testing.assert_array_equal(block.values[:, 0], expected(5, 0.0)[:, 60:])
    np.testing.assert_array_equal(block.values[:, 1], expected(5, 100.0)[:, 60:])


def test_one_query_per_signal_whatever_the_entity_count(stack):
    prom, ts = stack
    counter = ("prometheus_http_requests_total", {"handler": "/api/v1/query_range"})
    for metric, n in (("aura_t_small", 5), ("aura_t_big", 50)):
        an = analysis(metric, {"x": metric, "y": metric + "2"})
        before = prom.self_metric(*counter)
        got, sent = run(_fetch(prom.url, an, ts[0], ts[-1]))
        assert len(got.block.entities) == n
        assert not np.isnan(got.block.values).any()
        assert prom.self_metric(*counter) - before == 2
        assert sent == 2


def test_chunked_and_history_equal_single_query(stack):
    prom, ts = stack
    an = analysis("big", {"x": "aura_t_big", "y": "aura_t_big2"})
    whole, _ = run(_fetch(prom.url, an, ts[0], ts[-1]))
    counter = ("prometheus_http_requests_total", {"handler": "/api/v1/query_range"})
    before = prom.self_metric(*counter)

    async def history():
        src = HistorySource(SourceConfig(url=prom.url), chunk_points=50)
        try:
            return await src.fetch_range(an, ts[0], ts[-1])
        finally:
            await src.close()

    hist = run(history())
    assert prom.self_metric(*counter) - before == 2 * 4  # 180 points in chunks of 50
    assert hist.block.entities == whole.block.entities
    np.testing.assert_array_equal(hist.block.timestamps, whole.block.timestamps)
    np.testing.assert_array_equal(hist.block.values, whole.block.values)


def test_range_beyond_11000_points_is_split(stack):
    prom, ts = stack
    an = analysis("fine", {"x": "aura_t_small"}, window=600, step=1.0)
    got, sent = run(_fetch(prom.url, an, ts[-1] - 12_000, ts[-1]))
    assert got.errors == {}
    assert sent == 2
    assert got.block.values.shape == (5, 1, 12_001)
    # Lookback fills the 1 s grid between minute samples; the last point is the last sample.
    assert got.block.values[2, 0, -1] == expected(5, 0.0)[2, -1]


def test_bad_query_is_one_signal_error(stack, caplog):
    prom, ts = stack
    an = analysis("mixed", {"x": "aura_t_small", "bad": "sum(", "many": "aura_t_small or "
                            'label_replace(aura_t_small, "job", "b", "", "")'})
    with caplog.at_level(logging.WARNING):
        got, _ = run(_fetch(prom.url, an, ts[0], ts[-1]))
    assert set(got.errors) == {"bad"}
    assert got.errors["bad"].startswith("bad_data:")
    assert np.isnan(got.block.values[:, 1]).all()
    assert not np.isnan(got.block.values[:, 0]).any()
    # "many" gives two series per instance; the first is kept, and one warning says so.
    assert got.series["many"] == 5
    dup_logs = [r for r in caplog.records if "several series per entity" in r.getMessage()]
    assert len(dup_logs) == 1 and "dropped_series=5" in dup_logs[0].getMessage()


def test_a_query_matching_nothing_is_logged_when_it_starts_and_stops(stack, caplog):
    # A typo in a metric name answers with no series and no error: one warning names the
    # signal (not one per cycle), and one line says when it matches again.
    prom, ts = stack
    empty = analysis("typo", {"x": "aura_t_small", "gone": "aura_t_no_such_metric"})
    fixed = analysis("typo", {"x": "aura_t_small", "gone": "aura_t_small2"})

    async def cycles():
        src = PrometheusSource(SourceConfig(url=prom.url))
        try:
            for an in (empty, empty, fixed, fixed):
                await src.fetch(an, ts[0], ts[-1])
        finally:
            await src.close()

    with caplog.at_level(logging.INFO, logger="exporter.source.prometheus"):
        run(cycles())
    msgs = [r.getMessage() for r in caplog.records]
    warned = [m for m in msgs if "match no series" in m]
    assert len(warned) == 1 and "signals=gone" in warned[0]
    assert len([m for m in msgs if "match series again" in m]) == 1


def test_window_buffer_incremental_churn_and_guard(stack):
    prom, ts = stack
    an = analysis("churn", {"v": "aura_t_churn"}, window=3600)
    buf = WindowBuffer(an.name, an.entity_labels, ("v",), STEP, an.steps, max_entities=4)
    cfg = SourceConfig(url=prom.url)

    async def cycles():
        src = PrometheusSource(cfg)
        seen = {}
        try:
            for k in range(100, T, 10):
                now = ts[k] + 7.0  # the clock is never on the grid
                start = buf.fetch_start(now, float(cfg.overlap))
                got = await src.fetch(an, start, now)
                buf.update(got.block)
                seen[k] = (start, sorted(e[0] for e in buf.entities), buf.dropped_total)
        finally:
            await src.close()
        return seen

    seen = run(cycles())
    # First cycle fetched the whole window, later ones only the overlap plus new steps.
    assert seen[100][0] == ts[100] + 7.0 - 59 * STEP
    assert seen[110][0] == ts[100] - 120.0
    assert seen[100][1] == ["c0", "c1", "c2", "gone"]
    # "gone" last sampled at step 60 (+5 min lookback): out of the 1 h window by step 130.
    assert seen[120][1] == ["c0", "c1", "c2", "gone"]
    assert seen[130][1] == ["c0", "c1", "c2"]
    assert seen[150][1] == ["c0", "c1", "c2", "late"]
    assert seen[100][2] == 0
    window = buf.window()
    np.testing.assert_array_equal(window.timestamps, ts[T - 60 - 9 : T - 9])
    assert not np.isnan(window.values[:3]).any()
    assert (window.values[:3] == 7.0).all()


def test_max_entities_guard_counts_drops(stack):
    prom, ts = stack
    an = analysis("guard", {"x": "aura_t_big"}, window=3600)
    buf = WindowBuffer(an.name, an.entity_labels, ("x",), STEP, an.steps, max_entities=20)
    got, _ = run(_fetch(prom.url, an, ts[-60], ts[-1]))
    buf.update(got.block)
    assert len(buf.entities) == 20 and buf.dropped_total == 30
    assert buf.window().values.shape == (20, 1, 60)


def test_stopped_prometheus_raises_source_error(tmp_path):
    promstack.ensure_binaries()
    an = analysis("down", {"x": "up", "y": "vector(1)"})
    prom = promstack.PrometheusProcess(tmp_path / "data")
    with prom:
        now = time.time()
        got, _ = run(_fetch(prom.url, an, now - 600, now))
        assert got.errors == {}
    with pytest.raises(SourceError, match="unreachable.*connection failed"):
        run(_fetch(prom.url, an, now - 600, now))
