"""Per-step input sequences of the failure model, computed the same way live, in backtest and in training.

The model meets data it was never trained on: other signals, other entity sizes, other units.
So every feature is

* scale-free: signals are robust z-scores against the entity's own baseline (median and MAD of
  the first half of the window), and utilisation is a fraction of the signal's `capacity`;
* direction-aware: a signal whose bad direction is "down" (free space, credits) is negated, and
  its utilisation is `1 - value / capacity`;
* independent of the number of signals: signals are aggregated by `kind` (max / mean), so a
  preset with 3 signals and one with 30 give the same F columns;
* finite: NaN becomes 0 and the share of missing samples is its own feature.

The window's last `TOKENS * pool` steps are mean-pooled into `TOKENS` tokens (`pool` chosen from
the window length) so one forward costs the same for a 1 h and a 6 h window.

Inputs, in order (`FEATURE_NAMES`; copied into `model.yaml` as `inputs`):

====  =========================  ================================================================
 idx  name                       meaning (per token; z = robust z-score, compressed sign*log1p|z|)
====  =========================  ================================================================
  0   z_max_resource             max z over `resource` and `saturation` signals
  1   z_mean_resource            mean z over `resource` and `saturation` signals
  2   z_max_latency              max z over `latency` signals
  3   z_max_errors               max z over `errors` signals
  4   z_max_network              max z over `network` signals
  5   z_max_other                max z over `other` signals
  6   z_max_all                  max z over all signals
  7   z_mean_all                 mean z over all signals
  8   capacity_used_max          max fraction of capacity used (signals with `capacity`), 0..1.5
  9   capacity_used_change       max rise of that fraction over its baseline median, -1..1
 10   capacity_urgency           1 - min(projected time to capacity / largest horizon, 1)
 11   slope_z_max                max trend of z in z-units per hour (compressed), trailing ~30 min
 12   slope_z_mean               mean trend of z over signals (compressed)
 13   trending_up_ratio          share of present signals whose trend exceeds 1 z per hour
 14   missing_ratio              share of the token's samples that are missing
 15   capacity_available         1 when at least one signal has a capacity and data
 16   topology_available         reserved, always 0 (see below)
 17   topology_anomaly           reserved, always 0
 18   topology_entropy_0         reserved, always 0
 19   topology_entropy_1         reserved, always 0
 20   topology_betti_0           reserved, always 0
 21   topology_betti_1           reserved, always 0
====  =========================  ================================================================

Columns 16-21 were to carry the topology stage's result (available, anomaly score, H0/H1
entropy, log1p Betti numbers). Trained with them, a model was not shown to score better
on held-out or out-of-distribution data (README, "Design notes"; `models/topology_ablation.py`
fills them itself to repeat the measurement), so they are fed as zeros: the names stay so
that shipped model cards (whose `inputs` list them) keep loading.
"""

from __future__ import annotations

import numpy as np

from exporter.config import AnalysisConfig
from exporter.numeric import clipped_z, mad_sigma, nanmedian_last
from exporter.windows import Window

FEATURE_NAMES: tuple[str, ...] = (
    "z_max_resource",
    "z_mean_resource",
    "z_max_latency",
    "z_max_errors",
    "z_max_network",
    "z_max_other",
    "z_max_all",
    "z_mean_all",
    "capacity_used_max",
    "capacity_used_change",
    "capacity_urgency",
    "slope_z_max",
    "slope_z_mean",
    "trending_up_ratio",
    "missing_ratio",
    "capacity_available",
    "topology_available",
    "topology_anomaly",
    "topology_entropy_0",
    "topology_entropy_1",
    "topology_betti_0",
    "topology_betti_1",
)
# One line per input, copied into the model card next to `inputs`.
FEATURE_DOCS: dict[str, str] = {
    "z_max_resource": "max robust z over resource and saturation signals (sign*log1p)",
    "z_mean_resource": "mean robust z over resource and saturation signals",
    "z_max_latency": "max robust z over latency signals",
    "z_max_errors": "max robust z over errors signals",
    "z_max_network": "max robust z over network signals",
    "z_max_other": "max robust z over other signals",
    "z_max_all": "max robust z over all signals",
    "z_mean_all": "mean robust z over all signals",
    "capacity_used_max": "max fraction of capacity used, 0..1.5 (0 without capacity signals)",
    "capacity_used_change": "max rise of the used fraction over its baseline median, -1..1",
    "capacity_urgency": "1 - min(projected time to capacity / largest horizon, 1)",
    "slope_z_max": "max trend in robust z per hour over ~30 min (sign*log1p)",
    "slope_z_mean": "mean trend in robust z per hour (sign*log1p)",
    "trending_up_ratio": "share of present signals trending up by more than 1 z per hour",
    "missing_ratio": "share of the token's samples that are missing",
    "capacity_available": "1 when a signal with a capacity has data",
    "topology_available": "reserved, always 0 (topology inputs are not fed)",
    "topology_anomaly": "reserved, always 0",
    "topology_entropy_0": "reserved, always 0",
    "topology_entropy_1": "reserved, always 0",
    "topology_betti_0": "reserved, always 0",
    "topology_betti_1": "reserved, always 0",
}
# The reserved columns (16-21), zero in every window (module docstring).
TOPOLOGY_COLUMNS = slice(16, 22)
TOKENS = 20
# Trend span on each side of the difference of means (seconds of signal).
TREND_HALF_SPAN = 900.0
DEFAULT_HORIZON_SCALE = 14400.0
_Z_CLIP = 50.0
_KIND_GROUPS = {
    "resource": ("resource", "saturation"),
    "latency": ("latency",),
    "errors": ("errors",),
    "network": ("network",),
    "other": ("other",),
}


class FeatureError(ValueError):
    """The window cannot be turned into model inputs (signals do not match the analysis)."""


def _compress(z: np.ndarray) -> np.ndarray:
    z = np.clip(z, -_Z_CLIP, _Z_CLIP)
    return np.sign(z) * np.log1p(np.abs(z))


def _pool(x: np.ndarray, pool: int, tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean-pool the last tokens*pool steps of [..., T]; returns (pooled, missing share)."""
    t = x.shape[-1]
    need = tokens * pool
    if t < need:
        pad = np.full(x.shape[:-1] + (need - t,), np.nan)
        x = np.concatenate([pad, x], axis=-1)
    else:
        x = x[..., t - need:]
    blocks = x.reshape(x.shape[:-1] + (tokens, pool))
    present = ~np.isnan(blocks)
    count = present.sum(axis=-1)
    total = np.where(present, blocks, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return mean, 1.0 - count / pool


def _trend(x: np.ndarray, half: int) -> np.ndarray:
    """Difference of NaN-aware means of the trailing `half` tokens and the `half` before, per token."""
    present = ~np.isnan(x)
    v = np.where(present, x, 0.0)
    zeros = np.zeros(x.shape[:-1] + (1,))
    cs = np.concatenate([zeros, np.cumsum(v, axis=-1)], axis=-1)
    cn = np.concatenate([zeros, np.cumsum(present, axis=-1)], axis=-1)
    k = np.arange(x.shape[-1]) + 1  # exclusive end index of each token's trailing block
    a_lo = np.clip(k - half, 0, None)
    b_lo = np.clip(k - 2 * half, 0, None)
    s_recent = cs[..., k] - cs[..., a_lo]
    n_recent = cn[..., k] - cn[..., a_lo]
    s_prev = cs[..., a_lo] - cs[..., b_lo]
    n_prev = cn[..., a_lo] - cn[..., b_lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        d = s_recent / n_recent - s_prev / n_prev
    # The distance between block centres, in tokens.
    return d / half


def _group_reduce(z: np.ndarray, member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max and mean of z [E,S,K] over the signals in `member` [S]; 0 where none is present."""
    sel = z[:, member, :]
    present = ~np.isnan(sel)
    if sel.shape[1] == 0:
        zero = np.zeros((z.shape[0], z.shape[2]))
        return zero, zero
    any_ = present.any(axis=1)
    mx = np.where(present, sel, -np.inf).max(axis=1)
    mean = np.where(present, sel, 0.0).sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    return np.where(any_, mx, 0.0), np.where(any_, mean, 0.0)


def step_features(
    window: Window,
    analysis: AnalysisConfig,
    *,
    horizon_scale: float = DEFAULT_HORIZON_SCALE,
    tokens: int = TOKENS,
) -> np.ndarray:
    """Model input sequences [E, tokens, F] (float32, finite) for every entity of the window.

    Parameters
    ----------
    window: the cycle's window; its signals must be the analysis' signals (any order).
    analysis: gives each signal's kind, direction and capacity, and the step.
    horizon_scale: seconds that normalise the time to capacity (the model's largest horizon).
    tokens: sequence length after pooling.
    """
    by_name = {s.name: s for s in analysis.signals}
    missing = [name for name in window.signals if name not in by_name]
    if missing:
        raise FeatureError(f"window signals not in analysis {analysis.name!r}: {missing}")
    sigs = [by_name[name] for name in window.signals]
    values = np.asarray(window.values, dtype=np.float64)
    n_ent, n_sig, n_t = values.shape
    out = np.zeros((n_ent, tokens, len(FEATURE_NAMES)), dtype=np.float32)
    if n_ent == 0:
        return out
    step = float(analysis.step)
    if n_t >= 2:
        step = float(window.timestamps[1] - window.timestamps[0]) or step
    pool = max(1, n_t // tokens)
    token_seconds = pool * step
    half = max(1, int(round(TREND_HALF_SPAN / token_seconds)))

    sign = np.array([-1.0 if s.direction == "down" else 1.0 for s in sigs])
    finite = np.isfinite(values)
    # Never write into the caller's window: later stages read it too.
    values = np.where(finite, values, np.nan)
    x = values * sign[None, :, None]

    # Baseline: the window's first half (at least one step).
    base = x[:, :, : max(1, n_t // 2)]
    med = nanmedian_last(base)
    # Relative floor keeps z scale-free while flat signals cannot explode it.
    scale = np.fmax(mad_sigma(base, med), 0.01 * np.abs(med))
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, np.nan)
    z_raw = clipped_z(x, med[..., None], scale[..., None], _Z_CLIP)
    # Flat baseline (scale NaN): equal to it -> 0, any departure -> the clip value.
    flat = np.isnan(scale)[..., None] & ~np.isnan(x) & ~np.isnan(med)[..., None]
    dev = x - med[..., None]
    z_raw = np.where(flat, np.sign(dev) * _Z_CLIP * (np.abs(dev) > 0), z_raw)

    zp, miss = _pool(z_raw, pool, tokens)  # [E,S,K]
    z = _compress(zp)

    kinds = np.array([s.kind for s in sigs])
    for col, group in ((0, "resource"), (2, "latency"), (3, "errors"), (4, "network"),
                       (5, "other")):
        member = np.isin(kinds, _KIND_GROUPS[group])
        mx, mean = _group_reduce(z, member)
        out[:, :, col] = mx
        if group == "resource":
            out[:, :, 1] = mean
    mx, mean = _group_reduce(z, np.ones(n_sig, dtype=bool))
    out[:, :, 6] = mx
    out[:, :, 7] = mean

    # Trends in z per hour.
    slope = _trend(zp, half) * (3600.0 / token_seconds)
    slope_present = ~np.isnan(slope)
    any_slope = slope_present.any(axis=1)
    s_max = np.where(slope_present, slope, -np.inf).max(axis=1)
    s_mean = np.where(slope_present, slope, 0.0).sum(axis=1) / np.maximum(
        slope_present.sum(axis=1), 1)
    out[:, :, 11] = np.where(any_slope, _compress(np.where(any_slope, s_max, 0.0)), 0.0)
    out[:, :, 12] = np.where(any_slope, _compress(s_mean), 0.0)
    up = (slope > 1.0) & slope_present
    out[:, :, 13] = up.sum(axis=1) / np.maximum(slope_present.sum(axis=1), 1)
    out[:, :, 14] = miss.mean(axis=1)

    cap = np.array([s.capacity if s.capacity else np.nan for s in sigs], dtype=np.float64)
    has_cap = np.isfinite(cap) & (cap != 0)
    if has_cap.any():
        c = cap[has_cap][None, :, None]
        raw = values[:, has_cap, :]
        down = (sign[has_cap] < 0)[None, :, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(down, 1.0 - raw / c, raw / c)
        fb = nanmedian_last(frac[:, :, : max(1, n_t // 2)])
        fp, _ = _pool(frac, pool, tokens)
        fpres = ~np.isnan(fp)
        any_f = fpres.any(axis=1)
        used = np.where(fpres, np.clip(fp, 0.0, 1.5), -np.inf).max(axis=1)
        out[:, :, 8] = np.where(any_f, used, 0.0)
        change = np.clip(fp - fb[..., None], -1.0, 1.0)
        out[:, :, 9] = np.where(any_f, np.where(fpres, change, -np.inf).max(axis=1), 0.0)
        fslope = _trend(fp, half) / token_seconds  # fraction per second
        with np.errstate(invalid="ignore", divide="ignore"):
            ttc = np.where(fp >= 1.0, 0.0,
                           np.where(fslope > 0, (1.0 - fp) / fslope, np.inf))
        ttc = np.where(np.isnan(ttc), np.inf, ttc)
        urgency = 1.0 - np.clip(ttc.min(axis=1) / horizon_scale, 0.0, 1.0)
        out[:, :, 10] = np.where(any_f, urgency, 0.0)
        out[:, :, 15] = any_f.any(axis=1)[:, None]

    np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return out
