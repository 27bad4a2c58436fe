"""PrometheusSource against a stub HTTP server on 127.0.0.1: faults, retries, auth, TLS."""

from __future__ import annotations

import asyncio
import base64
import shutil
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web

from exporter.config import (
    AnalysisConfig,
    Authorization,
    BasicAuth,
    Duration,
    OAuth2,
    SignalConfig,
    SourceConfig,
    TLSConfig,
)
from exporter.source import SourceError
from exporter.source.http import BACKOFF_CAP_SECONDS, backoff_delay
from exporter.source.prometheus import PrometheusSource

STEP = 60.0
START, END = 1_700_000_040.0, 1_700_000_040.0 + 9 * STEP  # 10 grid points
TS = START + STEP * np.arange(10)

Handler = Callable[[web.Request, dict], Awaitable[web.StreamResponse]]


def matrix(series: list[tuple[dict, list[tuple[float, str]]]], warnings=None) -> web.Response:
    doc: dict = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": m, "values": [[t, v] for t, v in vals]} for m, vals in series]}}
    if warnings:
        doc["warnings"] = warnings
    return web.json_response(doc)


def good(n: int = 3, offset: float = 0.0) -> web.Response:
    return matrix([({"instance": f"h{i}"}, [(t, str(offset + i + k)) for k, t in
                                             enumerate(TS.tolist())]) for i in range(n)])


class Stub:
    """A programmable Prometheus look-alike; `handler(request, form)` answers query_range."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None):
        self.handler = handler
        self.ssl_context = ssl_context
        self.requests: list[tuple[dict, dict]] = []  # (headers, form)
        self.token_requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0

    async def _query_range(self, request: web.Request) -> web.StreamResponse:
        form = dict(await request.post())
        self.requests.append((dict(request.headers), form))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self.handler(request, form)
        finally:
            self.in_flight -= 1

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests.append(dict(await request.post()))
        return web.json_response({"access_token": f"tok{len(self.token_requests)}",
                                  "token_type": "Bearer", "expires_in": 3600})

    async def __aenter__(self) -> Stub:
        app = web.Application()
        app.router.add_post("/api/v1/query_range", self._query_range)
        app.router.add_post("/token", self._token)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        scheme = "https" if self.ssl_context else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


def analysis(*queries: str) -> AnalysisConfig:
    return AnalysisConfig(name="t", entity_labels=("instance",), step=Duration(STEP),
                          signals=tuple(SignalConfig(name=f"s{i}", query=q)
                                        for i, q in enumerate(queries)))


async def fetch(stub: Stub, an: AnalysisConfig, **cfg):
    src = PrometheusSource(SourceConfig(url=stub.url, **cfg))
    try:
        return await src.fetch(an, START, END)
    finally:
        await src.close()


def scenario(handler: Handler, queries=("q",), ssl_context=None, **cfg):
    async def go():
        async with Stub(handler, ssl_context) as stub:
            try:
                return await fetch(stub, analysis(*queries), **cfg), stub
            except SourceError as err:
                return err, stub
    return asyncio.run(go())


def test_good_answer_on_grid():
    async def h(req, form):
        return good()
    got, stub = scenario(h)
    assert got.errors == {} and got.series == {"s0": 3}
    np.testing.assert_array_equal(got.block.timestamps, TS)
    np.testing.assert_array_equal(got.block.values[:, 0], np.arange(3)[:, None] + np.arange(10))
    (headers, form), = stub.requests
    assert form["query"] == "q" and float(form["start"]) == START and float(form["end"]) == END
    assert float(form["step"]) == STEP and "Authorization" not in headers
    assert headers["Accept-Encoding"] == "identity"  # see PromHttp: gzip costs more than it saves


def test_timeout_of_one_signal_is_its_error_only():
    async def h(req, form):
        if form["query"] == "slow":
            await asyncio.sleep(2)
        return good()
    got, stub = scenario(h, queries=("slow", "fast"), timeout=Duration(0.3))
    assert got.errors == {"s0": "timeout after 0.3s"}
    assert np.isnan(got.block.values[:, 0]).all() and not np.isnan(got.block.values[:, 1]).any()
    assert sum(f["query"] == "slow" for _, f in stub.requests) == 1  # timeouts are not retried


def test_all_signals_timing_out_is_a_source_error():
    async def h(req, form):
        await asyncio.sleep(2)
        return good()
    err, _ = scenario(h, queries=("a", "b"), timeout=Duration(0.3))
    assert isinstance(err, SourceError) and "timeout" in str(err)


def test_500_is_retried_then_reported():
    async def h(req, form):
        if form["query"] == "broken":
            return web.Response(status=500, text="internal boom")
        return good()
    got, stub = scenario(h, queries=("broken", "ok"), retries=2)
    assert got.errors["s0"] == "HTTP 500: internal boom"
    assert sum(f["query"] == "broken" for _, f in stub.requests) == 3
    assert not np.isnan(got.block.values[:, 1]).any()


def test_500_then_success_recovers():
    calls = []

    async def h(req, form):
        calls.append(1)
        return web.Response(status=502) if len(calls) == 1 else good()
    got, _ = scenario(h)
    assert got.errors == {} and len(calls) == 2


def test_429_retried_honouring_retry_after():
    calls = []

    async def h(req, form):
        calls.append(1)
        if len(calls) == 1:
            return web.Response(status=429, headers={"Retry-After": "0"})
        return good()
    got, _ = scenario(h)
    assert got.errors == {} and len(calls) == 2
    assert not np.isnan(got.block.values).any()


def test_4xx_not_retried_and_prometheus_error_reported():
    async def h(req, form):
        return web.json_response({"status": "error", "errorType": "bad_data",
                                  "error": "1:5: parse error: unexpected end of input"}, status=400)
    got, stub = scenario(h, queries=("sum(",), retries=3)
    assert got.errors == {"s0": "bad_data: 1:5: parse error: unexpected end of input"}
    assert len(stub.requests) == 1


def test_status_error_with_200_and_503_timeout_are_query_errors():
    async def h(req, form):
        if form["query"] == "a":
            return web.json_response({"status": "error", "errorType": "execution",
                                      "error": "many-to-many matching not allowed"})
        return web.json_response({"status": "error", "errorType": "timeout",
                                  "error": "query timed out in expression evaluation"},
                                 status=503)
    got, _ = scenario(h, queries=("a", "b"), retries=1)
    # Prometheus answered both times: per-signal errors, not "source unreachable".
    assert got.errors == {"s0": "execution: many-to-many matching not allowed",
                          "s1": "timeout: query timed out in expression evaluation"}


@pytest.mark.parametrize("body", [b'{"status":"success","data":{"resultType":"matrix",',
                                  b"<html>502 Bad Gateway</html>", b'{"status":"success"}',
                                  b'{"status":"success","data":{"resultType":"matrix","result":'
                                  b'[{"metric":{"instance":"a"},"values":[[1700000040,"x1"]]}]}}'])
def test_malformed_answers_are_errors_not_crashes(body):
    async def h(req, form):
        if form["query"] == "ok":
            return good()
        return web.Response(body=body, content_type="application/json")
    got, _ = scenario(h, queries=("garbage", "ok"))
    assert set(got.errors) == {"s0"} and "malformed" in got.errors["s0"]
    assert got.block.values.shape == (3, 2, 10)


def test_partial_result_accepted_with_warning(caplog):
    async def h(req, form):
        # Two of three series, one with gaps, and the warning Thanos/Mimir give for it.
        return matrix([({"instance": "h0"}, [(TS[0], "1"), (TS[5], "2")]),
                       ({"job": "no-instance"}, [(TS[9], "3")])],
                      warnings=["store unavailable: partial response"])
    with caplog.at_level("WARNING"):
        got, _ = scenario(h)
    assert got.errors == {}
    # The series without the entity label names no entity: dropped and counted, not "".
    assert got.block.entities == (("h0",),) and got.block.dropped == 1
    row = got.block.values[0, 0]
    assert row[0] == 1 and row[5] == 2 and np.isnan(row[[1, 2, 3, 4, 6, 7, 8, 9]]).all()
    assert any("partial response" in r.getMessage() for r in caplog.records)


def test_connection_refused_is_source_error():
    async def go():
        async with Stub(lambda r, f: good()) as stub:
            url = stub.url
        src = PrometheusSource(SourceConfig(url=url, retries=1))
        try:
            await src.fetch(analysis("a", "b"), START, END)
        finally:
            await src.close()
    with pytest.raises(SourceError, match="unreachable"):
        asyncio.run(go())


def test_concurrency_is_bounded():
    async def h(req, form):
        await asyncio.sleep(0.05)
        return good()
    got, stub = scenario(h, queries=tuple(f"q{i}" for i in range(6)), max_concurrency=2)
    assert got.errors == {} and len(stub.requests) == 6
    assert stub.max_in_flight == 2


def test_backoff_is_exponential_with_jitter_and_capped():
    low = [backoff_delay(a, None, lambda: 0.0) for a in range(8)]
    high = [backoff_delay(a, None, lambda: 0.999) for a in range(8)]
    assert low[:3] == [0.125, 0.25, 0.5]
    assert all(h > lo for h, lo in zip(high, low, strict=True))
    assert max(high) <= BACKOFF_CAP_SECONDS * 1.5 and low[-1] == BACKOFF_CAP_SECONDS * 0.5
    assert backoff_delay(0, "3", lambda: 0.5) == 3.0
    assert backoff_delay(0, "9999", lambda: 0.5) == BACKOFF_CAP_SECONDS


# ------------------------------------------------------------------------------------------
# Authentication


def test_bearer_token_file_sent_and_reread(tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret\n")

    async def h(req, form):
        return good()

    async def go():
        async with Stub(h) as stub:
            cfg = SourceConfig(url=stub.url,
                               authorization=Authorization(credentials_file=str(token)))
            src = PrometheusSource(cfg)
            try:
                await src.fetch(analysis("q"), START, END)
                token.write_text("rotated")
                await src.fetch(analysis("q"), START, END)
            finally:
                await src.close()
            return stub
    stub = asyncio.run(go())
    assert [h["Authorization"] for h, _ in stub.requests] == ["Bearer s3cret", "Bearer rotated"]


def test_basic_auth_sent(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("hunter2")

    async def h(req, form):
        return good()
    got, stub = scenario(h, basic_auth=BasicAuth(username="aura", password_file=str(pw)))
    assert got.errors == {}
    (headers, _), = stub.requests
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"aura:hunter2").decode()


def test_missing_secret_file_is_an_error(tmp_path):
    async def h(req, form):
        return good()
    err, stub = scenario(h, authorization=Authorization(credentials_file=str(tmp_path / "nope")))
    assert isinstance(err, SourceError) and "credentials_file" in str(err)
    assert stub.requests == []


def test_oauth2_client_credentials_token_cached(tmp_path):
    secret = tmp_path / "client-secret"
    secret.write_text("cs")

    async def h(req, form):
        return good()

    async def go():
        async with Stub(h) as stub:
            cfg = SourceConfig(url=stub.url, oauth2=OAuth2(
                client_id="aura", client_secret_file=str(secret),
                token_url=stub.url + "/token", scopes=("read", "metrics")))
            src = PrometheusSource(cfg)
            try:
                await src.fetch(analysis("a", "b"), START, END)
                await src.fetch(analysis("a"), START, END)
            finally:
                await src.close()
            return stub
    stub = asyncio.run(go())
    assert stub.token_requests == [{"grant_type": "client_credentials", "client_id": "aura",
                                    "client_secret": "cs", "scope": "read metrics"}]
    assert {h["Authorization"] for h, _ in stub.requests} == {"Bearer tok1"}
    assert len(stub.requests) == 3


# ------------------------------------------------------------------------------------------
# TLS


@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for the name aura.test only (not 127.0.0.1)."""
    if not shutil.which("openssl"):
        raise RuntimeError("openssl CLI needed to generate the test certificate")
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "server.crt", d / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(crt), "-days", "2", "-subj", "/CN=aura.test",
         "-addext", "subjectAltName=DNS:aura.test"],
        check=True, capture_output=True, timeout=60,
    )
    return crt, key


def _server_ctx(cert) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


@pytest.mark.parametrize(
    "tls, ok, fragment",
    [
        (TLSConfig(), False, "certificate verify failed"),
        (lambda c: TLSConfig(ca_file=str(c[0])), False, "mismatch"),
        (lambda c: TLSConfig(ca_file=str(c[0]), server_name="aura.test"), True, ""),
        (TLSConfig(insecure_skip_verify=True), True, ""),
    ],
    ids=["default-verifies", "ca-wrong-name", "ca-and-server-name", "insecure-skip-verify"],
)
def test_tls_verification_on_by_default(cert, tls, ok, fragment):
    tls_cfg = tls(cert) if callable(tls) else tls

    async def h(req, form):
        return good()
    got, stub = scenario(h, ssl_context=_server_ctx(cert), tls_config=tls_cfg, retries=0)
    if ok:
        assert not isinstance(got, SourceError), got
        assert got.errors == {} and len(stub.requests) == 1
    else:
        assert isinstance(got, SourceError) and "TLS error" in str(got)
        assert fragment in str(got)
        assert stub.requests == []


def test_unreadable_ca_file_is_a_source_error(tmp_path):
    async def h(req, form):
        return good()
    err, stub = scenario(h, tls_config=TLSConfig(ca_file=str(tmp_path / "missing.pem")))
    # Plain http ignores tls_config; an https URL must fail loudly on a bad ca_file.
    assert not isinstance(err, SourceError)

    async def go():
        src = PrometheusSource(SourceConfig(url="https://127.0.0.1:9",
                                            tls_config=TLSConfig(ca_file=str(tmp_path / "x"))))
        try:
            await src.fetch(analysis("q"), START, END)
        finally:
            await src.close()
    with pytest.raises(SourceError, match="tls_config"):
        asyncio.run(go())


async def _fetch_and_close(src):
    try:
        return await src.fetch(analysis("q"), START, END)
    finally:
        await src.close()


def test_one_source_across_event_loops():
    async def h(req, form):
        return good()

    async def serve_twice():
        async with Stub(h) as stub:
            src = PrometheusSource(SourceConfig(url=stub.url))
            # Two separate loops in worker threads, as an offline driver calling asyncio.run.
            first = await asyncio.to_thread(asyncio.run, src.fetch(analysis("q"), START, END))
            second = await asyncio.to_thread(asyncio.run, _fetch_and_close(src))
            return first, second
    first, second = asyncio.run(serve_twice())
    assert first.errors == {} and second.errors == {}


# ------------------------------------------------------------------------------------------
# Counting in the pipeline: every failed query in aura_source_query_errors_total{analysis,
# signal}, whatever failed (transport, TLS, timeout, HTTP, PromQL); a source that could not
# answer any query is also an ingest stage failure (aura_cycle_failures_total{stage}).


def _pipeline(url: str, **source):
    from exporter.config import parse_config
    from exporter.pipeline import Pipeline

    cfg = parse_config({
        "source": {"url": url, "retries": 0, "timeout": "300ms", **source},
        "analyses": [{"name": "t", "window": "10m", "step": "1m", "signals": [
            {"name": "s0", "query": "a"}, {"name": "s1", "query": "b"}]}]})
    return Pipeline(cfg, PrometheusSource(cfg.source), topology_workers=1)


async def _unauthorized(req, form):
    return web.Response(status=401, text="Unauthorized\n")


async def _parse_error(req, form):
    return web.json_response({"status": "error", "errorType": "bad_data",
                              "error": "1:15: parse error: unclosed left parenthesis"},
                             status=400)


async def _slow(req, form):
    await asyncio.sleep(1)
    return good()


async def _unavailable(req, form):
    return web.Response(status=503, text="<html>\n<body>upstream down</body>\n</html>\n")


@pytest.mark.parametrize(
    "fault, handler, ingest_failures, fragment",
    [
        pytest.param("refused", None, 1, "connection failed", id="refused"),
        pytest.param("tls", None, 1, "certificate verify failed", id="tls"),
        pytest.param("timeout", _slow, 1, "timeout after 0.3s", id="timeout"),
        pytest.param("503", _unavailable, 1,
                     "HTTP 503: <html> <body>upstream down</body> </html>", id="503"),
        pytest.param("401", _unauthorized, 0, "HTTP 401: Unauthorized", id="401"),
        pytest.param("promql", _parse_error, 0, "bad_data: 1:15: parse error", id="promql"),
    ],
)
def test_every_failed_query_counts_in_source_query_errors(cert, caplog, fault, handler,
                                                          ingest_failures, fragment):
    async def go():
        ctx = _server_ctx(cert) if fault == "tls" else None
        async def one_cycle(url):
            pipe = _pipeline(url)
            try:
                await pipe.run_cycle(END)
            finally:
                await pipe.source.close()
                pipe.close()
            return pipe

        async with Stub(handler or (lambda r, f: good()), ctx) as stub:
            url = stub.url
            if fault != "refused":
                return await one_cycle(url), stub
        return await one_cycle(url), stub  # the stub is gone: connection refused

    with caplog.at_level("INFO"):
        pipe, stub = asyncio.run(go())
    stats = pipe.stats
    assert stats.query_errors_total == {("t", "s0"): 1, ("t", "s1"): 1}
    assert stats.failures_total.get("ingest", 0) == ingest_failures
    assert stats.up == 0.0
    body = pipe.snapshot.body.decode()
    assert 'aura_source_query_errors_total{analysis="t",signal="s0"} 1.0' in body
    text = "\n".join(caplog.messages)
    assert fragment in text, text
    assert "b'" not in text and "\\n" not in text  # decoded text, not a bytes literal


def test_recovery_after_a_whole_source_outage_is_logged_once(caplog):
    down = [False]

    async def h(req, form):
        return web.Response(status=503, text="down\n") if down[0] else good()

    async def go():
        async with Stub(h) as stub:
            pipe = _pipeline(stub.url)
            try:
                await pipe.run_cycle(END)
                down[0] = True
                await pipe.run_cycle(END + STEP)
                await pipe.run_cycle(END + 2 * STEP)
                down[0] = False
                await pipe.run_cycle(END + 3 * STEP)
                await pipe.run_cycle(END + 4 * STEP)
            finally:
                await pipe.source.close()
                pipe.close()
            return pipe

    with caplog.at_level("INFO"):
        pipe = asyncio.run(go())
    assert pipe.stats.query_errors_total == {("t", "s0"): 2, ("t", "s1"): 2}
    assert pipe.stats.failures_total == {"ingest": 2} and pipe.stats.up == 1.0
    again = [m for m in caplog.messages if "signal queries succeed again" in m]
    assert again == ['msg="signal queries succeed again" analysis=t']
