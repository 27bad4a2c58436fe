"""Byzantine-fault-tolerant combination of the agents' votes into one verdict per entity.

Ballots are the votes cast with confidence >= `min_confidence` (abstentions and low-confidence
opinions excluded: a specialist that sees nothing in its domain, or the topology agent, whose
anomaly score flags the unusual rather than the failing — benchmarks/eval_consensus.py measured
that counting those votes halves recall at 30 min lead without improving precision). With n
ballots on an entity up to f = floor((n - 1) / 3) of them may be wrong in any way (a bug, garbage inputs, a misfit model) without moving the verdict
outside what the others say:

- risk: drop the f highest and f lowest votes, then take the weighted mean of the rest
  (weight = configured agent weight x the agent's confidence). Every kept vote lies within
  [min, max] of the honest votes (a kept vote has f votes on each side of it, so if it were
  beyond all honest votes, those f plus itself would be f + 1 faulty ones), hence so does the
  mean.
- level: a level needs a quorum of q = 2f + 1 agents at or above it, of which at least f + 1
  are honest:
      warning  (1): >= q agents with risk >= warning_risk and combined risk >= warning_risk;
      critical (2): >= q agents with risk >= critical_risk and combined risk >= warning_risk.
  Critical does not also require the combined risk to reach critical_risk: with five agents
  the trimmed mean keeps a specialist that honestly sees nothing (network during a memory
  leak), so that rule would make critical unreachable for most failures. With n = 3..5 the
  quorum is 1, 3, 3 agents; n < min_voters is undecided (risk NaN, level -1), never healthy.
- corroboration: agents listed in `corroborate` (default: the learned forecast and stability)
  never make a level alone: an agent that sees a failure mechanism (capacity: a resource
  running out; network: errors or latency degrading) must be at or above that level's risk
  too (warning_risk for a warning, critical_risk for critical: a restart burst that stability
  rates critical while network sees a mild latency rise is a warning at most).
  The forecast's probabilities come from a model trained on AURA's simulator and do not
  transfer to other fleets; stability's evidence (restarts, scrape gaps, jitter, error
  bursts) is also what deploys, cron restarts and scrape trouble show. On nine evaluation
  sources their solo alerts were 1 true against 11 false (benchmarks/README.md); their
  agreement still raises the combined risk.
- action: the most frequent non-"none" action among the agents supporting the level (tie:
  the highest-risk supporter's); "investigate" when supporters name none; "none" below warning.
- time to failure: median of the supporters' projections (agents only project within the
  largest horizon); NaN at level 0.
- contribution: risk-weighted mean of the supporters' contribution rows (at level 0 of all
  voters, so a drill-down still shows what moves), normalised to sum 1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from exporter.agents.base import normalise_rows
from exporter.config import ConsensusConfig
from exporter.numeric import nanmedian_last
from exporter.results import Consensus, Votes
from exporter.util import humanize_seconds

QUIET = "no agent sees a failure coming"
# In every explanation of a level 0 that an agent's vote at or above the warning risk did not
# make (the backtest report finds these runs by it).
NOT_BACKED = " a risk ("
# Agents whose vote says "unusual", not "failing": never the mechanism a level needs.
UNUSUAL_ONLY = ("topology",)


class ConsensusError(ValueError):
    """The votes cannot be combined (none at all, or of different entity counts)."""


def fault_tolerance(n: np.ndarray) -> np.ndarray:
    """f = floor((n - 1) / 3): how many faulty votes n voters tolerate (0 for n <= 1)."""
    return np.maximum((np.asarray(n) - 1) // 3, 0)


def combine(
    votes: Sequence[Votes],
    cfg: ConsensusConfig,
    signals: tuple[str, ...],
    weights: Mapping[str, float] | None = None,
) -> Consensus:
    """Combine every agent's votes into one consensus per entity (see the module docstring)."""
    if not votes:
        raise ConsensusError("no votes to combine")
    agents = tuple(v.agent for v in votes)
    e = len(votes[0].risk)
    if any(len(v.risk) != e for v in votes):
        raise ConsensusError("votes cover different numbers of entities")
    a_n = len(votes)
    s = len(signals)

    # Out-of-range values are clipped: a faulty agent may say anything, but only within 0..1.
    r = np.clip(np.stack([np.asarray(v.risk, dtype=np.float64) for v in votes], axis=1), 0, 1)
    conf = np.stack([np.asarray(v.confidence, dtype=np.float64) for v in votes], axis=1)
    conf = np.clip(np.nan_to_num(conf, nan=0.5), 0.05, 1.0)
    # Ballots: only confident votes take part. An agent that sees nothing in its own domain
    # (a specialist on a quiet entity) or that is only "unusual"-evidence (topology) says so
    # with low confidence and is an opinion, shown in aura_agent_risk_score but not counted.
    r = np.where(conf >= cfg.min_confidence, r, np.nan)
    voted = ~np.isnan(r)
    base_w = np.array([max(float((weights or {}).get(a, 1.0)), 0.0) for a in agents])
    w = base_w[None, :] * conf

    n = voted.sum(axis=1)
    f = fault_tolerance(n)
    order = np.argsort(np.where(voted, r, np.inf), axis=1, kind="stable")
    r_sorted = np.take_along_axis(r, order, axis=1)
    w_sorted = np.take_along_axis(w, order, axis=1)
    pos = np.arange(a_n)[None, :]
    keep = (pos >= f[:, None]) & (pos < (n - f)[:, None])
    num = np.where(keep, w_sorted * np.nan_to_num(r_sorted), 0).sum(axis=1)
    den = np.where(keep, w_sorted, 0).sum(axis=1)
    plain = np.where(keep, np.nan_to_num(r_sorted), 0).sum(axis=1) / np.maximum(keep.sum(1), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        risk = np.where(den > 0, num / den, plain)
    # Rounding of the weighted mean must not step outside the kept votes.
    lo = np.where(keep, r_sorted, np.inf).min(axis=1)
    hi = np.where(keep, r_sorted, -np.inf).max(axis=1)
    risk = np.clip(risk, np.minimum(lo, hi), np.maximum(lo, hi))
    undecided = (n < max(cfg.min_voters, 1)) | (n == 0)
    risk = np.where(undecided, np.nan, risk)

    quorum = 2 * f + 1
    count_w = (np.nan_to_num(r, nan=-1) >= cfg.warning_risk).sum(axis=1)
    count_c = (np.nan_to_num(r, nan=-1) >= cfg.critical_risk).sum(axis=1)
    # Agents that see a failure mechanism: not the corroborated ones, and not topology (its
    # score flags the unusual, not the failing), whatever min_confidence lets it vote.
    mechanisms = tuple(a for a in agents if a not in cfg.corroborate and a not in UNUSUAL_ONLY)
    specialist = np.array([a in mechanisms for a in agents])
    mechanism = np.where(specialist[None, :], np.nan_to_num(r, nan=-1), -1.0).max(axis=1)
    gate = (np.nan_to_num(risk, nan=-1) >= cfg.warning_risk) & (mechanism >= cfg.warning_risk)
    level = np.zeros(e, dtype=np.int64)
    level[(count_w >= quorum) & gate] = 1
    # Critical, too, needs an agent that sees the mechanism at that level.
    level[(count_c >= quorum) & gate & (mechanism >= cfg.critical_risk)] = 2
    held_at_warning = (level == 1) & (count_c >= quorum)
    level[undecided] = -1

    threshold = np.where(level == 2, cfg.critical_risk, cfg.warning_risk)
    rr = np.nan_to_num(r, nan=-1)
    support = (level >= 1)[:, None] & (rr >= threshold[:, None])
    agreeing = support | ((level == 0)[:, None] & voted & (rr < cfg.warning_risk))

    ttf_all = np.stack([np.asarray(v.time_to_failure, dtype=np.float64) for v in votes], axis=1)
    ttf = nanmedian_last(np.where(support, ttf_all, np.nan))
    ttf = np.where((level >= 1) & np.isfinite(ttf) & (ttf >= 0), ttf, np.nan)

    contrib = np.stack([np.asarray(v.contribution, dtype=np.float64) for v in votes], axis=1)
    contrib = np.clip(contrib, 0, 1)  # shares: a bad agent's row cannot go negative or dominate
    has_row = np.isfinite(contrib).any(axis=2)  # [E, A]
    who = np.where((level >= 1)[:, None], support, voted) & has_row
    cw = np.where(who, np.nan_to_num(r), 0.0)
    contribution = normalise_rows(np.einsum("ea,eas->es", cw, np.nan_to_num(contrib)))
    if s == 0:
        contribution = np.zeros((e, 0))

    actions, explanations = _describe(votes, agents, r, risk, n, level, support, count_w,
                                      quorum, ttf, contribution, signals, cfg, held_at_warning,
                                      mechanisms)
    return Consensus(
        agents=agents,
        risk=risk,
        level=level,
        voters=n,
        action=actions,
        time_to_failure=ttf,
        contribution=contribution,
        agreeing=agreeing,
        explanation=explanations,
    )


def _describe(
    votes: Sequence[Votes],
    agents: tuple[str, ...],
    r: np.ndarray,
    risk: np.ndarray,
    n: np.ndarray,
    level: np.ndarray,
    support: np.ndarray,
    count_w: np.ndarray,
    quorum: np.ndarray,
    ttf: np.ndarray,
    contribution: np.ndarray,
    signals: tuple[str, ...],
    cfg: ConsensusConfig,
    held_at_warning: np.ndarray,
    mechanisms: tuple[str, ...],
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Actions and explanation texts; Python only for entities that are not simply quiet.

    held_at_warning: [E] warnings that a quorum rated critical but no mechanism agent did;
    mechanisms: the voting agents that see a failure mechanism (outside `corroborate`).
    """
    mech_names = _names(list(mechanisms), "or")
    e = len(level)
    actions = ["none"] * e
    texts = [QUIET] * e
    rr = np.nan_to_num(r, nan=-1)
    top = np.full(e, -1)
    if contribution.size:
        known = np.isfinite(contribution).any(axis=1)
        top = np.where(known, np.argmax(np.nan_to_num(contribution, nan=-1), axis=1), -1)
    for i in np.flatnonzero(level == -1):
        texts[i] = f"undecided: {int(n[i])} of {len(agents)} agents voted " \
                   f"(at least {cfg.min_voters} needed)"
    for i in np.flatnonzero((level == 0) & (count_w > 0)):
        high = [a for a in range(len(agents)) if rr[i, a] >= cfg.warning_risk]
        lead = max(high, key=lambda a: rr[i, a])
        reason = votes[lead].reasons[i] or "elevated risk"
        if not any(agents[a] in mechanisms for a in high):
            why = (f"it needs an agent that sees a failure mechanism "
                   f"({mech_names or 'capacity or network'}) to agree "
                   "(agents.consensus.corroborate)")
        elif len(high) >= quorum[i]:
            why = f"the consensus risk {risk[i]:.2f} stays below {cfg.warning_risk:g}"
        else:
            why = f"{int(quorum[i])} agreeing agents are needed"
        texts[i] = (f"{_names([agents[a] for a in high])} {'sees' if len(high) == 1 else 'see'} "
                    f"a risk ({reason}) but {why}")
    # Quiet by the ballots, but an agent projects trouble with too little confidence to vote
    # (a short or gappy window: a new host whose leak starts at boot): say so, never "no agent
    # sees a failure coming" while one does.
    # (Not the UNUSUAL_ONLY agents: topology's confidence is capped below the bar by design,
    # more data would not make it count.)
    raw = np.stack([np.nan_to_num(v.risk, nan=-1) for v in votes], axis=1) if votes else rr
    counted = np.array([a not in UNUSUAL_ONLY for a in agents], dtype=bool)
    unsure = (raw >= cfg.warning_risk) & (rr < cfg.warning_risk) & counted[None, :] & \
        np.isfinite(np.stack([v.confidence for v in votes], axis=1) if votes else rr)
    for i in np.flatnonzero((level == 0) & (count_w == 0) & unsure.any(axis=1)):
        lead = max(np.flatnonzero(unsure[i]).tolist(), key=lambda a: raw[i, a])
        reason = votes[lead].reasons[i] or "elevated risk"
        texts[i] = (f"{agents[lead]} sees a risk ({reason}) but with confidence "
                    f"{float(votes[lead].confidence[i]):.2f}, below "
                    f"{cfg.min_confidence:g}: too little evidence yet to count "
                    "(agents.consensus.min_confidence)")
    for i in np.flatnonzero(level >= 1):
        sup = [a for a in range(len(agents)) if support[i, a]]
        named = Counter(votes[a].action[i] for a in sup if votes[a].action[i] != "none")
        if named:
            best = max(named.values())
            tied = {act for act, c in named.items() if c == best}
            lead = max((a for a in sup if votes[a].action[i] in tied), key=lambda a: rr[i, a])
            actions[i] = votes[lead].action[i]
        else:
            lead = max(sup, key=lambda a: rr[i, a])
            actions[i] = "investigate"
        with_reason = [a for a in sorted(sup, key=lambda a: -rr[i, a]) if votes[a].reasons[i]]
        if votes[lead].reasons[i]:
            text = votes[lead].reasons[i]
        elif with_reason:
            text = votes[with_reason[0]].reasons[i]
        elif top[i] >= 0:
            text = f"{signals[top[i]]} drives the risk"
        else:
            text = "failure risk"
        if top[i] >= 0 and signals[top[i]] not in text:
            text += f" (mostly {signals[top[i]]})"
        if np.isfinite(ttf[i]):
            left = humanize_seconds(float(ttf[i]))
            text += f", {left} left" if left == "under a minute" else f", about {left} left"
        ordered = sorted(sup, key=lambda a: -rr[i, a])
        verb = "agrees" if len(ordered) == 1 else "agree"
        texts[i] = f"{text}; {_names([agents[a] for a in ordered])} {verb}"
        if held_at_warning[i]:
            texts[i] += (f" (a warning: critical needs {mech_names or 'a mechanism'} at "
                         f"{cfg.critical_risk:g})")
    return tuple(actions), tuple(texts)


def _names(items: list[str], conj: str = "and") -> str:
    """`a`, `a and b`, `a, b and c` (or `or`)."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {conj} " + items[-1]
