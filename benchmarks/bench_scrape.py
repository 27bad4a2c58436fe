"""Benchmark: /metrics latency (p50/p99) under concurrent scrapers.

Target: (a) `--url` (e.g. a running `aura demo`), or (b) by default AURA's own HTTP app
(`exporter.server.make_app`) serving a synthetic snapshot of `--entities` entities (10 000),
rendered once by `exporter.exposition.render` exactly as a cycle would. The server runs in a
separate process from the load generator; on a 2-core machine they still share the cores, and
the Python load generator itself costs CPU, so the figures are an upper bound of the latency.

Each scraper loops GET /metrics for `--duration` seconds, reading the whole body; once with
`Accept-Encoding: gzip` (what Prometheus sends) and once without. Non-200 answers and
exceptions count as errors.

    .venv/bin/python benchmarks/bench_scrape.py --duration 20
    .venv/bin/python benchmarks/bench_scrape.py --url http://127.0.0.1:10977/metrics
    .venv/bin/python benchmarks/bench_scrape.py --entities 1000 --rate 1000 --duration 60

`--rate` is the open-loop mode: requests are due at a fixed rate whatever the answers do, and
latency counts from the due time.

Target: p99 < 100 ms at 10 000 entities. Writes benchmarks/results/scrape.json. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from benchio import write_results

RESULTS = Path(__file__).resolve().parent / "results"


def synthetic_snapshot(entities: int, seed: int = 0) -> Any:
    """A Snapshot of one analysis with every per-entity array filled (summary detail)."""
    import gzip

    from exporter.config import AnalysisConfig, Config
    from exporter.exposition import render
    from exporter.results import AnalysisResult, Consensus, Forecast, TopologyResult, Votes
    from exporter.snapshot import SelfStats, Snapshot
    from exporter.source.simulator import fleet_signals
    from exporter.windows import Window

    rng = np.random.default_rng(seed)
    sigs = fleet_signals()[:8]
    analysis = AnalysisConfig(name="bench", signals=sigs, max_entities=entities)
    cfg = Config(analyses=(analysis,))
    e, s = entities, len(sigs)
    ents = tuple((f"host-{i:05d}:9100",) for i in range(e))
    names = tuple(x.name for x in sigs)
    window = Window("bench", ("instance",), ents, names, np.array([0.0]), np.zeros((e, s, 1)))
    prob = np.sort(rng.random((e, 3)), axis=1)
    contrib = rng.dirichlet(np.ones(s), e)
    agents = ("topology", "forecast", "capacity", "network", "stability")
    votes = tuple(Votes(a, rng.random(e), rng.random(e), ("none",) * e,
                        np.full(e, np.nan), contrib, ("",) * e) for a in agents)
    risk = rng.random(e)
    consensus = Consensus(agents, risk, np.digitize(risk, [0.5, 0.8]), np.full(e, 5),
                          ("none",) * e, np.where(risk > 0.8, 3600.0, np.nan), contrib,
                          np.ones((e, 5), dtype=bool), ("",) * e)
    topo = TopologyResult(rng.random(e), rng.integers(0, 4, (e, 2)).astype(float),
                          rng.random((e, 2)), rng.random((e, 4)), ("a", "b", "c", "d"), contrib,
                          np.array([1.0, 0.0]), rng.random(e))
    fc = Forecast((3600.0, 7200.0, 14400.0), prob, np.where(prob[:, 2] > 0.5, 5000.0, np.nan))
    result = AnalysisResult("bench", ("instance",), ents, names, window, topo, fc, votes,
                            consensus, {n: e for n in names}, {})
    body = render((result,), SelfStats(up=1.0, cycles_total=1), cfg)
    return Snapshot(time.time(), (result,), body, gzip.compress(body, compresslevel=5), True)


def serve(entities: int) -> None:
    """Server process: print the port, then serve until killed."""
    from aiohttp import web

    from exporter.server import make_app
    from exporter.webconfig import WebConfig

    t0 = time.perf_counter()
    snap = synthetic_snapshot(entities)
    render_s = time.perf_counter() - t0

    async def main() -> None:
        app = make_app(lambda: snap, WebConfig(), max_requests=0)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(json.dumps({"port": port, "bytes": len(snap.body), "gzip_bytes":
                          len(snap.body_gzip), "render_seconds": render_s,
                          "samples": snap.body.count(b"\n") - snap.body.count(b"\n#")}),
              flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


async def load(url: str, concurrency: int, duration: float, gzip: bool,
               pace: float = 0.0) -> dict[str, Any]:
    import aiohttp

    lat: list[float] = []
    errors = 0
    sizes: list[int] = []
    headers = {"Accept-Encoding": "gzip" if gzip else "identity"}
    deadline = time.perf_counter() + duration
    conn = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout,
                                     auto_decompress=False) as session:
        async def scraper() -> None:
            nonlocal errors
            # Paced scrapers start spread over one period, as Prometheus spreads its targets.
            if pace > 0:
                await asyncio.sleep(pace * np.random.random())
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                if pace > 0:
                    next_at = t0 + pace
                try:
                    async with session.get(url, headers=headers) as resp:
                        body = await resp.read()
                        if resp.status != 200:
                            errors += 1
                            continue
                except (TimeoutError, aiohttp.ClientError):
                    errors += 1
                    continue
                lat.append(time.perf_counter() - t0)
                sizes.append(len(body))
                if pace > 0:
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

        await asyncio.gather(*(scraper() for _ in range(concurrency)))
    arr = np.asarray(lat) * 1e3
    return {
        "gzip": gzip, "pace_seconds": pace, "requests": len(lat), "errors": errors,
        "requests_per_second": len(lat) / duration,
        "p50_ms": float(np.percentile(arr, 50)) if len(arr) else None,
        "p99_ms": float(np.percentile(arr, 99)) if len(arr) else None,
        "max_ms": float(arr.max()) if len(arr) else None,
        "body_bytes": int(np.median(sizes)) if sizes else None,
    }


async def load_rate(url: str, rate: float, duration: float, gzip: bool,
                    connections: int = 64) -> dict[str, Any]:
    """Open loop: request k is due at k / rate, whatever the earlier answers did.

    Latency runs from the due time (not the send time), so a stalled server shows in the
    figures instead of slowing the generator down (no coordinated omission).
    """
    import aiohttp

    lat: list[float] = []
    late: list[float] = []
    errors = 0
    headers = {"Accept-Encoding": "gzip" if gzip else "identity"}
    conn = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=30)
    total = int(rate * duration)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout,
                                     auto_decompress=False) as session:
        async def one(due: float) -> None:
            nonlocal errors
            try:
                async with session.get(url, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200 or (gzip and
                                              resp.headers.get("Content-Encoding") != "gzip"):
                        errors += 1
                        return
            except (TimeoutError, aiohttp.ClientError):
                errors += 1
                return
            lat.append(time.perf_counter() - due)

        began = time.perf_counter()
        tasks = []
        for k in range(total):
            due = began + k / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late.append(-delay)
            tasks.append(asyncio.create_task(one(due)))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - began
    arr = np.asarray(lat) * 1e3
    return {
        "mode": "rate", "gzip": gzip, "target_rate": rate, "requests": total,
        "answered": len(lat), "errors": errors, "achieved_rate": len(lat) / wall,
        "p50_ms": float(np.percentile(arr, 50)) if len(arr) else None,
        "p99_ms": float(np.percentile(arr, 99)) if len(arr) else None,
        "max_ms": float(arr.max()) if len(arr) else None,
        # Requests the generator itself sent behind schedule (its own CPU limit, not the server's).
        "generator_late_share": len([x for x in late if x > 0.005]) / max(total, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=None, help="scrape this URL instead of the built-in server")
    p.add_argument("--entities", type=int, default=10000)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--duration", type=float, default=20.0, help="seconds per run")
    p.add_argument("--pace", type=float, nargs="+", default=[0.0, 1.0],
                   help="seconds between one scraper's requests (0: back to back, saturating)")
    p.add_argument("--rate", type=float, default=None,
                   help="open loop instead: this many gzip requests per second in total for "
                        "--duration (issue 15: --entities 1000 --rate 1000 --duration 60)")
    p.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--output", default=str(RESULTS / "scrape.json"))
    args = p.parse_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return 0
    server = None
    info: dict[str, Any] = {}
    url = args.url
    if url is None:
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(args.entities)],
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None
        info = json.loads(server.stdout.readline())
        url = f"http://127.0.0.1:{info['port']}/metrics"
    out: dict[str, Any] = {"benchmark": "scrape", "url": url, "server": info or "external",
                           "entities": args.entities if args.url is None else None,
                           "concurrency": args.concurrency, "duration_seconds": args.duration,
                           "cpus": os.cpu_count(), "loadavg_before": os.getloadavg(),
                           "runs": []}
    try:
        if args.rate is not None:
            res = asyncio.run(load_rate(url, args.rate, args.duration, True))
            out["runs"].append(res)
            print(f"rate={args.rate:g}/s gzip {res['answered']}/{res['requests']} answered "
                  f"({res['achieved_rate']:.1f}/s) errors={res['errors']} "
                  f"p50={res['p50_ms']:.1f}ms p99={res['p99_ms']:.1f}ms max={res['max_ms']:.1f}ms "
                  f"generator_late={res['generator_late_share']:.1%}")
        for pace in ([] if args.rate is not None else args.pace):
            for gz in (True, False):
                res = asyncio.run(load(url, args.concurrency, args.duration, gz, pace))
                out["runs"].append(res)
                print(f"pace={pace:g}s {'gzip    ' if gz else 'identity'} {res['requests']} "
                      f"requests ({res['requests_per_second']:.1f}/s) errors={res['errors']} "
                      f"p50={res['p50_ms']:.1f}ms p99={res['p99_ms']:.1f}ms "
                      f"max={res['max_ms']:.1f}ms body={res['body_bytes'] / 1e6:.2f}MB")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
    if info:
        print(f"server: {args.entities} entities, {info['samples']} samples, "
              f"{info['bytes'] / 1e6:.1f}MB ({info['gzip_bytes'] / 1e6:.2f}MB gzip), rendered once "
              f"in {info['render_seconds']:.2f}s")
    write_results(out, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
