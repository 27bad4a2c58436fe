"""The AURA console: a live web UI served by the exporter on its own port.

`setup(app, snapshot, config)` mounts it on the exporter's aiohttp application, so the same
listener, TLS and basic-auth middleware cover its pages, assets, JSON API and WebSocket:

- `/` fleet, `/entity?analysis=A&<label>=<value>` entity, `/alerts` alerts (static pages);
- `/api/v1/console/fleet`, `/api/v1/console/entity`, `/api/v1/console/alerts` (JSON);
- `/api/v1/console/ws` (WebSocket: the full fleet state, then one diff per cycle);
- `/console/static/...` (CSS, JavaScript; no CDN, no build step).

Modules: `history` (bounded per-entity history), `views` (JSON view models), `fleetmap` (2-D
map of the fleet), `diagram` (persistence diagram of one entity), `alerts` (generated rules
evaluated on the snapshot), `health` (self metrics), `live` (snapshot watcher and WebSocket),
`routes` (handlers), `incidents` (the webhook's recorded incidents), `alertmanager` (live
alerts and silences), `story` (the demo's story panel); `aura report`: `export` (the CLI),
`report` (one entity's report), `backtest_page` (a backtest directory's report), `errors`
(their ReportError).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from aiohttp import web

from exporter.config import Config

WS_PATH = "/api/v1/console/ws"


def setup(app: web.Application, snapshot: Callable[[], Any], config: Config | None = None, *,
          prometheus_url: str | None = None, telemetry_path: str = "/metrics",
          history_span: float = 86400.0, story: Any = ()) -> None:
    """Mount the console on `app`; `snapshot()` returns the pipeline's current Snapshot.

    `config` gives signal capacities, consensus settings and the alert rules (defaults when
    None); `prometheus_url` adds a PromQL link per chart; the history keeps `history_span`
    seconds; `story` (console.story.Failure, `aura demo` only) feeds the fleet page's story
    panel. The snapshot watcher starts and stops with the application.
    """
    from exporter.console.history import History
    from exporter.console.live import Live
    from exporter.console.routes import Console, add_routes

    history = History(history_span)
    live = Live(snapshot, history)
    console = Console(live, history, config or Config(), prometheus_url=prometheus_url,
                      telemetry_path=telemetry_path, story=story)
    add_routes(app, console, ws_path=WS_PATH)

    async def watch(app: web.Application) -> Any:
        task = asyncio.create_task(live.run(), name="aura-console")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await live.close()

    async def disconnect(_: web.Application) -> None:
        await live.close()  # open WebSockets would otherwise hold up the shutdown

    app.cleanup_ctx.append(watch)
    app.on_shutdown.append(disconnect)
