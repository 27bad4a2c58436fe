"""What every agent reads and returns (`AgentInput`, `Votes`), and the vote-shaping helpers.

An agent looks at one cycle of one analysis (`AgentInput`) and votes on every entity at once
(`Votes`, arrays with one row per entity of the window). Risk is always "probability-like
evidence of a failure within the largest horizon": 0..1, ordinary behaviour near 0, NaN where
the agent has nothing to say about the entity (abstention, never "healthy").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from exporter.config import AnalysisConfig, SignalConfig
from exporter.results import Forecast, TopologyResult, Votes
from exporter.windows import Window

# An agent names an action only when its own risk reaches this; below it the action is "none"
# so that weak evidence never competes with strong evidence when the consensus picks one.
ACTION_RISK = 0.3

ACTIONS = (
    "none",
    "investigate",
    "raise_memory_limit",
    "free_disk",
    "scale_out",
    "investigate_network",
    "investigate_dependency",
    "restart_candidate",
)


class AgentError(RuntimeError):
    """An agent could not assess the cycle (bad input shapes, broken configuration)."""


@dataclass(frozen=True)
class AgentInput:
    """One cycle of one analysis, as the agents see it.

    analysis: the analysis configuration (signal kinds, capacities, horizons).
    window: values[E, S, T] on the step grid.
    topology, forecast: results of the earlier stages; None when absent or failed.
    now: evaluation time in Unix seconds (the simulated clock in backtests).
    """

    analysis: AnalysisConfig
    window: Window
    topology: TopologyResult | None
    forecast: Forecast | None
    now: float


class Agent(Protocol):
    """What the registry holds: a `name` (the `agent` label) and a batched `assess`."""

    name: str

    def assess(self, inp: AgentInput) -> Votes:
        """Vote on every entity of `inp.window` (values[E, S, T]) at once.

        Returns Votes: risk and confidence [E] in 0..1 (NaN risk = abstain, never "healthy"),
        action [E], time_to_failure [E] in seconds (NaN: none projected), contribution [E, S]
        shares, reasons [E]. Errors: AgentError for malformed input; `run_agents` isolates any
        exception (the agent abstains for everyone that cycle).
        """
        ...


@dataclass(frozen=True)
class Vote:
    """One agent's vote on one entity: a readable view for explanations and tests."""

    agent: str
    risk: float
    confidence: float
    action: str
    time_to_failure: float
    contribution: dict[str, float]
    reason: str

    @property
    def abstains(self) -> bool:
        """True when the agent has nothing to say about the entity (NaN risk)."""
        return bool(np.isnan(self.risk))

    @property
    def top_signal(self) -> str | None:
        """The signal with the largest known contribution, None when none is known."""
        known = {k: v for k, v in self.contribution.items() if np.isfinite(v)}
        return max(known, key=known.__getitem__) if known else None


def vote_of(votes: Votes, row: int, signals: Sequence[str]) -> Vote:
    """The vote of `votes.agent` on entity `row` (signals name the contribution columns)."""
    contrib = {s: float(votes.contribution[row, j]) for j, s in enumerate(signals)}
    return Vote(
        votes.agent,
        float(votes.risk[row]),
        float(votes.confidence[row]),
        votes.action[row],
        float(votes.time_to_failure[row]),
        contrib,
        votes.reasons[row],
    )


def abstain(agent: str, entities: int, signals: int) -> Votes:
    """Votes of an agent that has nothing to say about anyone."""
    nan = np.full(entities, np.nan)
    return Votes(
        agent,
        nan,
        nan.copy(),
        ("none",) * entities,
        nan.copy(),
        np.full((entities, signals), np.nan),
        ("",) * entities,
    )


def signal_configs(inp: AgentInput) -> list[SignalConfig]:
    """The configuration of each window signal, in window order (defaults when not configured)."""
    by_name = {s.name: s for s in inp.analysis.signals}
    return [by_name.get(name, SignalConfig(name=name)) for name in inp.window.signals]


def largest_horizon(analysis: AnalysisConfig) -> float:
    """The analysis' largest forecast horizon in seconds (4 h when none is configured)."""
    return float(max(analysis.horizons)) if analysis.horizons else 4 * 3600.0


def normalise_rows(weights: np.ndarray) -> np.ndarray:
    """Rows scaled to sum 1; rows with no positive mass become NaN (unknown, not uniform)."""
    w = np.where(np.isfinite(weights) & (weights > 0), weights, 0.0)
    total = w.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = w / total
    return np.where(total > 0, out, np.nan)


def specialist_confidence(risk: np.ndarray, quality: np.ndarray, floor: float = 0.3) -> np.ndarray:
    """Confidence of a specialist: full when it sees its failure mode, `floor` when it sees none.

    A capacity or network agent that finds nothing wrong in its own domain says little about
    the entity's overall risk (the failure may be elsewhere), so its "all clear" weighs less in
    the consensus mean than its alarm. `quality` (0..1) is the share of usable input data.
    """
    seen = np.clip(np.nan_to_num(risk) / 0.5, 0, 1)
    return np.clip(quality, 0, 1) * (floor + (1 - floor) * seen)


def data_share(x: np.ndarray) -> np.ndarray:
    """Share of present samples in x [E, C, T] per entity, over the signals the entity reports
    at all in the window: [E] in 0..1 (0 where it reports none of them).

    A signal an entity does not have (a consumer's latency, a stateless pod's volume: the
    config lists the union of a heterogeneous fleet's signals) is not missing data. Counted
    as missing, a Kafka consumer's lag runaway was voted at confidence 0.4, below
    `min_confidence`, because its latency and error columns are empty (benchmarks/fleetgen4.py).
    """
    present = ~np.isnan(x)
    reported = present.any(axis=-1).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = present.mean(axis=-1).sum(axis=1) / reported
    return np.where(reported > 0, share, 0.0)


CHUNK_ENTITIES = 1024


def in_chunks(assess: Callable[[AgentInput], Votes], inp: AgentInput,
              size: int = CHUNK_ENTITIES) -> Votes:
    """Run a per-entity `assess` over blocks of entities and stitch the votes back together.

    Only for agents without fleet-wide terms. Blocks keep the [E, S, T] temporaries a few MB
    large, so the allocator reuses memory instead of page-faulting ~80 MB arrays (measured:
    at 10 000 entities the copies cost more than the sorts).
    """
    e = inp.window.values.shape[0]
    if e <= size:
        return assess(inp)
    parts = [
        assess(replace(inp, window=inp.window.select(np.arange(lo, min(lo + size, e)))))
        for lo in range(0, e, size)
    ]
    return Votes(
        parts[0].agent,
        np.concatenate([p.risk for p in parts]),
        np.concatenate([p.confidence for p in parts]),
        tuple(a for p in parts for a in p.action),
        np.concatenate([p.time_to_failure for p in parts]),
        np.concatenate([p.contribution for p in parts]),
        tuple(r for p in parts for r in p.reasons),
    )


def make_votes(
    agent: str,
    risk: np.ndarray,
    confidence: np.ndarray,
    action: np.ndarray | Sequence[str],
    time_to_failure: np.ndarray,
    contribution: np.ndarray,
    reasons: Sequence[str],
) -> Votes:
    """Assemble Votes, forcing the contract: risk/confidence in [0, 1], NaN rows for abstainers."""
    risk = np.clip(np.asarray(risk, dtype=np.float64), 0.0, 1.0)
    absent = np.isnan(risk)
    confidence = np.where(absent, np.nan, np.clip(np.asarray(confidence, dtype=np.float64), 0, 1))
    ttf = np.where(absent, np.nan, np.asarray(time_to_failure, dtype=np.float64))
    contribution = np.where(absent[:, None], np.nan, contribution)
    actions = tuple("none" if a else str(act) for act, a in zip(action, absent, strict=True))
    reasons_t = tuple("" if a else str(r) for r, a in zip(reasons, absent, strict=True))
    return Votes(agent, risk, confidence, actions, ttf, contribution, reasons_t)
