"""Stability agent: flapping evidence — scrape gaps, restarts, jittery changes, error bursts.

Four independent pieces of evidence, each mapped to a bounded risk and combined as a noisy-OR
(a ballot only when two kinds agree or one is strong; a single benign event is an opinion).
By default (`agents.consensus.corroborate`) a ballot of this agent raises a level only with
capacity or network agreeing: a deploy that restarts a host 3-4 times in two hours (measured on
the independent fleet generator) looks like a crash loop to restart counting
(exporter/consensus.py).
- gaps: samples missing for the whole entity after it first reported (scrape failures), the
  share in the recent part and the number of separate gaps;
- restarts: usage (a resource signal, or one with a capacity that is not an errors or
  latency kind: an error ratio stopping is no restart; bad direction up) falling to
  under a fifth of its previous three samples, by more than RESTART_NOISE times its ordinary
  step changes (a process or host restart drops usage to near zero; a GC drop does not).
  Demand gauges without a capacity (a queue's depth, a consumer's lag, GC time, load) drain
  to near zero without anything restarting, and so does a gauge that flickers near zero (a
  pool's in-use connections between 1 and 0 of 16): on an independent Kubernetes fleet
  (benchmarks/fleetgen4.py) those read as "restarted about 14 times" on healthy pods;
- jitter: the robust spread of step-to-step changes recently vs earlier (flapping);
- error bursts: separate onsets of errors-kind signals far above their usual level.
"""

from __future__ import annotations

import numpy as np

from exporter.agents.base import (
    ACTION_RISK,
    AgentInput,
    abstain,
    in_chunks,
    make_votes,
    normalise_rows,
    signal_configs,
    specialist_confidence,
)
from exporter.numeric import mad_sigma, nanmedian_last
from exporter.results import Votes
from exporter.windows import RESTART_FRACTION

RECENT_S = 1800.0
RISK_MAX = 0.95
# A piece of evidence at or above CORROBORATED_RISK counts towards corroboration; restarts,
# jitter or bursts at or above STRONG_RISK (about 3 recent restarts: a crash loop) stand alone.
CORROBORATED_RISK = 0.3
STRONG_RISK = 0.7
# Below agents.consensus.min_confidence (default 0.6): an opinion, not a ballot.
OPINION_CONFIDENCE = 0.5
# A restart's collapse exceeds this many times the signal's ordinary step change
# (`restart_noise`).
RESTART_NOISE = 3.0
RESTART_NOISE_QUANTILE = 75.0
# Kinds whose level is never usage, even with a capacity (an error ratio's 1): a restart
# drops usage to near zero, but errors stopping is no restart (an independent microservice
# fleet, benchmarks/fleetgen6.py: a flaky endpoint's error ratio falling back to 0 read as
# "restarted about 6 times" on healthy services).
NOT_USAGE_KINDS = ("errors", "latency")


def restart_noise(x: np.ndarray, collapse: np.ndarray | None = None) -> np.ndarray:
    """The ordinary step change of each series of x [..., T]: the RESTART_NOISE_QUANTILE-th
    percentile of its absolute first differences, NaN left out, and so are the steps into
    and out of each candidate collapse (`collapse` [..., T-3]: x[..., i+3] fell under a
    fifth of the three samples before it), so a crash loop's own falls and recoveries do not
    set its noise (looping every 6 samples, they were a third of the steps and nothing
    counted). 0 where no step is left. A quantile, not the MAD: a gauge that sits at one
    value most of the time (a pool's in-use count) has a MAD of 0 however often it flickers.
    Returns [...]."""
    d = np.abs(np.diff(x, axis=-1))  # [..., T-1]; d[..., j] = x[j+1] - x[j]
    if collapse is not None and collapse.shape[-1]:
        own = np.zeros(d.shape, dtype=bool)
        own[..., 2:] |= collapse  # the fall: x[i+2] -> x[i+3]
        own[..., 3:] |= collapse[..., :-1]  # the step after it (a recovery)
        d[own] = np.nan
    d = np.sort(d, axis=-1)  # NaN sorts last
    n = (~np.isnan(d)).sum(axis=-1)
    # numpy's "lower" percentile of the present values (np.nanpercentile(..., method="lower")
    # gives the same, tests/test_agents.py; it loops over rows where NaN are present).
    k = np.floor(RESTART_NOISE_QUANTILE / 100.0 * np.maximum(n - 1, 0)).astype(np.int64)
    out = np.take_along_axis(d, k[..., None], axis=-1)[..., 0] if d.shape[-1] else \
        np.full(n.shape, np.nan)
    return np.where(n > 0, out, 0.0)


class StabilityAgent:
    """Flapping evidence (gaps, restarts, jitter, error bursts) as a noisy-OR risk."""

    name = "stability"

    def assess(self, inp: AgentInput) -> Votes:
        """Votes per entity, batched in chunks of entities (contract: `Agent.assess`)."""
        return in_chunks(self._assess, inp)

    def _assess(self, inp: AgentInput) -> Votes:
        win = inp.window
        v = win.values
        e, s, t = v.shape
        if e == 0 or s == 0 or t < 12:
            return abstain(self.name, e, s)
        cfgs = signal_configs(inp)
        recent = int(max(4, min(round(RECENT_S / float(inp.analysis.step)), t // 2)))
        present_st = ~np.isnan(v)  # [E, S, T]
        present = present_st.any(axis=1)  # [E, T]
        voting = present.any(axis=1)

        # Gaps: whole-entity missing samples after the first one seen.
        started = np.cumsum(present, axis=1) > 0
        missing = started & ~present
        gap_share = missing[:, -recent:].mean(axis=1)
        gap_starts = (missing[:, 1:] & ~missing[:, :-1]).sum(axis=1)
        r_gap = 1 - (1 - 0.7 * np.clip((gap_share - 0.05) / 0.3, 0, 1)) * (
            1 - 0.6 * np.clip((gap_starts - 1) / 4, 0, 1)
        )

        # Restarts: usage collapsing relative to the previous three samples, by far more than
        # the signal's ordinary step changes (`restart_noise`).
        res_idx = [j for j, c in enumerate(cfgs)
                   if (c.kind == "resource" or (c.capacity is not None
                                                and c.kind not in NOT_USAGE_KINDS))
                   and c.direction == "up"]
        drops_per_signal = np.zeros((e, s))
        restart_score = np.zeros(e)
        if res_idx:
            x = np.take(v, res_idx, axis=1)  # = v[:, res_idx], gathered faster
            prev = np.fmin(x[..., 2:-1], x[..., 1:-2])  # [E, C, T-3]
            np.fmin(prev, x[..., :-3], out=prev)
            now = x[..., 3:]
            with np.errstate(invalid="ignore"):
                drop = (now <= RESTART_FRACTION * prev) & (prev > 0)
                # The noise only of the series with a collapse (most have none: one sort of
                # every series' differences cost ~0.25 s a cycle at 10 000 entities).
                cand = drop.any(axis=-1)
                if cand.any():
                    noise = restart_noise(x[cand], drop[cand])
                    big = prev[cand] - now[cand] > RESTART_NOISE * noise[:, None]
                    drop[cand] &= big
            drops_per_signal[:, res_idx] = drop.sum(axis=-1)
            when = drop.any(axis=1)  # [E, T-3]: one restart usually hits several signals at once
            recent_w = np.where(np.arange(t - 3) >= t - 3 - recent, 1.0, 0.5)
            restart_score = (when * recent_w).sum(axis=1)
        r_restart = 0.95 * (1 - np.exp(-0.5 * restart_score))

        # Jitter: spread of recent step changes vs the earlier part, per signal.
        # Median absolute step change (changes centre on zero, so no centring pass is needed).
        # The two parts of |np.diff(v)| ([..., :-recent] and [..., -recent:]) built apart, so
        # each is a contiguous temporary its median sorts in place.
        d_recent = v[..., t - recent:] - v[..., t - recent - 1:t - 1]
        d_base = v[..., 1:t - recent] - v[..., :t - recent - 1]
        vol_recent = nanmedian_last(np.abs(d_recent, out=d_recent), overwrite_input=True)
        vol_base = nanmedian_last(np.abs(d_base, out=d_base), overwrite_input=True)
        cap = np.array([c.capacity or np.nan for c in cfgs], dtype=np.float64)
        # The typical level sets the floor only of signals without a capacity: its medians
        # are taken of those columns alone (row by row: the same values).
        scale = np.zeros((e, s))
        no_cap = [j for j in range(s) if not np.isfinite(cap[j])]
        if no_cap:
            level = np.take(v, no_cap, axis=1)
            scale[:, no_cap] = np.nan_to_num(nanmedian_last(np.abs(level, out=level),
                                                            overwrite_input=True))
        floor = np.where(np.isfinite(cap)[None, :], 0.002 * np.nan_to_num(cap)[None, :],
                         0.01 * scale)
        ratio = vol_recent / np.maximum(np.nan_to_num(vol_base), np.maximum(floor, 1e-12))
        r_vol_sig = np.nan_to_num(0.5 * np.clip((ratio - 3) / 5, 0, 1))
        r_vol = r_vol_sig.max(axis=1)

        # Error bursts: separate onsets far above the usual level.
        err_idx = [j for j, c in enumerate(cfgs) if c.kind == "errors"]
        bursts_per_signal = np.zeros((e, s))
        if err_idx:
            x = np.take(v, err_idx, axis=1)
            med = nanmedian_last(x)
            sig = np.maximum(np.nan_to_num(mad_sigma(x, med)), 0.05 * np.abs(np.nan_to_num(med)))
            with np.errstate(invalid="ignore"):
                above = x > (med + 6 * np.maximum(sig, 1e-12))[..., None]
            onsets = (above[..., 1:] & ~above[..., :-1]).sum(axis=-1)
            bursts_per_signal[:, err_idx] = onsets
        bursts = bursts_per_signal.max(axis=1)
        r_burst = 0.6 * np.clip((bursts - 1) / 4, 0, 1)

        parts = np.stack([r_gap, r_restart, r_vol, r_burst], axis=1)  # [E, 4]
        risk = np.minimum(1 - np.prod(1 - parts, axis=1), RISK_MAX)
        risk = np.where(voting, risk, np.nan)

        # Contribution: each piece of evidence spread over the signals that produced it.
        uniform = np.where(present_st.any(axis=2), 1.0, 0.0)
        contribution = (
            r_gap[:, None] * _rows(uniform)
            + r_restart[:, None] * _rows(drops_per_signal)
            + r_vol_sig
            + r_burst[:, None] * _rows(bursts_per_signal)
        )
        contribution = normalise_rows(contribution)
        confidence = specialist_confidence(risk, 0.7 * started.mean(axis=1))
        # One benign event (a deploy's restart, a scrape gap, a burst of jitter) is ordinary
        # operations, not a failure coming: the vote is a ballot only when the instability is
        # corroborated (two kinds of evidence) or strong on its own (a crash loop); otherwise
        # it stays an opinion, shown but not counted.
        # Failing scrapes alone are Prometheus' own `up` alerts, not a failure AURA predicts.
        corroborated = ((parts >= CORROBORATED_RISK).sum(axis=1) >= 2) | \
            (parts[:, 1:].max(axis=1) >= STRONG_RISK)
        confidence = np.where(corroborated, confidence, np.minimum(confidence, OPINION_CONFIDENCE))

        kinds = ("gaps", "restarts", "jitter", "bursts")
        lead = np.argmax(parts, axis=1)
        actions = np.full(e, "none", dtype=object)
        reasons = [""] * e
        for i in np.flatnonzero(np.nan_to_num(risk) >= ACTION_RISK):
            kind = kinds[int(lead[i])]
            # Restarting does not cure a crash loop or error bursts: those need a look.
            actions[i] = "investigate" if kind in ("restarts", "bursts") else "restart_candidate"
            # Only the lead kind's text is formatted (thousands of rows in a replay).
            if kind == "gaps":
                reasons[i] = (f"scrapes failing ({int(gap_starts[i])} gaps, "
                              f"{gap_share[i]:.0%} of the last {recent} samples missing)")
            elif kind == "restarts":
                reasons[i] = f"restarted about {int(round(restart_score[i] + 0.49))} times"
            elif kind == "jitter":
                reasons[i] = "values flapping far more than usual"
            else:
                reasons[i] = f"{int(bursts[i])} error bursts"
        ttf = np.full(e, np.nan)
        return make_votes(self.name, risk, confidence, actions, ttf, contribution, reasons)


def _rows(a: np.ndarray) -> np.ndarray:
    """Rows normalised to sum 1, zeros where a row has no mass."""
    return np.nan_to_num(normalise_rows(a))
