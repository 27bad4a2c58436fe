"""Agents: independent specialists that vote on every entity; `consensus` combines the votes.

`AGENTS` is the explicit registry (config `agents.<name>.enabled` picks from it). `run_agents`
runs the enabled ones in registry order and isolates each: an agent that raises, or returns
votes of the wrong shape, abstains for everyone this cycle and is logged once; the others
still vote.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

import numpy as np

from exporter.agents.base import (
    ACTIONS,
    Agent,
    AgentError,
    AgentInput,
    Vote,
    abstain,
    vote_of,
)
from exporter.agents.capacity import CapacityAgent
from exporter.agents.forecast import ForecastAgent
from exporter.agents.network import NetworkAgent
from exporter.agents.stability import StabilityAgent
from exporter.agents.topology import TopologyAgent
from exporter.config import AgentsConfig
from exporter.results import Votes

log = logging.getLogger(__name__)

AGENTS: dict[str, type] = {
    "topology": TopologyAgent,
    "forecast": ForecastAgent,
    "capacity": CapacityAgent,
    "network": NetworkAgent,
    "stability": StabilityAgent,
}


def enabled_agents(cfg: AgentsConfig) -> tuple[str, ...]:
    """Names of the agents with `agents.<name>.enabled`, in registry (`AGENTS`) order."""
    return tuple(name for name in AGENTS if getattr(cfg, name).enabled)


def agent_weights(cfg: AgentsConfig) -> dict[str, float]:
    """Consensus weights per agent, from `agents.<name>.weight`."""
    return {name: float(getattr(cfg, name).weight) for name in AGENTS}


def run_agents(
    inp: AgentInput, cfg: AgentsConfig, registry: Mapping[str, Callable[[], Agent]] | None = None
) -> tuple[Votes, ...]:
    """Votes of every enabled agent, in registry order; a failing agent abstains for all.

    `registry` replaces `AGENTS` (tests inject a faulty agent this way).
    """
    table = AGENTS if registry is None else registry
    e, s = inp.window.values.shape[:2]
    out: list[Votes] = []
    for name in enabled_agents(cfg):
        agent: Agent = table[name]()
        start = time.perf_counter()
        try:
            votes = agent.assess(inp)
            _check(votes, name, e, s)
        except Exception as err:  # noqa: BLE001 - one broken agent must not silence the rest
            log.warning("stage=agents agent=%s error=%r entities=%d result=abstain", name, err, e)
            votes = abstain(name, e, s)
        log.debug("stage=agents agent=%s duration_seconds=%.4f", name,
                  time.perf_counter() - start)
        out.append(votes)
    return tuple(out)


def _check(votes: Votes, name: str, e: int, s: int) -> None:
    """Refuse votes that do not fit the window (a buggy agent, not a Byzantine value)."""
    shapes = {
        "risk": (np.shape(votes.risk), (e,)),
        "confidence": (np.shape(votes.confidence), (e,)),
        "time_to_failure": (np.shape(votes.time_to_failure), (e,)),
        "contribution": (np.shape(votes.contribution), (e, s)),
    }
    for field, (got, want) in shapes.items():
        if got != want:
            raise AgentError(f"{name}: {field} has shape {got}, expected {want}")
    if len(votes.action) != e or len(votes.reasons) != e:
        raise AgentError(f"{name}: action/reasons do not have {e} entries")
    if votes.agent != name:
        raise AgentError(f"{name}: votes are labelled {votes.agent!r}")


__all__ = [
    "ACTIONS",
    "AGENTS",
    "Agent",
    "AgentError",
    "AgentInput",
    "Vote",
    "agent_weights",
    "enabled_agents",
    "run_agents",
    "vote_of",
]
