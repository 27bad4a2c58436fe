"""aiohttp handlers of the console: pages, static assets, JSON API and the WebSocket.

Pages are static HTML files (assets in `static/`, shipped as package data) that fetch their
data from the JSON API and render it with textContent only; a Content-Security-Policy allows
scripts and styles from this origin alone, so a label value can never run as code.
"""

from __future__ import annotations

import asyncio
import gzip
import html
import json
from pathlib import Path
from typing import Any

from aiohttp import web

from exporter.config import Config
from exporter.console import views
from exporter.console.alerts import evaluate
from exporter.console.diagram import baseline_diagrams, entity_diagram
from exporter.console.history import History
from exporter.console.incidents import recent as recent_incidents
from exporter.console.live import Live, health_of

STATIC = Path(__file__).parent / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'")
# path -> (page name: static/<name>.main.html and <name>.js, title)
PAGES = {"/": ("fleet", "fleet"), "/entity": ("entity", "entity"), "/alerts": ("alerts", "alerts")}
# page name -> the data its script fetches first: the browser starts loading it with the
# document instead of after the scripts have run (see Live.websocket's `since`).
PRELOAD = {"fleet": "/api/v1/console/fleet"}


class Console:
    """The console's handlers over one snapshot source (see exporter.console.setup)."""

    def __init__(self, live: Live, history: History, config: Config, *,
                 prometheus_url: str | None = None, telemetry_path: str = "/metrics",
                 story: Any = ()):
        self.live = live
        self.story_failures = tuple(story)
        # The demo's simulated clock (console.story.Story.speed); None: real time.
        self.clock_speed: float | None = getattr(story, "speed", None)
        self.history = history
        self.config = config
        self.prometheus_url = prometheus_url
        self.telemetry_path = telemetry_path
        self._band: tuple[Any, Any] = (None, None)
        self._alerts: tuple[Any, Any] = (None, None)
        self._alertmanager = None
        if config.alertmanager is not None:
            from exporter.console.alertmanager import AlertmanagerView

            self._alertmanager = AlertmanagerView(config.alertmanager)

    def page(self, name: str, title: str) -> Any:
        """The shell (static/page.html) around static/<name>.main.html, read once."""
        main = (STATIC / f"{name}.main.html").read_text(encoding="utf-8")
        text = ((STATIC / "page.html").read_text(encoding="utf-8")
                .replace("__TITLE__", title).replace("__PAGE__", name)
                .replace("__TELEMETRY_PATH__", html.escape(self.telemetry_path, quote=True))
                .replace("__CLOCK__", "simulated" if self.clock_speed else "real")
                .replace("__SPEED__", f"{self.clock_speed or 1:g}")
                .replace("__PRELOAD__", f'<link rel="preload" href="{PRELOAD[name]}" as="fetch" '
                         'crossorigin="anonymous">' if name in PRELOAD else "")
                .replace("__MAIN__", main))

        async def handler(_: web.Request) -> web.Response:
            return web.Response(text=text, content_type="text/html",
                                headers={"Content-Security-Policy": CSP,
                                         "Cache-Control": "no-cache"})
        return handler

    async def fleet(self, request: web.Request) -> web.Response:
        """GET /api/v1/console/fleet: the full fleet state (compact rows, see views)."""
        _, full = await self.live.current()
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            return web.Response(body=full, content_type="application/json",
                                headers={"Content-Encoding": "gzip"})
        return web.Response(body=gzip.decompress(full), content_type="application/json")

    async def entity(self, request: web.Request) -> web.Response:
        """GET /api/v1/console/entity?analysis=A&<label>=<value>...: one entity's detail."""
        query = dict(request.query)
        analysis = query.pop("analysis", "")
        snap = self.live.snapshot()
        found = views.find_entity(snap, analysis, query)
        if found is None:
            return web.json_response({"error": "no such entity in the current snapshot",
                                      "analysis": analysis, "labels": query}, status=404)
        result, i = found
        detail = await asyncio.to_thread(self._detail, result, i)
        resp = web.json_response(detail, dumps=_dumps)
        resp.enable_compression()
        return resp

    def _detail(self, result: Any, i: int) -> dict[str, Any]:
        if self._band[0] is not result:
            self._band = (result, views.fleet_band(result))
        cfg = views.analysis_config(self.config, result.analysis)
        diagram = None
        if cfg is not None and result.window.values.shape[2]:
            diagram = entity_diagram(result.window.values[i], cfg.topology)
        # The entity's own reservoir, read now (it keeps learning after the snapshot's cycle).
        store = result.topology.baseline if result.topology is not None else None
        own = store.view(result.entities[i]) if store is not None else None
        own_diagrams = (baseline_diagrams(own, result.window.values[i], cfg.topology)
                        if own is not None and cfg is not None else None)
        detail = views.entity_detail(result, i, config=self.config, history=self.history,
                                     band=self._band[1], prometheus_url=self.prometheus_url,
                                     runbook_url=self.config.rules.runbook_url,
                                     diagram=diagram, own=own, own_diagrams=own_diagrams)
        # Every time in the detail is on this clock (reports say so; see console.story.Story).
        detail["clock"] = ({"simulated": True, "speed": self.clock_speed} if self.clock_speed
                           else {"simulated": False})
        return detail

    async def report(self, request: web.Request) -> web.Response:
        """GET /api/v1/console/report?format=md|html&analysis=A&<label>=<value>: a download."""
        from exporter.console import report

        query = dict(request.query)
        fmt = query.pop("format", "html")
        if fmt not in ("md", "html"):
            return web.json_response({"error": "format must be md or html"}, status=400)
        analysis = query.pop("analysis", "")
        snap = self.live.snapshot()
        found = views.find_entity(snap, analysis, query)
        if found is None:
            return web.json_response({"error": "no such entity in the current snapshot"},
                                     status=404)
        detail = await asyncio.to_thread(self._detail, *found)
        now = float(getattr(snap, "created", 0.0)) or None
        text = report.markdown(detail, now) if fmt == "md" else report.html_report(detail, now)
        return web.Response(
            text=text, content_type="text/markdown" if fmt == "md" else "text/html",
            headers={"Content-Disposition":
                     f'attachment; filename="{report.filename(detail, fmt)}"',
                     "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})

    async def alerts(self, _: web.Request) -> web.Response:
        """GET /api/v1/console/alerts: AURA's alerts evaluated on the current snapshot."""
        await self.live.refresh()
        snap = self.live.snapshot()
        if self._alerts[0] is not snap:
            data = await asyncio.to_thread(evaluate, snap, self.config, self.history,
                                           health_of(snap))
            self._alerts = (snap, data)
        incidents = await asyncio.to_thread(recent_incidents, self.config.state_dir)
        am: dict[str, Any] = {"configured": False}
        if self._alertmanager is not None:
            am = await self._alertmanager.view({a["name"] for a in self._alerts[1]["alerts"]})
        return web.json_response({**self._alerts[1], "incidents": incidents, "alertmanager": am},
                                 dumps=_dumps)


    async def story(self, _: web.Request) -> web.Response:
        """GET /api/v1/console/story: the demo's story panel ({enabled: false} elsewhere)."""
        from exporter.console.story import tell

        data = await asyncio.to_thread(tell, self.live.snapshot(), self.history,
                                       self.story_failures, self._detail)
        return web.json_response(data, dumps=_dumps)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def add_routes(app: web.Application, console: Console, *, ws_path: str) -> None:
    """Register the console's pages, JSON API, `ws_path` WebSocket and static assets on `app`.

    `ws_path` is the package's WS_PATH (exporter.console), passed in so that this module does
    not import its package (the server also reads it to exempt the socket from its request
    cap). Raises RuntimeError (aiohttp) if `app`'s router is already frozen.
    """
    for path, (name, title) in PAGES.items():
        app.router.add_get(path, console.page(name, title))
    app.router.add_get("/api/v1/console/fleet", console.fleet)
    app.router.add_get("/api/v1/console/entity", console.entity)
    app.router.add_get("/api/v1/console/alerts", console.alerts)
    app.router.add_get("/api/v1/console/report", console.report)
    app.router.add_get("/api/v1/console/story", console.story)
    app.router.add_get(ws_path, console.live.websocket)
    app.router.add_static("/console/static/", STATIC, append_version=False)
