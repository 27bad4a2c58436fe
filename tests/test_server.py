import asyncio
import base64
import gzip
import ssl
import subprocess
from dataclasses import dataclass

import aiohttp
import bcrypt
import pytest
from aiohttp import web

from exporter.config import ConfigError
from exporter.server import make_app
from exporter.webconfig import load_web_config, parse_listen_address


@dataclass
class _Snap:
    body: bytes = b"aura_up 1.0\n"
    ready: bool = True
    results: tuple = ()

    @property
    def body_gzip(self) -> bytes:
        return gzip.compress(self.body)


async def _serve(app, ssl_context=None):
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, port


def _web_config(tmp_path, *, tls=False, users=True):
    lines = []
    if users:
        hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
        lines += ["basic_auth_users:", f"  prom: '{hashed}'"]
    if tls:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                       check=True, capture_output=True)
        lines += ["tls_server_config:", "  cert_file: cert.pem", "  key_file: key.pem"]
    path = tmp_path / "web.yml"
    path.write_text("\n".join(lines) + "\n")
    return load_web_config(path)


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_listen_address():
    assert parse_listen_address(":10977") == (None, 10977)
    assert parse_listen_address("127.0.0.1:9") == ("127.0.0.1", 9)
    with pytest.raises(ValueError):
        parse_listen_address("localhost")


def test_basic_auth_required(tmp_path):
    cfg = _web_config(tmp_path)

    async def go():
        runner, port = await _serve(make_app(lambda: _Snap(), cfg))
        url = f"http://127.0.0.1:{port}/metrics"
        try:
            async with aiohttp.ClientSession() as s:
                async with s.get(url) as r:
                    assert r.status == 401
                async with s.get(url, headers=_basic("prom", "wrong")) as r:
                    assert r.status == 401
                async with s.get(url, headers=_basic("prom", "s3cret")) as r:
                    assert r.status == 200
                    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                    assert await r.read() == b"aura_up 1.0\n"
        finally:
            await runner.cleanup()

    asyncio.run(go())


def test_probes_answer_without_credentials_everything_else_needs_them(tmp_path):
    # Kubelet httpGet probes and Docker's HEALTHCHECK carry no credentials: behind basic auth
    # the liveness probe would restart the pod in a loop. They reveal only up/ready.
    cfg = _web_config(tmp_path)
    snap = _Snap(ready=False)
    release = asyncio.Event()
    entered = asyncio.Event()

    async def incidents(request: web.Request) -> web.Response:
        entered.set()
        await release.wait()
        return web.Response(text="ok\n")

    async def go():
        app = make_app(lambda: snap, cfg, max_requests=1, incidents_handler=incidents)
        runner, port = await _serve(app)
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as s:
                async with s.get(base + "/-/healthy") as r:
                    assert r.status == 200 and await r.text() == "Healthy\n"
                async with s.get(base + "/-/ready") as r:
                    assert r.status == 503  # not ready yet, and still no 401
                snap.ready = True
                async with s.head(base + "/-/ready") as r:
                    assert r.status == 200
                for path in ("/metrics", "/", "/api/v1/console/fleet", "/api/v1/alerts",
                             "/-/ready/"):
                    async with s.get(base + path) as r:
                        assert r.status == 401, path
                # Sent as written (a client would normalise them first): no trick reaches
                # the metrics without credentials.
                for raw in ("/-/healthy/../metrics", "//-/healthy/../../metrics", "/-/./healthy",
                            "/-/healthy/%2e%2e/metrics", "/-%2Fhealthy", "/metrics?/-/healthy"):
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.write(f"GET {raw} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                                 .encode())
                    await writer.drain()
                    answer = await reader.read()
                    writer.close()
                    status = int(answer.split(b" ", 2)[1])
                    assert status in (401, 404) and b"aura_up" not in answer, (raw, status)
                async with s.get(base + "/metrics", headers=_basic("prom", "s3cret")) as r:
                    assert r.status == 200
                # An authenticated request holds the only slot: scrapes get 503, probes not.
                held = asyncio.create_task(s.post(base + "/api/v1/alerts", data=b"{}",
                                                  headers=_basic("prom", "s3cret")))
                # Inside the handler, past the (slow, bcrypt) credentials check: no timing.
                # (Waiting on the POST too: one that fails ends the wait at once.)
                waiting = asyncio.ensure_future(entered.wait())
                await asyncio.wait({waiting, held}, timeout=60,
                                   return_when=asyncio.FIRST_COMPLETED)
                assert entered.is_set(), "the held request never reached its handler"
                # A limit that queued instead of refusing would hang here: bounded.
                r = await asyncio.wait_for(
                    s.get(base + "/metrics", headers=_basic("prom", "s3cret")), 10)
                assert r.status == 503
                r.release()
                async with s.get(base + "/-/healthy") as r:
                    assert r.status == 200
                release.set()
                (await held).release()
        finally:
            await runner.cleanup()

    asyncio.run(go())


def test_telemetry_path_on_a_probe_path_is_refused():
    # A probe's path answers without basic auth: metrics there would leak past it. The flag
    # refuses it as a usage error, and make_app refuses it too.
    import argparse

    from exporter.webconfig import add_web_arguments

    parser = argparse.ArgumentParser(exit_on_error=False)
    add_web_arguments(parser)
    for path in ("/-/healthy", "/-/ready", "metrics"):
        with pytest.raises(argparse.ArgumentError, match="probe's path|must start with"):
            parser.parse_args([f"--web.telemetry-path={path}"])
    assert parser.parse_args(["--web.telemetry-path=/m"]).telemetry_path == "/m"
    with pytest.raises(ValueError, match="probe's path"):
        make_app(lambda: _Snap(), load_web_config(None), telemetry_path="/-/healthy")


def test_tls_with_basic_auth_probes_over_https_without_credentials(tmp_path):
    cfg = _web_config(tmp_path, tls=True, users=True)

    async def go():
        runner, port = await _serve(make_app(lambda: _Snap(), cfg), cfg.ssl_context)
        # As the kubelet's `scheme: HTTPS` probe: TLS, certificate not verified, no auth.
        insecure = ssl.create_default_context()
        insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
        base = f"https://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as s:
                for path in ("/-/healthy", "/-/ready"):
                    async with s.get(base + path, ssl=insecure) as r:
                        assert r.status == 200, path
                async with s.get(base + "/metrics", ssl=insecure) as r:
                    assert r.status == 401
                with pytest.raises(aiohttp.ClientError):
                    async with s.get(f"http://127.0.0.1:{port}/-/healthy") as r:
                        await r.read()  # TLS still applies to the probes
        finally:
            await runner.cleanup()

    asyncio.run(go())


def test_tls_serves_https(tmp_path):
    cfg = _web_config(tmp_path, tls=True, users=False)
    assert cfg.ssl_context is not None

    async def go():
        runner, port = await _serve(make_app(lambda: _Snap(), cfg), cfg.ssl_context)
        client_ctx = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        try:
            async with aiohttp.ClientSession() as s:
                async with s.get(f"https://127.0.0.1:{port}/metrics", ssl=client_ctx) as r:
                    assert r.status == 200
                with pytest.raises(aiohttp.ClientError):
                    # Plain HTTP against the TLS port must not be served.
                    async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                        await r.read()
        finally:
            await runner.cleanup()

    asyncio.run(go())


def test_ready_gzip_and_landing():
    snap = _Snap(ready=False)

    async def go():
        runner, port = await _serve(make_app(lambda: snap, load_web_config(None)))
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession(auto_decompress=False) as s:
                async with s.get(base + "/-/ready") as r:
                    assert r.status == 503
                snap.ready = True
                async with s.get(base + "/-/ready") as r:
                    assert r.status == 200
                async with s.get(base + "/-/healthy") as r:
                    assert r.status == 200
                async with s.get(base + "/metrics", headers={"Accept-Encoding": "gzip"}) as r:
                    assert r.headers["Content-Encoding"] == "gzip"
                    assert gzip.decompress(await r.read()) == snap.body
                async with s.get(base + "/") as r:
                    assert "/metrics" in await r.text()
        finally:
            await runner.cleanup()

    asyncio.run(go())


def test_bad_web_config_names_key(tmp_path):
    path = tmp_path / "web.yml"
    path.write_text("basic_auth_users:\n  prom: plaintext\ntls_server_config:\n  cert_file: x\n")
    with pytest.raises(ConfigError) as info:
        load_web_config(path)
    text = str(info.value)
    assert "basic_auth_users.prom: expected a bcrypt hash" in text
    assert "cert_file and key_file are both required" in text


def test_shard_index_auto_from_statefulset_ordinal():
    from exporter.live import resolve_shard_index

    assert resolve_shard_index("auto", "aura-2") == 2
    assert resolve_shard_index("1", "") == 1
    with pytest.raises(ValueError):
        resolve_shard_index("auto", "aura")
