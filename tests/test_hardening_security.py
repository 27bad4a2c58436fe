"""Security hardening (issue 15): basic-auth timing, refused web-config keys, no secrets in logs."""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from pathlib import Path

import bcrypt
import pytest
from aiohttp import web

from exporter.config import ConfigError, parse_config
from exporter.pipeline import Pipeline
from exporter.source.prometheus import PrometheusSource
from exporter.webconfig import WebConfig, load_web_config


def _web_config(tmp_path: Path, text: str) -> WebConfig:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return load_web_config(path)


def _median_seconds(*fns, runs: int = 9) -> list[float]:
    """Median seconds of each of fns, called in turn (a, b, a, b, ...) so a burst of load
    from other processes weighs on all of them alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, out in zip(fns, times, strict=True):
            began = time.perf_counter()
            fn()
            out.append(time.perf_counter() - began)
    return [statistics.median(t) for t in times]


def test_unknown_user_costs_a_bcrypt_comparison_too():
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=8))
    cfg = WebConfig(users={"alice": hashed})
    known, unknown = _median_seconds(lambda: cfg.check("alice", "wrong"),
                                     lambda: cfg.check("mallory", "wrong"))
    assert not cfg.check("mallory", "right")  # alice's password opens nothing for others
    assert cfg.check("alice", "right") and not cfg.check("alice", "wrong")
    # Before the fix an unknown name answered in ~1 us against ~10 ms for a known one.
    assert unknown > 0.5 * known, (unknown, known)
    assert unknown < 2.0 * known, (unknown, known)


def test_odd_passwords_are_refused_not_raised():
    cfg = WebConfig(users={"alice": bcrypt.hashpw(b"x" * 72, bcrypt.gensalt(rounds=4))})
    assert not cfg.check("alice", "x" * 100)  # bcrypt 5 raises beyond 72 bytes
    assert not cfg.check("alice", "\udca0")
    assert cfg.check("alice", "x" * 72)


@pytest.mark.parametrize("text, fragment", [
    ("tls_server_config: {cert_file: c, key_file: k, cipher_suites: [TLS_AES_128_GCM_SHA256]}",
     "tls_server_config.cipher_suites: not supported by AURA"),
    ("tls_server_config: {cert_file: c, key_file: k, curve_preferences: [X25519]}",
     "tls_server_config.curve_preferences: not supported by AURA"),
    ("tls_server_config: {cert_file: c, key_file: k, client_allowed_sans: [a]}",
     "tls_server_config.client_allowed_sans: not supported by AURA"),
    ("tls_server_config: {cert_file: c, key_file: k, max_version: TLS14}",
     "tls_server_config.max_version: unknown value 'TLS14'"),
    ("tls_server_config: {cert_file: c, key_file: k, min_version: [TLS12]}",
     "tls_server_config.min_version: unknown value"),
    ("tls_server_config: {cert_file: c, key_file: k, min_version: TLS13, max_version: TLS12}",
     "max_version: lower than min_version"),
    ("tls_server_config: {cert_file: c, key_file: k, client_auth_type: [x]}",
     "cert_file: cannot load"),
    ("http_server_config: {http2: true}", "http_server_config.http2: not supported by AURA"),
    ("http_server_config: {headers: [a]}", "http_server_config.headers: expected a mapping"),
    ("rate_limit: {interval: 1s}", "rate_limit: not supported by AURA"),
    ("basic_auth_users: {alice: plain}", "basic_auth_users.alice: expected a bcrypt hash"),
])
def test_unsupported_or_bad_web_config_is_a_clear_error(tmp_path, text, fragment):
    with pytest.raises(ConfigError) as err:
        _web_config(tmp_path, text)
    assert any(fragment in p for p in err.value.problems), err.value.problems


# ------------------------------------------------------------------ no secrets in logs

SECRETS = ("s3cr3t-basic-pw", "s3cr3t-url-pw")


@pytest.mark.parametrize("where", ["file", "url"])
@pytest.mark.parametrize("answer", ["500", "401", "garbage", "unreachable"])
def test_no_secret_reaches_logs_errors_or_metrics(tmp_path, caplog, answer, where):
    pw = tmp_path / "pw"
    pw.write_text(SECRETS[0] + "\n")

    async def handler(request: web.Request) -> web.Response:
        if answer == "500":
            return web.Response(status=500, text="boom " + request.headers.get("Authorization", ""))
        if answer == "401":
            return web.Response(status=401, text="no " + request.headers.get("Authorization", ""))
        return web.Response(text='{"status":"success","data":{"resultType":"matrix",')

    async def go() -> Pipeline:
        app = web.Application()
        app.router.add_post("/api/v1/query_range", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if answer == "unreachable":
            await runner.cleanup()
        if where == "url":  # credentials in the URL (aiohttp sends them as basic auth)
            source_cfg = {"url": f"http://user:{SECRETS[1]}@127.0.0.1:{port}"}
        else:
            source_cfg = {"url": f"http://127.0.0.1:{port}",
                          "basic_auth": {"username": "u", "password_file": str(pw)}}
        cfg = parse_config({
            "source": {**source_cfg, "retries": 0, "timeout": "2s"},
            "analyses": [{"name": "n", "window": "30m", "signals": [
                {"name": "cpu", "query": "cpu_q"}]}]})
        source = PrometheusSource(cfg.source)
        pipe = Pipeline(cfg, source, topology_workers=1)
        try:
            await pipe.run_cycle(1_796_040_000.0)
        finally:
            await source.close()
            pipe.close()
            if answer != "unreachable":
                await runner.cleanup()
        return pipe

    with caplog.at_level(logging.DEBUG):
        pipe = asyncio.run(go())
    text = "\n".join(caplog.messages) + caplog.text + pipe.snapshot.body.decode()
    assert caplog.messages  # the failure was logged...
    for secret in SECRETS:
        assert secret not in text  # ...without the password of the file or the URL
    import base64

    assert base64.b64encode(f"u:{SECRETS[0]}".encode()).decode() not in text
    assert base64.b64encode(f"user:{SECRETS[1]}".encode()).decode() not in text
    assert "internal error" not in text  # both ways of giving credentials work
