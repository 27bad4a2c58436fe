"""The error of the console's offline report writers (`aura report`), shared by its two sources.

`exporter.console.export` (the CLI and the entity report fetched from a running exporter) and
`exporter.console.backtest_page` (a backtest directory) both raise it; it lives apart so that
neither imports the other for it.
"""

from __future__ import annotations


class ReportError(RuntimeError):
    """A report could not be produced; the message is for the user (one line, no traceback).

    Raised for bad flags, an unreachable exporter, HTTP 401 or other non-200/404 answers, an
    unknown entity, and a missing or malformed backtest directory; `aura report` prints it to
    stderr and exits with status 1.
    """
