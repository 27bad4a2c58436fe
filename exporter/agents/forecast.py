"""Forecast agent: the failure model's probabilities, weighted toward the nearest horizon.

risk = max over horizons of P(fail <= h) * (h_min / h) ** 0.25: a failure likely within the
hour counts in full, one only likely within 4 h counts ~0.71 of its probability.
The model says when, not where or what: no contribution and no action of its own.
"""

from __future__ import annotations

import numpy as np

from exporter.agents.base import AgentError, AgentInput, abstain, make_votes
from exporter.results import Votes
from exporter.util import format_duration

URGENCY_EXPONENT = 0.25
CONFIDENCE = 0.8


class ForecastAgent:
    """The failure model's horizon probabilities as a vote; abstains without a forecast."""

    name = "forecast"

    def assess(self, inp: AgentInput) -> Votes:
        """Votes from `inp.forecast`; AgentError if its shape is not [E, H] (`Agent.assess`)."""
        e, s = inp.window.values.shape[:2]
        fc = inp.forecast
        if fc is None or e == 0 or not fc.horizons:
            return abstain(self.name, e, s)
        p = np.asarray(fc.probability, dtype=np.float64)
        if p.shape != (e, len(fc.horizons)):
            raise AgentError(f"forecast probability has shape {p.shape}, "
                             f"expected ({e}, {len(fc.horizons)})")
        h = np.asarray(fc.horizons, dtype=np.float64)
        weight = (h.min() / h) ** URGENCY_EXPONENT
        weighted = np.clip(p, 0, 1) * weight[None, :]
        absent = np.isnan(p).all(axis=1)
        risk = np.where(absent, np.nan, np.nanmax(np.where(np.isnan(weighted), -1, weighted), 1))
        ttf = np.asarray(fc.time_to_failure, dtype=np.float64)
        if ttf.shape != (e,):
            ttf = np.full(e, np.nan)
        ttf = np.where(ttf <= h.max(), ttf, np.nan)
        reasons = [""] * e
        for i in np.flatnonzero(np.nan_to_num(risk) >= 0.3):
            k = int(np.nanargmax(weighted[i]))
            reasons[i] = f"failure model: {p[i, k]:.0%} within {format_duration(h[k])}"
        contribution = np.full((e, s), np.nan)
        confidence = np.full(e, CONFIDENCE)
        return make_votes(self.name, risk, confidence, ("none",) * e, ttf, contribution, reasons)
