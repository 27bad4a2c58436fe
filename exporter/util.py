"""Time and file plumbing shared by every command: parse times and durations, write atomically.

One rule for times: Unix seconds, or RFC 3339 / ISO 8601 where a time without a zone is UTC
(never the machine's local time, which would make a backtest depend on where it runs); times
are written back as RFC 3339 in UTC (`format_rfc3339`).
Durations have three written forms, each one function: `format_duration` (a Prometheus
duration, exact to the second: configuration values, the `horizon` label, a configured span
named in a reason), `humanize_seconds` (`2h10m` to the minute: estimated times and lead times
in explanations and reports) and `format_clock` (`0:05:07`: elapsed and remaining time of a
progress line). Files are replaced atomically (temp file in the same directory, fsync, rename,
fsync of the directory), so a crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

# Fractional seconds beyond datetime's microseconds (Go writes nanoseconds) are kept apart.
_FRACTION = re.compile(r"(?<=\d{2}:\d{2}:\d{2})\.(\d+)")


def parse_rfc3339(text: str) -> float:
    """Unix seconds of an RFC 3339 / ISO 8601 time (`2026-01-02T03:04:05.123456789Z`).

    Offsets (`+01:00`), `Z`/`z`, `T`/`t`/space separators and any number of fraction digits are
    accepted; a time without a zone is UTC. Raise ValueError when malformed.
    """
    stripped = text.strip()
    fraction = 0.0
    match = _FRACTION.search(stripped)
    if match:
        fraction = float("0." + match.group(1))
        stripped = stripped[: match.start()] + stripped[match.end() :]
    if stripped[-1:] in ("Z", "z"):
        stripped = stripped[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError as err:
        raise ValueError(f"not an RFC 3339 time: {text!r}") from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() + fraction


def format_rfc3339(seconds: float) -> str:
    """Unix seconds -> `2024-05-01T00:00:00Z`: RFC 3339 in UTC, whole seconds (the fraction is
    dropped, rounding towards the past), as report.json writes times.

    `parse_time` reads it back to `math.floor(seconds)`. Raise ValueError when `seconds` is not
    finite or lies outside the years 0001-9999.
    """
    try:
        moment = datetime.fromtimestamp(math.floor(seconds), UTC)
    except (OverflowError, OSError, ValueError) as err:
        raise ValueError(f"time {seconds!r} is not a representable Unix time") from err
    # isoformat, not strftime: %Y drops the leading zeros of years before 1000 on glibc.
    return moment.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def parse_time(text: str) -> float:
    """Unix seconds from `1700000000.5` or an RFC 3339 time (`parse_rfc3339`, no zone = UTC).

    Raise ValueError when neither, or when the number is not finite.
    """
    try:
        value = float(text)
    except ValueError:
        return parse_rfc3339(text)
    if not math.isfinite(value):
        raise ValueError(f"time {text!r} is not finite")
    return value


_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")


def parse_duration(text: str) -> float:
    """Parse a Prometheus duration (`90s`, `1h30m`) into seconds; ValueError when malformed."""
    text = text.strip()
    pos, total = 0, 0.0
    for match in _DURATION_RE.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r} (use e.g. 30s, 5m, 2h, 1h30m)")
    return total


def format_duration(seconds: float) -> str:
    """Format seconds as the shortest Prometheus duration (`7200` -> `2h`), whole seconds."""
    seconds = int(round(seconds))
    if seconds == 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out


def humanize_seconds(seconds: float) -> str:
    """`7800` -> `2h10m` for explanations and reports: minutes resolution, days and hours only
    beyond 24 h, `-` before a negative span of a minute or more; "" if not finite."""
    if not math.isfinite(seconds):
        return ""
    minutes = int(round(abs(seconds) / 60))
    if minutes < 1:
        return "under a minute"
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = ["-"] if seconds < 0 else []
    if days:
        parts.append(f"{days}d")
    if hours:
        parts.append(f"{hours}h")
    if mins and not days:
        parts.append(f"{mins}m")
    return "".join(parts)


def format_clock(seconds: float) -> str:
    """`3725` -> `1:02:05` (hours:minutes:seconds, whole seconds) for progress lines; `?` if
    not finite."""
    if not math.isfinite(seconds):
        return "?"
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


@contextmanager
def atomic_open(path: Path, binary: bool = False, permissions: int = 0o644,
                **open_args: Any) -> Iterator[IO[Any]]:
    """Write `path` through a temp file that replaces it only when the block succeeds.

    The temp file sits in the same directory (a rename across filesystems is not atomic); on
    success it is flushed, fsynced, given `permissions` (mkstemp makes 0600) and renamed over
    `path`, then the directory is fsynced so the rename survives a crash. On any error the temp
    file is removed and the error propagates (OSError from the file system); `path` is intact.
    `open_args` go to `open` (e.g. newline="" for CSV).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **open_args) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, permissions)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write(path: Path, data: str | bytes, permissions: int = 0o644) -> None:
    """Replace `path` with `data` atomically (`atomic_open`); raise OSError on failure."""
    binary = isinstance(data, bytes)
    with atomic_open(path, binary=binary, permissions=permissions,
                     **({} if binary else {"newline": ""})) as fh:
        fh.write(data)
