"""Bounded history of every entity's risk, level, anomaly score, time to failure and P(h).

The console's entity view shows the last day of these figures without Prometheus, so the
exporter keeps them itself. One *frame* per recorded cycle: the cycle's time, the entity keys
(shared between frames while the entity set is unchanged, the usual case) and one float32
array [E, C] of columns `risk, level, anomaly, ttf, p(h1)..p(hH)` (ttf: the consensus time
to failure, s; the demo's story tells what the forecast said when AURA first warned). Frames closer than `spacing`
seconds to the previous one are not recorded (a 1 min interval keeps one frame per 5 min
by default), frames older than `span` are dropped, so memory is bounded by
`span / spacing` frames: at 10 000 entities and 3 horizons, 288 frames x 10 000 x 7 x 4 bytes
= 81 MB; a small fleet costs next to nothing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from exporter.results import AnalysisResult
from exporter.windows import EntityKey

FIXED_COLUMNS = ("risk", "level", "anomaly", "ttf")


@dataclass(frozen=True, eq=False)
class _Frame:
    time: float
    index: dict[EntityKey, int]
    values: np.ndarray  # [E, C] float32


def columns(result: AnalysisResult) -> np.ndarray:
    """[E, 4 + H] float32: exported risk (aura_risk_score), level, anomaly score, time to
    failure (s), P(h) per horizon (NaN = none)."""
    e = len(result.entities)
    horizons = len(result.forecast.horizons) if result.forecast is not None else 0
    out = np.full((e, len(FIXED_COLUMNS) + horizons), np.nan, dtype=np.float32)
    if result.consensus is not None:
        out[:, 0] = result.consensus.risk
        out[:, 1] = result.consensus.level
        out[:, 3] = result.consensus.time_to_failure
    if result.topology is not None:
        out[:, 2] = result.topology.anomaly_score
    if result.forecast is not None and horizons:
        out[:, len(FIXED_COLUMNS):] = result.forecast.probability
    return out


class History:
    """Per-analysis ring of frames (see the module docstring).

    Parameters
    ----------
    span: seconds of history kept (default one day).
    spacing: minimum seconds between recorded frames (default span / 288).
    """

    def __init__(self, span: float = 86400.0, spacing: float | None = None):
        if span <= 0:
            raise ValueError(f"history span must be > 0, got {span}")
        self.span = float(span)
        self.spacing = float(spacing if spacing is not None else span / 288)
        self._frames: dict[str, deque[_Frame]] = {}
        self._horizons: dict[str, tuple[float, ...]] = {}

    def record(self, now: float, results: tuple[AnalysisResult, ...]) -> bool:
        """Add one cycle's results at time `now` (s); False when too close to the last frame."""
        recorded = False
        for r in results:
            frames = self._frames.setdefault(r.analysis, deque())
            if frames and now - frames[-1].time < self.spacing:
                continue
            horizons = tuple(r.forecast.horizons) if r.forecast is not None else ()
            if self._horizons.get(r.analysis, horizons) != horizons:
                frames.clear()  # columns changed meaning: older frames cannot be compared
            self._horizons[r.analysis] = horizons
            if frames and tuple(frames[-1].index) == r.entities:
                index = frames[-1].index
            else:
                index = {k: i for i, k in enumerate(r.entities)}
            frames.append(_Frame(float(now), index, columns(r)))
            while frames and now - frames[0].time > self.span:
                frames.popleft()
            recorded = True
        return recorded

    def horizons(self, analysis: str) -> tuple[float, ...]:
        """The forecast horizons (s) behind columns 4.. of `analysis`' frames; () if none yet."""
        return self._horizons.get(analysis, ())

    def frames(self, analysis: str) -> int:
        """How many frames of `analysis` are held now (0 for an unknown analysis)."""
        return len(self._frames.get(analysis, ()))

    def series(self, analysis: str, key: EntityKey) -> tuple[np.ndarray, np.ndarray]:
        """(times [N] s, values [N, C]) of one entity, oldest first; frames without it skipped."""
        times: list[float] = []
        rows: list[np.ndarray] = []
        for frame in self._frames.get(analysis, ()):
            i = frame.index.get(key)
            if i is not None:
                times.append(frame.time)
                rows.append(frame.values[i])
        width = len(FIXED_COLUMNS) + len(self.horizons(analysis))
        if not rows:
            return np.empty(0), np.empty((0, width), dtype=np.float32)
        return np.asarray(times), np.stack(rows)

    def nbytes(self) -> int:
        """Bytes held by the value arrays (the index dicts are shared and not counted)."""
        return sum(f.values.nbytes for frames in self._frames.values() for f in frames)

    def aligned(self, analysis: str, entities: tuple[EntityKey, ...],
                column: int) -> tuple[np.ndarray, np.ndarray]:
        """(times [N], values [N, E]) of one column for `entities` (NaN where a frame lacks
        an entity), oldest first."""
        frames = list(self._frames.get(analysis, ()))
        out = np.full((len(frames), len(entities)), np.nan, dtype=np.float32)
        for n, frame in enumerate(frames):
            if tuple(frame.index) == entities:
                out[n] = frame.values[:, column]
                continue
            rows = np.array([frame.index.get(k, -1) for k in entities], dtype=np.int64)
            have = rows >= 0
            out[n, have] = frame.values[rows[have], column]
        return np.array([f.time for f in frames]), out
