"""`aura` command line: flags and subcommands; the only place that configures logging.

Each subcommand lives in the module that implements it, as `add_arguments(parser)` and
`run(args) -> int`; modules are imported only when their command runs, so `aura check-config`
never pays for torch or ripser.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
from collections.abc import Sequence

from exporter import __version__

# subcommand -> (implementing module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("exporter.server", "serve predictions for a live Prometheus-compatible source"),
    "demo": ("exporter.demo", "run the embedded default: a simulated fleet, no Prometheus needed"),
    "check-config": ("exporter.checkconfig", "validate a configuration file"),
    "backtest": ("exporter.backtest", "replay history through the pipeline and score it"),
    "train": ("exporter.train", "train the failure model"),
    "generate": ("exporter.generate", "generate alert rules or Grafana dashboards"),
    "simulate": ("exporter.source.simulator", "write simulated fleet data (OpenMetrics or CSV)"),
}


class LogfmtFormatter(logging.Formatter):
    """`ts=... level=info logger=... msg="..."` followed by the record's key=value fields."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        msg = record.getMessage().replace('"', '\\"')
        out = f'ts={ts}.{int(record.msecs):03d}Z level={record.levelname.lower()} logger={record.name} msg="{msg}"'
        if record.exc_info:
            err = self.formatException(record.exc_info).splitlines()[-1].replace('"', '\\"')
            out += f' err="{err}"'
        return out


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["err"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(doc)


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported to add its flags (None: all)."""
    parser = argparse.ArgumentParser(
        prog="aura",
        description="AURA: predictive monitoring for Prometheus users.",
    )
    parser.add_argument("--version", action="version", version=f"aura {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--log.level", dest="log_level", default="info",
                       choices=["debug", "info", "warn", "error"], help="log level")
        p.add_argument("--log.format", dest="log_format", default="logfmt",
                       choices=["logfmt", "json"], help="log line format")
        p.set_defaults(_module=module)
        if command is None or command == name:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), "")
    args = build_parser(command).parse_args(argv)
    configure_logging("warning" if args.log_level == "warn" else args.log_level, args.log_format)
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
