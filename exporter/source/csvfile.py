"""CSV input for `backtest` and `train` (design §5): samples and incidents.

Samples: header `timestamp,<entity label columns>,<signal columns>`, one row per entity per step;
`timestamp` is Unix seconds (float) or RFC 3339; an empty cell is a missing sample. The file is
read once into values[entity, signal, step] on the analysis' step grid (timestamps are snapped
to the nearest grid point, or, for an entity whose samples sit at a steady offset from the
grid, to the next one: `grid_steps`) and `fetch` slices it, so the offline drivers use the same Source
protocol as the live one.

Incidents: header `start,end,<entity label columns>[,kind]`; `end` may be empty (still open or
unknown). Every problem raises `CsvFormatError` naming file, line and column.

Times, in both files: a column of numbers that are all in [1e11, 1e14) is Unix milliseconds (as
Grafana and Prometheus CSV exports write them; as seconds they would be after the year 5138)
and is read as such; any time still outside [0, 2**32) seconds (before 1970, after 2106) is
refused. What is left out rather than refused is counted and logged once per file: values that
are not finite (`inf`: a missing sample), cells that are not numbers (`N/A`, `null`: a missing
sample), rows without an entity label, duplicate incidents.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from exporter.config import AnalysisConfig
from exporter.incidents import DEFAULT_INCIDENT_KIND, Incident
from exporter.source import Fetch, SourceError
from exporter.source.prometheus import DROP_MISSING_LABEL
from exporter.util import parse_time
from exporter.windows import EntityKey, Window, empty_window, grid

log = logging.getLogger(__name__)

# Refuse files whose timestamps would need an absurd grid (a typo in one timestamp, ms instead
# of s): values[E, S, T] beyond this many cells would not fit in memory anyway.
MAX_CELLS = 500_000_000
# Accepted times, Unix seconds: what the stages' uint32 times hold (1970-01-01 to 2106-02-07).
TIME_RANGE = (0.0, 2.0**32)
# A column of numbers all within this range is Unix milliseconds: 1973 to 5138 as milliseconds,
# the year 5138 onwards as seconds.
MILLISECONDS = (1e11, 1e14)
# Rows of an entity whose timestamps sit this far (a share of the step) or more from the grid,
# consistently (the mean resultant length of their phases at least PHASE_AGREEMENT), are
# placed by their own phase (`grid_steps`).
PHASE_TOLERANCE = 0.1
PHASE_AGREEMENT = 0.5
PHASE_MIN_ROWS = 8


class CsvFormatError(ValueError):
    """A problem in an input file, located as `file:line:column: problem`.

    `line` is 1-based (the header is line 1); `column` is the column name when known.
    """

    def __init__(self, path: str | Path, line: int, column: str | None, problem: str):
        self.path, self.line, self.column, self.problem = str(path), line, column, problem
        where = f"{path}:{line}" + (f":{column}" if column else "")
        super().__init__(f"{where}: {problem}")


def parse_timestamp(text: str) -> float:
    """Unix seconds from `1700000000.5` or RFC 3339 (`util.parse_time`: no zone = UTC).

    One cell, as written: whether a column is milliseconds is decided over the whole column
    (`_to_seconds`). Raise ValueError naming the cell's text when neither (or not finite).
    """
    try:
        return parse_time(text)
    except ValueError as err:
        raise ValueError(
            f"timestamp {text.strip()!r} is neither Unix seconds nor RFC 3339 ({err})"
        ) from None


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        # utf-8-sig: spreadsheet "CSV UTF-8" exports start with a byte order mark, which would
        # otherwise become part of the first column name.
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise CsvFormatError(path, 1, None, "empty file (no header)") from None
            rows = list(reader)
    except OSError as err:
        raise CsvFormatError(path, 0, None, f"cannot read: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise CsvFormatError(path, 0, None, f"not UTF-8 text: {err}") from err
    except csv.Error as err:
        raise CsvFormatError(path, 0, None, f"CSV syntax: {err}") from err
    return header, rows


def _check_header(path: Path, header: list[str], required: Sequence[str],
                  optional: Sequence[str] = (), ignorable: Sequence[str] = ()) -> dict[str, int]:
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        if name in seen:
            raise CsvFormatError(path, 1, name, f"duplicate column {name!r}")
        seen[name] = i
    for name in required:
        if name not in seen:
            hint = ""
            if len(header) == 1:
                other = next((d for d in (";", "\t", "|") if d in header[0]), None)
                if other is not None:
                    hint = (f"; the header is one column that contains {other!r}: the file "
                            "must be comma-separated")
            raise CsvFormatError(
                path, 1, name,
                f"missing required column {name!r} (header must be {','.join(required)})"
                + hint,
            )
    known = set(required) | set(optional) | set(ignorable)
    unknown = [h for h in header if h not in known]
    if unknown:
        raise CsvFormatError(
            path, 1, unknown[0],
            f"unknown column(s) {', '.join(map(repr, unknown))}: expected "
            f"{','.join(required)}{''.join(',[' + o + ']' for o in optional)} "
            "(columns are the analysis' entity_labels and signal names)",
        )
    return seen


def _numeric(cells: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The cells as floats (empty: NaN) and the indices of cells that are not numbers (`N/A`,
    `null`, `-`, a unit suffix), which are NaN too: one bad cell is a missing sample, never a
    refused file (the loader counts and logs them once)."""
    raw = np.asarray(cells, dtype=str)
    raw = np.where(np.char.str_len(np.char.strip(raw)) == 0, "nan", raw)
    try:
        return raw.astype(np.float64), np.empty(0, dtype=np.int64)
    except ValueError:
        pass
    # Error path only: each distinct text parsed once.
    uniq, inverse = np.unique(raw, return_inverse=True)
    parsed = np.full(len(uniq), np.nan)
    text_ok = np.ones(len(uniq), dtype=bool)
    for i, text in enumerate(uniq.tolist()):
        try:
            parsed[i] = float(text)
        except ValueError:
            text_ok[i] = False
    inverse = inverse.reshape(-1)
    return parsed[inverse], np.flatnonzero(~text_ok[inverse])


def _to_seconds(path: Path, values: np.ndarray, numeric: bool, lines: np.ndarray,
                columns: np.ndarray | Sequence[str]) -> np.ndarray:
    """Unix seconds of parsed times: milliseconds when `numeric` (every cell a number) and all
    in MILLISECONDS (logged once); CsvFormatError at the first time outside TIME_RANGE.

    values, lines, columns: one entry per time (NaN for none), its file line and column name.
    """
    given = ~np.isnan(values)
    if numeric and given.any() and bool(np.all(
            (values[given] >= MILLISECONDS[0]) & (values[given] < MILLISECONDS[1]))):
        values = values / 1000.0
        log.info("msg=\"times read as Unix milliseconds (every one is a number from 1e11 to "
                 "1e14)\" file=%s columns=%s", path, ",".join(sorted(set(
                     np.asarray(columns, dtype=str)[given].tolist()))))
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(given & ((values < TIME_RANGE[0]) | (values >= TIME_RANGE[1])))
    if len(bad):
        i = int(bad[np.argmin(lines[bad])])
        raise CsvFormatError(
            path, int(lines[i]), str(columns[i]),
            f"time {values[i]:.17g} is outside the accepted range: Unix seconds from 0 "
            f"(1970-01-01) to {TIME_RANGE[1]:.0f} (2106-02-07), RFC 3339, or Unix "
            "milliseconds when every time of the column is a number from 1e11 to 1e14")
    return values


def _timestamps(path: Path, cells: Sequence[str], lines: np.ndarray) -> np.ndarray:
    # Every timestamp repeats once per entity: parse each distinct text once.
    uniq, inverse = np.unique(np.asarray(cells, dtype=str), return_inverse=True)
    inverse = inverse.reshape(-1)
    parsed = np.empty(len(uniq))
    numeric = True
    for i, text in enumerate(uniq.tolist()):
        try:
            parsed[i] = parse_timestamp(text)
        except ValueError as err:
            row = int(np.flatnonzero(inverse == i)[0])
            raise CsvFormatError(path, int(lines[row]), "timestamp", str(err)) from None
        numeric = numeric and _is_number(text)
    # The first line of each distinct text, so an error names the first bad row in the file.
    first = np.full(len(uniq), np.iinfo(np.int64).max)
    np.minimum.at(first, inverse, lines)
    parsed = _to_seconds(path, parsed, numeric, first, np.full(len(uniq), "timestamp"))
    return parsed[inverse]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _entities(label_cols: list[tuple[str, ...]], n_rows: int
              ) -> tuple[np.ndarray, tuple[EntityKey, ...]]:
    """Entity index per row and the entity keys, in order of first appearance.

    Each label column is coded separately and rows are grouped by their tuple of codes, so no
    label value (commas, quotes, U+00FF) can make two entities collide.
    """
    if not label_cols:
        return np.zeros(n_rows, dtype=np.int64), ((),)
    uniques, codes = [], []
    for col in label_cols:
        u, inv = np.unique(np.asarray(col, dtype=str), return_inverse=True)
        uniques.append(u)
        codes.append(inv.reshape(-1))
    dims = [len(u) for u in uniques]
    if float(np.prod(dims, dtype=np.float64)) < 2.0**62:
        # One integer per label tuple (mixed radix): a 1-D unique, far cheaper than axis=0.
        flat = np.ravel_multi_index(codes, dims)
        _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
        rows = np.stack(codes, axis=1)[first]
    else:  # pragma: no cover - needs ~2**62 distinct label combinations
        stacked = np.stack(codes, axis=1)
        rows, first, inverse = np.unique(stacked, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # entities in order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    keys = tuple(tuple(str(uniques[j][rows[i, j]]) for j in range(len(uniques)))
                 for i in order.tolist())
    return rank[inverse.reshape(-1)], keys


def _drop_unlabelled(path: Path, columns: list[tuple[str, ...]], label_cols: Sequence[int],
                     labels: Sequence[str], lines: np.ndarray
                     ) -> tuple[list[tuple[str, ...]], np.ndarray]:
    """Columns and lines without the rows whose entity label cell is empty once stripped
    (`_strip_labels` runs first; counted, logged once); CsvFormatError when no row is left. As the live source drops such series, an empty
    label identifies nothing (Prometheus reads it as an absent label)."""
    empty = np.zeros(len(lines), dtype=bool)
    for j in label_cols:
        empty |= np.char.str_len(np.asarray(columns[j], dtype=str)) == 0  # stripped before
    if not empty.any():
        return columns, lines
    if empty.all():
        raise CsvFormatError(path, int(lines[0]), None,
                             f"every row has an empty entity label ({','.join(labels)}): "
                             "no entity to analyse")
    log.warning("msg=\"rows dropped: no usable entity labels\" file=%s reason=%s rows=%d "
                "entity_labels=%s first_line=%d", path, DROP_MISSING_LABEL, int(empty.sum()),
                ",".join(labels), int(lines[np.argmax(empty)]))
    keep = np.flatnonzero(~empty).tolist()
    return [tuple(col[i] for i in keep) for col in columns], lines[~empty]


def _strip_labels(path: Path, columns: list[Any], label_cols: Sequence[int],
                  labels: Sequence[str], lines: np.ndarray) -> None:
    """Strip the whitespace around entity label values in place (`columns[j]` becomes an
    array), logged once with the first: `ts, instance, cpu` rows written with a space after
    each comma name the entity `" a"`, which no incident, rule or query would spell. The
    header's names are stripped the same way; incidents' labels too (`read_incidents`)."""
    changed, firsts = 0, []
    for name, j in zip(labels, label_cols, strict=True):
        col = np.asarray(columns[j], dtype=str)
        stripped = np.char.strip(col)
        differ = stripped != col
        if differ.any():
            changed += int(differ.sum())
            i = int(np.argmax(differ))
            firsts.append((int(lines[i]), name, str(col[i])))
            columns[j] = stripped
    if firsts:
        line, name, value = min(firsts)
        # The value shown quoted: its whitespace is the point, and a bare one would end the field.
        log.warning("msg=\"whitespace around entity label values stripped\" file=%s cells=%d "
                    "first=%s", path, changed, json.dumps(f"{path}:{line}:{name}:{value!r}"))


def _check_spacing(path: Path, ts: np.ndarray, ent: np.ndarray, slot: np.ndarray, n_t: int,
                   step: float) -> bool:
    """Warn once when rows share a slot or the data's spacing does not fit `step`; True when
    some slot holds several rows.

    ts: Unix seconds per row; ent: entity index per row (every entity has a row); slot:
    `ent * n_t + grid step index` per row; step: the analysis step in seconds. Data finer than
    the step (most entities have several rows in most of their steps) or at least twice as
    coarse is named with its median spacing and the suggestion to set `step` to it; rows of
    one entity and timestamp (or sharing a step without the data being finer) are duplicates.
    """
    order = np.lexsort((ts, ent))
    same = ent[order][1:] == ent[order][:-1]
    gaps = np.diff(ts[order])[same]
    exact = int(np.count_nonzero(gaps == 0))
    spacing = float(np.median(gaps[gaps > 0])) if (gaps > 0).any() else None
    slots, counts = np.unique(slot, return_counts=True)
    merged = len(slot) - len(slots)  # rows that a later row of their slot replaces
    owner = slots // n_t
    shared = np.bincount(owner, weights=counts > 1) / np.bincount(owner)
    finer = spacing is not None and int(np.count_nonzero(shared > 0.5)) > len(shared) / 2
    if finer:
        log.warning("msg=\"data finer than the analysis step: the last sample of each step is "
                    "kept; set step to the data's spacing to use every sample\" file=%s "
                    "data_spacing_seconds=%g step_seconds=%g rows_merged=%d",
                    path, spacing, step, merged - exact)
    elif spacing is not None and spacing >= 2 * step:
        log.warning("msg=\"data coarser than the analysis step: most steps are empty; set "
                    "step to the data's spacing\" file=%s data_spacing_seconds=%g "
                    "step_seconds=%g", path, spacing, step)
    dupes = exact if finer else merged
    if dupes:
        log.warning("msg=\"several rows for one entity and step; the latest sample wins\" "
                    "file=%s duplicate_rows=%d", path, dupes)
    return bool(merged)


def grid_steps(ts: np.ndarray, ent: np.ndarray, n_entities: int, step: float) -> np.ndarray:
    """Grid step index [N] (a sample at k * step) of each row's timestamp ts [N] (Unix
    seconds) of entity ent [N] (0..n_entities-1).

    Rows are snapped to the nearest grid point, after each entity's own *phase* is taken
    out: where an entity's samples sit at a steady offset from the grid (a target scraped
    at :02:30 of every 5 minutes, as Prometheus spreads its targets' scrapes) by more than
    PHASE_TOLERANCE of a step, each sample goes to the first grid point at or after it
    (what a PromQL query at that point would return: a past sample, never a later one).
    Snapped as they were, samples half a step off the grid paired up on every other grid
    point (round-half-to-even) and half of them were lost (helper-55). The phase is the
    circular mean of ts mod step over the entity's rows; it counts only where those agree
    (mean resultant length >= PHASE_AGREEMENT) over at least PHASE_MIN_ROWS rows, so data
    finer than the step, with no steady offset or of a few rows is snapped as before. One
    phase per entity and file: a file joined from exports of two offsets gets their mean.
    """
    angle = (2.0 * np.pi / step) * np.mod(ts, step)
    n = np.maximum(np.bincount(ent, minlength=n_entities), 1)
    c = np.bincount(ent, weights=np.cos(angle), minlength=n_entities) / n
    s = np.bincount(ent, weights=np.sin(angle), minlength=n_entities) / n
    phase = np.arctan2(s, c) * (step / (2.0 * np.pi))  # (-step/2, step/2]
    steady = ((np.hypot(c, s) >= PHASE_AGREEMENT) & (np.abs(phase) > PHASE_TOLERANCE * step)
              & (n >= PHASE_MIN_ROWS))
    phase = np.where(steady, phase, 0.0)
    if steady.any():
        log.info("msg=\"samples at a steady offset from the step grid: each on the first grid "
                 "point at or after it\" entities=%d largest_offset_seconds=%g",
                 int(steady.sum()), float(np.abs(phase).max()))
    k = np.rint((ts - phase[ent]) / step).astype(np.int64)
    # A sample after its grid point (phase > 0) belongs to the next one (never earlier).
    return k + (phase[ent] > 0)


def _warn_empty(path: Path, values: np.ndarray, entities: Sequence[EntityKey],
                signals: Sequence[str]) -> None:
    """Log once the entities with no sample of any signal in the file (they have rows, every
    value empty: no evaluation will show them), the signals with no sample of any entity, and
    the other series (an entity's signal) with no sample, naming up to 5 of each (values
    [E, S, T])."""
    known = np.isfinite(values)
    silent = np.flatnonzero(~known.any(axis=(1, 2)))
    if len(silent):
        log.warning("msg=\"entities without a single sample are left out\" file=%s "
                    "entities_without_samples=%d first=%s", path, len(silent),
                    ";".join(",".join(entities[i]) for i in silent[:5].tolist()))
    blank = [signals[j] for j in np.flatnonzero(~known.any(axis=(0, 2))).tolist()]
    if blank:
        log.warning("msg=\"signals without a single sample in the file\" file=%s "
                    "signals_without_samples=%d signals=%s", path, len(blank),
                    ",".join(blank[:5]))
    series = ~known.any(axis=2)  # [E, S]
    series[silent] = False
    series[:, ~known.any(axis=(0, 2))] = False
    rows, cols = np.nonzero(series)
    if len(rows):
        log.warning("msg=\"series without a single sample in the file (an entity's signal)\" "
                    "file=%s series_without_samples=%d first=%s", path, len(rows),
                    ";".join(f"{','.join(entities[i])}/{signals[j]}"
                             for i, j in zip(rows[:5].tolist(), cols[:5].tolist(),
                                             strict=True)))


class CsvSource:
    """Samples of one analysis read from a design §5 input CSV.

    Parameters
    ----------
    path: the CSV file.
    analysis: which entity labels and signals the columns are, and the step grid.
    ignore_columns: extra columns to accept and skip (anything else unknown is an error).
    """

    def __init__(self, path: str | Path, analysis: AnalysisConfig, *,
                 ignore_columns: Sequence[str] = ()):
        self.path = Path(path)
        self.analysis = analysis
        self.step = float(analysis.step)
        labels = tuple(analysis.entity_labels)
        self.signals = tuple(s.name for s in analysis.signals)
        header, rows = _read(self.path)
        cols = _check_header(self.path, header, ("timestamp", *labels, *self.signals),
                             ignorable=ignore_columns)
        lines = np.arange(2, len(rows) + 2)
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        blank = lengths == 0
        bad = np.flatnonzero(~blank & (lengths != len(header)))
        if len(bad):
            i = int(bad[0])
            raise CsvFormatError(self.path, int(lines[i]), None,
                                 f"expected {len(header)} fields, got {lengths[i]}")
        if blank.any():
            rows = [r for r in rows if r]
            lines = lines[~blank]
        if not rows:
            raise CsvFormatError(self.path, 2, None, "no data rows")
        columns = list(zip(*rows, strict=True))
        del rows
        _strip_labels(self.path, columns, [cols[n] for n in labels], labels, lines)
        columns, lines = _drop_unlabelled(self.path, columns, [cols[n] for n in labels],
                                          labels, lines)
        ts = _timestamps(self.path, columns[cols["timestamp"]], lines)
        data = np.empty((len(lines), len(self.signals)))
        not_numbers: dict[str, int] = {}
        first_bad: tuple[int, str, str] | None = None
        for j, name in enumerate(self.signals):
            data[:, j], bad = _numeric(columns[cols[name]])
            if len(bad):
                not_numbers[name] = len(bad)
                where = (int(lines[bad[0]]), name, columns[cols[name]][bad[0]])
                first_bad = min(first_bad or where, where)
        if first_bad is not None:
            log.warning("msg=\"cells that are not numbers read as missing samples\" file=%s "
                        "cells=%d columns=%s first=%s:%d:%s:%r", self.path,
                        sum(not_numbers.values()),
                        ",".join(f"{k}:{v}" for k, v in not_numbers.items()), self.path,
                        *first_bad)
        infinite = np.isinf(data)
        if infinite.any():
            # A rate over a counter reset, a division by zero upstream: no measurement.
            data[infinite] = np.nan
            log.warning("msg=\"values that are not finite read as missing samples\" file=%s "
                        "non_finite_values=%d", self.path, int(infinite.sum()))
        ent, self.entities = _entities([columns[cols[name]] for name in labels], len(lines))
        k = grid_steps(ts, ent, len(self.entities), self.step)
        self._k0 = int(k.min())
        n_t = int(k.max()) - self._k0 + 1
        if len(self.entities) * max(len(self.signals), 1) * n_t > MAX_CELLS:
            i = int(np.argmax(np.abs(k - np.median(k))))  # the row furthest from the rest
            raise CsvFormatError(self.path, int(lines[i]), "timestamp",
                                 f"timestamps span {n_t} steps of {self.step:g}s: too long "
                                 "(one timestamp far from the others?)")
        slot = ent * n_t + (k - self._k0)
        if _check_spacing(self.path, ts, ent, slot, n_t, self.step):
            # Several rows in one slot: the latest sample is kept (exact duplicates: the last
            # row in the file, as the stable sort keeps their order).
            order = np.argsort(ts, kind="stable")
            ent, k, data = ent[order], k[order], data[order]
        self.values = np.full((len(self.entities), len(self.signals), n_t), np.nan)
        self.values[ent, :, k - self._k0] = data
        self.timestamps = (self._k0 + np.arange(n_t)) * self.step
        _warn_empty(self.path, self.values, self.entities, self.signals)
        log.info("msg=\"csv loaded\" file=%s rows=%d entities=%d steps=%d", self.path,
                 len(lines), len(self.entities), n_t)

    def time_range(self) -> tuple[float, float]:
        """First and last grid timestamps present in the file."""
        return float(self.timestamps[0]), float(self.timestamps[-1])

    async def fetch(self, analysis: AnalysisConfig, start: float, end: float) -> Fetch:
        """The file's samples within [start, end]; entities with no sample there are left out."""
        if float(analysis.step) != self.step or tuple(analysis.entity_labels) != tuple(
                self.analysis.entity_labels):
            raise SourceError(f"{self.path} was loaded for step {self.step:g}s and labels "
                              f"{self.analysis.entity_labels}, not for analysis {analysis.name!r}")
        ts = grid(start, end, self.step)
        names = tuple(s.name for s in analysis.signals)
        labels = tuple(analysis.entity_labels)
        if len(ts) == 0:
            return Fetch(empty_window(analysis.name, labels, names, ts))
        idx = np.rint(ts / self.step).astype(np.int64) - self._k0
        ok_t = (idx >= 0) & (idx < len(self.timestamps))
        errors = {n: f"column {n!r} not in {self.path}" for n in names if n not in self.signals}
        out = np.full((len(self.entities), len(names), len(ts)), np.nan)
        for j, name in enumerate(names):
            if name in self.signals and ok_t.any():
                out[:, j, ok_t] = self.values[:, self.signals.index(name), idx[ok_t]]
        present = ~np.isnan(out).all(axis=2)  # [E, S]
        alive = present.any(axis=1)
        block = Window(analysis.name, labels,
                       tuple(e for e, a in zip(self.entities, alive, strict=True) if a),
                       names, ts, out[alive])
        series = {n: int(present[:, j].sum()) for j, n in enumerate(names) if n not in errors}
        return Fetch(block, errors, series)

    async def close(self) -> None:
        """Nothing to release: the file was read whole at construction."""
        return None


def read_incidents(path: str | Path, label_names: Sequence[str]) -> list[Incident]:
    """Incidents from a design §5 incidents CSV (`start,end,<labels>[,kind]`), in file order.

    Times as in the samples file (Unix seconds, RFC 3339, or milliseconds when every start and
    end is a number from 1e11 to 1e14). Rows repeating an earlier row's entity, start, end and kind
    are kept once (counted, logged once). Raise CsvFormatError naming file, line and column.
    """
    path = Path(path)
    labels = tuple(label_names)
    header, rows = _read(path)
    cols = _check_header(path, header, ("start", "end", *labels), optional=("kind",))
    parsed: list[tuple[int, float, float, tuple[str, ...], str]] = []
    numeric = True
    for n, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise CsvFormatError(path, n, None, f"expected {len(header)} fields, got {len(row)}")
        times = []
        for name in ("start", "end"):
            text = row[cols[name]].strip()
            if name == "end" and not text:
                times.append(np.nan)
                continue
            try:
                times.append(parse_timestamp(text))
            except ValueError as err:
                raise CsvFormatError(path, n, name, str(err)) from None
            numeric = numeric and _is_number(text)
        kind = row[cols["kind"]].strip() if "kind" in cols else ""
        parsed.append((n, times[0], times[1], tuple(row[cols[name]].strip() for name in labels),
                       kind or DEFAULT_INCIDENT_KIND))
    if not parsed:
        return []
    lines = np.array([p[0] for p in parsed])
    # Starts and ends are judged together: milliseconds in one and seconds in the other is
    # refused, never half converted.
    seconds = _to_seconds(path, np.array([t for p in parsed for t in p[1:3]]), numeric,
                          np.repeat(lines, 2), np.tile(["start", "end"], len(parsed)))
    out: list[Incident] = []
    seen: set[tuple[tuple[str, ...], float, float | None, str]] = set()
    for (n, _, _, entity, kind), start, end_s in zip(parsed, seconds[0::2], seconds[1::2],
                                                      strict=True):
        end = None if np.isnan(end_s) else float(end_s)
        if end is not None and end < start:
            raise CsvFormatError(path, n, "end", f"end {rows[n - 2][cols['end']].strip()!r} "
                                 "is before start")
        key = (entity, float(start), end, kind)
        if key in seen:
            continue
        seen.add(key)
        out.append(Incident(float(start), end, entity, kind))
    if len(out) < len(parsed):
        log.warning("msg=\"duplicate incidents (same entity, start, end and kind) kept once\" "
                    "file=%s duplicate_rows=%d", path, len(parsed) - len(out))
    return out
