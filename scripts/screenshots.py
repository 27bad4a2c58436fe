"""Regenerate the README's console screenshots (docs/console-*.png) from the demo fleet.

Runs the demo's 12-entity simulated fleet (fixed seed and start time, so the pictures change
only when the console or the analysis does) through the real pipeline for a few cycles, serves
it with the exporter's own app and the demo's story (simulated clock, 60x), and photographs
the pages in headless Chromium (Debian `chromium`, driven by Playwright, as the browser tests):

    .venv/bin/python scripts/screenshots.py [--out docs] [--cycles 8]

Writes console-fleet.png (light: story, exporter health, counts, map), console-entity.png (the
leaking host, dark), console-entity-signals.png, console-entity-topology.png and
console-entity-score.png (sections of that page, dark). Look at them before committing.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
START = 1_800_000_000.0  # the simulated clock's start (Unix s)
ENTITY = "/entity?analysis=fleet&instance=host-03:9100"  # the demo's memory leak


def snapshots(cycles: int) -> tuple:
    """(config, story, [snapshot per cycle]) of the demo fleet, one simulated minute apart."""
    from exporter.console.story import Failure, Story
    from exporter.pipeline import Pipeline, load_predictor
    from exporter.source.simulator import SimulatorSource, demo_config, demo_fleet

    cfg = demo_config()
    fleet = demo_fleet(START, entities=12)
    predictor, info = load_predictor(cfg.model.path)
    name = cfg.analysis().name
    story = Story(tuple(Failure(name, dict(zip(fleet.label_names, i.entity, strict=True)),
                                i.kind, i.start, i.end)
                        for i in fleet.incidents if i.predictable and i.start >= START), 60.0)
    pipeline = Pipeline(cfg, SimulatorSource(fleet), predictor=predictor, model_info=info,
                        topology_workers=1)
    try:
        snaps = [asyncio.run(pipeline.run_cycle(START + 60 * k)) for k in range(cycles)]
    finally:
        pipeline.close()
    return cfg, story, snaps


async def photograph(cfg, story, snaps, out: Path) -> list[Path]:
    """Serve the snapshots in order (the console records each in its history), then shoot."""
    from aiohttp import web
    from playwright.async_api import async_playwright

    from exporter.server import make_app
    from exporter.webconfig import WebConfig

    current = [snaps[0]]
    runner = web.AppRunner(make_app(lambda: current[0], WebConfig(), config=cfg, story=story))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    written = []
    try:
        for snap in snaps[1:]:
            await asyncio.sleep(0.6)  # the console polls the snapshot every 0.25 s
            current[0] = snap
        await asyncio.sleep(0.6)
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            size = {"width": 1200, "height": 900}
            tall = {"width": 1200, "height": 1500}  # down to the map and the table's head
            page = await (await browser.new_context(viewport=tall, color_scheme="light")).new_page()
            await page.goto(base + "/")
            await page.wait_for_selector("#story:not([hidden]) .story-head")
            await page.wait_for_function("document.getElementById('clock').textContent"
                                         ".includes('): ')")
            await page.wait_for_function("performance.getEntriesByName('aura:fleet-drawn').length")
            written.append(out / "console-fleet.png")
            await page.screenshot(path=str(written[-1]))
            page = await (await browser.new_context(viewport=size, color_scheme="dark")).new_page()
            await page.goto(base + ENTITY)
            await page.wait_for_selector("#score-baseline circle.pt")
            await page.wait_for_selector("#betti path")
            written.append(out / "console-entity.png")
            await page.screenshot(path=str(written[-1]))
            for name, section in (("signals", "h-signals"), ("topology", "h-topology"),
                                  ("score", "h-baseline")):
                written.append(out / f"console-entity-{name}.png")
                await page.locator(f"section[aria-labelledby='{section}']").screenshot(
                    path=str(written[-1]))
            await browser.close()
    finally:
        await runner.cleanup()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs")
    parser.add_argument("--cycles", type=int, default=8,
                        help="pipeline cycles (simulated minutes) before the pictures")
    args = parser.parse_args()
    if args.cycles < 1:
        parser.error("--cycles must be >= 1")
    cfg, story, snaps = snapshots(args.cycles)
    for path in asyncio.run(photograph(cfg, story, snaps, args.out)):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
