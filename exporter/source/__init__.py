"""Where samples come from: live PromQL, long-range history, CSV files, the simulator.

Every source answers the same call, `fetch(analysis, start, end)`, with a grid-aligned
`Window` block for [start, end]; the pipeline merges blocks into its ring buffers. A source
never raises for one bad signal: it reports it in `Fetch.errors` and returns the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from exporter.config import AnalysisConfig
from exporter.windows import Window


class SourceError(Exception):
    """The source could not answer at all (unreachable, refused, unparseable)."""


@dataclass(frozen=True, eq=False)
class Fetch:
    """A source's answer: `block` ([E, S, T] on the step grid), per-signal errors and series counts."""
    block: Window
    # signal -> error text for queries that failed; their columns are NaN in `block`.
    errors: dict[str, str] = field(default_factory=dict)
    # signal -> number of series the query returned.
    series: dict[str, int] = field(default_factory=dict)


class Source(Protocol):
    """What every source implements: `fetch` a grid-aligned block, `close` its connections."""
    async def fetch(self, analysis: AnalysisConfig, start: float, end: float) -> Fetch:
        """Samples of every entity and signal of `analysis` on its step grid within [start, end]."""
        ...

    async def close(self) -> None:
        """Release connections and files; safe to call twice."""
        ...
