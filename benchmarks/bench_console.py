"""Benchmark: the console's payloads, WebSocket update size, first render and scrape latency
with console clients open, at `--entities` entities (10 000).

1. Fleet state of a synthetic snapshot (`bench_scrape.synthetic_snapshot`, every per-entity
   array filled): build time, full JSON bytes (what `/api/v1/console/fleet` and the first
   WebSocket message carry), gzip-compressed bytes (what the HTTP response and the WebSocket
   send: the console compresses each message once for all clients).
2. One cycle later: a second snapshot whose risk, P(h) and anomaly score move by a Gaussian
   step of `--step` (0..1 units; map features fixed). The diff's bytes, raw and gzip.
   A diff carries the cells whose integer value changed, column by column; how many depends
   on how much the fleet moves; `--step 1` is the worst case.
3. First render in headless chromium, served by the real app (`exporter.server.make_app`):
   from navigation start to the first page of rows and the map drawn with data. `--renders`
   cold runs, each in a freshly launched browser (fresh profile: nothing cached, nothing
   compiled), and one warm run (a second navigation in the first browser). Two clocks, both
   from the page's navigation start: `drawn_ms`, the page's own mark `aura:fleet-drawn` (set
   after the frame that shows the table and map has been painted), and `observed_ms`, the
   first animation frame at which Playwright sees both the rows and the map's canvas (the
   only clock for pages without the mark). With them the page's timeline: document received
   (`response_end_ms`), DOMContentLoaded (`dcl_ms`), fleet data parsed (`data_ms`), table and
   map rendered in script (`rendered_ms`), first contentful paint (`fcp_ms`). Then
   `/api/v1/console/fleet` answer times (`fleet_api_ms`: the state is built when a snapshot
   is published, so a first request does not wait for it).
4. /metrics p50/p99 (gzip, 4 back-to-back scrapers, `--duration` s) with 0 and with
   `--clients` (20) console WebSockets open, alternately, `--rounds` times, while the snapshot
   changes every `--cycle` seconds (each change is a fleet-state build and, with clients, a
   broadcast of a diff to every client). The server runs in its own process.

    .venv/bin/python benchmarks/bench_console.py --entities 10000

Targets (issue 18): WebSocket update < 200 KB per cycle, first render < 1 s, scrape p99
unchanged with 20 clients. Writes benchmarks/results/console.json. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scrape import load, synthetic_snapshot  # noqa: E402
from benchio import write_results

RESULTS = Path(__file__).resolve().parent / "results"


def moved(snap: Any, step: float, seed: int = 1) -> Any:
    """The snapshot one cycle later: risk, P(h), anomaly moved by N(0, step), clipped to 0..1."""
    rng = np.random.default_rng(seed)
    r = snap.results[0]

    def walk(x: np.ndarray) -> np.ndarray:
        return np.clip(x + rng.normal(0, step, x.shape), 0, 1)

    consensus = dataclasses.replace(r.consensus, risk=walk(r.consensus.risk))
    forecast = dataclasses.replace(r.forecast, probability=np.sort(walk(r.forecast.probability), 1))
    topology = dataclasses.replace(r.topology, anomaly_score=walk(r.topology.anomaly_score))
    result = dataclasses.replace(r, consensus=consensus, forecast=forecast, topology=topology)
    return dataclasses.replace(snap, results=(result,), created=snap.created + 60)


def payloads(entities: int, step: float) -> tuple[dict[str, Any], Any, Any]:
    from exporter.console.live import health_of
    from exporter.console.views import diff_text, fleet_state

    a = synthetic_snapshot(entities)
    b = moved(a, step)
    t0 = time.perf_counter()
    sa = fleet_state(a, 1, health_of(a))
    full = sa.to_text()
    full_gz = gzip.compress(full.encode(), 6)
    build = time.perf_counter() - t0
    sb = fleet_state(b, 2, health_of(b))
    t0 = time.perf_counter()
    update = diff_text(sa, sb)
    update_gz = gzip.compress(update.encode(), 6)
    diff_s = time.perf_counter() - t0
    cols = json.loads(update)["analyses"][0]["cols"]
    changed = {c: len(v["i"]) for c, v in cols.items()}
    out = {"full_bytes": len(full), "full_gzip_bytes": len(full_gz),
           "build_seconds": build, "update_bytes": len(update),
           "update_gzip_bytes": len(update_gz), "update_cells": changed,
           "update_seconds": diff_s, "step": step}
    return out, a, b


def serve(entities: int, cycle: float, step: float) -> None:
    """Server process: print the port, swap the snapshot every `cycle` s until killed."""
    from aiohttp import web

    from exporter.server import make_app
    from exporter.webconfig import WebConfig

    _, a, b = payloads(entities, step)
    current = {"snap": a}

    async def main() -> None:
        app = make_app(lambda: current["snap"], WebConfig(), max_requests=0)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(json.dumps({"port": site._server.sockets[0].getsockname()[1]}),  # type: ignore[union-attr]
              flush=True)
        k = 0
        while True:
            await asyncio.sleep(cycle)
            k += 1
            snap = b if k % 2 else a
            current["snap"] = dataclasses.replace(snap, created=snap.created + 60 * k)

    asyncio.run(main())


# The first animation frame at which the table's rows and the map are in the page (polled by
# Playwright on every frame, so no round trip to this process is counted).
DRAWN = """() => document.querySelector("tr.entity-row") &&
    document.querySelector("#map canvas[data-points]") ? performance.now() : false"""
TIMELINE = """async () => {
    const mark = (name) => { const m = performance.getEntriesByName(name)[0];
                             return m ? m.startTime : null; };
    for (let k = 0; k < 200 && mark("aura:fleet-drawn") === null &&
         mark("aura:fleet-rendered") !== null; k++) await new Promise((r) => setTimeout(r, 10));
    const nav = performance.getEntriesByType("navigation")[0];
    const fcp = performance.getEntriesByName("first-contentful-paint")[0];
    return {drawn_ms: mark("aura:fleet-drawn"), rendered_ms: mark("aura:fleet-rendered"),
            data_ms: mark("aura:fleet-data"), response_end_ms: nav.responseEnd,
            dcl_ms: nav.domContentLoadedEventEnd, fcp_ms: fcp ? fcp.startTime : null,
            rows_on_page: document.querySelectorAll("tr.entity-row").length,
            map_points: Number(document.querySelector("#map canvas").dataset.points)};
}"""


def render_once(page: Any, base: str) -> dict[str, Any]:
    page.goto(base + "/", wait_until="commit")
    observed = page.wait_for_function(DRAWN, polling="raf", timeout=30000).json_value()
    timeline: dict[str, Any] = page.evaluate(TIMELINE)
    return {"observed_ms": observed, **timeline}


def first_render(base: str, renders: int) -> dict[str, Any]:
    """`renders` cold first renders (a fresh browser each) and one warm one (see item 3)."""
    from playwright.sync_api import sync_playwright

    cold: list[dict[str, Any]] = []
    out: dict[str, Any] = {"cold": cold}
    with sync_playwright() as p:
        for k in range(renders):
            browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                        args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
            cold.append(render_once(page, base))
            if k == 0:
                out["warm"] = render_once(page, base)
            browser.close()
    for key in ("observed_ms", "drawn_ms"):
        values = [r[key] for r in cold if r[key] is not None]
        if values:
            out[f"cold_{key}"] = {"median": float(np.median(values)), "max": max(values),
                                  "min": min(values)}
    return out


async def fleet_api(base: str, cycle: float, n: int = 5) -> dict[str, Any]:
    """Answer times (ms) of GET /api/v1/console/fleet with gzip, and the body's bytes: `n`
    requests 0.5 s apart after the server's first `cycle` (its start-up is not counted)."""
    import aiohttp

    times = []
    await asyncio.sleep(cycle)
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        for _ in range(n):
            t0 = time.perf_counter()
            async with s.get(base + "/api/v1/console/fleet",
                             headers={"Accept-Encoding": "gzip"}) as r:
                body = await r.read()
            times.append((time.perf_counter() - t0) * 1e3)
            await asyncio.sleep(0.5)
    return {"ms": times, "gzip_bytes": len(body)}


async def with_clients(base: str, clients: int, duration: float) -> dict[str, Any]:
    import aiohttp

    received: list[int] = []
    async with aiohttp.ClientSession() as s:
        sockets = [await s.ws_connect(base.replace("http", "ws") + "/api/v1/console/ws",
                                      max_msg_size=0) for _ in range(clients)]

        async def drain(ws: Any) -> None:
            async for msg in ws:
                received.append(len(msg.data))

        tasks = [asyncio.create_task(drain(ws)) for ws in sockets]
        res = await load(base + "/metrics", 4, duration, True)
        for ws in sockets:
            await ws.close()
        for t in tasks:
            t.cancel()
    res["ws_messages"] = len(received)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entities", type=int, default=10000)
    p.add_argument("--step", type=float, nargs="+", default=[0.01, 1.0])
    p.add_argument("--cycle", type=float, default=5.0,
                   help="seconds between snapshots in the scrape run (a live interval is 60)")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--renders", type=int, default=5, help="cold first renders (fresh browsers)")
    p.add_argument("--rounds", type=int, default=3,
                   help="scrape runs without and with clients, alternately")
    p.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--output", default=str(RESULTS / "console.json"))
    args = p.parse_args(argv)
    if args.serve is not None:
        serve(args.serve, args.cycle, args.step[0])
        return 0
    out: dict[str, Any] = {"benchmark": "console", "entities": args.entities,
                           "cpus": os.cpu_count(), "loadavg_before": os.getloadavg(),
                           "payloads": []}
    for step in args.step:
        res, _, _ = payloads(args.entities, step)
        out["payloads"].append(res)
        print(f"step={step:g}: full {res['full_bytes'] / 1e3:.0f} KB "
              f"({res['full_gzip_bytes'] / 1e3:.0f} KB gzip, built in "
              f"{res['build_seconds'] * 1e3:.0f} ms); update {sum(res['update_cells'].values())} cells "
              f"{res['update_bytes'] / 1e3:.0f} KB ({res['update_gzip_bytes'] / 1e3:.0f} KB "
              f"gzip: what is sent, {res['update_seconds'] * 1e3:.0f} ms)")
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(args.entities),
                               "--cycle", str(args.cycle), "--step", str(args.step[0])],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        base = f"http://127.0.0.1:{json.loads(server.stdout.readline())['port']}"
        out["fleet_api"] = asyncio.run(fleet_api(base, args.cycle))
        print("GET /api/v1/console/fleet: "
              + " ".join(f"{t:.0f}" for t in out["fleet_api"]["ms"]) + " ms")
        out["render"] = render = first_render(base, args.renders)
        for r in render["cold"]:
            print("cold first render: " + ", ".join(
                f"{k} {v:.0f}" for k, v in r.items() if k.endswith("_ms") and v is not None))
        print(f"warm first render: observed {render['warm']['observed_ms']:.0f} ms")
        for key in ("observed_ms", "drawn_ms"):
            if f"cold_{key}" in render:
                c = render[f"cold_{key}"]
                print(f"cold {key}: median {c['median']:.0f}, min {c['min']:.0f}, "
                      f"max {c['max']:.0f} ({args.renders} fresh browsers)")
        for r in range(args.rounds):
            for n in (0, args.clients):
                res = asyncio.run(with_clients(base, n, args.duration))
                res["loadavg_1m"] = os.getloadavg()[0]
                out.setdefault(f"scrape_{n}_clients", []).append(res)
                print(f"round {r + 1}, {n} console clients: {res['requests']} scrapes "
                      f"p50={res['p50_ms']:.1f}ms p99={res['p99_ms']:.1f}ms "
                      f"max={res['max_ms']:.1f}ms errors={res['errors']} "
                      f"ws messages={res['ws_messages']}")
        for n in (0, args.clients):
            p99 = [res["p99_ms"] for res in out[f"scrape_{n}_clients"]]
            print(f"{n} console clients: p99 {' '.join(f'{v:.1f}' for v in p99)} ms "
                  f"(median {np.median(p99):.1f}, spread {min(p99):.1f}-{max(p99):.1f})")
        out["loadavg_after"] = os.getloadavg()
    finally:
        server.terminate()
        server.wait(timeout=10)
    write_results(out, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
