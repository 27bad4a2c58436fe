"""`aura run`: the live exporter's wiring: config, Prometheus source, state, model, pipeline.

It validates the flags and the configuration, builds the pipeline for a live
Prometheus-compatible source and hands it to `exporter.server.serve`, which serves it over HTTP
until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

from exporter.server import ListenError, serve
from exporter.webconfig import add_web_arguments, parse_listen_address


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`aura run`'s flags: the config file, the web flags, sharding and topology workers."""
    parser.add_argument("--config.file", dest="config_file", default="aura.yml",
                        help="configuration file (YAML)")
    add_web_arguments(parser)
    parser.add_argument("--shard.index", dest="shard_index", default="0",
                        help="this replica's shard (0-based), or 'auto': the ordinal N at the "
                             "end of the host name (StatefulSet pod aura-N)")
    parser.add_argument("--shard.count", dest="shard_count", type=int, default=1,
                        help="number of replicas splitting the entities")
    parser.add_argument("--topology.workers", dest="topology_workers", type=int, default=None,
                        help="processes for persistent homology (default: all cores)")


def resolve_shard_index(value: str, hostname: str) -> int:
    """`--shard.index`: a number, or `auto` for the StatefulSet ordinal of `hostname`."""
    if value == "auto":
        match = re.search(r"-(\d+)$", hostname)
        if not match:
            raise ValueError(f"--shard.index=auto: host name {hostname!r} does not end in -N")
        return int(match.group(1))
    if not value.isdigit():
        raise ValueError(f"--shard.index: expected a number or 'auto', got {value!r}")
    return int(value)


def run(args: argparse.Namespace) -> int:
    """`aura run`: the live exporter."""
    from exporter.config import ConfigError, load_config
    from exporter.pipeline import Pipeline, load_predictor
    from exporter.webconfig import load_web_config

    try:
        cfg = load_config(args.config_file)
        web_config = load_web_config(args.web_config_file)
        parse_listen_address(args.listen_address)
        if not cfg.analyses:
            raise ConfigError([f"{args.config_file}: analyses: at least one analysis is needed"])
        shard_index = resolve_shard_index(args.shard_index, os.environ.get("HOSTNAME", ""))
        if not 0 <= shard_index < args.shard_count:
            raise ConfigError([f"--shard.index {shard_index} must be in [0, --shard.count)"])
    except (ConfigError, ValueError) as err:
        print(f"aura: {err}", file=sys.stderr)
        return 1

    from exporter.config import UNPROJECTABLE_ADVICE, unprojectable_resources
    from exporter.source.prometheus import PrometheusSource

    for _, name, signal in unprojectable_resources(cfg):
        logging.getLogger("aura.config").warning(
            "msg=%s analysis=%s signal=%s", json.dumps(UNPROJECTABLE_ADVICE), name, signal)
    state = None
    if cfg.state_dir:
        from exporter.state import StateStore

        state = StateStore(cfg.state_dir)
    predictor, info = load_predictor(cfg.model.path)
    shard = (shard_index, args.shard_count) if args.shard_count > 1 else None

    async def main() -> None:
        source = PrometheusSource(cfg.source)
        pipeline = Pipeline(cfg, source, predictor=predictor, model_info=info, state=state,
                            shard=shard, topology_workers=args.topology_workers)
        incidents = _incident_recorder(cfg)
        await serve(pipeline, args, web_config, incidents=incidents,
                    prometheus_url=cfg.source.url)

    try:
        asyncio.run(main())
    except ListenError as err:
        print(f"aura: {err}", file=sys.stderr)
        return 1
    return 0


def _incident_recorder(cfg: Any) -> Any:
    """The Alertmanager webhook recorder, when a state dir exists to record into."""
    if not cfg.state_dir:
        return None
    from exporter.incident_recorder import IncidentRecorder

    labels = {a.name: tuple(a.entity_labels) for a in cfg.analyses}
    return IncidentRecorder(Path(cfg.state_dir), cfg.incidents, labels)
