"""CSV input for `backtest` and `train` (design §5): samples and incidents.

Samples: header `timestamp,<entity label columns>,<signal columns>`, one row per entity per step;
`timestamp` is Unix seconds (float) or RFC 3339; an empty cell is a missing sample. The file is
read once into values[entity, signal, step] on the analysis' step grid (timestamps are snapped
to the nearest grid point) and `fetch` slices it, so the offline drivers use the same Source
protocol as the live one.

Incidents: header `start,end,<entity label columns>[,kind]`; `end` may be empty (still open or
unknown). Every problem raises `CsvFormatError` naming file, line and column.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from exporter.config import AnalysisConfig
from exporter.incidents import DEFAULT_INCIDENT_KIND, Incident
from exporter.source import Fetch, SourceError
from exporter.util import parse_time
from exporter.windows import EntityKey, Window, empty_window, grid

log = logging.getLogger(__name__)

# Refuse files whose timestamps would need an absurd grid (a typo in one timestamp, ms instead
# of s): values[E, S, T] beyond this many cells would not fit in memory anyway.
MAX_CELLS = 500_000_000


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

    Raise ValueError naming the cell's text when neither (or not finite).
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
            raise CsvFormatError(
                path, 1, name,
                f"missing required column {name!r} (header must be {','.join(required)})",
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


def _numeric(path: Path, name: str, cells: tuple[str, ...], lines: np.ndarray) -> np.ndarray:
    raw = np.asarray(cells, dtype=str)
    raw = np.where(np.char.str_len(np.char.strip(raw)) == 0, "nan", raw)
    try:
        return raw.astype(np.float64)
    except ValueError:
        pass
    # Error path only: find the first offending cell for the message.
    for i, cell in enumerate(raw.tolist()):
        try:
            float(cell)
        except ValueError:
            raise CsvFormatError(path, int(lines[i]), name,
                                 f"not a number: {cell!r}") from None
    raise CsvFormatError(path, int(lines[0]), name, "unparseable numbers")  # pragma: no cover


def _timestamps(path: Path, cells: tuple[str, ...], lines: np.ndarray) -> np.ndarray:
    # Every timestamp repeats once per entity: parse each distinct text once.
    uniq, inverse = np.unique(np.asarray(cells, dtype=str), return_inverse=True)
    parsed = np.empty(len(uniq))
    for i, text in enumerate(uniq.tolist()):
        try:
            parsed[i] = parse_timestamp(text)
        except ValueError as err:
            row = int(np.flatnonzero(inverse == i)[0])
            raise CsvFormatError(path, int(lines[row]), "timestamp", str(err)) from None
    return parsed[inverse.reshape(-1)]


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
        ts = _timestamps(self.path, columns[cols["timestamp"]], lines)
        data = np.stack([_numeric(self.path, s, columns[cols[s]], lines) for s in self.signals],
                        axis=1) if self.signals else np.empty((len(lines), 0))
        ent, self.entities = _entities([columns[cols[name]] for name in labels], len(lines))
        k = np.rint(ts / self.step).astype(np.int64)
        self._k0 = int(k.min())
        n_t = int(k.max()) - self._k0 + 1
        if len(self.entities) * max(len(self.signals), 1) * n_t > MAX_CELLS:
            i = int(np.argmax(np.abs(k - np.median(k))))  # the row furthest from the rest
            raise CsvFormatError(self.path, int(lines[i]), "timestamp",
                                 f"timestamps span {n_t} steps of {self.step:g}s: too long "
                                 "(milliseconds instead of seconds?)")
        slot = ent * n_t + (k - self._k0)
        dupes = len(slot) - len(np.unique(slot))
        if dupes:
            log.warning("msg=\"several rows for one entity and step; the last one wins\" "
                        "file=%s duplicate_rows=%d", self.path, dupes)
        self.values = np.full((len(self.entities), len(self.signals), n_t), np.nan)
        self.values[ent, :, k - self._k0] = data
        self.timestamps = (self._k0 + np.arange(n_t)) * self.step
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
    """Incidents from a design §5 incidents CSV (`start,end,<labels>[,kind]`), in file order."""
    path = Path(path)
    labels = tuple(label_names)
    header, rows = _read(path)
    cols = _check_header(path, header, ("start", "end", *labels), optional=("kind",))
    out: list[Incident] = []
    for n, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise CsvFormatError(path, n, None, f"expected {len(header)} fields, got {len(row)}")
        try:
            start = parse_timestamp(row[cols["start"]])
        except ValueError as err:
            raise CsvFormatError(path, n, "start", str(err)) from None
        end_text = row[cols["end"]].strip()
        end = None
        if end_text:
            try:
                end = parse_timestamp(end_text)
            except ValueError as err:
                raise CsvFormatError(path, n, "end", str(err)) from None
            if end < start:
                raise CsvFormatError(path, n, "end", f"end {end_text!r} is before start")
        kind = row[cols["kind"]].strip() if "kind" in cols else ""
        out.append(Incident(start, end, tuple(row[cols[name]] for name in labels),
                            kind or DEFAULT_INCIDENT_KIND))
    return out
