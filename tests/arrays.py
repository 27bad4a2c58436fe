"""A Source over in-memory arrays, for tests that inject their own data (no simulator)."""

from __future__ import annotations

import numpy as np

from exporter.config import AnalysisConfig
from exporter.source import Fetch, SourceError
from exporter.windows import Window, grid


class ArraySource:
    """Serves values[E, S, T] at `timestamps`; `fail` makes every fetch raise SourceError."""

    def __init__(self, entities, signals, timestamps, values, label_names=("instance",)):
        self.entities = tuple(tuple(e) for e in entities)
        self.signals = tuple(signals)
        self.timestamps = np.asarray(timestamps, dtype=float)
        self.values = np.asarray(values, dtype=float)
        self.label_names = tuple(label_names)
        self.fail = False
        self.calls: list[tuple[float, float]] = []

    async def fetch(self, analysis: AnalysisConfig, start: float, end: float) -> Fetch:
        self.calls.append((start, end))
        if self.fail:
            raise SourceError("injected failure")
        ts = grid(start, end, float(analysis.step))
        idx = np.searchsorted(self.timestamps, ts)
        ok = (idx < len(self.timestamps)) & (
            self.timestamps[np.minimum(idx, len(self.timestamps) - 1)] == ts
        )
        names = [s.name for s in analysis.signals]
        values = np.full((len(self.entities), len(names), len(ts)), np.nan)
        for j, name in enumerate(names):
            if name in self.signals:
                col = self.values[:, self.signals.index(name)]
                values[:, j, ok] = col[:, idx[ok]]
        block = Window(analysis.name, self.label_names, self.entities, tuple(names), ts, values)
        return Fetch(block, {}, {n: len(self.entities) for n in names})

    async def close(self) -> None:
        pass
