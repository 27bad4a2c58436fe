"""HTTP side (aiohttp): /metrics serves the current snapshot's cached bytes, never computes.

Also `/-/healthy`, `/-/ready` (200 after the first cycle), the console (exporter.console) and
`POST /api/v1/alerts` for Alertmanager webhooks (real incidents). TLS and basic auth come from
the exporter-toolkit web config; basic auth guards everything but the two probes
(`PROBE_PATHS`), which TLS still covers. `serve` runs the app around a pipeline until
SIGINT/SIGTERM; `aura run` (exporter.live) and `aura demo` (exporter.demo) wire the pipeline
it serves.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from exporter import console
from exporter.webconfig import PROBE_PATHS, WebConfig, parse_listen_address

log = logging.getLogger("aura.server")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

class ListenError(OSError):
    """The web server could not bind its address (`serve`); the commands print it and exit 1."""


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(
    snapshot: Callable[[], Any],
    web_config: WebConfig,
    *,
    telemetry_path: str = "/metrics",
    max_requests: int = 40,
    incidents_handler: Handler | None = None,
    config: Any = None,
    prometheus_url: str | None = None,
    story: Any = (),
) -> web.Application:
    """Build the aiohttp application; `snapshot()` returns the pipeline's current Snapshot.

    `config` and `prometheus_url` go to the console (exporter.console), mounted at `/`.
    """
    limit = asyncio.Semaphore(max_requests) if max_requests > 0 else None
    if telemetry_path in PROBE_PATHS:  # (the flag refuses it: `webconfig.telemetry_path`)
        raise ValueError(f"--web.telemetry-path {telemetry_path} is a probe's path")
    probes = PROBE_PATHS

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        # A console WebSocket stays open for hours: it must not hold a request slot that
        # scrapes need (the console caps its own clients).
        if request.path in probes:
            # Neither auth nor the request limit: a probe answered 401 or 503 because
            # scrapes are busy would have the kubelet restart a working exporter.
            response = await handler(request)
        elif request.path == console.WS_PATH:
            response = await _authorised(request, handler)
        elif limit is not None and limit.locked():
            return web.Response(status=503, text="too many concurrent requests\n")
        elif limit is not None:
            async with limit:
                response = await _authorised(request, handler)
        else:
            response = await _authorised(request, handler)
        for k, v in web_config.headers.items():
            response.headers[k] = v
        return response

    async def _authorised(request: web.Request, handler: Handler) -> web.StreamResponse:
        if web_config.auth_required and not await _check_basic_auth(request, web_config):
            return web.Response(status=401, text="Unauthorized\n",
                                headers={"WWW-Authenticate": 'Basic realm="aura"'})
        return await handler(request)

    async def metrics(request: web.Request) -> web.Response:
        snap = snapshot()
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            return web.Response(body=snap.body_gzip, headers={
                "Content-Type": CONTENT_TYPE, "Content-Encoding": "gzip"})
        return web.Response(body=snap.body, headers={"Content-Type": CONTENT_TYPE})

    async def healthy(_: web.Request) -> web.Response:
        return web.Response(text="Healthy\n")

    async def ready(_: web.Request) -> web.Response:
        if snapshot().ready:
            return web.Response(text="Ready\n")
        return web.Response(status=503, text="Not ready: first cycle not finished\n")

    app = web.Application(middlewares=[guard], client_max_size=2 * 1024 * 1024)
    app.router.add_get(telemetry_path, metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    console.setup(app, snapshot, config, prometheus_url=prometheus_url,
                  telemetry_path=telemetry_path, story=story)
    if incidents_handler is not None:
        app.router.add_route("*", "/api/v1/alerts", incidents_handler)
    return app


async def _check_basic_auth(request: web.Request, cfg: WebConfig) -> bool:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    # bcrypt takes ~0.1 s: off the event loop so other scrapes are not blocked.
    return await asyncio.to_thread(cfg.check, user, password)


async def serve(
    pipeline: Any,
    args: argparse.Namespace,
    web_config: WebConfig,
    *,
    now: Callable[[], float] = time.time,
    interval: float | None = None,
    on_started: Callable[[str], None] | None = None,
    incidents: Any = None,
    prometheus_url: str | None = None,
    story: Any = (),
) -> None:
    """Serve HTTP and run the pipeline until SIGINT/SIGTERM."""
    handler = None
    if incidents is not None:
        from exporter.incident_recorder import make_handler

        handler = make_handler(incidents, lambda result: pipeline.record_incidents(
            result.recorded, result.incidents))
    app = make_app(lambda: pipeline.snapshot, web_config, telemetry_path=args.telemetry_path,
                   max_requests=args.max_requests, incidents_handler=handler,
                   config=pipeline.cfg, prometheus_url=prometheus_url, story=story)
    host, port = parse_listen_address(args.listen_address)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=web_config.ssl_context)
    try:
        await site.start()
    except OSError as err:  # in use, no permission, no such address
        await runner.cleanup()
        raise ListenError(f"cannot listen on {args.listen_address}: "
                          f"{err.strerror or err}") from err
    scheme = "https" if web_config.ssl_context else "http"
    url = f"{scheme}://{host or 'localhost'}:{port}/"
    log.info("listening address=%s tls=%s", args.listen_address, web_config.ssl_context is not None)
    if on_started:
        on_started(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        # A cycle in progress finishes (and saves state) before the loop sees `stop`.
        if not received:
            log.info("msg=\"stopping after the current cycle\" signal=%s", sig.name)
        received.append(sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        await pipeline.run_forever(stop, now=now, interval=interval)
    finally:
        await runner.cleanup()
        await pipeline.source.close()
        pipeline.close()
        log.info("msg=\"shut down\" signal=%s cycles=%d", received[0] if received else "none",
                 pipeline.stats.cycles_total)
