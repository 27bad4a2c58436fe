"""The alert rules users run today, replayed on the raw input series for `aura backtest`.

AURA is scored next to them on the same data, incidents and evaluation grid:

* `BaselinePredictLinear` — node-mixin's exhaustion rule
  (`predict_linear(node_filesystem_avail_bytes[6h], 4*60*60) < 0`, `for: 1h`) applied to every
  signal with a `capacity`: an ordinary least-squares line over the last 6 h of samples,
  evaluated at t + horizon, fires when the projected utilisation reaches 1 (the capacity).
  The horizon is the analysis' largest horizon; when that is not 4 h, a
  `BaselinePredictLinear4h` variant with node-mixin's own 4 h is added.
* `BaselineStaticThreshold` — the classic "above 90 %" rule: utilisation >= 0.9 for 5 m on a
  signal with a capacity; for a signal without one, the z-score rule of GitLab's
  "anomaly detection with Prometheus" (value more than 3 standard deviations from its own
  trailing 24 h mean, in the signal's bad direction, with at least 6 h of history), for 5 m.

Utilisation follows the capacity agent: `value / capacity` for direction "up", `1 - value /
capacity` for direction "down" (free space: exhausted at 0). Conditions are evaluated at the
backtest's evaluation times from the newest sample at or before each time (5 m lookback, as
Prometheus' staleness), so `for:` counts evaluations exactly as AURA's own alerts do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from exporter.config import AnalysisConfig
from exporter.windows import Window

PREDICT_LINEAR_LOOKBACK = 6 * 3600.0
PREDICT_LINEAR_FOR = 3600.0
NODE_MIXIN_HORIZON = 4 * 3600.0
STATIC_UTILISATION = 0.9
STATIC_FOR = 300.0
ZSCORE_LIMIT = 3.0
ZSCORE_LOOKBACK = 24 * 3600.0
ZSCORE_MIN_HISTORY = 6 * 3600.0
LOOKBACK_DELTA = 300.0  # Prometheus' default staleness: an instant vector looks back 5 m
SEVERITY = "baseline"


@dataclass(frozen=True)
class BaselineRule:
    """One baseline alert: its name, its `for:` and its condition per entity and evaluation."""

    name: str
    for_: float
    condition: np.ndarray  # [E, N] bool
    description: str


def utilisation(window: Window, analysis: AnalysisConfig) -> tuple[np.ndarray, list[int]]:
    """Utilisation [E, C, T] of the signals with a capacity, and their indices in the window."""
    by_name = {s.name: s for s in analysis.signals}
    idx = [j for j, name in enumerate(window.signals)
           if name in by_name and by_name[name].capacity is not None]
    if not idx:
        return np.empty((len(window.entities), 0, len(window.timestamps))), []
    caps = np.array([by_name[window.signals[j]].capacity for j in idx], dtype=np.float64)
    down = np.array([by_name[window.signals[j]].direction == "down" for j in idx])
    u = window.values[:, idx, :] / caps[None, :, None]
    u = np.where(down[None, :, None], 1.0 - u, u)
    return u, idx


def _latest_index(timestamps: np.ndarray, eval_times: np.ndarray) -> np.ndarray:
    """Index of the newest sample at or before each evaluation time (-1 when none)."""
    return np.searchsorted(timestamps, eval_times + 1e-6, side="right") - 1


def _instant(values: np.ndarray, timestamps: np.ndarray, eval_times: np.ndarray) -> np.ndarray:
    """values[..., T] sampled as an instant vector at each evaluation time -> [..., N]."""
    last = _latest_index(timestamps, eval_times)
    out = np.full(values.shape[:-1] + (len(eval_times),), np.nan)
    for n, i in enumerate(last):
        # Walk back over missing samples within the lookback delta, as Prometheus does.
        lo = np.searchsorted(timestamps, eval_times[n] - LOOKBACK_DELTA, side="right")
        if i < lo:
            continue
        seg = values[..., lo:i + 1]
        ok = ~np.isnan(seg)
        has = ok.any(axis=-1)
        newest = seg.shape[-1] - 1 - np.argmax(ok[..., ::-1], axis=-1)
        picked = np.take_along_axis(seg, newest[..., None], axis=-1)[..., 0]
        out[..., n] = np.where(has, picked, np.nan)
    return out


def predict_linear(values: np.ndarray, timestamps: np.ndarray, eval_times: np.ndarray,
                   lookback: float, horizon: float) -> np.ndarray:
    """Prometheus' predict_linear(v[lookback], horizon) at each evaluation time -> [..., N].

    Least squares over the samples in (t - lookback, t] with the intercept at t; NaN with fewer
    than two samples.
    """
    out = np.full(values.shape[:-1] + (len(eval_times),), np.nan)
    last = _latest_index(timestamps, eval_times)
    for n, t in enumerate(eval_times):
        lo = np.searchsorted(timestamps, t - lookback, side="right")
        hi = last[n] + 1
        if hi - lo < 2:
            continue
        y = values[..., lo:hi]
        x = np.broadcast_to(timestamps[lo:hi] - t, y.shape)
        ok = ~np.isnan(y)
        cnt = ok.sum(axis=-1)
        y0 = np.where(ok, y, 0.0)
        x0 = np.where(ok, x, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mx = x0.sum(axis=-1) / cnt
            my = y0.sum(axis=-1) / cnt
            dx = np.where(ok, x - mx[..., None], 0.0)
            sxx = (dx * dx).sum(axis=-1)
            sxy = (dx * np.where(ok, y - my[..., None], 0.0)).sum(axis=-1)
            slope = sxy / sxx
            intercept = my - slope * mx  # value of the line at x = 0, i.e. at t
            pred = intercept + slope * horizon
        out[..., n] = np.where((cnt >= 2) & (sxx > 0), pred, np.nan)
    return out


def trailing_zscore(values: np.ndarray, timestamps: np.ndarray, eval_times: np.ndarray,
                    lookback: float, min_history: float) -> np.ndarray:
    """(x_t - mean) / std over (t - lookback, t] -> [..., N]; NaN without enough history."""
    current = _instant(values, timestamps, eval_times)
    out = np.full_like(current, np.nan)
    step = float(np.median(np.diff(timestamps))) if len(timestamps) > 1 else 1.0
    need = max(2, int(min_history / step))
    last = _latest_index(timestamps, eval_times)
    for n, t in enumerate(eval_times):
        lo = np.searchsorted(timestamps, t - lookback, side="right")
        seg = values[..., lo:last[n] + 1]
        if seg.shape[-1] < need:
            continue
        ok = ~np.isnan(seg)
        cnt = ok.sum(axis=-1)
        s0 = np.where(ok, seg, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s0.sum(axis=-1) / cnt
            var = (np.where(ok, seg - mean[..., None], 0.0) ** 2).sum(axis=-1) / cnt
            std = np.sqrt(var)
            z = (current[..., n] - mean) / std
        out[..., n] = np.where((cnt >= need) & (std > 0), z, np.nan)
    return out


def baseline_rules(window: Window, analysis: AnalysisConfig,
                   eval_times: np.ndarray) -> tuple[BaselineRule, ...]:
    """Every baseline's condition [E, N] for the entities of `window` at `eval_times`."""
    ts = np.asarray(window.timestamps, dtype=np.float64)
    eval_times = np.asarray(eval_times, dtype=np.float64)
    e, n = len(window.entities), len(eval_times)
    u, cap_idx = utilisation(window, analysis)
    horizon = max(float(h) for h in analysis.horizons) if analysis.horizons else NODE_MIXIN_HORIZON
    horizons = [("BaselinePredictLinear", horizon)]
    if abs(horizon - NODE_MIXIN_HORIZON) > 1e-6:
        horizons.append(("BaselinePredictLinear4h", NODE_MIXIN_HORIZON))
    rules = []
    for name, h in horizons:
        if cap_idx:
            pred = predict_linear(u, ts, eval_times, PREDICT_LINEAR_LOOKBACK, h)
            with np.errstate(invalid="ignore"):
                cond = np.asarray((pred >= 1.0).any(axis=1))
        else:
            cond = np.zeros((e, n), dtype=bool)
        rules.append(BaselineRule(
            name, PREDICT_LINEAR_FOR, cond,
            f"least-squares line over {PREDICT_LINEAR_LOOKBACK / 3600:g}h projected "
            f"{h / 3600:g}h ahead reaches capacity, for {PREDICT_LINEAR_FOR / 60:g}m"))

    static = np.zeros((e, n), dtype=bool)
    if cap_idx:
        with np.errstate(invalid="ignore"):
            static |= (_instant(u, ts, eval_times) >= STATIC_UTILISATION).any(axis=1)
    by_name = {s.name: s for s in analysis.signals}
    other = [j for j, s in enumerate(window.signals) if j not in cap_idx and s in by_name]
    if other:
        z = trailing_zscore(window.values[:, other, :], ts, eval_times, ZSCORE_LOOKBACK,
                            ZSCORE_MIN_HISTORY)
        sign = np.array([-1.0 if by_name[window.signals[j]].direction == "down" else 1.0
                         for j in other])
        with np.errstate(invalid="ignore"):
            static |= (z * sign[None, :, None] > ZSCORE_LIMIT).any(axis=1)
    rules.append(BaselineRule(
        "BaselineStaticThreshold", STATIC_FOR, static,
        f"utilisation >= {STATIC_UTILISATION:g} (signals with capacity) or |z| > "
        f"{ZSCORE_LIMIT:g} in the bad direction over a trailing {ZSCORE_LOOKBACK / 3600:g}h "
        f"(others), for {STATIC_FOR / 60:g}m"))
    return tuple(rules)
