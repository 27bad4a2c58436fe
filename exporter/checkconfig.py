"""`aura check-config FILE`: validate a configuration and name every bad key path.

Besides the keys themselves it checks what the config points at and would only fail later:
the failure model (`model.path`) must exist and have been trained for every analysis' window
and step; otherwise `aura run` would start with a forecast that abstains.
"""

from __future__ import annotations

import argparse
import sys

from exporter.config import Config, ConfigError, format_duration, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `check-config`'s one argument, the YAML file, to `parser`: positional as the
    contract says, or `--config.file` like every other command."""
    parser.add_argument("file", nargs="?", help="configuration file (YAML)")
    parser.add_argument("--config.file", dest="config_file", metavar="FILE",
                        help="the same, as the other commands take it")


def model_problems(cfg: Config) -> list[str]:
    """Problems of `model.path` for this config: missing/unreadable card, untrained window."""
    from exporter.lnn.artifacts import ModelError, incompatibility, read_card

    try:
        card = read_card(cfg.model.path)
    except ModelError as err:
        return [f"model.path: {err} (the forecast would abstain)"]
    problems = []
    for i, a in enumerate(cfg.analyses):
        why = incompatibility(card, float(a.window), float(a.step))
        if why is not None:
            problems.append(
                f"analyses[{i}].window: analysis {a.name!r} (window "
                f"{format_duration(a.window)}, step {format_duration(a.step)}) cannot use the "
                f"failure model {card['name']} {card['version']}: {why}; the forecast would "
                "abstain. Use the trained window and step, or train a model for yours "
                "(aura train)."
            )
    return problems


def run(args: argparse.Namespace) -> int:
    """Validate `args.file`: 0 and a `SUCCESS` line on stdout, or 1 and every problem on stderr.

    A problem is a bad key path (`ConfigError.problems`, from `load_config`) or, for a config
    that loads, one of `model_problems`; nothing is raised for a bad file.
    """
    if args.file is None:
        args.file = args.config_file
    elif args.config_file is not None and args.config_file != args.file:
        print("check-config: give the file once (FILE or --config.file)", file=sys.stderr)
        return 2
    if args.file is None:
        print("check-config: the configuration file is required (FILE or --config.file)",
              file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.file)
    except ConfigError as err:
        problems = err.problems
    else:
        problems = model_problems(cfg)
    if problems:
        for problem in problems:
            print(f"{args.file}: {problem}", file=sys.stderr)
        print(f"FAILED: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    signals = sum(len(a.signals) for a in cfg.analyses)
    print(f"SUCCESS: {args.file}: {len(cfg.analyses)} analyses, {signals} signals")
    return 0
