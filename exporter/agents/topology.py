"""Topology agent: "the shape of this entity's signals is unusual", from exporter.tda.

The anomaly score is calibrated 0..1 (the mid-rank empirical CDF of the entity's own recent
topological distances, exporter/tda/baseline.py: 0.9 = exceeded by 1 window in 10), so
ordinary variation is spread uniformly over 0..1: risk starts only above the 0.9 quantile.
NaN (warming up, constant windows) abstains.
An unusual shape is not yet a failure, so both risk and confidence are capped: topology can
join a quorum, never form one.
"""

from __future__ import annotations

import numpy as np

from exporter.agents.base import AgentError, AgentInput, abstain, make_votes
from exporter.results import Votes

SCORE_QUANTILE = 0.9
RISK_MAX = 0.85
FLEET_WEIGHT = 0.5  # standing out from peers is weaker evidence than changing from oneself
CONFIDENCE_MAX = 0.5


class TopologyAgent:
    """The calibrated topology anomaly score as a capped vote; abstains while warming up."""

    name = "topology"

    def assess(self, inp: AgentInput) -> Votes:
        """Votes from `inp.topology`; AgentError if the score is not [E] (`Agent.assess`)."""
        e, s = inp.window.values.shape[:2]
        topo = inp.topology
        if topo is None or e == 0:
            return abstain(self.name, e, s)
        # The sustained form: a cycle's onset alone does not move the risk.
        score = np.asarray(topo.sustained(), dtype=np.float64)
        if score.shape != (e,):
            raise AgentError(f"topology sustained score has shape {score.shape}, expected ({e},)")
        outlier = np.asarray(topo.fleet_outlier, dtype=np.float64)
        if outlier.shape != (e,):
            outlier = np.full(e, np.nan)
        r_self = np.clip((score - SCORE_QUANTILE) / (1 - SCORE_QUANTILE), 0, 1)
        r_fleet = FLEET_WEIGHT * np.clip((np.nan_to_num(outlier) - SCORE_QUANTILE)
                                         / (1 - SCORE_QUANTILE), 0, 1)
        risk = RISK_MAX * (1 - (1 - r_self) * (1 - r_fleet))
        risk = np.where(np.isnan(score), np.nan, risk)

        contribution = np.asarray(topo.signal_contribution, dtype=np.float64)
        if contribution.shape != (e, s):
            contribution = np.full((e, s), np.nan)
        confidence = np.full(e, CONFIDENCE_MAX)
        signals = inp.window.signals
        reasons = [""] * e
        for i in np.flatnonzero(np.nan_to_num(risk) >= 0.3):
            row = contribution[i]
            top = signals[int(np.nanargmax(row))] if np.isfinite(row).any() else "the signals"
            reasons[i] = f"unusual shape of {top} (anomaly {score[i]:.2f})"
        # No action of its own: "unusual" says where to look, not what to do.
        actions = ("none",) * e
        ttf = np.full(e, np.nan)
        return make_votes(self.name, risk, confidence, actions, ttf, contribution, reasons)
