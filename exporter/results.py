"""What the analysis stages hand each other: small frozen dataclasses of per-entity arrays.

Row i of every array is entity i of the cycle's `Window` (same order). Absent results are None:
a stage that is not configured, abstains or failed exports nothing, never placeholder numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from exporter.windows import EntityKey, Window

if TYPE_CHECKING:
    from exporter.tda.baseline import BaselineStore


@dataclass(frozen=True, eq=False)
class TopologyResult:
    """Output of the topology stage (exporter.tda).

    anomaly_score: [E] calibrated 0..1 distance to the entity's baseline (this cycle's onset,
        exporter/tda/baseline.py EXPORTED); NaN while warming up.
    sustained_score: [E] its sustained form (the calibrated 30-min average and drift of the
        same evidence, Tippett-combined), what the topology agent and the decision stage's
        sustained-anomaly warning read (`sustained`); None where absent.
    betti: [E, 2] Betti numbers (dimensions 0, 1) at the calibrated scale.
    entropy: [E, 2] persistence entropy per dimension.
    features: [E, K] topology feature vector, columns named by `feature_names`.
    signal_contribution: [E, S] share of the anomaly explained by each signal (rows sum to 1
        where known, NaN otherwise).
    fleet_betti: [2] Betti numbers of the fleet (entities as points); NaN when too few entities.
    fleet_outlier: [E] 0..1, how far each entity stands from its peers.
    baseline: the analysis' live baseline store (not a per-entity array: shared by the
        cycle's rows, and it keeps learning after the cycle); read only through
        `BaselineStore.view(key)`, on demand (the console's entity page). None where absent.
    history_seconds: [E] seconds of own history the anomaly score is calibrated on
        (`BaselineStore.history_seconds`: three days at most; 0 without any). None where
        absent.
    """

    anomaly_score: np.ndarray
    betti: np.ndarray
    entropy: np.ndarray
    features: np.ndarray
    feature_names: tuple[str, ...]
    signal_contribution: np.ndarray
    fleet_betti: np.ndarray
    fleet_outlier: np.ndarray
    baseline: BaselineStore | None = None
    history_seconds: np.ndarray | None = None
    sustained_score: np.ndarray | None = None

    def sustained(self) -> np.ndarray:
        """[E] `sustained_score`, or `anomaly_score` where a producer gives none."""
        return self.anomaly_score if self.sustained_score is None else self.sustained_score


@dataclass(frozen=True, eq=False)
class Forecast:
    """Output of the failure model (exporter.lnn).

    probability: [E, H] P(failure within horizon h), monotone along H; NaN where abstaining.
    time_to_failure: [E] seconds; NaN when none is projected within the largest horizon.
    """

    horizons: tuple[float, ...]
    probability: np.ndarray
    time_to_failure: np.ndarray


@dataclass(frozen=True, eq=False)
class Votes:
    """One agent's votes on every entity (exporter.agents).

    risk: [E] 0..1, NaN where the agent abstains (inputs missing or stale).
    confidence: [E] 0..1.
    action: [E] recommended action names ("none" when nothing to do).
    time_to_failure: [E] seconds or NaN.
    contribution: [E, S] how much each signal drives this agent's risk (rows sum to 1 or NaN).
    reasons: [E] short human text ("" when nothing to say).
    """

    agent: str
    risk: np.ndarray
    confidence: np.ndarray
    action: tuple[str, ...]
    time_to_failure: np.ndarray
    contribution: np.ndarray
    reasons: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class Consensus:
    """Byzantine-fault-tolerant combination of the votes (exporter.consensus).

    risk: [E] 0..1; NaN when too few agents voted (undecided, never "healthy").
    level: [E] 0 ok, 1 warning, 2 critical; -1 undecided.
    voters: [E] agents that voted.
    agreeing: [E, A] bool, agent a supports the entity's level (columns = `agents`).
    """

    agents: tuple[str, ...]
    risk: np.ndarray
    level: np.ndarray
    voters: np.ndarray
    action: tuple[str, ...]
    time_to_failure: np.ndarray
    contribution: np.ndarray
    agreeing: np.ndarray
    explanation: tuple[str, ...]
    # [E] the risk the entity had to exceed to alert (exporter.decision); None: not gated.
    threshold: np.ndarray | None = None
    # [E] the agents' risk (the trimmed mean) before exporter.decision read it against the
    # entity's usual into `risk` (`exported_risk`); None: not gated, `risk` is that risk.
    consensus_risk: np.ndarray | None = None
    # The analysis' fleet-wide event (exporter.decision): entities that reached a level within
    # the window, and how many make an event (0: off, or too few entities); None: not gated.
    fleet_wide_entities: int | None = None
    fleet_wide_needed: int = 0

    @property
    def fleet_wide_event(self) -> bool:
        """More entities reached a level at once than independent failures explain: their
        levels are held as a shared cause (exporter.decision)."""
        return bool(self.fleet_wide_needed) and (self.fleet_wide_entities or 0) \
            >= self.fleet_wide_needed


@dataclass(frozen=True, eq=False)
class AnalysisResult:
    """Everything one cycle learned about one analysis."""

    analysis: str
    label_names: tuple[str, ...]
    entities: tuple[EntityKey, ...]
    signals: tuple[str, ...]
    window: Window
    topology: TopologyResult | None = None
    forecast: Forecast | None = None
    votes: tuple[Votes, ...] = ()
    consensus: Consensus | None = None
    source_series: dict[str, int] = field(default_factory=dict)
    source_errors: dict[str, str] = field(default_factory=dict)
