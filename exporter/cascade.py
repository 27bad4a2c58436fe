"""Symptoms of another entity's failure: a caller's errors and latency that move with a
dependency's.

A service whose dependency fails shows the dependency's failure in its own error ratio and
latency: they rise with the dependency's, sample by sample, by less (a caller sees the
dependency's errors only on the share of its requests that reach it, and its latency adds
its own part to the dependency's). An alert on each caller is the wrong page: the failure is
the dependency's. AURA has no call graph, so the relation is read off the cycle's window: an
entity at a level whose leading signal is one through which a dependency's failure reaches
its callers (SignalConfig.kind `errors` or `latency`, PROPAGATING_KINDS) is a *symptom* of
another entity of the analysis when

* the first differences of that signal over the window correlate with the other entity's
  same signal at least `min_correlation` (Pearson's r over the steps both have; at least
  MIN_PAIRS of them): the two move together step by step, not just both upwards, and
* the other entity's rise of the signal relative to its own calm level (`relative_rise`:
  from the window's calmest quarter) is at least `min_rise_ratio` times this one's, which
  rises too: the other is nearer the cause (a caller's own errors and latency are part of
  its level, so it rises less relative to it).

Independent failures that happen at the same time do not move together step by step, and a
fleet-wide cause is left to the fleet-wide rule (exporter.decision), which runs first: the
symptom rule reads only the entities it does not hold. The entity the others point at keeps
its level (it may be a symptom of another in turn; chains end at the strongest riser).
Measured on six generators' fleets, ASD and the old simulator (benchmarks/README.md,
"Symptoms of a dependency's failure"). Pearson's r is computed here, not by numpy.corrcoef
pair by pair: 13-41x faster at 10 000 entities (benchmarks/bench_cascade.py), checked against
it in tests/test_cascade.py. A Granger-style lead-lag test
in the spirit of the microservice root-cause literature (e.g. Chen et al., "CauseInfer",
INFOCOM 2014), reduced to what one window shows.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# SignalConfig.kind values through which a dependency's failure shows at its callers.
PROPAGATING_KINDS = ("errors", "latency")
# Fewest steps with both entities' differences known for a correlation to count.
MIN_PAIRS = 10


@dataclass(frozen=True)
class Symptoms:
    """Per entity of one cycle: `source` [E] the row of the entity whose failure this one's
    leading signal follows (-1: none; the entity is judged on its own), `correlation` [E]
    Pearson's r of the two signals' first differences over the window, `rise_ratio` [E] how
    many times this entity's relative rise the source's is (NaN where `source` is -1)."""

    source: np.ndarray
    correlation: np.ndarray
    rise_ratio: np.ndarray


def relative_rise(window: np.ndarray) -> np.ndarray:
    """[...] how far each series of `window` [..., T] (NaN = missing) rose above its calm
    level: (the mean of its newest max(3, T/8) values - the median of its calmest quarter,
    the values at or below its 25th percentile) / (|that median| + the calmest quarter's
    standard deviation), a unitless ratio (NaN where fewer than 4 values are known; x/0
    reads as x/1e-12). The calm quarter, not the older half, is the base: an outage that
    has filled half the window must still be measured from before it, or a caller passing
    on a share of its dependency's errors rises as much as the dependency in relative
    terms."""
    w = np.asarray(window, dtype=np.float64)
    t = w.shape[-1]
    newest = w[..., t - max(3, t // 8):]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN series: NaN, said above
        q25 = np.nanpercentile(w, 25, axis=-1, keepdims=True)
        calm = np.where(w <= q25, w, np.nan)
        base = np.nanmedian(calm, axis=-1)
        spread = np.nanstd(calm, axis=-1)
        now = np.nanmean(newest, axis=-1)
    rise = (now - base) / (np.abs(base) + spread + 1e-12)
    return np.where(np.isfinite(w).sum(axis=-1) >= 4, rise, np.nan)


def symptoms(values: np.ndarray, candidates: np.ndarray, lead: np.ndarray,
             propagating: np.ndarray, min_correlation: float = 0.9,
             min_rise_ratio: float = 1.2) -> Symptoms:
    """Which `candidates` [E] bool (entities at a level) are symptoms of another entity, given
    the cycle's window `values` [E, S, T] (NaN = missing), each entity's leading signal
    `lead` [E] (signal index; < 0 unknown) and which signals propagate a dependency's failure
    `propagating` [S] bool (see the module docstring). O(E x T) per candidate whose leading
    signal propagates. Raises ValueError when the shapes do not match."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 3:
        raise ValueError(f"window values {v.shape}: want [entities, signals, steps]")
    e, s, t = v.shape
    cand = np.asarray(candidates, dtype=bool)
    ld = np.asarray(lead, dtype=np.int64)
    prop = np.asarray(propagating, dtype=bool)
    if cand.shape != (e,) or ld.shape != (e,) or prop.shape != (s,):
        raise ValueError(f"candidates {cand.shape} / lead {ld.shape} / propagating "
                         f"{prop.shape} for window {v.shape}")
    source = np.full(e, -1, dtype=np.int64)
    corr = np.full(e, np.nan)
    ratio = np.full(e, np.nan)
    if e < 2 or t < MIN_PAIRS + 1:
        return Symptoms(source, corr, ratio)
    known = (ld >= 0) & (ld < s)
    rows = np.flatnonzero(cand & known)
    rows = rows[prop[ld[rows]]]
    per_signal: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for i in rows:
        j = int(ld[i])
        own = float(relative_rise(v[i, j, :]))
        if not (np.isfinite(own) and own > 0):
            continue
        if j not in per_signal:
            d = np.diff(v[:, j, :], axis=1)
            per_signal[j] = (d, *_standardized(d))
        d, z, full = per_signal[j]
        r = np.full(e, np.nan)
        if full[i]:
            # Rows without a gap: one matrix-vector product; the others pair by pair.
            with np.errstate(invalid="ignore"):
                r[full] = z[full] @ z[i] / z.shape[1]
            r[~full] = _correlation(d[i], d[~full])
        else:
            r = _correlation(d[i], d)
        r[i] = np.nan
        with np.errstate(invalid="ignore"):
            near = np.flatnonzero(r >= min_correlation)
        if not len(near):
            continue
        rise = relative_rise(v[near, j, :])
        with np.errstate(invalid="ignore"):
            ok = rise >= min_rise_ratio * own
        if ok.any():
            best = int(np.argmax(np.where(ok, rise, -np.inf)))
            k = int(near[best])
            source[i], corr[i], ratio[i] = k, r[k], rise[best] / own
    return Symptoms(source, corr, ratio)


def _standardized(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(z [E, N], full [E]): each gap-free row of `d` [E, N] centred and scaled to unit
    population variance (NaN where constant), and which rows are gap-free; Pearson's r of
    two such rows is their mean product."""
    full = np.isfinite(d).all(axis=1)
    z = np.full(d.shape, np.nan)
    if d.shape[1] >= MIN_PAIRS and full.any():
        x = d[full]
        x = x - x.mean(axis=1, keepdims=True)
        sd = np.sqrt((x * x).mean(axis=1, keepdims=True))
        with np.errstate(invalid="ignore", divide="ignore"):
            z[full] = np.where(sd > 0, x / sd, np.nan)
    return z, full & (d.shape[1] >= MIN_PAIRS)


def _correlation(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """[E] Pearson's r of `x` [N] with each row of `ys` [E, N] over the steps both know (NaN
    where fewer than MIN_PAIRS, or either is constant there)."""
    both = np.isfinite(ys) & np.isfinite(x)[None, :]
    n = both.sum(axis=1)
    xs = np.where(both, x[None, :], 0.0)
    yz = np.where(both, ys, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = xs.sum(axis=1) / n
        my = yz.sum(axis=1) / n
        dx = np.where(both, xs - mx[:, None], 0.0)
        dy = np.where(both, yz - my[:, None], 0.0)
        cov = (dx * dy).sum(axis=1)
        den = np.sqrt((dx * dx).sum(axis=1) * (dy * dy).sum(axis=1))
        r = cov / den
    return np.where((n >= MIN_PAIRS) & (den > 0), r, np.nan)


def propagating_signals(kinds: Sequence[str]) -> np.ndarray:
    """[S] bool: which of the analysis' signal `kinds` (SignalConfig.kind, in order) carry a
    dependency's failure to its callers (PROPAGATING_KINDS)."""
    return np.array([k in PROPAGATING_KINDS for k in kinds], dtype=bool)
