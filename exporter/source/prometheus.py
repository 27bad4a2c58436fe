"""Live PromQL source: one `query_range` per signal returns every entity on the step grid.

The decode is the hot part of a cycle (a 2 h window of 1 000 entities × 8 signals is ~38 MB of
JSON). `decode_query_range` therefore avoids building Python objects per sample: it cuts the
numeric `"values":[...]` sections out of the raw body, lets `json` parse only the small skeleton
(status, warnings, label sets) and parses all numbers at once with numpy. Anything unexpected in
the body falls back to a plain `json.loads` decode, which is also what reports malformed bodies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from exporter.config import AnalysisConfig, SignalConfig, SourceConfig
from exporter.source import Fetch, SourceError
from exporter.source.http import (
    PromHttp,
    RequestFailed,
    SessionFactory,
    make_session,
    redact_url,
    snippet,
)
from exporter.windows import EntityKey, Window, empty_window, grid

log = logging.getLogger(__name__)

# Prometheus refuses a range query with more than 11 000 points per series.
MAX_POINTS = 11_000
# Bodies above this are decoded in a worker thread so the event loop keeps serving scrapes.
THREAD_DECODE_BYTES = 1 << 20
QUERY_RANGE_PATH = "/api/v1/query_range"

_VALUES_RE = re.compile(rb'"values"\s*:\s*\[')
_NUMERIC_BYTES = b"0123456789.,eE+-NaInf"


class QueryError(Exception):
    """The source answered but the query failed (PromQL error, refused, malformed answer)."""


class UnsupportedResult(QueryError):
    """The query answered with data AURA cannot analyse (native histograms, strings, scalars).

    The signal then counts as returning no series (`aura_source_series` 0), so
    `AuraSignalNoData` fires, and the error text says how to rewrite the query.
    """


# Why a series is left out: it names no entity, or names one that cannot be exported.
DROP_MISSING_LABEL = "missing_entity_label"
DROP_INVALID_LABEL = "invalid_label_value"


@dataclass(eq=False)
class Decoded:
    """One `query_range` answer, flattened: series i owns `counts[i]` consecutive samples."""

    keys: list[EntityKey | None]  # None: series dropped (see `dropped`)
    counts: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray
    warnings: list[str] = field(default_factory=list)
    # reason -> (series dropped, the first dropped series' labels) for the log line.
    dropped: dict[str, tuple[int, str]] = field(default_factory=dict)


def decode_query_range(body: bytes, label_names: Sequence[str]) -> Decoded:
    """Decode a `/api/v1/query_range` body; raise QueryError for errors and malformed bodies."""
    try:
        return _decode_fast(body, label_names)
    except _FastPathMiss:
        return _decode_json(body, label_names)


class _FastPathMiss(Exception):
    pass


def _check_envelope(doc: object) -> tuple[list, list[str]]:
    """Validate the response envelope; return (result list, warnings)."""
    if not isinstance(doc, dict):
        raise QueryError("malformed response: not a JSON object")
    status = doc.get("status")
    if status == "error":
        kind = doc.get("errorType") or "error"
        raise QueryError(f"{kind}: {doc.get('error') or 'no error text'}")
    if status != "success":
        raise QueryError(f"malformed response: status {status!r}")
    data = doc.get("data")
    if not isinstance(data, dict):
        raise QueryError("malformed response: no data")
    if data.get("resultType") != "matrix":
        raise UnsupportedResult(
            f"resultType {data.get('resultType')!r}: a signal must be a range vector of float "
            "samples (resultType matrix)")
    result = data.get("result")
    if not isinstance(result, list):
        raise QueryError("malformed response: result is not a list")
    raw = doc.get("warnings") or []
    # Prometheus sends a list of strings; anything else is kept as one warning, never a crash.
    warnings = [str(w) for w in (raw if isinstance(raw, list) else [raw]) if w]
    return result, warnings


def _key(series: object, label_names: Sequence[str],
         dropped: dict[str, tuple[int, str]]) -> EntityKey | None:
    """The series' entity key, or None (counted in `dropped` by reason) when it has none."""
    metric = series.get("metric") if isinstance(series, dict) else None
    if not isinstance(metric, dict):
        raise QueryError("malformed response: series without a metric")
    key = tuple(metric.get(name) for name in label_names)
    reason = None
    # Prometheus treats an empty label value as an absent label: it identifies nothing.
    if not all(isinstance(v, str) and v for v in key):
        reason = DROP_MISSING_LABEL
    else:
        try:
            "".join(key).encode("utf-8")  # type: ignore[arg-type]
        except UnicodeEncodeError:  # lone surrogates: not text any exposition can carry
            reason = DROP_INVALID_LABEL
    if reason is None:
        return key  # type: ignore[return-value]
    count, example = dropped.get(reason, (0, ""))
    if not count:
        example = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(metric.items(), key=str)[:8])
    dropped[reason] = (count + 1, example)
    return None


def _decode_fast(body: bytes, label_names: Sequence[str]) -> Decoded:
    skeleton: list[bytes] = []
    sections: list[bytes] = []
    empty: list[bool] = []
    pos = 0
    # `"values":[` cannot occur inside a JSON string (its quotes would be escaped), so every
    # match is a series' sample list; samples hold no `]`, so the first `]]` closes it.
    for match in _VALUES_RE.finditer(body):
        start = match.end()
        head = body[start : start + 1]
        if head == b"]":
            empty.append(True)
            continue
        if head != b"[":
            raise _FastPathMiss
        end = body.find(b"]]", start)
        if end < 0:
            raise _FastPathMiss
        empty.append(False)
        skeleton.append(body[pos:start])
        sections.append(body[start : end + 1])
        pos = end + 1
    skeleton.append(body[pos:])
    try:
        doc = json.loads(b"".join(skeleton) if sections else body)
    except ValueError as err:
        raise _FastPathMiss from err
    result, warnings = _check_envelope(doc)
    if len(empty) != len(result) or any(
        not isinstance(s, dict) or s.get("values") != [] for s in result
    ):
        raise _FastPathMiss
    dropped: dict[str, tuple[int, str]] = {}
    keys = [_key(series, label_names, dropped) for series in result]
    counts = np.zeros(len(result), dtype=np.int64)
    counts[~np.asarray(empty, dtype=bool)] = [sec.count(b"[") for sec in sections]
    flat = b",".join(sections).translate(None, b'[]"')
    if flat.translate(None, _NUMERIC_BYTES):
        raise _FastPathMiss  # something other than numbers: let json report it
    try:
        numbers = np.fromstring(flat, sep=",") if flat else np.empty(0)
    except ValueError as err:
        raise _FastPathMiss from err
    if len(numbers) != 2 * int(counts.sum()):
        raise _FastPathMiss
    return Decoded(keys, counts, numbers[0::2].copy(), numbers[1::2].copy(), warnings, dropped)


def _decode_json(body: bytes, label_names: Sequence[str]) -> Decoded:
    try:
        doc = json.loads(body)
    except ValueError as err:
        raise QueryError(f"malformed response: invalid JSON ({err})") from err
    result, warnings = _check_envelope(doc)
    keys: list[EntityKey | None] = []
    dropped: dict[str, tuple[int, str]] = {}
    counts = np.zeros(len(result), dtype=np.int64)
    ts_parts: list[float] = []
    v_parts: list[str] = []
    for i, series in enumerate(result):
        keys.append(_key(series, label_names, dropped))
        if "histograms" in series or "histogram" in series:
            raise UnsupportedResult(
                "the query returns native histograms, which have no float samples to analyse; "
                "select a float from them, e.g. histogram_quantile(0.99, rate(h[5m])), "
                "histogram_count(rate(h[5m])) or histogram_avg(rate(h[5m]))")
        values = series.get("values") or []
        if not isinstance(values, list):
            raise QueryError("malformed response: values is not a list")
        try:
            for t, v in values:
                ts_parts.append(float(t))
                v_parts.append(v)
        except (TypeError, ValueError) as err:
            raise QueryError(f"malformed response: bad sample in series {i}") from err
        counts[i] = len(values)
    try:
        vals = np.array(v_parts, dtype=np.float64) if v_parts else np.empty(0)
    except (TypeError, ValueError) as err:
        raise QueryError(f"malformed response: non-numeric sample value ({err})") from err
    return Decoded(keys, counts, np.asarray(ts_parts, dtype=np.float64), vals, warnings,
                   dropped)


def split_grid(timestamps: np.ndarray, max_points: int = MAX_POINTS) -> list[tuple[float, float]]:
    """[start, end] pairs of consecutive grid runs of at most `max_points` points each."""
    max_points = max(int(max_points), 1)
    n = len(timestamps)
    return [
        (float(timestamps[i]), float(timestamps[min(i + max_points, n) - 1]))
        for i in range(0, n, max_points)
    ]


@dataclass
class Assembled:
    """One signal query's series assembled on the grid: the window, series counts, duplicate
    series and warnings, and the series dropped with why (reason -> count, example labels).
    """
    window: Window
    series: dict[str, int]
    duplicates: dict[str, int]
    warnings: list[str]
    # reason -> (series dropped, example labels), over every signal.
    dropped: dict[str, tuple[int, str]] = field(default_factory=dict)


def assemble(
    analysis: AnalysisConfig,
    timestamps: np.ndarray,
    answers: dict[str, list[Decoded]],
) -> Assembled:
    """Place decoded answers on the grid: values[entity, signal, step], NaN where missing.

    Entities are ordered by first appearance (signal order, then series order). Within one
    answer a second series mapping to an already-seen entity is dropped and counted; a series
    without an entity key (see `Decoded.dropped`) is left out and counted in `Window.dropped`.
    """
    step = float(analysis.step)
    t0 = float(timestamps[0]) if len(timestamps) else 0.0
    n_t = len(timestamps)
    signals = tuple(s.name for s in analysis.signals)
    index: dict[EntityKey, int] = {}
    placed: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    series: dict[str, int] = {}
    duplicates: dict[str, int] = {}
    warnings: list[str] = []
    dropped: dict[str, tuple[int, str]] = {}
    for j, name in enumerate(signals):
        seen_signal: set[EntityKey] = set()
        for dec in answers.get(name, []):
            warnings.extend(dec.warnings)
            for reason, (count, example) in dec.dropped.items():
                dropped[reason] = (dropped.get(reason, (0, example))[0] + count,
                                   dropped.get(reason, (0, example))[1])
            rows = np.empty(len(dec.keys), dtype=np.int64)
            seen: set[EntityKey] = set()
            for i, key in enumerate(dec.keys):
                if key is None:
                    rows[i] = -1
                    continue
                if key in seen:
                    rows[i] = -1
                    duplicates[name] = duplicates.get(name, 0) + 1
                    continue
                seen.add(key)
                row = index.get(key)
                if row is None:
                    row = index[key] = len(index)
                rows[i] = row
            seen_signal |= seen
            sample_rows = np.repeat(rows, dec.counts)
            cols = np.rint((dec.timestamps - t0) / step).astype(np.int64)
            keep = (sample_rows >= 0) & (cols >= 0) & (cols < n_t)
            placed.append((j, sample_rows[keep], cols[keep], dec.values[keep]))
        if name in answers:
            series[name] = len(seen_signal)
    values = np.full((len(index), len(signals), n_t), np.nan)
    for j, rows, cols, vals in placed:
        values[rows, j, cols] = vals
    window = Window(
        analysis.name,
        tuple(analysis.entity_labels),
        tuple(index),
        signals,
        np.asarray(timestamps, dtype=np.float64),
        values,
        sum(count for count, _ in dropped.values()),
    )
    return Assembled(window, series, duplicates, warnings, dropped)


def _prom_error(body: bytes) -> str | None:
    """The `errorType: error` of a Prometheus error body, or None if it is not one."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if isinstance(doc, dict) and doc.get("status") == "error":
        return f"{doc.get('errorType') or 'error'}: {doc.get('error') or 'no error text'}"
    return None


def _ts(value: float) -> str:
    # Millisecond precision is all Prometheus keeps; fixed notation avoids 1.7e9 surprises.
    return f"{value:.3f}"


class PrometheusSource:
    """The live source: PromQL `query_range` against any Prometheus-compatible API.

    Parameters
    ----------
    cfg: the `source:` section (URL, auth, TLS, timeout, concurrency, retries).
    session_factory: builds the aiohttp session (see `exporter.source.http`).
    max_points: points per series per request; longer ranges are split into chunks.
    http: an existing `PromHttp` to share (connections, concurrency bound) between sources.
    """

    def __init__(
        self,
        cfg: SourceConfig,
        session_factory: SessionFactory = make_session,
        *,
        max_points: int = MAX_POINTS,
        http: PromHttp | None = None,
    ):
        self.cfg = cfg
        self.http = http or PromHttp(cfg, session_factory)
        self.max_points = min(max(int(max_points), 1), MAX_POINTS)
        self._dropped_logged: set[tuple[str, str]] = set()
        self._errors_logged: dict[str, tuple[tuple[str, str], ...]] = {}
        self._empty_logged: dict[str, tuple[str, ...]] = {}

    async def close(self) -> None:
        """Close the HTTP client's session."""
        await self.http.close()

    async def fetch(self, analysis: AnalysisConfig, start: float, end: float) -> Fetch:
        """Every entity of every signal of `analysis` on its step grid within [start, end]."""
        timestamps = grid(start, end, float(analysis.step))
        signals = tuple(s.name for s in analysis.signals)
        if len(timestamps) == 0:
            return Fetch(empty_window(analysis.name, tuple(analysis.entity_labels), signals,
                                      timestamps))
        chunks = split_grid(timestamps, self.max_points)
        outcomes = await asyncio.gather(
            *(self._query_signal(sig, analysis, chunks) for sig in analysis.signals),
            return_exceptions=True,
        )
        answers: dict[str, list[Decoded]] = {}
        errors: dict[str, str] = {}
        no_series: list[str] = []
        transport_failures = 0
        for sig, outcome in zip(analysis.signals, outcomes, strict=True):
            if isinstance(outcome, asyncio.CancelledError):
                raise outcome
            if isinstance(outcome, RequestFailed):
                errors[sig.name] = str(outcome)
                transport_failures += outcome.transport
            elif isinstance(outcome, QueryError):
                errors[sig.name] = str(outcome)
                if isinstance(outcome, UnsupportedResult):
                    no_series.append(sig.name)
            elif isinstance(outcome, BaseException):
                # A bug of ours must cost one signal, not the cycle; log it with its trace.
                log.error("msg=\"signal decode failed\" analysis=%s signal=%s", analysis.name,
                          sig.name, exc_info=outcome)
                errors[sig.name] = f"internal error: {outcome!r}"
            else:
                answers[sig.name] = outcome
        if signals and transport_failures == len(signals):
            # The pipeline logs this outage (stage ingest); remembering it here makes the next
            # successful cycle log "signal queries succeed again", as after a partial failure.
            self._errors_logged[analysis.name] = tuple(sorted(errors.items()))
            first = errors[signals[0]]
            raise SourceError(f"source {redact_url(self.cfg.url)} unreachable: {first}")
        done = assemble(analysis, timestamps, answers)
        self._log_cycle(analysis, errors, done)
        return Fetch(done.window, errors, {**done.series, **dict.fromkeys(no_series, 0)})

    def _log_cycle(self, analysis: AnalysisConfig, errors: dict[str, str], done: Assembled) -> None:
        # Logged when the failing signals (or their errors) change, not every cycle; the
        # counter aura_source_query_errors_total keeps the per-cycle story.
        state = tuple(sorted(errors.items()))
        if state != self._errors_logged.get(analysis.name, ()):
            if errors:
                log.warning("msg=\"signal queries failed\" analysis=%s failed=%d signals=%s "
                            "first=%r", analysis.name, len(errors), ",".join(sorted(errors)),
                            next(iter(errors.values())))
            else:
                log.info("msg=\"signal queries succeed again\" analysis=%s", analysis.name)
            self._errors_logged[analysis.name] = state
        # Queries that answered with no series at all (a typo in a metric name, a target not
        # scraped): logged when that set changes; aura_source_series says it every cycle.
        empty = tuple(sorted(sig.name for sig in analysis.signals if sig.name not in errors
                             and not done.series.get(sig.name, 0)))
        if empty != self._empty_logged.get(analysis.name, ()):
            if empty:
                log.warning("msg=\"signal queries match no series (check the query and that "
                            "Prometheus scrapes what it selects)\" analysis=%s signals=%s",
                            analysis.name, ",".join(empty))
            else:
                log.info("msg=\"signal queries match series again\" analysis=%s",
                         analysis.name)
            self._empty_logged[analysis.name] = empty
        if done.duplicates:
            log.warning(
                "msg=\"several series per entity; kept the first (aggregate the query by the "
                "entity labels)\" analysis=%s dropped_series=%d signals=%s",
                analysis.name, sum(done.duplicates.values()), ",".join(sorted(done.duplicates)),
            )
        if done.warnings:
            log.warning("msg=\"source returned warnings\" analysis=%s count=%d first=%r",
                        analysis.name, len(done.warnings), done.warnings[0])
        for reason, (count, example) in done.dropped.items():
            # Once per analysis and reason: the same query drops the same series every cycle;
            # aura_entities_dropped_total keeps counting them.
            if (analysis.name, reason) in self._dropped_logged:
                continue
            self._dropped_logged.add((analysis.name, reason))
            log.warning("msg=\"series dropped: no usable entity labels (logged once; counted in "
                        "aura_entities_dropped_total)\" analysis=%s reason=%s series=%d "
                        "entity_labels=%s example=%r", analysis.name, reason, count,
                        ",".join(analysis.entity_labels), example)

    async def _query_signal(
        self, sig: SignalConfig, analysis: AnalysisConfig, chunks: list[tuple[float, float]]
    ) -> list[Decoded]:
        out = []
        for start, end in chunks:
            out.append(await self._query_range(sig.query, start, end, float(analysis.step),
                                               analysis.entity_labels))
        return out

    async def _query_range(
        self, query: str, start: float, end: float, step: float, label_names: Sequence[str]
    ) -> Decoded:
        form = {
            "query": query,
            "start": _ts(start),
            "end": _ts(end),
            "step": repr(float(step)),
            # Ask the server to give up when we do, instead of finishing a query nobody reads.
            "timeout": f"{float(self.cfg.timeout):g}s",
        }
        try:
            resp = await self.http.post(QUERY_RANGE_PATH, form)
        except RequestFailed as err:
            prom = _prom_error(err.body) if err.body else None
            if prom is not None:
                # Prometheus itself answered (e.g. 503 for a query timeout): a query problem.
                raise QueryError(self.http.scrub(prom)) from err
            raise
        if resp.status != 200:
            prom = _prom_error(resp.body)
            raise QueryError(self.http.scrub(prom) if prom is not None else
                             f"HTTP {resp.status}: {snippet(resp.body, self.http.scrub)}")
        if len(resp.body) > THREAD_DECODE_BYTES:
            return await asyncio.to_thread(decode_query_range, resp.body, label_names)
        return decode_query_range(resp.body, label_names)
