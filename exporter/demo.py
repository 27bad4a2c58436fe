"""`aura demo`: the embedded default — a simulated fleet analysed in-process, no Prometheus.

Time is accelerated (`--demo.speed` simulated seconds per real second) so a visitor sees a
memory leak build up towards exhaustion, and AURA's warning come before it, within minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from exporter.webconfig import DEFAULT_PORT, add_web_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `--web.*` flags (listening on 127.0.0.1 by default) and the `--demo.*` ones."""
    add_web_arguments(parser)
    parser.set_defaults(listen_address=f"127.0.0.1:{DEFAULT_PORT}")
    parser.add_argument("--demo.speed", dest="speed", type=float, default=60.0,
                        help="simulated seconds per real second (default 60)")
    parser.add_argument("--demo.entities", dest="entities", type=int, default=24,
                        help="simulated entities (default 24)")
    parser.add_argument("--demo.seed", dest="seed", type=int, default=7, help="simulation seed")
    parser.add_argument("--model.path", dest="model_path", default=None,
                        help="failure model directory (default: the shipped models/default)")
    parser.add_argument("--topology.workers", dest="topology_workers", type=int, default=None,
                        help="processes for persistent homology (default: all cores)")


def run(args: argparse.Namespace) -> int:
    """Serve the simulated fleet's console and `/metrics` until Ctrl-C; return the exit status.

    Returns 1 with a message on stderr for a bad `--web.listen-address`, a bad
    `--web.config.file` or a `--demo.speed` that is not > 0; 0 when stopped. Each pipeline
    cycle covers one simulated interval (the demo config's) in `interval / speed` real seconds.
    """
    from exporter.pipeline import Pipeline, load_predictor
    from exporter.server import ListenError, serve
    from exporter.source.simulator import SimulatorSource, demo_config, demo_fleet
    from exporter.webconfig import load_web_config, parse_listen_address

    try:
        parse_listen_address(args.listen_address)
        web_config = load_web_config(args.web_config_file)
    except ValueError as err:
        print(f"aura: {err}", file=sys.stderr)
        return 1
    if args.speed <= 0:
        print("aura: --demo.speed must be > 0", file=sys.stderr)
        return 1

    wall0 = time.time()
    sim0 = wall0
    cfg = demo_config()
    fleet = demo_fleet(sim0, entities=args.entities, seed=args.seed)
    model_path = args.model_path or cfg.model.path
    predictor, info = load_predictor(model_path)

    from exporter.console.story import Failure, Story

    analysis = cfg.analysis()
    # The console labels every time "simulated" and says how much faster the clock runs.
    failures = tuple(Failure(analysis.name, dict(zip(fleet.label_names, i.entity, strict=True)),
                             i.kind, i.start, i.end)
                     for i in fleet.incidents if i.predictable and i.start >= sim0)
    story = Story(failures, args.speed)

    def sim_now() -> float:
        return sim0 + (time.time() - wall0) * args.speed

    def announce(url: str) -> None:
        print(f"AURA demo: {len(fleet.entities)} simulated entities, time x{args.speed:g}.",
              flush=True)
        print(f"Console: {url} (fleet, entities, alerts; live). "
              f"Metrics: {url.rstrip('/')}{args.telemetry_path}.", flush=True)
        print("Scrape it with Prometheus (honor_labels: true) or curl it; Ctrl-C to stop.",
              flush=True)

    async def main() -> None:
        pipeline = Pipeline(cfg, SimulatorSource(fleet), predictor=predictor, model_info=info,
                            topology_workers=args.topology_workers)
        # One simulated interval per cycle, compressed by the speed-up.
        await serve(pipeline, args, web_config, now=sim_now,
                    interval=float(cfg.interval) / args.speed, on_started=announce,
                    story=story)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except ListenError as err:
        print(f"aura: {err}", file=sys.stderr)
        return 1
    return 0
