"""Long-range history for `backtest` and `train`: days of samples in one grid-aligned Window.

The same PromQL path as the live source (same auth, TLS, retries, decode), split into chunks
below Prometheus' 11 000-points-per-series limit. Chunks are smaller than that limit by default
so each answer stays a few tens of MB even for large fleets, and are fetched one after another
per signal (signals still run in parallel, bounded by `max_concurrency`).
"""

from __future__ import annotations

import logging
import time

from exporter.config import AnalysisConfig, SourceConfig
from exporter.source import Fetch
from exporter.source.http import PromHttp, SessionFactory, make_session
from exporter.source.prometheus import MAX_POINTS, PrometheusSource

log = logging.getLogger(__name__)

# One day at a 1 m step per request: ~1 440 points × entities samples per answer.
DEFAULT_CHUNK_POINTS = 1440


class HistorySource(PrometheusSource):
    """PromQL history over arbitrary ranges, chunked.

    Parameters
    ----------
    cfg: the `source:` section.
    session_factory: builds the aiohttp session.
    chunk_points: grid points per series per request (at most 11 000).
    """

    def __init__(
        self,
        cfg: SourceConfig,
        session_factory: SessionFactory = make_session,
        *,
        chunk_points: int = DEFAULT_CHUNK_POINTS,
        http: PromHttp | None = None,
    ):
        super().__init__(cfg, session_factory, max_points=min(chunk_points, MAX_POINTS), http=http)

    async def fetch_range(self, analysis: AnalysisConfig, start: float, end: float) -> Fetch:
        """Samples of every entity and signal within [start, end], concatenated into one Window."""
        began = time.monotonic()
        result = await self.fetch(analysis, start, end)
        block = result.block
        log.info(
            "msg=\"history fetched\" analysis=%s steps=%d entities=%d signals=%d failed=%d "
            "duration_seconds=%.2f",
            analysis.name, len(block.timestamps), len(block.entities), len(block.signals),
            len(result.errors), time.monotonic() - began,
        )
        return result
