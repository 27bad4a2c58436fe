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
import re
import sys
import time
from collections.abc import Sequence

from exporter import __version__

# subcommand -> (implementing module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("exporter.live", "serve predictions for a live Prometheus-compatible source"),
    "demo": ("exporter.demo", "run the embedded default: a simulated fleet, no Prometheus needed"),
    "check-config": ("exporter.checkconfig", "validate a configuration file"),
    "backtest": ("exporter.backtest", "replay history through the pipeline and score it"),
    "train": ("exporter.train", "train the failure model"),
    "generate": ("exporter.generate", "generate alert rules or Grafana dashboards"),
    "simulate": ("exporter.simulate", "write simulated fleet data (OpenMetrics or CSV)"),
    "report": ("exporter.console.export", "write an entity's or a backtest's report (HTML or Markdown)"),
}


# ` key=` starts the structured fields of a log message ("words key=value key2='v'").
_FIELD_START = re.compile(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_.]*)=")
_FIELD = re.compile(r"""\s*([A-Za-z_][A-Za-z0-9_.]*)=("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\S*)""")


def _value_end(text: str, i: int) -> int:
    """Where the unquoted log field value starting at text[i] ends: the first whitespace
    outside brackets and quotes (an exception's repr, `ConnectionError('Cannot connect to
    host', port=9)`, is one value); the end of the text where they never close."""
    depth, quote = 0, ""
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(depth - 1, 0)
        elif ch.isspace() and depth == 0:
            return i
        i += 1
    return len(text)


def split_message(text: str) -> tuple[str, list[tuple[str, str]]]:
    """A log message -> (message text, [(key, raw value)]).

    Modules log either `msg="words" key=value ...` or `words key=value ...`; both give the
    words as the message and the rest as fields, so the formatter never nests `msg="msg=..."`.
    An unquoted value runs to the first whitespace outside brackets and quotes (`err=%r` of
    an exception: `ConnectionError('Cannot connect to host', port=9)` is one value), or, if
    words without `=` follow it, up to the next ` key=`; a message whose tail is not
    `key=value` pairs even so is returned whole, without fields.
    """
    fields: list[tuple[str, str]] = []
    if text.startswith("msg=") and text[4:5] not in ("'", '"'):
        text = text[4:]  # `msg=words key=value`: the words run up to the first field
    head = _FIELD_START.search(text)
    if head is None:
        return text, fields
    msg = text[: head.start()].strip()
    pos = head.start()
    value_at = 0  # where the last field's value starts
    while pos < len(text):
        m = _FIELD.match(text, pos)
        if m is None or m.end() == pos:
            last = fields[-1][1] if fields else ""
            if not last or last[0] in "\"'":
                return text, []
            # An unquoted value with spaces: it runs up to the next ` key=` (or the end).
            nxt = _FIELD_START.search(text, pos)
            end = nxt.start() if nxt is not None else len(text)
            fields[-1] = (fields[-1][0], text[value_at:end].rstrip())
            pos = end
            continue
        end = m.end() if m.group(2)[:1] in ("'", '"') else _value_end(text, m.start(2))
        fields.append((m.group(1), text[m.start(2):end]))
        value_at, pos = m.start(2), end
        if text[pos:].strip() == "":
            break
    if not msg and fields and fields[0][0] == "msg":
        msg = _unquote(fields.pop(0)[1])
    return msg, fields


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return re.sub(r"\\(.)", r"\1", raw[1:-1])
    return raw


def _logfmt_value(text: str) -> str:
    """Quote a logfmt value when needed; never let a value span lines."""
    text = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    if text and not any(c in text for c in ' "=\t'):
        return text
    return '"' + text.replace('"', '\\"') + '"'


class LogfmtFormatter(logging.Formatter):
    """`ts=... level=info logger=... msg="..."` followed by the record's key=value fields."""

    def format(self, record: logging.LogRecord) -> str:
        """One logfmt line: UTC millisecond `ts`, level, logger, `msg`, then the fields (first
        wins; a field named like a fixed key is dropped, as in `JSONFormatter`).

        The exception of `record.exc_info`, if any, is reduced to its last line (`err=`).
        """
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        msg, fields = split_message(record.getMessage())
        out = (f"ts={ts}.{int(record.msecs):03d}Z level={record.levelname.lower()} "
               f'logger={record.name} msg={_logfmt_value(msg) if msg else chr(34) * 2}')
        seen = {"ts", "level", "logger", "msg"}
        for key, raw in fields:  # a field named like a fixed key is dropped (as in JSON)
            if key in seen:
                continue
            seen.add(key)
            value = _unquote(raw)
            out += f" {key}={_logfmt_value(value) if value else chr(34) * 2}"
        if record.exc_info:
            err = self.formatException(record.exc_info).splitlines()[-1]
            out += f" err={_logfmt_value(err)}"
        return out


class JSONFormatter(logging.Formatter):
    """`--log.format=json`: one JSON object a line with the same keys as `LogfmtFormatter`."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON object: `ts`, `level`, `logger`, `msg`, the fields (first wins), `err`.

        Field values stay strings, unquoted; a field named like a fixed key is dropped.
        """
        msg, fields = split_message(record.getMessage())
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": msg,
        }
        for key, raw in fields:
            doc.setdefault(key, _unquote(raw))
        if record.exc_info:
            doc["err"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(doc)


def configure_logging(level: str, fmt: str) -> None:
    """Send every log record to stderr, one line each, at `level` and above.

    `level`: a stdlib level name, any case (`debug`, `info`, `warning`, `error`); `fmt`: `json`
    or anything else for logfmt. Replaces the root logger's handlers; raises ValueError for an
    unknown level name.
    """
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
    """Run `aura` with `argv` (default `sys.argv[1:]`); return the exit status.

    Parses the flags (argparse exits 2 on bad ones), configures logging, imports the
    subcommand's module and returns its `run(args)` (None counts as 0); Ctrl-C returns 130.
    """
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
