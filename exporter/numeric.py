"""NaN-aware robust statistics shared by the stages: medians, percentiles, sigmas, Theil-Sen.

One home for each helper, each named for what it computes (two robust sigmas with different
rules exist on purpose and have different names):

- `nanmedian_last`, `nan_percentile`: np.nanmedian / np.nanpercentile (linear method), the
  same values, vectorised with one sort (numpy's NaN versions loop over rows in Python or go
  through masked arrays: 10-1000x slower on [E, S, T] windows, measured).
- `mad_sigma`: 1.4826 * median absolute deviation (scipy.stats.median_abs_deviation with
  scale="normal"); 0 for a signal that is constant but for a few events.
- `max_spread_sigma`: the largest of the IQR, the 10-90 % range and the mean absolute
  deviation, each scaled to a normal sigma, floored by `floor_scale`; stays > 0 for sparse
  signals (the topology stage's normalisation, exporter/tda/embedding.py says why).
- `clipped_z`: (x - center) / scale clipped to +-limit, NaN kept.
- `median_iqr`: per-column median and floored IQR of finite rows, the fleet-wide scaling of
  feature vectors (exporter/tda/fleet.py, the console's fleet map).
- `bin_medians`, `theil_sen`: block medians and the Theil-Sen line (Sen 1968), batched.

Every helper works on the last axis (or the named axis) and is batched over leading axes;
all-NaN rows give NaN, never a warning.
"""

from __future__ import annotations

import warnings

import numpy as np

# Ratios of robust spreads to the sigma of a normal distribution.
IQR_TO_SIGMA = 1.349  # q75 - q25
DECILE_TO_SIGMA = 2.563  # q90 - q10
MEAN_ABS_TO_SIGMA = 1.2533  # sigma / E|x - mu|
MAD_TO_SIGMA = 1.4826  # sigma / median|x - median|


def nanmedian_last(a: np.ndarray, overwrite_input: bool = False) -> np.ndarray:
    """Median over the last axis ignoring NaN: a[..., T] -> [...] (NaN where a row has none).

    np.nanmedian falls back to masked arrays for short axes (~10x slower) and np.median's
    per-row partition is slower than one sort for rows of <= a few hundred values (measured):
    NaNs sort last, so the median sits at the middle of each row's valid prefix.
    overwrite_input: sort `a` itself (an ndarray the caller no longer needs) instead of a
    copy, as np.median's parameter of that name (the copy was a third of the sort's cost).
    """
    t = a.shape[-1]
    if t == 0:
        return np.full(a.shape[:-1], np.nan)
    if t == 1:  # one value per row (blocks of one sample): the same arithmetic, no sort
        v = a[..., 0]
        if a.dtype.kind != "f":
            return np.where(np.isnan(v), np.nan, 0.5 * (v + v))
        out = v + v  # NaN stays NaN
        out *= 0.5
        return out
    if overwrite_input:
        a.sort(axis=-1)
        s = a
    else:
        s = np.sort(a, axis=-1)
    short = np.isnan(s[..., -1])  # NaN sorts last: the rows with one end in NaN
    if not short.any():  # no NaN at all: the middle of every row, by slicing
        return 0.5 * (s[..., (t - 1) // 2] + s[..., t // 2])
    n = _sorted_counts(s, short)
    # Clip into range so empty rows index safely; they are masked to NaN below. One flat
    # gather per order statistic (take_along_axis builds broadcast index arrays).
    flat = s.reshape(-1)
    base = np.arange(0, flat.size, t).reshape(n.shape)
    lo_v = flat[base + np.clip((n - 1) // 2, 0, t - 1)]
    hi_v = flat[base + np.clip(n // 2, 0, t - 1)]
    return np.where(n > 0, 0.5 * (lo_v + hi_v), np.nan)


def _sorted_counts(s: np.ndarray, short: np.ndarray) -> np.ndarray:
    """Non-NaN counts [...] of rows s[..., T] sorted NaN last; short [...]: the rows whose
    last value is NaN (the others have T). The first NaN's position (argmax of a short bool
    row is cheaper than a sum); only the short rows are scanned when they are few (the whole
    array's isnan was a fifth of a window's percentiles)."""
    t = s.shape[-1]
    if np.count_nonzero(short) * 4 > short.size:  # many: one pass over all rows is cheaper
        nan = np.isnan(s)
        return np.where(short, nan.argmax(axis=-1), t) if t <= 32 else t - nan.sum(axis=-1)
    n = np.full(short.shape, t, dtype=np.intp)
    nan = np.isnan(s[short])
    n[short] = nan.argmax(axis=-1) if t <= 32 else t - nan.sum(axis=-1)
    return n


def nan_percentile(x: np.ndarray, q: list[float] | np.ndarray, axis: int,
                   always_sort: bool = False) -> np.ndarray:
    """np.nanpercentile (linear method), vectorised: [len(q), *shape without axis].

    np.percentile when nothing is missing; otherwise one sort along `axis` (NaN sorts last) and
    a gather at each row's own finite count. numpy's nanpercentile loops over rows in Python
    (apply_along_axis: ~1 ms per entity for [S, T] = [8, 120]), so a single missing sample
    anywhere in a 10 000-entity window used to cost seconds per cycle. Same interpolation
    formula as numpy's (`_lerp`), so values agree to the last bit or so; all-NaN rows give NaN.
    A scalar `q` gives the result without the leading axis. `always_sort`: the sort path even
    without NaN (on arrays without NaN it gives np.percentile's values bit for bit, tested in
    tests/test_replay_speed_identity.py; ~5x faster on small arrays, where np.percentile's
    per-call overhead dominates: a baseline refit's [72, S, 9] median).
    """
    x = np.asarray(x, dtype=np.float64)
    if not always_sort and not np.isnan(x).any():
        return np.percentile(x, q, axis=axis)
    qs = np.asarray(q, dtype=np.float64) / 100.0
    xs = np.sort(np.moveaxis(x, axis, -1), axis=-1)
    width = xs.shape[-1]
    n = _sorted_counts(xs, np.isnan(xs[..., -1])) if width else \
        np.zeros(xs.shape[:-1], dtype=np.intp)  # [...]
    pos = qs.reshape(-1, *([1] * n.ndim)) * np.maximum(n - 1, 0)  # [Q, ...]
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    t = pos - lo
    if width == 0:
        return np.full(pos.shape if np.ndim(q) else pos.shape[1:], np.nan)
    # One flat gather per bound, already [Q, ...] (take_along_axis needed the axis moved).
    flat = xs.reshape(-1)
    base = np.arange(0, flat.size, width).reshape(n.shape)
    a, b = flat[base + lo], flat[base + hi]
    with np.errstate(invalid="ignore"):
        diff = b - a
        out = np.where(t >= 0.5, b - diff * (1.0 - t), a + diff * t)
    out[:, n == 0] = np.nan
    return out if np.ndim(q) else out[0]


def mad_sigma(a: np.ndarray, center: np.ndarray | None = None) -> np.ndarray:
    """1.4826 * median absolute deviation over the last axis: a[..., T] -> [...].

    A Gaussian sigma estimate (scipy.stats.median_abs_deviation(scale="normal"), NaN-omitting);
    `center` [...] defaults to the median. No floor: 0 for a mostly constant row.
    """
    if center is None:
        center = nanmedian_last(a)
    dev = a - center[..., None]
    return MAD_TO_SIGMA * nanmedian_last(np.abs(dev, out=dev), overwrite_input=True)


def max_spread_sigma(values: np.ndarray, center: np.ndarray, q10: np.ndarray, q25: np.ndarray,
                     q75: np.ndarray, q90: np.ndarray) -> np.ndarray:
    """Sigma estimate [...] of values[..., T]: the largest of three robust estimates, floored.

    The estimates, each scaled to a normal sigma: the IQR (q75 - q25), the 10-90 % range and
    the mean absolute deviation from `center`; the quantiles are passed in (callers have them).
    The IQR alone collapses to 0 for sparse signals (error counters: mostly 0, now and then one
    event), and one event then normalised to ~1e7: measured on the simulator, such points were
    the whole raw anomaly distance (benign 99th percentile 2e8) and the score ranked error
    noise instead of failures. The 10-90 % range and the mean absolute deviation still see a
    signal that is mostly constant. Floored by `floor_scale`; NaN for rows with no sample.
    """
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows -> NaN, not a warning
        # np.nanmean of |values - center|, its arithmetic in place on one temporary (NaN ->
        # 0, sum, divide by the count of the others).
        dev = values - center[..., None]
        np.abs(dev, out=dev)
        gone = np.isnan(dev)
        cnt = np.sum(~gone, axis=-1, dtype=np.intp)
        np.copyto(dev, 0.0, where=gone)
        mean_abs = np.divide(dev.sum(axis=-1), cnt)
        scale = np.fmax(np.fmax((q75 - q25) / IQR_TO_SIGMA, (q90 - q10) / DECILE_TO_SIGMA),
                        MEAN_ABS_TO_SIGMA * mean_abs)
    return floor_scale(scale, center)


def floor_scale(scale: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Floor a robust scale at 1e-3 * |center| + 1e-9 so constant signals normalise to zeros."""
    floor = 1e-3 * np.abs(center) + 1e-9
    return np.where(np.isnan(scale), scale, np.maximum(scale, floor))


def clipped_z(values: np.ndarray, center: np.ndarray, scale: np.ndarray,
              limit: float) -> np.ndarray:
    """(values - center) / scale clipped to [-limit, limit]; NaN stays NaN, no warnings.

    The arrays broadcast as numpy does: callers add the axes (`center[..., None]`).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (values - center) / scale
    if not isinstance(z, np.ndarray) or limit <= 0:
        return np.clip(z, -limit, limit)
    # np.clip's values (max with the lower bound, then min with the upper; NaN kept), in
    # place without its Python wrapper (~30 us a call, thousands of calls a replay).
    np.maximum(z, -limit, out=z)
    return np.minimum(z, limit, out=z)


def median_iqr(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column median and interquartile range of x[N, K]: ([K], [K]).

    np.median and np.percentile (linear method) over the rows; the IQR (q75 - q25, not
    scaled to a sigma) is floored at 1e-6 * (|median| + 1), so a constant column scales to
    zeros instead of dividing by 0. Rows must be finite (callers keep the known rows);
    `(x - median) / iqr` is the robust scaling of a fleet's feature vectors.
    """
    median = np.median(x, axis=0)
    q25, q75 = np.percentile(x, [25, 75], axis=0)
    return median, np.maximum(q75 - q25, 1e-6 * (np.abs(median) + 1.0))


def bin_medians(values: np.ndarray, width: int, bins: int) -> np.ndarray:
    """Medians of the last `bins` blocks of `width` samples along the last axis.

    Returns [..., bins]; blocks before the start of the data are NaN. Block medians drop
    single-sample spikes and make a Theil-Sen fit over blocks cheap (bins² pairs, not T²).
    """
    t = values.shape[-1]
    need = width * bins
    if t >= need:
        tail = values[..., t - need :]
    else:
        pad = np.full(values.shape[:-1] + (need - t,), np.nan)
        tail = np.concatenate([pad, values], axis=-1)
    blocks = tail.reshape(values.shape[:-1] + (bins, width))
    return nanmedian_last(blocks, overwrite_input=t < need)  # padded: our own copy


def theil_sen(y: np.ndarray, x: np.ndarray, min_points: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Theil-Sen slope and intercept of y[..., K] against x[K], batched over leading axes.

    Returns (slope, intercept) with NaN where fewer than `min_points` values are present; the
    intercept is the median of y - slope * x (scipy.stats.theilslopes, method="joint").
    Robust to up to ~29 % outlying points, which keeps spikes and restarts from tilting it.
    """
    k = y.shape[-1]
    i, j = np.triu_indices(k, 1)
    dx = x[j] - x[i]
    # np.take gathers along the last axis ~4x faster than y[..., j] (the same values).
    rise = np.take(y, j, axis=-1)
    rise -= np.take(y, i, axis=-1)
    # In place when the quotient keeps rise's dtype (the values of rise / dx).
    slopes = np.divide(rise, dx, out=rise) if rise.dtype == np.result_type(rise, dx) \
        else rise / dx
    slope = nanmedian_last(slopes, overwrite_input=True)
    intercept = nanmedian_last(y - slope[..., None] * x, overwrite_input=True)
    enough = np.sum(~np.isnan(y), axis=-1) >= min_points
    return np.where(enough, slope, np.nan), np.where(enough, intercept, np.nan)
