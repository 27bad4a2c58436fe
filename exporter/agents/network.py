"""Network and dependency agent: sustained rises of errors, drops, latency or work piling up over the entity's own past.

It also judges saturation signals without a capacity (`degradation_signal`: queue depth,
consumer lag, GC time, load per CPU) the same way: work piling up far above its own usual
level is a failure mechanism no capacity projection covers (a Kafka consumer's lag growing
from 50 to 200 000 messages before it is declared dead, GC time climbing tenfold before a
JVM's death spiral: both missed on an independent Kubernetes fleet, benchmarks/fleetgen4.py).

Each network/latency/errors signal's recent level (median of the last 15 min, so at least half
of those samples must be elevated: single spikes do nothing) is compared with the earlier part
of the same window: its median, and as noise the smaller of its MAD and the MAD of its
residuals around its least-squares line (a degradation under way for hours ramps through the
whole window, and the spread of a ramp is no measure of its noise: with the MAD alone an
exponential rise of retransmits was rated 0 for its last three hours; benchmarks/README.md,
"Degradations already under way"). Risk needs both a large robust z-score and a large
relative change, so a quiet signal's noise or a 20 % latency wobble stays low. A steady rise
is judged the same way as an accelerating one: errors or latency rising by more than 30 %
within the window (an error rate tripling with the morning's traffic) can now reach a risk
on their own; the decision stage's own-history and daily-pattern references are what keep a
recurring one quiet.

Traffic volume is load, not degradation: network-kind signals whose name does not say errors,
drops, loss, retransmits, resets, timeouts or latency only add a little risk (a surge alone
never reaches a warning).
"""

from __future__ import annotations

import re

import numpy as np

from exporter.agents.base import (
    ACTION_RISK,
    CHUNK_ENTITIES,
    AgentInput,
    abstain,
    data_share,
    make_votes,
    normalise_rows,
    signal_configs,
    specialist_confidence,
)
from exporter.config import SignalConfig
from exporter.numeric import mad_sigma, nanmedian_last
from exporter.results import Votes

RECENT_S = 900.0
# A network-kind signal this close to the highest risk names the action (`_lead`).
LEAD_TIE = 0.1
QUALITY_NAME = re.compile(r"err|drop|loss|retrans|reset|fail|timeout|latenc|rtt|jitter", re.I)
VOLUME_RISK_MAX = 0.2
QUALITY_RISK_MAX = 0.95
Z_SCALE = 5.0  # z-score counted as one unit of severity
REL_SCALE = 0.5  # relative change counted as one unit of severity (+50 %)
# The same for a saturation without a capacity (`degradation_signal`): load and queues double
# with traffic every day, so a unit is +200 % (a warning from about +250 %, full risk from
# +360 %: a GC time tenfold, a lag a thousandfold; load tripling in a surge stays at 0.3).
SATURATION_REL_SCALE = 2.0
SEVERITY_FLOOR = 0.6  # severities up to this carry no risk (`_risk`)
RESOURCE_STRAINED_Z = 4.0
RESOURCE_STRAINED_UTIL = 0.85
# Relative change below which no noise estimate can change a vote (`_change`): a severity is
# at most relative change / REL_SCALE, and only severities above SEVERITY_FLOOR (a risk) or
# RESOURCE_STRAINED_Z / Z_SCALE (strained resources) are used.
DETREND_MIN_CHANGE = min(SEVERITY_FLOOR, RESOURCE_STRAINED_Z / Z_SCALE) * REL_SCALE


def _change(values: np.ndarray, recent_steps: int, bounds: np.ndarray,
            detrend_min_change: float = DETREND_MIN_CHANGE) -> tuple[np.ndarray, ...]:
    """Recent level vs the earlier part of each [R, K, T] series (rows of the cycles at
    `bounds`, see `NetworkAgent.assess_cycles`).

    The earlier part's noise is the smaller of its MAD and the MAD of its residuals around
    its least-squares line (`_detrended_sigma`), the latter only where the relative change
    exceeds `detrend_min_change` (elsewhere no noise estimate changes a vote), floored by 5 %
    of its level, a quarter of the fleet's typical level and (same pairs) half the earlier
    part's own `resolution` (one event more of a count is no degradation; a z-score of 2
    per step stays under the severity floor).
    Returns (base median, recent median, noise floor, scale, enough data); `_severity` turns
    them into a severity for either direction without recomputing the medians.
    """
    t = values.shape[-1]
    e = values.shape[0]
    base_med = np.empty(values.shape[:-1])
    base_sigma, recent_med = np.empty_like(base_med), np.empty_like(base_med)
    quantum = np.zeros(values.shape[:-1])
    enough = np.empty(values.shape[:-1], dtype=bool)
    # Entity blocks keep temporaries small (see base.in_chunks); the fleet terms come after.
    for lo in range(0, e, CHUNK_ENTITIES):
        rows = slice(lo, min(lo + CHUNK_ENTITIES, e))
        base = values[rows, :, : t - recent_steps]
        recent = values[rows, :, t - recent_steps :]
        base_med[rows] = nanmedian_last(base)
        base_sigma[rows] = mad_sigma(base, base_med[rows])
        recent_med[rows] = nanmedian_last(recent)
        # Noise, not spread: a base that itself ramps (a degradation well under way) has a
        # large MAD of levels, which would hide its own acceleration; the spread around the
        # base's own trend line is its noise either way. Only where the relative change
        # exceeds `detrend_min_change` (scale >= |base median|): elsewhere no noise estimate
        # changes a vote, and the two extra sorts are most of the agent's cost.
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.abs(recent_med[rows] - base_med[rows]) / np.maximum(np.abs(base_med[rows]),
                                                                        1e-12)
        cand = np.nonzero(rel > detrend_min_change)  # (entity, signal) pairs; NaN: False
        if len(cand[0]):
            sig = base_sigma[rows]  # a view: written in place
            sig[cand] = np.fmin(sig[cand], _detrended_sigma(base[cand]))
            # The earlier part's own resolution: over the whole window a clean step (a
            # latency from one histogram bucket to another) would be its own "resolution".
            quantum[rows][cand] = 0.5 * resolution(base[cand])
        enough[rows] = (np.sum(~np.isnan(base), axis=-1) >= max(8, recent_steps)) & (
            np.sum(~np.isnan(recent), axis=-1) * 2 >= recent_steps
        )
    # Fleet-level floors stop a signal that is flat at zero (errors) from turning every tiny
    # blip into an infinite z-score: a quarter of the fleet's typical level is "noise" too.
    fleet_level = _fleet_quantile(np.abs(base_med), 0.75, bounds)  # [R, K]: the row's cycle's
    level = np.abs(np.nan_to_num(base_med))
    floor = np.maximum.reduce(
        [np.nan_to_num(base_sigma), 0.05 * level, 0.25 * fleet_level, quantum,
         np.full_like(base_med, 1e-12)]
    )
    scale = np.maximum(level, np.maximum(fleet_level, 1e-12))
    return base_med, recent_med, floor, scale, enough


def resolution(values: np.ndarray) -> np.ndarray:
    """The smallest positive step between the values of each row of values [M, T] (NaN left
    out; 0 where a row has fewer than two distinct values). A rate of rare events is a count
    over a fixed span (one 5xx a minute is 0.0167/s, two are 0.0333/s): a median that moves by
    one such step is one event more, not a degradation, and no noise estimate from a window
    that is mostly 0 may call it a z-score of 7 (an independent fleet's chronic low error
    rate paged critical on it)."""
    if values.shape[-1] < 2:
        return np.zeros(values.shape[:-1])
    steps = np.diff(np.sort(values, axis=-1), axis=-1)  # NaN sorts last: NaN steps
    with np.errstate(invalid="ignore"):
        steps = np.where(steps > 0, steps, np.inf)
    low = steps.min(axis=-1)
    return np.where(np.isfinite(low), low, 0.0)


def _lead(filled: np.ndarray, network: np.ndarray) -> np.ndarray:
    """Per entity, the signal that names the action and the reason: the highest risk of
    filled [E, C], but a network-kind signal (drops, retransmits: the more specific evidence)
    within LEAD_TIE of it wins over latency or errors. With the plain maximum, a degradation
    that raises both by about as much named `investigate_network` and `investigate_dependency`
    by turns from cycle to cycle (a new user's demo: the `action` label churned its series)."""
    if filled.shape[1] == 0:
        return np.zeros(filled.shape[0], dtype=np.int64)
    top = filled.max(axis=1, keepdims=True)
    near = network[None, :] & (filled >= top - LEAD_TIE) & (filled > 0)
    return np.where(near.any(axis=1), np.argmax(np.where(near, filled, -1.0), axis=1),
                    np.argmax(filled, axis=1))


def _detrended_sigma(values: np.ndarray) -> np.ndarray:
    """Noise of each row of values [M, T] around its ordinary least-squares line (not a
    robust fit; the MAD of the residuals is): 1.4826 x MAD, as
    scipy.stats.median_abs_deviation(scale="normal"). Non-finite samples are left out (a
    +Inf latency from histogram_quantile above the top bucket); NaN where a row has fewer
    than 3 finite samples. Returns [M].
    """
    m, t = values.shape
    out = np.full(m, np.nan)
    if t < 3 or m == 0:
        return out
    x = np.arange(t, dtype=np.float64)
    ok = np.isfinite(values)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if ok.all():
            # The usual case: every row's slope by one matrix product. The same fit as
            # np.polynomial.polynomial.polyfit(x, values.T, 1) (tests/test_agents.py checks
            # it), which costs ~25x the CPU on the agent's blocks of a few hundred rows
            # (benchmarks/bench_agents.py, "detrend" lines).
            dt = x - x.mean()
            resid = values - values.mean(axis=-1, keepdims=True)
            resid -= ((values @ dt) / (dt @ dt))[:, None] * dt
            return mad_sigma(resid)
        # Rows with missing samples: the same fit by hand (no library fits many rows while
        # skipping NaN), on the finite samples only.
        v = np.where(ok, values, np.nan)
        n = ok.sum(axis=-1)
        tm = np.where(ok, x, 0.0).sum(axis=-1) / n
        ym = np.where(ok, v, 0.0).sum(axis=-1) / n
        dt = np.where(ok, x - tm[:, None], 0.0)
        slope = (dt * np.where(ok, v - ym[:, None], 0.0)).sum(axis=-1) / (dt * dt).sum(axis=-1)
        sigma = mad_sigma(v - (ym[:, None] + slope[:, None] * (x - tm[:, None])))
    return np.where(n >= 3, sigma, np.nan)


def _severity(change: tuple[np.ndarray, ...], sign: np.ndarray,
              rel_scale: np.ndarray | float = REL_SCALE) -> np.ndarray:
    """min(z / Z_SCALE, relative change / rel_scale) in the bad direction `sign` (>= 0, NaN);
    `rel_scale` per signal [K] or one for all."""
    base_med, recent_med, floor, scale, enough = change
    delta = sign[None, :] * (recent_med - base_med)
    sev = np.clip(np.minimum(delta / floor / Z_SCALE, delta / scale / rel_scale), 0, None)
    return np.where(enough, sev, np.nan)


def _fleet_quantile(a: np.ndarray, q: float, bounds: np.ndarray) -> np.ndarray:
    """Quantile over each cycle's entities of [R, K] rows (cycles at `bounds`), ignoring NaN;
    0 for columns with no value. Returns [R, K]: every row gets its own cycle's quantile.

    Cycles of equal size are sorted together ([C, E, K] along E), so many cycles of a replay
    cost one sort instead of one call each.
    """
    out = np.zeros(a.shape)
    sizes = np.diff(bounds)
    for n in np.unique(sizes):
        if n == 0:
            continue
        rows = bounds[:-1][sizes == n][:, None] + np.arange(n)  # [C, n]
        block = a[rows]  # [C, n, K]
        s = np.sort(block, axis=1)
        count = np.sum(~np.isnan(block), axis=1)  # [C, K]
        pos = np.clip(np.floor(q * (count - 1)).astype(int), 0, n - 1)
        level = np.take_along_axis(s, pos[:, None, :], axis=1)  # [C, 1, K]
        out[rows] = np.where(count[:, None, :] > 0, level, 0.0)
    return out


def degradation_signal(cfg: SignalConfig) -> bool:
    """Whether the agent judges the signal: network, latency and errors kinds, and a
    saturation without a capacity (a queue's depth, a consumer's lag, GC time, load per
    CPU: work piling up has no level at which it "runs out", so the capacity agent cannot
    project it; its sustained rise far above the entity's own past is the mechanism, as a
    latency's is, on a coarser relative scale: SATURATION_REL_SCALE). A saturation with a
    capacity, or one whose bad direction is down, is the capacity agent's."""
    return cfg.kind in ("network", "latency", "errors") or (
        cfg.kind == "saturation" and cfg.capacity is None and cfg.direction == "up")


def _risk(sev: np.ndarray, cap: float) -> np.ndarray:
    return cap * np.clip((sev - SEVERITY_FLOOR) / 1.2, 0, 1)


class NetworkAgent:
    """Sustained rises of errors, drops, latency or work piling up (a saturation without a
    capacity) against the entity's own past."""

    # Where the trend-line noise is computed (`_change`); any value at or below
    # DETREND_MIN_CHANGE gives the same votes (tests/test_agents.py).
    detrend_min_change: float = DETREND_MIN_CHANGE

    name = "network"

    def assess(self, inp: AgentInput) -> Votes:
        """Votes per entity against a fleet quantile floor (contract: `Agent.assess`)."""
        return self.assess_cycles(inp, np.array([0, inp.window.values.shape[0]]))

    def assess_cycles(self, inp: AgentInput, bounds: np.ndarray) -> Votes:
        """Votes of the stacked rows of several cycles (exporter.stacking): rows
        bounds[c]:bounds[c + 1] are cycle c's entities, and each cycle's fleet floor comes
        from its own rows; the votes equal `assess` of each cycle alone, stacked. One call
        for a replay's batch of cycles instead of one per cycle (the rest is row-wise).
        """
        win = inp.window
        e, s, t = win.values.shape
        cfgs = signal_configs(inp)
        net_idx = [j for j, c in enumerate(cfgs) if degradation_signal(c)]
        recent_steps = int(max(3, min(round(RECENT_S / float(inp.analysis.step)), t // 4)))
        if not net_idx or e == 0 or t < 12:
            return abstain(self.name, e, s)

        quality = np.array(
            [cfgs[j].kind != "network" or bool(QUALITY_NAME.search(cfgs[j].name))
             for j in net_idx]
        )
        sign = np.array([1.0 if cfgs[j].direction == "up" else -1.0 for j in net_idx])
        piling = np.array([cfgs[j].kind == "saturation" for j in net_idx])  # work piling up
        x = win.values[:, net_idx, :]
        change = _change(x, recent_steps, bounds, self.detrend_min_change)
        base_med, recent_med = change[0], change[1]
        sev = _severity(change, sign, np.where(piling, SATURATION_REL_SCALE, REL_SCALE))
        # Volume counts in both directions: traffic collapsing is as telling as traffic piling up.
        sev = np.where(quality[None, :], sev, np.fmax(sev, _severity(change, -sign)))
        per_signal = np.where(
            quality[None, :], _risk(sev, QUALITY_RISK_MAX), _risk(sev, VOLUME_RISK_MAX)
        )
        voting = ~np.isnan(per_signal).all(axis=1)
        filled = np.nan_to_num(per_signal)
        r_quality = np.where(quality[None, :], filled, 0).max(axis=1)
        r_volume = np.where(~quality[None, :], filled, 0).max(axis=1)
        risk = np.where(voting, 1 - (1 - r_quality) * (1 - r_volume), np.nan)

        strained = self._resources_strained(inp, cfgs, recent_steps, bounds,
                                            self.detrend_min_change)
        lead = _lead(filled, np.array([cfgs[j].kind == "network" for j in net_idx]))
        contribution = np.zeros((e, s))
        contribution[:, net_idx] = filled
        contribution = normalise_rows(contribution)
        valid = data_share(x)

        actions = np.full(e, "none", dtype=object)
        reasons = [""] * e
        for i in np.flatnonzero(np.nan_to_num(risk) >= ACTION_RISK):
            c = int(lead[i])
            cfg = cfgs[net_idx[c]]
            if cfg.kind == "network":
                actions[i] = "investigate_network"
            elif cfg.kind == "saturation":  # work piling up: more capacity only if it is short
                actions[i] = "scale_out" if strained[i] else "investigate"
            else:
                actions[i] = "scale_out" if strained[i] else "investigate_dependency"
            b, r = base_med[i, c], recent_med[i, c]
            if abs(b) > 1e-12 and np.isfinite(b):
                reasons[i] = f"{cfg.name} at {r / b:.1f}x its usual level"
            else:
                reasons[i] = f"{cfg.name} rose from {b:.3g} to {r:.3g}"
        ttf = np.full(e, np.nan)
        return make_votes(self.name, risk, specialist_confidence(risk, 0.8 * valid), actions, ttf, contribution, reasons)

    @staticmethod
    def _resources_strained(inp: AgentInput, cfgs: list, recent_steps: int,
                            bounds: np.ndarray, detrend_min_change: float) -> np.ndarray:
        """Entities whose own resource/saturation signals are near capacity or well above usual
        (a saturation this agent judges itself, `degradation_signal`, is not counted: work
        piling up does not say that more replicas would help)."""
        e = inp.window.values.shape[0]
        idx = [j for j, c in enumerate(cfgs) if c.kind in ("resource", "saturation")
               and not degradation_signal(c)]
        if not idx:
            return np.zeros(e, dtype=bool)
        x = inp.window.values[:, idx, :]
        sign = np.array([1.0 if cfgs[j].direction == "up" else -1.0 for j in idx])
        change = _change(x, recent_steps, bounds, detrend_min_change)
        sev, recent = _severity(change, sign), change[1]
        strained = np.nan_to_num(sev) * Z_SCALE >= RESOURCE_STRAINED_Z
        caps = np.array([cfgs[j].capacity or np.nan for j in idx], dtype=np.float64)
        down = np.array([cfgs[j].direction == "down" for j in idx])
        util = np.where(down[None, :], 1 - recent / caps[None, :], recent / caps[None, :])
        strained |= np.nan_to_num(util) >= RESOURCE_STRAINED_UTIL
        return strained.any(axis=1)
