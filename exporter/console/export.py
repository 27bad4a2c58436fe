"""`aura report`: write a self-contained report file from a running exporter or a backtest.

Two sources, one output file (`--format=html|md`, default from the file name):

- `--url=http://HOST:PORT --entity=instance=foo [--analysis=NAME]`: the entity's view from
  the exporter's console API (`GET /api/v1/console/entity`), rendered by
  `exporter.console.report` exactly as the console's own export button does. Basic auth
  (`--auth.username`, `--auth.password-file`) and TLS (`--tls.ca-file`; verification on unless
  `--tls.insecure-skip-verify`) as in the source section of the configuration.
- `--backtest-dir=DIR`: the directory `aura backtest --output-dir` wrote, rendered by
  `exporter.console.backtest_page` (its PNG plots, or risk charts drawn from scores.csv,
  inline).

Errors (unreachable exporter, 401, unknown entity, missing files) are one line on stderr and
exit status 1; the output file is written atomically, so a failure never leaves half a report.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import time
from pathlib import Path
from typing import Any

from exporter.console.errors import ReportError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `aura report`'s flags (see the module docstring) to its subcommand parser."""
    parser.add_argument("--url", default=None,
                        help="a running exporter, e.g. http://127.0.0.1:10977 (entity report)")
    parser.add_argument("--entity", action="append", default=[], metavar="LABEL=VALUE",
                        help="the entity's labels (repeat for several entity labels)")
    parser.add_argument("--analysis", default=None,
                        help="the analysis (default: the one whose entity labels match)")
    parser.add_argument("--backtest-dir", dest="backtest_dir", default=None,
                        help="a directory written by `aura backtest --output-dir`")
    parser.add_argument("--format", dest="fmt", choices=["html", "md"], default=None,
                        help="output format (default: from --output's extension, else html)")
    parser.add_argument("--output", required=True, help="the report file to write")
    parser.add_argument("--auth.username", dest="auth_username", default=None,
                        help="basic auth user of the exporter's --web.config.file")
    parser.add_argument("--auth.password-file", dest="auth_password_file", default=None,
                        help="file holding that user's password")
    parser.add_argument("--tls.ca-file", dest="tls_ca_file", default=None,
                        help="CA bundle to verify the exporter's certificate")
    parser.add_argument("--tls.insecure-skip-verify", dest="tls_insecure", action="store_true",
                        help="do not verify the exporter's certificate (testing only)")
    parser.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout in seconds")


def _labels(pairs: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ReportError(f"--entity: expected LABEL=VALUE, got {pair!r}")
        labels[name.strip()] = value
    if not labels:
        raise ReportError("--entity: give the entity's labels, e.g. --entity=instance=host-03")
    return labels


async def fetch_entity(url: str, labels: dict[str, str], analysis: str | None, *,
                       username: str | None = None, password: str = "",
                       ca_file: str | None = None, insecure: bool = False,
                       timeout: float = 30.0) -> dict[str, Any]:
    """The console's entity view (JSON of `views.entity_detail`) from a running exporter.

    Without `analysis`, the fleet API names the analyses; the first whose entity labels are
    `labels`' names and that holds the entity is used. Raises ReportError.
    """
    import aiohttp

    from exporter.config import SourceConfig, TLSConfig
    from exporter.source.http import ssl_context

    base = url.rstrip("/")
    tls = ssl_context(SourceConfig(url=base, tls_config=TLSConfig(
        ca_file=ca_file, insecure_skip_verify=insecure))) if base.startswith("https") else False
    headers = {}
    if username is not None:
        pair = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {pair}"
    async with aiohttp.ClientSession(headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as s:

        async def get(path: str, params: dict[str, str] | None = None) -> tuple[int, Any]:
            try:
                async with s.get(base + path, params=params, ssl=tls) as r:
                    if r.status == 401:
                        raise ReportError(f"{base}: 401 unauthorized (give --auth.username and "
                                          "--auth.password-file)")
                    body = await r.json(content_type=None) if r.status in (200, 404) else None
                    if r.status not in (200, 404):
                        raise ReportError(f"{base}{path}: HTTP {r.status}")
                    return r.status, body
            except (TimeoutError, aiohttp.ClientError, ValueError) as err:
                raise ReportError(f"{base}: {type(err).__name__}: {err}") from err

        names = [analysis] if analysis else []
        if not names:
            _, fleet = await get("/api/v1/console/fleet")
            names = [a["name"] for a in fleet.get("analyses", ())
                     if set(a.get("labels", ())) == set(labels)]
            if not names:
                raise ReportError(f"no analysis has the entity labels {sorted(labels)}")
        for name in names:
            status, detail = await get("/api/v1/console/entity", {"analysis": name, **labels})
            if status == 200:
                return dict(detail)
        where = f"analysis {analysis!r}" if analysis else f"analyses {names}"
        raise ReportError(f"no entity {labels} in {where} of the current snapshot")


def _format(args: argparse.Namespace) -> str:
    if args.fmt:
        return str(args.fmt)
    return "md" if str(args.output).lower().endswith((".md", ".markdown")) else "html"


def render(args: argparse.Namespace) -> str:
    """The report text for parsed `aura report` arguments; raises ReportError."""
    fmt = _format(args)
    if bool(args.url) == bool(args.backtest_dir):
        raise ReportError("give either --url (entity report) or --backtest-dir")
    if args.backtest_dir:
        from exporter.console import backtest_page

        return backtest_page.render(Path(args.backtest_dir), fmt)
    from exporter.console import report

    password = ""
    if args.auth_password_file:
        try:
            password = Path(args.auth_password_file).read_text().strip()
        except OSError as err:
            raise ReportError(f"--auth.password-file: {err.strerror}: "
                              f"{args.auth_password_file}") from err
    detail = asyncio.run(fetch_entity(
        args.url, _labels(args.entity), args.analysis, username=args.auth_username,
        password=password, ca_file=args.tls_ca_file, insecure=args.tls_insecure,
        timeout=args.timeout))
    now = time.time()
    return report.markdown(detail, now) if fmt == "md" else report.html_report(detail, now)


def run(args: argparse.Namespace) -> int:
    """`aura report`: write the report to `args.output`; exit status 0, or 1 on a ReportError.

    The error is one line on stderr and no file is written. The file is replaced atomically
    (util.atomic_write): an OSError while writing propagates and leaves any previous file
    whole.
    """
    from exporter.util import atomic_write

    try:
        text = render(args)
    except ReportError as err:
        print(f"aura report: {err}", file=sys.stderr)
        return 1
    atomic_write(Path(args.output), text)
    print(f"aura report: wrote {args.output} ({len(text.encode()) // 1024 + 1} KB)")
    return 0
