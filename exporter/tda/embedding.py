"""Point clouds from entity windows: robust normalisation, delay embedding, missing samples.

Shape of the chain (giotto-tda's time-series chain, over ripser): a window values[E, S, T] is
turned into one point cloud per entity, each time step a point in R^S (R^(S*dimension) with a
delay embedding). Choices, and why:

- Per-signal robust normalisation `z = (x - median) / sigma` against the entity's OWN
  healthy baseline once one exists, the window's own robust statistics before. Signals of
  different units then weigh alike, and scale changes relative to the baseline (more noise,
  a trend) change the distances the Rips filtration sees. `sigma` is the largest of the IQR,
  the 10-90 % range and the mean absolute deviation, each scaled to a normal sigma
  (`exporter.numeric.max_spread_sigma`): the IQR alone is 0 for a sparse signal (an error
  counter that is 0 but for a few events) and one event then normalised to ~1e7.
- z is clipped to +-Z_CLIP (10): beyond that, how far out a signal is says nothing more, and
  an unclipped signal drowns every other one in the distances.
- The scale is floored (`1e-3 * |median| + 1e-9`): a constant signal must not blow up.
- Anchor point (`TopologyConfig.anchor`, default on): the baseline centre (the origin in z
  space) is added as one extra point. A Rips diagram is translation invariant, so without it a
  pure level shift (a leak that plateaued) would be invisible; with it the shift appears as one
  long H0 bar (the anchor joins the cloud late). Before a baseline exists the centre is the
  window's own median, which sits inside the cloud and adds nothing.
- Missing samples: a time step with any NaN signal is dropped (imputing would invent points on
  straight lines, i.e. spurious structure). Entities with fewer than `min_points` finite
  points give no cloud (count 0), and every later result for them is NaN ("unknown").
- Pooling to `max_points` (default 60): a longer run of points is cut into `max_points`
  contiguous groups of (nearly) equal size and each group becomes its mean (120 steps -> 60
  means of 2 consecutive steps). Means rather than dropped steps: level and trend of every
  signal are kept exactly (a linear trend stays linear, the window mean is unchanged), only the
  step-to-step noise shrinks by ~sqrt(2), alike for the baseline and the live window, so scores
  compare like with like. Why 60 and not 120: Rips PH costs ~N^2 (ripser H0+H1, d = 8:
  1.6 ms at N = 60 vs 7.3-8.5 ms at N = 120, shared/notes/performance.md) and was 96-98 % of a
  cycle. The anomaly score does not use these clouds but coarser ones of `score_points` means
  (`score_clouds`, exporter/tda/baseline.py explains why).
- Default embedding dimension 1 (no delay): with 8 signals the point cloud already lives in
  R^8. A delay embedding of dimension 2, delay 2 measured within noise of dimension 1 for the
  anomaly score when the score still used these clouds (eval_topology, 2026-11-25), for twice
  the dimension.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from exporter.numeric import clipped_z, max_spread_sigma, nan_percentile

# Normalised values are clipped to +-Z_CLIP robust sigmas: a signal far outside its baseline is
# anomalous whether it sits 10 or 10^7 sigmas out, and unclipped it would drown every other
# signal's contribution to the distances (see exporter.numeric.max_spread_sigma).
Z_CLIP = 10.0


class EmbeddingError(ValueError):
    """A window cannot be embedded (wrong shape, bad parameters)."""


@dataclass(frozen=True, eq=False)
class Clouds:
    """Packed point clouds: points[E, P, D] (rows beyond counts[e] are unused), counts[E]."""

    points: np.ndarray
    counts: np.ndarray

    def cloud(self, e: int) -> np.ndarray:
        """Entity e's cloud [counts[e], D] (a view, no copy)."""
        return self.points[e, : self.counts[e]]


def robust_stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and robust scale (`max_spread_sigma`) per entity and signal of values[E, S, T].

    NaN-aware; rows with no finite sample give NaN; scales are floored so constants stay finite.
    """
    # The sort path even without NaN: np.percentile's bits, ~4x faster (a renormalisation's
    # [1, S, ~4 000] reservoir points: 1.0 -> 0.25 ms).
    q10, q25, med, q75, q90 = nan_percentile(values, [10, 25, 50, 75, 90], axis=-1,
                                             always_sort=True)
    return med, max_spread_sigma(values, med, q10, q25, q75, q90)


def delay_embed(z: np.ndarray, dimension: int, delay: int) -> np.ndarray:
    """Takens embedding per entity: z[E, S, T] -> [E, T', S*dimension] with T' = T-(d-1)*delay."""
    if dimension < 1 or delay < 1:
        raise EmbeddingError(f"embedding dimension and delay must be >= 1, got {dimension}, {delay}")
    e, s, t = z.shape
    span = (dimension - 1) * delay
    if span >= t:
        return np.empty((e, 0, s * dimension))
    parts = [z[:, :, k * delay : t - span + k * delay] for k in range(dimension)]
    # [E, S*dim, T'] -> [E, T', S*dim]; the newest lag last so dimension 1 is plain z.
    return np.concatenate(parts, axis=1).transpose(0, 2, 1)


def pool_starts(n: int, max_points: int) -> np.ndarray:
    """Start indices of min(n, max_points) contiguous, nearly equal groups covering range(n)."""
    if n <= max_points:
        return np.arange(n)
    return np.round(np.linspace(0, n, max_points + 1)[:-1]).astype(np.int64)


@functools.lru_cache(maxsize=256)
def _pool_groups(n: int, max_points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(pool_starts [m], group sizes [m, 1] float64, the groups of two points [k] or None
    when some group has more), read-only: a replay pools thousands of rows of a few lengths,
    and building these per row was most of `pool_points`' cost."""
    starts = pool_starts(n, max_points)
    sizes = np.diff(np.append(starts, n)).astype(np.float64)[:, None]
    pairs = np.flatnonzero(sizes[:, 0] == 2.0) if n <= 2 * max_points else None
    for a in (starts, sizes, pairs):
        if a is not None:
            a.flags.writeable = False
    return starts, sizes, pairs


def pool_points(points: np.ndarray, max_points: int) -> np.ndarray:
    """Means of contiguous groups of points along axis -2: [..., n, D] -> [..., m, D]."""
    n = points.shape[-2]
    if n <= max_points:
        return points
    starts, sizes, pairs = _pool_groups(n, max_points)
    if pairs is None:
        return np.add.reduceat(points, starts, axis=-2) / sizes
    # Groups of one or two points (a window pooled to half its steps or more): reduceat's
    # sums, p0 and p0 + p1 (it starts from a group's first point and adds the rest), by one
    # addition (bits tested equal). reduceat runs its inner loop once per group and column:
    # a window of 120 steps pooled to 60 points, [96, 120, 8] as delay_embed lays it out,
    # 1.03 -> 0.14 ms.
    if 2 * len(starts) == n:  # every group a pair
        return (points[..., 0::2, :] + points[..., 1::2, :]) / sizes
    sums = points[..., starts, :]
    sums[..., pairs, :] += points[..., starts[pairs] + 1, :]
    return sums / sizes


def pack_clouds(
    points: np.ndarray, max_points: int, min_points: int, anchor: bool,
    absent: float = math.nan,
) -> Clouds:
    """Drop non-finite points, pool to max_points, add the anchor; points[E, T', D] -> Clouds.

    `min_points` applies to the finite points before pooling (what was observed). A
    coordinate with no finite value in an entity's whole window (a signal that host does not
    export, or not this window) is left out instead of dropping every point: it takes the
    value `absent` in that entity's cloud (NaN: in raw units, where `score_clouds` then puts
    it at the baseline centre; 0.0: in z space, the centre) and the other coordinates' points
    count as finite. An entity with no finite coordinate at all gets no cloud.
    """
    e, t, d = points.shape
    isfinite = np.isfinite(points)
    finite = isfinite.all(axis=2)
    present = isfinite.any(axis=1)  # [E, D]
    gone = ~present & present.any(axis=1, keepdims=True)  # absent coordinates of live rows
    if gone.any():
        points = np.where(gone[:, None, :], 0.0, points)
        finite = np.isfinite(points).all(axis=2)
    n_finite = finite.sum(axis=1)
    cap = min(max_points, t)
    out = np.zeros((e, cap + int(anchor), d))
    counts = np.zeros(e, dtype=np.int64)
    full = n_finite == t
    # Fast path for complete rows (the usual case): all rows pooled together, unmasked (rows
    # are independent), then the incomplete ones zeroed again.
    if full.any() and t >= min_points:
        with np.errstate(invalid="ignore"):  # inf - inf in a row dropped below
            pooled = pool_points(points, cap)
        out[:, : pooled.shape[1]] = pooled
        out[~full] = 0.0
        counts[full] = pooled.shape[1]
    # Rows with a missing point: their finite points, pooled together by finite count (rows
    # of one count share their groups; the same sums as row by row, tested).
    part = np.flatnonzero(~full & (n_finite >= min_points))
    for m in np.unique(n_finite[part]).tolist():
        rows = part[n_finite[part] == m]
        pooled = pool_points(points[rows][finite[rows]].reshape(len(rows), m, d), cap)
        out[rows, : pooled.shape[1]] = pooled
        counts[rows] = pooled.shape[1]
    counts[n_finite < min_points] = 0
    if gone.any():
        rows, cols = np.nonzero(gone)
        out[rows, :, cols] = absent  # pooled zeros -> `absent` (anchor included: the centre)
        if math.isnan(absent) and anchor:
            out[rows, -1, cols] = 0.0
    if anchor:
        # The anchor is the origin of z space (the baseline centre), after each cloud's
        # points: out is zero there already.
        counts[counts > 0] += 1
    return Clouds(out, counts)


def score_clouds(raw: Clouds, center: np.ndarray, scale: np.ndarray) -> Clouds:
    """Coarse clouds in raw units [E, P, S] -> normalised, clipped and anchored [E, P+1, S].

    The anomaly score's clouds (see exporter/tda/baseline.py): the baseline keeps each admitted
    window's coarse cloud in raw units, so it can be normalised again when the entity's
    normalisation is re-estimated; live windows go through this same function.
    """
    e, p, s = raw.points.shape
    out = np.zeros((e, p + 1, s))
    z = clipped_z(raw.points, center[:, None, :], scale[:, None, :], Z_CLIP)
    live = np.arange(p)[None, :] < raw.counts[:, None]
    out[:, :p][live] = z[live]
    # The anchor (the baseline centre, the origin) after each cloud's points; zeros already.
    counts = np.where(raw.counts > 0, raw.counts + 1, 0)
    return Clouds(np.nan_to_num(out), counts)


def normalise(values: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """z = (x - center) / scale with center, scale [E, S], clipped to +-Z_CLIP (NaN stays)."""
    return clipped_z(values, center[..., None], scale[..., None], Z_CLIP)


# Takens parameters for one-signal analyses (`takens_parameters`): bounds keep the clouds small.
TAKENS_MAX_DIMENSION = 3
AMI_BINS = 8
FNN_RATIO = 10.0  # Kennel et al. 1992: R_tol
FNN_FRACTION = 0.1


def takens_parameters(x: np.ndarray, max_dimension: int = TAKENS_MAX_DIMENSION
                      ) -> tuple[int, int]:
    """Delay and dimension of a Takens embedding chosen from windows x[E, T] of one signal.

    delay: the first local minimum over lags of the average mutual information between
    x_t and x_{t+lag} (Fraser & Swinney 1986), quantile-binned into AMI_BINS per window
    and averaged over windows; lags up to T // (4 * (max_dimension - 1)) so the embedded
    cloud keeps >= half the window. dimension: the smallest m <= max_dimension whose false
    nearest neighbours fraction going to m + 1 is below FNN_FRACTION (Kennel, Brown &
    Abarbanel 1992). Windows with fewer than 8 distinct finite values are ignored; with none
    left (or T too short) returns (1, 1): no embedding.

    Returns (dimension, delay).
    """
    from scipy.spatial.distance import cdist

    x = np.asarray(x, dtype=np.float64)
    t = x.shape[1]
    max_lag = t // (4 * max(max_dimension - 1, 1))
    rows = [r for r in x if np.isfinite(r).all() and len(np.unique(r)) >= 8][:64]
    if not rows or max_lag < 1 or max_dimension < 2:
        return 1, 1
    ami = np.zeros(max_lag + 1)
    for r in rows:
        ranks = np.argsort(np.argsort(r, kind="stable"), kind="stable")
        b = (ranks * AMI_BINS) // t
        for lag in range(1, max_lag + 1):
            joint = np.zeros((AMI_BINS, AMI_BINS))
            np.add.at(joint, (b[:-lag], b[lag:]), 1.0)
            joint /= joint.sum()
            pa, pb = joint.sum(axis=1), joint.sum(axis=0)
            nz = joint > 0
            ami[lag] += float((joint[nz] * np.log(joint[nz] / np.outer(pa, pb)[nz])).sum())
    delay = max_lag
    for lag in range(1, max_lag):
        if ami[lag] < ami[lag + 1]:
            delay = lag
            break
    for m in range(1, max_dimension):
        false = total = 0
        for r in rows:
            n = t - m * delay
            if n < 4:
                continue
            emb = np.stack([r[k * delay : k * delay + n] for k in range(m)], axis=1)
            d = cdist(emb, emb)
            np.fill_diagonal(d, np.inf)
            nn = np.argmin(d, axis=1)
            near = d[np.arange(n), nn]
            extra = np.abs(r[m * delay : m * delay + n] - r[m * delay + nn])
            ok = near > 0
            false += int((extra[ok] / near[ok] > FNN_RATIO).sum())
            total += int(ok.sum())
        if total and false / total < FNN_FRACTION:
            return max(m, 2), delay  # one signal: at least a plane (H1 needs it)
    return max_dimension, delay
