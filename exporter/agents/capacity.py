"""Resource optimizer: projects when a capacity-bound signal runs out, from a robust trend.

For every signal with `capacity` set ("up": usage reaches capacity; "down": the free amount,
capacity being the full size, falls to zero) and every "down" resource signal without one
(exhaustion at zero is scale-free), utilisation u (0..1, exhausted at 1) is fitted with a
Theil-Sen line over block medians twice: the recent lookback (default 45 min) gives the current
rate and the time to exhaustion; the whole window must confirm it (same sign, comparable rate).
Block medians drop spikes, Theil-Sen ignores restarts and GC drops, and the two-lookback check
ignores plateaus (old rise, flat now) and surges (a step near the end tilts only the short fit).
A rise whose whole-window curve decelerates significantly (a parabola's curvature CONCAVE_Z
standard errors below 0: the warm-up after a restart whose earlier level has left the window),
or whose rise since its onset does (the blocks after the hinge fit's breakpoint: a drift
levelling off below capacity after a flat stretch), is projected along that curve instead of
its line: later, or never when it levels off first.
A recent onset after a flat stretch is found by a one-breakpoint (hinge) fit instead.
"""

from __future__ import annotations

import numpy as np

from exporter.agents.base import (
    ACTION_RISK,
    AgentInput,
    abstain,
    data_share,
    in_chunks,
    largest_horizon,
    make_votes,
    normalise_rows,
    signal_configs,
    specialist_confidence,
)
from exporter.numeric import bin_medians, mad_sigma, nanmedian_last, theil_sen
from exporter.results import Votes

SHORT_LOOKBACK_S = 2700.0  # recent part of the window the current rate is taken from
SHORT_BINS = 12
LONG_BINS = 16
# Rate agreement: the whole-window slope must be at least this share of the recent slope.
MIN_RATE_RATIO = 0.25
# Whole-window vs recent rate: within this factor of each other one line explains both (the
# whole window's fit is used); beyond CHANGED_RATIO the trend changed (the recent fit is used).
SAME_LINE_RATIO, CHANGED_RATIO = 1.5, 2.0
STEPNESS_MAX = 1.6  # line error / step error beyond which the rise is a step
# Segmented (hinge) fit of recent onsets: block count over the recent lookback, the fewest
# blocks the rise must span, how far out of the noise it must stand (z from FAST_Z_MIN, full
# weight at FAST_Z_FULL), and how far ahead a rise of a given duration may be projected.
FAST_BINS = 15
FAST_MIN_RISE_BINS = 3
FAST_Z_MIN, FAST_Z_FULL = 6.0, 12.0
FAST_PROJECT_RATIO = 3.0
RECOVERY_TOLERANCE = 0.02  # utilisation below the earlier high that still counts as a new high
# A rise that decelerates (a warm-up after a restart: caches and heaps filling towards their
# working size) is projected with its curve, not its line: the curvature of a parabola
# fitted to the whole window's block medians must stand this many standard errors below 0.
CONCAVE_Z = 3.0
# The rise since its onset is tested for deceleration where the hinge fit's breakpoint leaves
# a flat stretch before it: at least two blocks (one block is no stretch, only a dropped
# point; the simulator's daily leak with its first block dropped came out concave,
# tests/test_agents.py, minute to minute).
ONSET_FLAT_BLOCKS = 2
# ... and at least this many blocks since the onset: a parabola through fewer has too few
# residual degrees of freedom for its curvature's z-score (a straight leak's 6 blocks since
# its onset came out "concave" at z <= -3 in 3 % of noisy copies, measured).
ONSET_MIN_BLOCKS = 8
# ttf_risk is 0 from this many times the largest horizon on.
RISK_ZERO_AFTER = 2.5
UTIL_HIGH = 0.9  # utilisation from which "close to capacity" alone adds risk
UTIL_RISK_MAX = 0.7


def ttf_risk(ttf: np.ndarray, horizons: tuple[float, ...]) -> np.ndarray:
    """Map time to exhaustion to risk: <= shortest horizon high, past the largest low.

    Interpolated in log-time between knots derived from the configured horizons, so that
    (1h, 2h, 4h) gives ttf 1h -> 0.95, 2h -> ~0.78, 4h -> 0.6, 6h -> 0.25, >= 10h -> 0.
    """
    h0, hm = float(min(horizons)), float(max(horizons))
    knots_t = [h0 / 4, h0]
    knots_r = [0.99, 0.95]
    if hm > h0:
        knots_t.append(hm)
        knots_r.append(0.6)
    else:
        knots_r[-1] = 0.8
    knots_t += [1.5 * hm, RISK_ZERO_AFTER * hm]
    knots_r += [0.25, 0.0]
    with np.errstate(divide="ignore", invalid="ignore"):
        logt = np.log(np.maximum(ttf, 1e-9))
    r = np.interp(logt, np.log(knots_t), knots_r, left=knots_r[0], right=0.0)
    return np.where(np.isnan(ttf), np.nan, r)


def _fit(u: np.ndarray, steps: int, step: float,
         bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Theil-Sen over `bins` block medians of the last `steps` samples.

    Returns slope (per second), level at the window end, the significance of the rise
    over the lookback relative to the residual scale (a z-like ratio), the line-vs-step error
    ratio, the block medians y[..., bins] and the block width in samples.
    """
    bins = max(4, min(bins, steps))
    width = max(1, steps // bins)
    y = bin_medians(u, width, bins)
    # Block centres in seconds relative to the last sample (<= 0).
    x = (np.arange(bins) * width + (width - 1) / 2.0 - (bins * width - 1)) * step
    slope, level = theil_sen(y, x, min_points=max(4, bins // 2))
    resid = y - (level[..., None] + slope[..., None] * x)
    sigma = mad_sigma(resid)
    rise = slope * bins * width * step
    # Floor: 0.2 % of capacity, so a perfectly clean line does not divide by zero.
    z = rise / np.maximum(sigma, 0.002)
    sq = np.where(np.isnan(resid), 0.0, resid * resid)
    with np.errstate(invalid="ignore", divide="ignore"):
        line_err = np.sqrt(sq.sum(axis=-1) / (~np.isnan(resid)).sum(axis=-1))
    stepness = line_err / np.maximum(_step_error(y), 0.001)
    return slope, level, z, stepness, y, width


def _step_error(y: np.ndarray) -> np.ndarray:
    """Root-mean-square residual of the best two-level (step) fit to y[..., K] (NaN-aware).

    A surge or a deploy is a step: two flat levels fit it far better than any line, while a
    leak is fitted better (or as well) by its line. Least squares via cumulative sums tries
    every split at once.
    """
    valid = ~np.isnan(y)
    y0 = np.where(valid, y, 0.0)
    c1, c2, cn = np.cumsum(y0, -1), np.cumsum(y0 * y0, -1), np.cumsum(valid, -1)
    s1, s2, n = c1[..., :-1], c2[..., :-1], cn[..., :-1]  # left part of each split
    r1, r2, m = c1[..., -1:] - s1, c2[..., -1:] - s2, cn[..., -1:] - n
    with np.errstate(invalid="ignore", divide="ignore"):
        sse = (s2 - np.where(n > 0, s1 * s1 / n, 0)) + (r2 - np.where(m > 0, r1 * r1 / m, 0))
        best = np.nanmin(np.where((n > 0) & (m > 0), sse, np.inf), axis=-1)
        return np.sqrt(np.maximum(best, 0) / cn[..., -1])


def hinge_fit(y: np.ndarray, min_rise: int = FAST_MIN_RISE_BINS) -> tuple[np.ndarray, ...]:
    """Best one-breakpoint fit y = a + b * max(0, x - k) of y[..., K] (x = 0..K-1, NaN-aware).

    Least squares for every breakpoint k with at least `min_rise` points after it, the best k
    kept (segmented regression, Muggeo 2003, with the slope before the break fixed at 0).
    Returns (slope b per point, fitted level at the last point, rise length K-1-k in points,
    noise sigma of the residuals, slope over the last third of the rise / b); NaN where
    fewer than 4 values are present.
    """
    k_len = y.shape[-1]
    knots = np.arange(max(k_len - min_rise, 1))  # [N]
    x = np.arange(k_len, dtype=np.float64)
    h = np.maximum(0.0, x[None, :] - knots[:, None])  # [N, K]
    w = (~np.isnan(y)).astype(np.float64)[..., None, :]  # [..., 1, K]
    y0 = np.nan_to_num(y)[..., None, :]
    n = w.sum(-1)
    wh = w * h  # [..., N, K], formed once (the same products as w * h * h, w * h * y0)
    sh, sy = wh.sum(-1), (w * y0).sum(-1)
    shh, shy, syy = (wh * h).sum(-1), (wh * y0).sum(-1), (w * y0 * y0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        den = n * shh - sh * sh
        b = np.where(den > 0, (n * shy - sh * sy) / den, np.nan)
        a = (sy - b * sh) / n
        sse = np.where(np.isnan(b), np.inf, syy - a * sy - b * shy)
    best = np.argmin(sse, axis=-1)  # [...]
    pick = best[..., None]
    b_best = np.take_along_axis(b, pick, -1)[..., 0]
    a_best = np.take_along_axis(a, pick, -1)[..., 0]
    sse_best = np.take_along_axis(sse, pick, -1)[..., 0]
    rise_len = (k_len - 1 - best).astype(np.float64)
    level = a_best + b_best * rise_len
    n_all = n[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma = np.sqrt(np.maximum(sse_best, 0.0) / np.maximum(n_all - 2, 1))
    # Is the rise still going on? Slope of the last third of the rise (at least 2 points).
    tail = np.maximum(np.ceil(rise_len / 3).astype(np.int64), 2)
    last = np.take_along_axis(np.nan_to_num(y), np.full(best.shape, k_len - 1)[..., None], -1)[..., 0]
    first = np.take_along_axis(np.nan_to_num(y), (k_len - 1 - tail)[..., None], -1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        tail_ratio = (last - first) / (tail * b_best)
    few = n_all < 4
    nan = np.full(best.shape, np.nan)
    return (np.where(few, nan, b_best), np.where(few, nan, level), np.where(few, nan, rise_len),
            np.where(few, nan, sigma), np.where(few, nan, tail_ratio))


def earlier_high(u: np.ndarray, short_steps: int, width: int) -> np.ndarray:
    """Highest block median of u[..., T] before the recent `short_steps` (-inf if none).

    A rise that only climbs back below this level is a recovery (a restart's warm-up, a
    refill after garbage collection), not a new exhaustion.
    """
    earlier = u[..., : max(u.shape[-1] - short_steps, 0)]
    if earlier.shape[-1] < width:
        return np.full(u.shape[:-1], -np.inf)
    blocks = bin_medians(earlier, width, earlier.shape[-1] // width)
    return np.max(np.where(np.isnan(blocks), -np.inf, blocks), axis=-1)


def fast_blocks(short_steps: int) -> tuple[int, int]:
    """Block count and width (samples) the recent lookback is summarised by."""
    bins = max(4, min(FAST_BINS, short_steps))
    return bins, max(1, short_steps // bins)


def _fast_onset(u: np.ndarray, short_steps: int, step: float,
                high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Time to exhaustion (s) and its weight (0..1) from a hinge fit of the recent lookback.

    high: [...] the window's earlier high (`earlier_high`); only a rise beyond it counts.
    """
    bins, width = fast_blocks(short_steps)
    y = bin_medians(u, width, bins)
    b, level, rise_len, sigma, tail_ratio = hinge_fit(y)
    new_high = level > high + np.maximum(
        3.0 * np.nan_to_num(sigma), 0.01)
    per_s = b / (width * step)
    rise_s = rise_len * width * step
    with np.errstate(invalid="ignore", divide="ignore"):
        z = b * rise_len / np.maximum(sigma, 0.002)
        ttf = np.where(per_s > 0, np.maximum(1.0 - level, 0.0) / per_s, np.inf)
    weight = (np.clip((z - FAST_Z_MIN) / (FAST_Z_FULL - FAST_Z_MIN), 0, 1)
              * (np.nan_to_num(tail_ratio) >= 0.5)
              * (ttf <= FAST_PROJECT_RATIO * rise_s) * new_high)
    return np.where(np.isfinite(ttf), ttf, np.inf), np.nan_to_num(weight)


def quadratic_fit(y: np.ndarray) -> tuple[np.ndarray, ...]:
    """Least-squares parabola y = a + b x + c x^2 of y[..., K], x = -(K-1)..0 (NaN-aware).

    Returns (a: the fitted level at the last point, b: the slope there per point, c, and the
    z-score of c: c over its standard error from the residual variance); NaN where fewer
    than 5 values are present. Ordinary least squares by the normal equations, batched
    (numpy.polyfit per row gives the same coefficients; tests/test_agents.py checks it).
    """
    k_len = y.shape[-1]
    x = np.arange(k_len, dtype=np.float64) - (k_len - 1)
    basis = np.stack([np.ones_like(x), x, x * x])  # [3, K]
    w = (~np.isnan(y)).astype(np.float64)
    y0 = np.nan_to_num(y)
    n = w.sum(-1)
    ok = n >= 5
    xtx = np.einsum("...k,ik,jk->...ij", w, basis, basis)
    xtx = np.where(ok[..., None, None], xtx, np.eye(3))
    xty = np.einsum("...k,ik->...i", w * y0, basis)
    coef = np.linalg.solve(xtx, xty[..., None])[..., 0]
    resid = np.where(w > 0, y0 - np.einsum("...i,ik->...k", coef, basis), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma2 = (resid * resid).sum(-1) / np.maximum(n - 3, 1)
        var_c = np.linalg.inv(xtx)[..., 2, 2] * sigma2
        z = coef[..., 2] / np.sqrt(np.maximum(var_c, 1e-18))
    nan = np.full(n.shape, np.nan)
    return (np.where(ok, coef[..., 0], nan), np.where(ok, coef[..., 1], nan),
            np.where(ok, coef[..., 2], nan), np.where(ok, z, nan))


def since_onset(y: np.ndarray, rise_len: np.ndarray) -> np.ndarray:
    """y[..., K] with the blocks before a rise's onset set to NaN.

    rise_len [...]: the rise's length in blocks after its breakpoint (`hinge_fit`); NaN
    keeps the whole row.
    """
    k_len = y.shape[-1]
    first = k_len - 1 - np.nan_to_num(rise_len, nan=k_len - 1)
    return np.where(np.arange(k_len) >= first[..., None], y, np.nan)


def decelerating_ttf(y: np.ndarray, width: int, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Where a rise decelerates significantly: its time to exhaustion (s) along the parabola
    fitted to its block medians y[..., K] (blocks of `width` samples of `step` seconds; NaN
    blocks are left out; inf when the curve levels off below capacity).

    Returns (concave [...] bool, ttf [...] seconds). A warm-up after a restart climbs fast,
    then slower, and so does a drift approaching its plateau (an exponential approach); their
    straight-line projection would run out of headroom they never reach.
    """
    a, b, c, z = quadratic_fit(y)
    concave = np.nan_to_num(z, nan=0.0) <= -CONCAVE_Z
    with np.errstate(invalid="ignore", divide="ignore"):
        # a + b x + c x^2 = 1 for x > 0 with c < 0: the smaller root, if the vertex reaches 1.
        disc = b * b - 4.0 * c * (a - 1.0)
        root = (-b + np.sqrt(np.maximum(disc, 0.0))) / (2.0 * c)
        ttf = np.where((disc >= 0) & (b > 0) & (root > 0), root * width * step, np.inf)
    return concave, np.where(concave, ttf, np.inf)


class CapacityAgent:
    """Time to exhaustion of capacity-bound signals from two Theil-Sen fits (module docstring)."""

    name = "capacity"
    # The since-onset curvature only for signals whose projection can still give a risk
    # (False: everywhere; the same votes, tests/test_agents.py).
    restrict = True

    def assess(self, inp: AgentInput) -> Votes:
        """Votes per entity, batched in chunks of entities (contract: `Agent.assess`)."""
        return in_chunks(self._assess, inp)

    def _assess(self, inp: AgentInput) -> Votes:
        win = inp.window
        e, s, t = win.values.shape
        cfgs = signal_configs(inp)
        # A falling "down" signal (free bytes, credits) runs out at zero even without a
        # configured capacity: its own window maximum then stands in as the scale.
        cap_idx = [j for j, c in enumerate(cfgs) if c.capacity is not None
                   or (c.direction == "down" and c.kind in ("resource", "saturation"))]
        if not cap_idx or e == 0 or t < 8:
            return abstain(self.name, e, s)
        step = float(inp.analysis.step)
        horizons = tuple(float(h) for h in inp.analysis.horizons) or (largest_horizon(inp.analysis),)
        hmax = max(horizons)

        caps = np.array([cfgs[j].capacity or np.nan for j in cap_idx], dtype=np.float64)
        known_cap = np.isfinite(caps)
        down = np.array([cfgs[j].direction == "down" for j in cap_idx])
        x = np.take(win.values, cap_idx, axis=1)  # = values[:, cap_idx], gathered faster
        # The largest present value, -inf for a row without any (np.nanmax's fmax.reduce
        # without a masked copy of x).
        own_scale = np.fmax.reduce(x, axis=-1)  # [E, C]
        own_scale[np.isnan(own_scale)] = -np.inf
        own_scale = np.abs(own_scale)
        caps = np.where(known_cap[None, :], caps[None, :], own_scale)[..., None]
        caps = np.where((caps > 0) & np.isfinite(caps), caps, np.nan)
        # Utilisation: usage / capacity ("up"), or 1 - free / capacity ("down": exhausted at 0).
        u = x / caps
        if down.any():
            u[:, down] = 1.0 - u[:, down]

        # The whole window must be clearly longer than the recent lookback to confirm it.
        short_steps = int(max(4, min(round(SHORT_LOOKBACK_S / step), t // 2)))
        b_s, lvl_s, z_s, *_ = _fit(u, short_steps, step, SHORT_BINS)
        b_l, lvl_l, z_l, step_l, y_l, width_l = _fit(u, t, step, LONG_BINS)

        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(b_s > 0, b_l / b_s, 0.0)
            # One straight line explains both lookbacks (rates within SAME_LINE_RATIO of each
            # other): the whole window estimates it more precisely. Rates further apart: the
            # trend changed and the recent rate is the current one. In between (1.5-2x apart,
            # either way) the two blend in log-ratio, so one noisy sample at the boundary cannot move the time to
            # exhaustion by half (a hard switch did: 1.9 h -> 2.8 h from one minute to the next).
            off = np.abs(np.log(np.where(ratio > 0, ratio, 1e-12)))
            w_long = np.clip((np.log(CHANGED_RATIO) - off)
                             / (np.log(CHANGED_RATIO) - np.log(SAME_LINE_RATIO)), 0, 1)
            # Outside the band exactly one fit (NaN in the other then never leaks in).
            slope = np.where(w_long >= 1, b_l, np.where(w_long <= 0, b_s,
                                                        w_long * b_l + (1 - w_long) * b_s))
            level = np.where(w_long >= 1, lvl_l, np.where(w_long <= 0, lvl_s,
                                                          w_long * lvl_l + (1 - w_long) * lvl_s))
            headroom = 1.0 - level
            ttf = np.where(slope > 0, headroom / slope, np.inf)
            ttf = np.where(headroom <= 0, 0.0, ttf)
        # A decelerating rise is projected along its curve (later, or never): the whole
        # window's, or the rise since its onset (`hinge_fit`'s breakpoint) where the window
        # starts flat. A drift levelling off below capacity after a flat stretch is convex
        # over the whole window (flat, then rising) and concave only since its onset.
        concave, ttf_curve = decelerating_ttf(y_l, width_l, step)
        high = earlier_high(u, short_steps, fast_blocks(short_steps)[1])
        ttf_fast, fast_weight = _fast_onset(u, short_steps, step, high)
        # Only where a projection can still give a risk (the curve only moves it later).
        need = ((np.where(headroom > 0, ttf, np.inf) < RISK_ZERO_AFTER * hmax)
                | (ttf_fast < RISK_ZERO_AFTER * hmax)) if self.restrict else \
            np.ones(concave.shape, dtype=bool)
        if need.any():
            y_n = y_l[need]
            rise_n = hinge_fit(y_n)[2]
            concave_o, ttf_o = decelerating_ttf(since_onset(y_n, rise_n), width_l, step)
            concave_o &= (rise_n <= y_l.shape[-1] - 1 - ONSET_FLAT_BLOCKS) \
                & (rise_n >= ONSET_MIN_BLOCKS - 1)
            c_n, t_n = concave[need], ttf_curve[need]
            ttf_curve[need] = np.where(c_n & concave_o, np.maximum(t_n, ttf_o),
                                       np.where(c_n, t_n, ttf_o))
            concave[need] = c_n | concave_o
        ttf = np.where(concave & (headroom > 0), np.maximum(ttf, ttf_curve), ttf)
        # Trend evidence counts only when it stands out of the noise in both lookbacks and the
        # whole window confirms the recent rate.
        significance = np.clip((z_s - 2.0) / 3.0, 0, 1) * np.clip((z_l - 1.0) / 2.0, 0, 1)
        consistent = np.clip((ratio - MIN_RATE_RATIO) / MIN_RATE_RATIO, 0, 1)
        # A step (surge, deploy) fitted by a line looks like a trend; over the whole window a
        # line must fit better than two flat levels.
        not_step = np.clip((STEPNESS_MAX - step_l) / (STEPNESS_MAX - 1), 0, 1)
        # Climbing back towards a level the window already held (the warm-up after a
        # restart or a deploy) is recovery: the headroom it projects was there before.
        recovering = level < high - RECOVERY_TOLERANCE
        trend_weight = np.nan_to_num(significance * consistent * not_step) * ~recovering
        r_trend = np.nan_to_num(ttf_risk(np.where(np.isfinite(ttf), ttf, 1e12), horizons))
        r_trend = r_trend * trend_weight
        # A recent onset neither lookback sees as a trend (module docstring; `ttf_fast` above).
        ttf_fast = np.where(concave, np.maximum(ttf_fast, ttf_curve), ttf_fast)
        r_fast = np.nan_to_num(ttf_risk(np.where(np.isfinite(ttf_fast), ttf_fast, 1e12),
                                        horizons)) * fast_weight
        fast = r_fast > r_trend
        r_trend = np.where(fast, r_fast, r_trend)
        ttf = np.where(fast, ttf_fast, ttf)
        trend_weight = np.where(fast, fast_weight, trend_weight)

        recent = nanmedian_last(u[..., -min(5, t):])
        r_util = UTIL_RISK_MAX * np.clip((recent - UTIL_HIGH) / (1 - UTIL_HIGH), 0, 1) ** 2
        # Without a real capacity, "close to it" means nothing: only the trend counts.
        r_util = np.where(known_cap[None, :], np.nan_to_num(r_util), 0.0)

        per_signal = np.maximum(r_trend, r_util)  # [E, C]
        has_data = np.asarray(~np.isnan(u).all(axis=-1))
        per_signal = np.where(has_data, per_signal, np.nan)
        voting = has_data.any(axis=1)
        risk = np.where(voting, np.nanmax(np.where(has_data, per_signal, -1.0), axis=1), np.nan)

        lead = np.argmax(np.nan_to_num(per_signal, nan=-1.0), axis=1)
        rows = np.arange(e)
        projected = trend_weight > 0
        ttf_lead = np.where(projected[rows, lead], ttf[rows, lead], np.nan)
        ttf_lead = np.where(recent[rows, lead] >= 1.0, 0.0, ttf_lead)
        ttf_out = np.where(ttf_lead <= hmax, ttf_lead, np.nan)

        contribution = np.zeros((e, s))
        contribution[:, cap_idx] = np.nan_to_num(per_signal)
        contribution = normalise_rows(contribution)

        valid = data_share(u)
        confidence = specialist_confidence(risk, 0.9 * valid)

        names = [cfgs[j].name for j in cap_idx]
        actions = np.full(e, "none", dtype=object)
        reasons = [""] * e
        for i in np.flatnonzero(np.nan_to_num(risk) >= ACTION_RISK):
            c = int(lead[i])
            name = names[c]
            actions[i] = _action_for(name)
            if r_trend[i, c] >= r_util[i, c]:
                verb = "falls towards zero" if down[c] else "rises towards its limit"
                reasons[i] = f"{name} {verb}"
            else:
                reasons[i] = f"{name} at {recent[i, c]:.0%} of its capacity"
        return make_votes(self.name, risk, confidence, actions, ttf_out, contribution, reasons)


def _action_for(signal: str) -> str:
    low = signal.lower()
    if "mem" in low or "heap" in low:
        return "raise_memory_limit"
    if any(k in low for k in ("disk", "filesystem", "storage", "volume", "pvc")) \
            or low.startswith("fs") or "_fs" in low:
        return "free_disk"
    return "scale_out"
