"""A live scrape target for a simulated fleet: `/metrics` in node_exporter names.

Every simulated host is one `instance` label value on the same target, so the scraping
Prometheus needs `honor_labels: true`. The `clock` maps wall time onto the fleet's timeline
(identity for a fleet laid on real time; a sped-up clock for demos). Counters follow the same
integral as the OpenMetrics backfill, so backfilled history and live scrapes join without
resets. Outside the fleet's timeline the exposition is empty.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from exporter.source.sim_writers import node_families, render_text
from exporter.source.simulator import SimulatedFleet

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def make_target_app(fleet: SimulatedFleet, clock: Callable[[], float]) -> web.Application:
    """An aiohttp app serving the fleet's values at `clock()` on `/metrics`."""
    families = node_families(fleet)  # precomputed once: a scrape only slices one column

    async def metrics(request: web.Request) -> web.Response:
        body = render_text(families, fleet.timestamps, clock())
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=f"simulated fleet: {len(fleet.entities)} hosts; see /metrics\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/", index)
    return app
