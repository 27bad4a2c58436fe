"""CsvSource and read_incidents: good files, located errors, grid snapping, the Source contract."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import numpy as np
import pytest

from exporter.config import AnalysisConfig, Duration, SignalConfig
from exporter.incidents import Incident
from exporter.source.csvfile import CsvFormatError, CsvSource, read_incidents

STEP = 60.0
T0 = 1_700_000_040.0  # on the 1 m grid


def analysis(labels=("instance",), signals=("cpu", "memory")) -> AnalysisConfig:
    return AnalysisConfig(name="nodes", entity_labels=tuple(labels), step=Duration(STEP),
                          signals=tuple(SignalConfig(name=s, query="x") for s in signals))


def write(tmp_path, text: str, name="data.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def fetch(src, an, start, end):
    return asyncio.run(src.fetch(an, start, end))


def test_good_file_rfc3339_and_float_timestamps(tmp_path):
    iso = datetime.fromtimestamp(T0 + STEP, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    p = write(tmp_path, (
        "timestamp,instance,cpu,memory\n"
        f"{T0},a:9100,0.1,0.5\n"
        f"{T0},b:9100,0.2,\n"
        f"{iso},a:9100,0.3,0.6\n"
        f"{T0 + 2 * STEP + 4.2},b:9100,0.4,0.7\n"  # off-grid: snapped to the nearest step
    ))
    src = CsvSource(p, analysis())
    assert src.time_range() == (T0, T0 + 2 * STEP)
    got = fetch(src, analysis(), T0, T0 + 2 * STEP)
    assert got.errors == {}
    assert got.block.entities == (("a:9100",), ("b:9100",))
    np.testing.assert_array_equal(got.block.timestamps, T0 + STEP * np.arange(3))
    np.testing.assert_array_equal(got.block.values[0], [[0.1, 0.3, np.nan], [0.5, 0.6, np.nan]])
    np.testing.assert_array_equal(got.block.values[1], [[0.2, np.nan, 0.4], [np.nan, np.nan, 0.7]])


def test_fetch_slices_and_drops_entities_without_samples(tmp_path):
    p = write(tmp_path, "timestamp,instance,cpu,memory\n"
              f"{T0},a,1,1\n{T0 + STEP},a,2,2\n{T0 + 5 * STEP},b,3,3\n")
    src = CsvSource(p, analysis())
    got = fetch(src, analysis(), T0 + 30, T0 + 3 * STEP)  # start snaps up to T0 + 60
    assert got.block.entities == (("a",),)
    np.testing.assert_array_equal(got.block.timestamps, T0 + STEP * np.arange(1, 4))
    np.testing.assert_array_equal(got.block.values[0, 0], [2, np.nan, np.nan])
    assert got.series == {"cpu": 1, "memory": 1}
    # Beyond the file: an empty block, not an error.
    later = fetch(src, analysis(), T0 + 100 * STEP, T0 + 110 * STEP)
    assert later.block.values.shape == (0, 2, 11)


def test_multi_label_entities_in_first_appearance_order(tmp_path):
    an = analysis(labels=("namespace", "pod"), signals=("cpu",))
    p = write(tmp_path, "timestamp,namespace,pod,cpu\n"
              f"{T0},prod,web-2,1\n{T0},dev,web-1,2\n{T0},prod,\"we,b\",3\n")
    src = CsvSource(p, an)
    assert src.entities == (("prod", "web-2"), ("dev", "web-1"), ("prod", "we,b"))
    np.testing.assert_array_equal(src.values[:, 0, 0], [1, 2, 3])


def test_ignorable_columns_and_column_order(tmp_path):
    p = write(tmp_path, f"memory,note,instance,timestamp,cpu\n0.5,hi,a,{T0},0.1\n")
    with pytest.raises(CsvFormatError, match=r"data.csv:1:note: unknown column\(s\) 'note'"):
        CsvSource(p, analysis())
    src = CsvSource(p, analysis(), ignore_columns=("note",))
    np.testing.assert_array_equal(src.values[0, :, 0], [0.1, 0.5])


@pytest.mark.parametrize(
    "body, where, fragment",
    [
        (f"{T0},a,0.1,0.2\nyesterday,a,0.1,0.2\n", ":3:timestamp", "neither Unix seconds"),
        (f"{T0},a,0.1,0.2\n{T0 + 60},a,0.1\n", ":3", "expected 4 fields, got 3"),
        (f"{T0},a,1,2\n{T0 + 60},a,1,2\n{T0 * 1000},a,1,2\n", ":4:timestamp", "milliseconds"),
        ("", ":2", "no data rows"),
    ],
)
def test_malformed_rows_are_located(tmp_path, body, where, fragment):
    p = write(tmp_path, "timestamp,instance,cpu,memory\n" + body)
    with pytest.raises(CsvFormatError) as info:
        CsvSource(p, analysis())
    assert str(info.value).startswith(f"{p}{where}: "), str(info.value)
    assert fragment in str(info.value)


def test_cells_that_are_not_numbers_are_missing_samples_counted_and_logged_once(tmp_path,
                                                                              caplog):
    p = write(tmp_path, (
        "timestamp,instance,cpu,memory\n"
        f"{T0},a,0.1,0.2\n"
        f"{T0 + 60},a,0.1,lots\n"
        f"{T0 + 120},a,N/A,0.4\n"
        f"{T0 + 180},a,null,N/A\n"
        f"{T0 + 240},a,0.3,0.5\n"))
    caplog.set_level(logging.INFO, logger="exporter.source.csvfile")
    src = CsvSource(p, analysis())
    np.testing.assert_array_equal(src.values[0, 0], [0.1, 0.1, np.nan, np.nan, 0.3])
    np.testing.assert_array_equal(src.values[0, 1], [0.2, np.nan, 0.4, np.nan, 0.5])
    (msg,) = _messages(caplog, "cells that are not numbers")
    assert "cells=4" in msg and "columns=cpu:2,memory:2" in msg, msg
    assert f"first={p}:3:memory:'lots'" in msg, msg


@pytest.mark.parametrize(
    "header, column",
    [("timestamp,instance,cpu", "memory"), ("time,instance,cpu,memory", "timestamp"),
     ("timestamp,cpu,memory", "instance")],
)
def test_missing_column_is_named(tmp_path, header, column):
    p = write(tmp_path, header + "\n")
    with pytest.raises(CsvFormatError, match=f":1:{column}: missing required column '{column}'"):
        CsvSource(p, analysis())


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(CsvFormatError, match="empty file"):
        CsvSource(write(tmp_path, ""), analysis())
    with pytest.raises(CsvFormatError, match="cannot read"):
        CsvSource(tmp_path / "absent.csv", analysis())


def test_large_file_loads_fast(tmp_path):
    # 48 entities x 3 days x 1 min = 207 360 rows.
    n_e, n_t = 48, 3 * 1440
    rng = np.random.default_rng(0)
    vals = rng.random((n_t, n_e, 2)).round(4)
    ts = np.repeat(T0 + STEP * np.arange(n_t), n_e)
    names = np.tile([f"node-{i}:9100" for i in range(n_e)], n_t)
    lines = [f"{t:.0f},{n},{a},{b}" for t, n, a, b in zip(
        ts.tolist(), names.tolist(), vals[..., 0].ravel().tolist(), vals[..., 1].ravel().tolist(),
        strict=True)]
    p = write(tmp_path, "timestamp,instance,cpu,memory\n" + "\n".join(lines) + "\n")
    began = time.perf_counter()
    src = CsvSource(p, analysis())
    elapsed = time.perf_counter() - began
    assert elapsed < 5.0, f"load took {elapsed:.2f}s"
    assert src.values.shape == (n_e, 2, n_t)
    np.testing.assert_array_equal(src.values.transpose(2, 0, 1), vals)


# ------------------------------------------------------------------------------------------
# Incidents


def test_read_incidents(tmp_path):
    p = write(tmp_path, "start,end,instance,kind\n"
              f"{T0},{T0 + 600},a:9100,oom\n"
              "2026-01-02T03:04:05+01:00,,b:9100,\n", "inc.csv")
    got = read_incidents(p, ["instance"])
    assert got == [
        Incident(T0, T0 + 600, ("a:9100",), "oom"),
        Incident(datetime(2026, 1, 2, 2, 4, 5, tzinfo=UTC).timestamp(), None, ("b:9100",),
                 "failure"),
    ]
    without_kind = write(tmp_path, f"start,end,namespace,pod\n{T0},,ns,p\n", "inc2.csv")
    assert read_incidents(without_kind, ["namespace", "pod"]) == [
        Incident(T0, None, ("ns", "p"), "failure")]


@pytest.mark.parametrize(
    "text, where",
    [
        ("start,end,instance\nsoon,,a\n", ":2:start"),
        (f"start,end,instance\n{T0},{T0 - 1},a\n", ":2:end"),
        ("start,end\n", ":1:instance"),
        (f"start,end,instance,severity\n{T0},,a,x\n", ":1:severity"),
        (f"start,end,instance\n{T0},,a\n{T0},a\n", ":3"),
    ],
)
def test_bad_incidents_located(tmp_path, text, where):
    p = write(tmp_path, text, "inc.csv")
    with pytest.raises(CsvFormatError) as info:
        read_incidents(p, ["instance"])
    assert str(info.value).startswith(f"{p}{where}: "), str(info.value)


def _messages(caplog, fragment: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if fragment in r.getMessage()]


# ------------------------------------------------------------------------------------------
# Time units and range


def test_millisecond_timestamps_read_as_seconds_and_logged_once(tmp_path, caplog):
    body = "".join(f"{t},{h},{v},0.5\n" for t, h, v in (
        (T0, "a", 1), (T0, "b", 2), (T0 + STEP, "a", 3), (T0 + 2 * STEP + 0.6, "b", 4)))
    seconds = CsvSource(write(tmp_path, "timestamp,instance,cpu,memory\n" + body), analysis())
    ms_body = "".join(f"{round(float(line.split(',')[0]) * 1000)}," + line.split(",", 1)[1]
                      for line in body.splitlines(keepends=True))
    caplog.set_level(logging.INFO, logger="exporter.source.csvfile")
    ms = CsvSource(write(tmp_path, "timestamp,instance,cpu,memory\n" + ms_body, "ms.csv"),
                   analysis())
    assert ms.time_range() == seconds.time_range() == (T0, T0 + 2 * STEP)
    np.testing.assert_array_equal(ms.values, seconds.values)
    assert len(_messages(caplog, "read as Unix milliseconds")) == 1


@pytest.mark.parametrize(
    "stamp",
    ["1969-12-31T23:59:59Z", "-60", "4294967296", "1e11"],  # 1e11 with seconds around it
)
def test_timestamp_outside_accepted_range_is_refused(tmp_path, stamp):
    p = write(tmp_path, f"timestamp,instance,cpu,memory\n{T0},a,1,1\n{stamp},a,1,1\n")
    with pytest.raises(CsvFormatError) as info:
        CsvSource(p, analysis())
    assert str(info.value).startswith(f"{p}:3:timestamp: "), str(info.value)
    assert "1970-01-01" in str(info.value) and "2106-02-07" in str(info.value)
    assert "milliseconds" in str(info.value)


def test_incidents_in_milliseconds_and_mixed_units(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="exporter.source.csvfile")
    ms = T0 * 1000
    p = write(tmp_path, f"start,end,instance\n{ms:.0f},{ms + 600_000:.0f},a\n{ms:.0f},,b\n",
              "inc.csv")
    assert read_incidents(p, ["instance"]) == [Incident(T0, T0 + 600, ("a",)),
                                               Incident(T0, None, ("b",))]
    assert len(_messages(caplog, "read as Unix milliseconds")) == 1
    # Start in milliseconds, end in seconds: refused, never half converted.
    mixed = write(tmp_path, f"start,end,instance\n{ms:.0f},{T0 + 600:.0f},a\n", "mixed.csv")
    with pytest.raises(CsvFormatError) as info:
        read_incidents(mixed, ["instance"])
    assert str(info.value).startswith(f"{mixed}:2:start: "), str(info.value)
    assert "outside the accepted range" in str(info.value)


# ------------------------------------------------------------------------------------------
# What is left out rather than refused: counted, logged once


def test_non_finite_values_are_missing_samples(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="exporter.source.csvfile")
    p = write(tmp_path, "timestamp,instance,cpu,memory\n"
              f"{T0},a,inf,1\n{T0 + STEP},a,-inf,Infinity\n{T0 + 2 * STEP},a,+Inf,3\n"
              f"{T0 + 3 * STEP},a,4,NaN\n")
    src = CsvSource(p, analysis())
    np.testing.assert_array_equal(src.values[0], [[np.nan, np.nan, np.nan, 4],
                                                  [1, np.nan, 3, np.nan]])
    [msg] = _messages(caplog, "not finite")
    assert "non_finite_values=4" in msg


def test_rows_without_entity_label_are_dropped(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="exporter.source.csvfile")
    an = analysis(labels=("namespace", "pod"), signals=("cpu",))
    p = write(tmp_path, "timestamp,namespace,pod,cpu\n"
              f"{T0},prod,web,1\n{T0},,web,2\n{T0 + STEP},prod, ,3\n{T0 + STEP},prod,web,4\n")
    src = CsvSource(p, an)
    assert src.entities == (("prod", "web"),)
    np.testing.assert_array_equal(src.values[0, 0], [1, 4])
    [msg] = _messages(caplog, "no usable entity labels")
    assert "reason=missing_entity_label rows=2" in msg and "first_line=3" in msg
    nobody = write(tmp_path, f"timestamp,namespace,pod,cpu\n{T0},,web,1\n{T0},prod,,2\n",
                   "nobody.csv")
    with pytest.raises(CsvFormatError, match=r"nobody.csv:2: every row has an empty entity"):
        CsvSource(nobody, an)


def test_label_values_written_with_spaces_after_commas_name_the_same_entity(tmp_path, caplog):
    """`timestamp, instance, cpu` rows (a space after each comma) must name the entity `a`,
    as the incidents file, the rules and every query spell it, not `" a"`: stripped, logged
    once with the first such cell; the incidents' labels are stripped the same way."""
    caplog.set_level(logging.INFO, logger="exporter.source.csvfile")
    an = analysis(signals=("cpu",))
    p = write(tmp_path, f"timestamp, instance, cpu\n{T0}, a, 1\n{T0 + STEP},a,2\n"
              f"{T0}, b ,3\n")
    src = CsvSource(p, an)
    assert src.entities == (("a",), ("b",))
    np.testing.assert_array_equal(src.values[:, 0], [[1, 2], [3, np.nan]])
    [msg] = _messages(caplog, "whitespace around entity label values")
    assert "cells=2" in msg and f"{p}:2:instance:' a'" in msg
    inc = write(tmp_path, f"start, end, instance, kind\n{T0}, , a , oom\n", "inc.csv")
    assert read_incidents(inc, ["instance"]) == [Incident(T0, None, ("a",), "oom")]


def test_data_finer_than_step_says_so_not_duplicates(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="exporter.source.csvfile")
    # 15 s data, 1 m step: four rows per step and entity, rows out of time order.
    rows = [(T0 + 15 * i, h, i) for i in range(16) for h in ("a", "b")]
    rows.reverse()
    p = write(tmp_path, "timestamp,instance,cpu,memory\n"
              + "".join(f"{t},{h},{v},1\n" for t, h, v in rows))
    src = CsvSource(p, analysis())
    # Rows snap to the nearest minute (halves to even); the latest sample of each step is kept,
    # whatever the row order.
    np.testing.assert_array_equal(src.values[0, 0], [2, 5, 10, 13, 15])
    [msg] = _messages(caplog, "data finer than the analysis step")
    assert "data_spacing_seconds=15 step_seconds=60" in msg and "set step" in msg
    assert not _messages(caplog, "latest sample wins")


def test_exact_duplicates_and_coarse_data(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="exporter.source.csvfile")
    p = write(tmp_path, "timestamp,instance,cpu,memory\n"
              f"{T0},a,1,1\n{T0 + STEP},a,2,2\n{T0 + STEP},a,9,9\n{T0 + 2 * STEP},a,3,3\n")
    np.testing.assert_array_equal(CsvSource(p, analysis()).values[0, 0], [1, 9, 3])
    [msg] = _messages(caplog, "latest sample wins")
    assert "duplicate_rows=1" in msg
    assert not _messages(caplog, "finer") and not _messages(caplog, "coarser")
    caplog.clear()
    hourly = write(tmp_path, "timestamp,instance,cpu,memory\n" + "".join(
        f"{T0 + 3600 * i},{h},1,1\n" for i in range(5) for h in "ab"), "hourly.csv")
    CsvSource(hourly, analysis())
    [msg] = _messages(caplog, "data coarser than the analysis step")
    assert "data_spacing_seconds=3600 step_seconds=60" in msg
    assert not _messages(caplog, "latest sample wins")


def test_duplicate_incidents_kept_once(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="exporter.source.csvfile")
    p = write(tmp_path, "start,end,instance,kind\n"
              f"{T0},{T0 + 600},a,oom\n{T0},{T0 + 600},a,oom\n{T0},,a,oom\n"
              f"{T0},{T0 + 600},b,oom\n{T0:.0f}.0,{T0 + 600},a,disk\n", "inc.csv")
    # The same times and entity with another kind (a disk incident during the OOM) is its own.
    assert read_incidents(p, ["instance"]) == [
        Incident(T0, T0 + 600, ("a",), "oom"), Incident(T0, None, ("a",), "oom"),
        Incident(T0, T0 + 600, ("b",), "oom"), Incident(T0, T0 + 600, ("a",), "disk")]
    [msg] = _messages(caplog, "duplicate incidents")
    assert "duplicate_rows=1" in msg


@pytest.mark.parametrize("offset,jitter", [(30.0, 0.0), (30.0, 2.0), (-30.0, 0.0), (20.0, 1.5)])
def test_samples_at_a_steady_offset_keep_every_sample(tmp_path, caplog, offset, jitter):
    """Data half a step (or a steady share of one) off the grid, as a scrape offset puts it:
    every sample kept, each on the first grid point at or after it, nothing reported merged
    (before: round-half-to-even paired them on every other point and lost half; helper-55)."""
    caplog.set_level(logging.INFO, logger="exporter.source.csvfile")
    rng = np.random.default_rng(3)
    n = 40
    t = T0 + STEP * np.arange(n) + offset + rng.uniform(-jitter, jitter, n)
    p = write(tmp_path, "timestamp,instance,cpu,memory\n"
              + "".join(f"{float(ts)!r},a,{i},1\n" for i, ts in enumerate(t)))
    src = CsvSource(p, analysis())
    got = src.values[0, 0]
    assert np.isfinite(got).sum() == n and not np.isnan(got[:n]).any()
    np.testing.assert_array_equal(got[:n], np.arange(n))
    # Never placed before it was taken, and the load says so.
    assert (src.timestamps[:n] >= t - 1e-6).all()
    [msg] = _messages(caplog, "steady offset from the step grid")
    assert "entities=1" in msg
    assert not _messages(caplog, "latest sample wins") and not _messages(caplog, "finer")


def test_aligned_and_finer_data_snap_as_before(tmp_path):
    """A phase under PHASE_TOLERANCE of a step, or none that the rows agree on (data finer
    than the step), leaves the nearest-point snapping as it was."""
    from exporter.source.csvfile import grid_steps

    ts = T0 + STEP * np.arange(10) + np.tile([-3.0, 4.0], 5)
    np.testing.assert_array_equal(grid_steps(ts, np.zeros(10, int), 1, STEP),
                                  np.rint(ts / STEP).astype(np.int64))
    fine = T0 + 15.0 * np.arange(40)
    np.testing.assert_array_equal(grid_steps(fine, np.zeros(40, int), 1, STEP),
                                  np.rint(fine / STEP).astype(np.int64))
    # A few rows (under PHASE_MIN_ROWS) say little about a phase: snapped as before.
    few = T0 + STEP * np.arange(4) + 30.0
    np.testing.assert_array_equal(grid_steps(few, np.zeros(4, int), 1, STEP),
                                  np.rint(few / STEP).astype(np.int64))
    # Two entities, one on the grid and one half a step off: each by its own phase.
    both = np.concatenate([T0 + STEP * np.arange(9), T0 + STEP * np.arange(9) + 30.0])
    ent = np.repeat([0, 1], 9)
    k = grid_steps(both, ent, 2, STEP)
    np.testing.assert_array_equal(k[:9], np.rint(both[:9] / STEP))
    np.testing.assert_array_equal(k[9:], np.rint(both[:9] / STEP) + 1)


def test_entities_and_signals_without_any_sample_are_named(tmp_path, caplog):
    """An entity whose every cell is empty, and a signal empty in the whole file, are
    logged once with their names (they were left out without a word; helper-55)."""
    caplog.set_level(logging.INFO, logger="exporter.source.csvfile")
    p = write(tmp_path, "timestamp,instance,cpu,memory\n"
              f"{T0},a,1,\n{T0 + STEP},a,2,\n{T0},b,,\n{T0 + STEP},b,,\n")
    CsvSource(p, analysis())
    [msg] = _messages(caplog, "entities without a single sample")
    assert "entities_without_samples=1" in msg and "first=b" in msg
    [msg] = _messages(caplog, "signals without a single sample")
    assert "signals=memory" in msg
    assert not _messages(caplog, "series without a single sample")
    caplog.clear()
    p = write(tmp_path, "timestamp,instance,cpu,memory\n"
              f"{T0},a,1,2\n{T0 + STEP},a,2,3\n{T0},c,1,\n{T0 + STEP},c,2,\n", "one.csv")
    CsvSource(p, analysis())
    [msg] = _messages(caplog, "series without a single sample")
    assert "series_without_samples=1" in msg and "first=c/memory" in msg
    assert not _messages(caplog, "signals without a single sample")


def test_a_file_separated_otherwise_says_so(tmp_path):
    """A ';' or tab-separated file is one column to the CSV reader: the error says what the
    separator has to be (helper-55: "missing required column 'timestamp'" left users
    looking at a header that has it)."""
    for sep in (";", "\t"):
        p = write(tmp_path, f"timestamp{sep}instance{sep}cpu{sep}memory\n{T0}{sep}a{sep}1{sep}1\n")
        with pytest.raises(CsvFormatError, match="must be comma-separated"):
            CsvSource(p, analysis())
    p = write(tmp_path, "time,instance,cpu,memory\n")
    with pytest.raises(CsvFormatError) as err:
        CsvSource(p, analysis())
    assert "comma-separated" not in str(err.value)
