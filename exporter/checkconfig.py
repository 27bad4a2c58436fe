"""`aura check-config FILE`: validate a configuration and name every bad key path."""

from __future__ import annotations

import argparse
import sys

from exporter.config import ConfigError, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="configuration file (YAML)")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.file)
    except ConfigError as err:
        for problem in err.problems:
            print(f"{args.file}: {problem}", file=sys.stderr)
        print(f"FAILED: {len(err.problems)} problem(s)", file=sys.stderr)
        return 1
    signals = sum(len(a.signals) for a in cfg.analyses)
    print(f"SUCCESS: {args.file}: {len(cfg.analyses)} analyses, {signals} signals")
    return 0
