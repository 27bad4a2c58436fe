"""exporter.util: one time rule (no zone = UTC), durations, atomic file replacement."""

import calendar
import math
import os
import time
from pathlib import Path

import pytest

from exporter.util import (
    atomic_open,
    atomic_write,
    format_clock,
    format_duration,
    format_rfc3339,
    humanize_seconds,
    parse_duration,
    parse_rfc3339,
    parse_time,
)

T0 = calendar.timegm((2026, 11, 20, 10, 0, 0))


@pytest.mark.parametrize("text", [
    "2026-11-20T10:00:00Z", "2026-11-20t10:00:00z", "2026-11-20 10:00:00Z",
    "2026-11-20T11:00:00+01:00", "2026-11-20T10:00:00",  # no zone: UTC, not local time
    "2026-11-20T10:00:00.000000000Z",
])
def test_rfc3339_forms_agree(text: str) -> None:
    assert parse_rfc3339(text) == T0
    assert parse_time(text) == T0


def test_no_zone_is_utc_whatever_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert parse_time("2026-11-20T10:00:00") == T0
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_unix_seconds_and_errors() -> None:
    assert parse_time("1700000000.5") == 1700000000.5
    assert parse_time(f"{T0}") == T0
    # Digits beyond datetime's microseconds are kept, to float64's resolution (~2.4e-7 s).
    assert parse_rfc3339("2026-11-20T10:00:00.1234569Z") - T0 == pytest.approx(0.1234569,
                                                                              abs=3e-7)
    for bad in ("yesterday", "", "nan", "inf", "2026-13-01T00:00:00Z"):
        with pytest.raises(ValueError):
            parse_time(bad)
    with pytest.raises(ValueError):
        parse_rfc3339("1700000000")  # webhook times are RFC 3339 only


@pytest.mark.parametrize("seconds, text", [
    (T0, "2026-11-20T10:00:00Z"),
    (T0 + 0.999, "2026-11-20T10:00:00Z"),  # whole seconds, towards the past
    (0.0, "1970-01-01T00:00:00Z"),
    (-0.5, "1969-12-31T23:59:59Z"),
    (-62135596800.0, "0001-01-01T00:00:00Z"),  # four-digit year, not "1-01-01"
    (253402300799.0, "9999-12-31T23:59:59Z"),
])
def test_format_rfc3339_round_trips_through_parse_time(seconds: float, text: str) -> None:
    assert format_rfc3339(seconds) == text
    assert parse_time(text) == math.floor(seconds)
    assert parse_rfc3339(text) == math.floor(seconds)


def test_format_rfc3339_agrees_with_the_stdlib_and_refuses_what_it_cannot_write() -> None:
    import numpy as np

    rng = np.random.default_rng(3)
    for seconds in rng.uniform(-1e10, 1e10, 200):
        text = format_rfc3339(float(seconds))
        assert parse_time(text) == math.floor(seconds)
        # C's gmtime as the oracle (years 1653-2286 here: four digits either way).
        assert text == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.floor(seconds)))
    for bad in (math.nan, math.inf, -math.inf, 253402300800.0, -62135596801.0):
        with pytest.raises(ValueError):
            format_rfc3339(bad)


def test_durations() -> None:
    assert parse_duration("1h30m") == 5400 and parse_duration("250ms") == 0.25
    assert format_duration(5400) == "1h30m" and format_duration(0) == "0s"
    assert parse_duration(format_duration(93784)) == 93784
    assert humanize_seconds(7800) == "2h10m" and humanize_seconds(20) == "under a minute"
    assert humanize_seconds(2 * 86400 + 3600 + 60) == "2d1h" and humanize_seconds(float("nan")) == ""
    with pytest.raises(ValueError):
        parse_duration("5 minutes")


@pytest.mark.parametrize(("seconds", "prometheus", "human", "clock"), [
    # the default horizons as the `horizon` label and the forecast agent's reasons write them
    (900, "15m", "15m", "0:15:00"),
    (3600, "1h", "1h", "1:00:00"),
    (14400, "4h", "4h", "4:00:00"),
    (5400, "1h30m", "1h30m", "1:30:00"),
    (3 * 86400, "3d", "3d", "72:00:00"),  # the decision stage's default reference
    (3900, "1h5m", "1h5m", "1:05:00"),  # a lead time in report.md
    (93784.6, "1d2h3m5s", "1d2h", "26:03:04"),  # exact / to the minute, days and hours / clock
    (29, "29s", "under a minute", "0:00:29"),
    (0, "0s", "under a minute", "0:00:00"),
])
def test_duration_forms(seconds: float, prometheus: str, human: str, clock: str) -> None:
    assert format_duration(seconds) == prometheus
    assert parse_duration(prometheus) == round(seconds)
    assert humanize_seconds(seconds) == human
    assert format_clock(seconds) == clock


def test_humanized_spans_keep_their_sign_and_unknown_ones_say_so() -> None:
    assert humanize_seconds(-1800) == "-30m"  # an alert after the incident started
    assert humanize_seconds(-90000) == "-1d1h"
    assert humanize_seconds(-20) == "under a minute"
    assert humanize_seconds(float("inf")) == "" and format_clock(float("nan")) == "?"


def test_atomic_write_replaces_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "f.csv"
    atomic_write(target, "a,b\r\n1,2\n")
    assert target.read_bytes() == b"a,b\r\n1,2\n"  # no newline translation
    assert (os.stat(target).st_mode & 0o777) == 0o644
    atomic_write(target, b"\x00\x01", permissions=0o600)
    assert target.read_bytes() == b"\x00\x01" and (os.stat(target).st_mode & 0o777) == 0o600
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write("half")
        raise RuntimeError("writer failed")
    assert target.read_bytes() == b"\x00\x01"  # the old file, intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.csv"]  # no temp file left
    with pytest.raises(OSError):
        atomic_write(tmp_path / "missing" / "f", "x")
