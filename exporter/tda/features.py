"""Diagram features per entity, vectorised across entities: Betti numbers at a calibrated scale,
persistence entropy, total persistence, longest bars, persistence-landscape norms (Gidea & Katz),
and a few window statistics the forecast model finds useful.

Calibrated scale (`connectivity_scale`): `SCALE_FACTOR` (8) times the median H0 death (= the
typical Rips MST edge, the neighbour spacing) — the median of the entity's healthy baseline
windows' median H0 deaths once it has some, of the current window before. At that scale a
healthy window is one connected component; β0 > 1 counts gaps 8x wider than the usual spacing
(regime jumps, a level shift away from the anchor), β1 counts loops still open at that scale
(cycles in signal space). Why 8 and a median: uniform samples have exponential gaps, whose
Tukey fence (Q3 + 1.5 IQR) is exceeded by ~5 % of the edges — a fence-based scale reported β0 ≈
6 on a noisy circle and missed its loop (measured, tests/test_tda_persistence.py); 8x the
median (5.5 mean gaps) is exceeded by ~0.4 % of exponential gaps and still sits well below
cluster gaps and loop deaths. The infinite H0 bar counts as one component at every scale.

Landscapes are sampled on `LANDSCAPE_GRID` points over [min birth, max death] of each H1
diagram; L1/L2 norms use the trapezoid rule (exact up to the grid; enough for ranking).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from exporter.numeric import IQR_TO_SIGMA, nan_percentile, nanmedian_last
from exporter.tda.rips import Diagram, h0_deaths

DIAGRAM_FEATURES = (
    "betti_0",
    "betti_1",
    "entropy_0",
    "entropy_1",
    "total_persistence_0",
    "total_persistence_1",
    "max_lifetime_0",
    "max_lifetime_1",
    "landscape_1_l1",
    "landscape_1_l2",
    "landscape_2_l1",
    "scale",
)
WINDOW_FEATURES = ("level", "spread", "trend", "roughness", "missing_ratio")
# Raw-value percentiles computed once per window: quartiles (normalisation, window features)
# and deciles (baseline contributions).
WINDOW_PERCENTILES = (10.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 90.0)
FEATURE_NAMES = DIAGRAM_FEATURES + WINDOW_FEATURES

LANDSCAPE_GRID = 48
SCALE_FACTOR = 8.0
# Rows per block of `_landscapes`: its [rows, LANDSCAPE_GRID, bars] temporaries set a pool
# worker's peak (same values whatever the block).
_CHUNK = 64


def connectivity_scale(h0_deaths: np.ndarray) -> float:
    """SCALE_FACTOR x the median H0 death; 0 when there are none (one point or a constant)."""
    h0_deaths = h0_deaths[np.isfinite(h0_deaths)]
    if len(h0_deaths) == 0:
        return 0.0
    # np.median's value (the middle order statistics' mean) without its per-call overhead
    # (~50 us; a replay's baseline refits take thousands of these).
    return float(SCALE_FACTOR * nanmedian_last(h0_deaths))


def median_h0_deaths(diagrams: Sequence[Diagram]) -> np.ndarray:
    """[E] median H0 death of each diagram, 0.0 for a diagram without H0 deaths: the values
    of np.median per diagram, from one sort of the NaN-padded deaths (a replay takes tens of
    thousands of these; np.median's per-call overhead was most of their cost)."""
    n0 = max((len(d[0]) for d in diagrams), default=0)
    h0 = np.full((len(diagrams), max(n0, 1)), np.nan)
    for i, d in enumerate(diagrams):
        h0[i, : len(d[0])] = d[0]
    med = nanmedian_last(h0)
    return np.where(np.array([len(d[0]) > 0 for d in diagrams], dtype=bool), med, 0.0)


def pad_diagrams(diagrams: Sequence[Diagram | None]) -> tuple[np.ndarray, np.ndarray]:
    """H0 deaths [E, N0] and H1 pairs [E, N1, 2], NaN-padded (rows of None entities all NaN)."""
    e = len(diagrams)
    n0 = max((len(d[0]) for d in diagrams if d is not None), default=0)
    n1 = max((len(d[1]) for d in diagrams if d is not None), default=0)
    h0 = np.full((e, max(n0, 1)), np.nan)
    h1 = np.full((e, max(n1, 1), 2), np.nan)
    for i, d in enumerate(diagrams):
        if d is not None:
            h0[i, : len(d[0])] = d[0]
            h1[i, : len(d[1])] = d[1]
    return h0, h1


def row_sum(x: np.ndarray) -> np.ndarray:
    """Sums of x[E, N] along rows, NaN counted as 0, added left to right: the same value
    whatever padding follows a row. (np.sum adds pairwise in an order set by the row length,
    so the padding width of a batch — which entities share it, how the pool chunked them —
    changed the last bits of an entity's features.)"""
    if x.shape[1] == 0:
        return np.zeros(len(x))
    return np.cumsum(np.where(np.isnan(x), 0.0, x), axis=1)[:, -1]


def _entropy(lifetimes: np.ndarray) -> np.ndarray:
    """Persistence entropy per row of NaN-padded lifetimes (0 for no bars)."""
    life = np.where(np.isfinite(lifetimes) & (lifetimes > 0), lifetimes, 0.0)
    total = row_sum(life)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(total > 0, life / total, 0.0)
        terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return row_sum(terms)


def _landscapes(h1: np.ndarray) -> np.ndarray:
    """[E, 3]: L1 and L2 norms of the first landscape, L1 norm of the second."""
    out = np.zeros((len(h1), 3))
    for a in range(0, len(h1), _CHUNK):
        chunk = h1[a : a + _CHUNK]
        b, d = chunk[..., 0], chunk[..., 1]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo = np.nanmin(b, axis=1)
            hi = np.nanmax(d, axis=1)
        ok = np.isfinite(lo) & np.isfinite(hi) & (hi > lo)
        if not ok.any():
            continue
        lo, hi = np.where(ok, lo, 0.0), np.where(ok, hi, 1.0)
        frac = np.linspace(0.0, 1.0, LANDSCAPE_GRID)
        grid = lo[:, None] + (hi - lo)[:, None] * frac[None, :]  # [e, G]
        tent = np.minimum(grid[:, :, None] - b[:, None, :], d[:, None, :] - grid[:, :, None])
        tent = np.where(np.isfinite(tent) & (tent > 0), tent, 0.0)  # [e, G, B]
        if tent.shape[2] >= 2:
            top2 = -np.partition(-tent, 1, axis=2)[:, :, :2]
            lam1 = top2[:, :, 0]
            lam2 = top2[:, :, 1]
        else:
            lam1, lam2 = tent[:, :, 0], np.zeros_like(tent[:, :, 0])
        dx = (hi - lo) / (LANDSCAPE_GRID - 1)
        l1 = np.trapezoid(lam1, axis=1) * dx
        l2 = np.sqrt(np.trapezoid(lam1 * lam1, axis=1) * dx)
        l1b = np.trapezoid(lam2, axis=1) * dx
        out[a : a + _CHUNK] = np.where(ok[:, None], np.stack([l1, l2, l1b], axis=1), 0.0)
    return out


# Columns of `scale_free_features`: what of `diagram_features` does not depend on the scale.
SCALE_FREE_FEATURES = ("median_h0_death",) + DIAGRAM_FEATURES[2:-1]


def scale_free_features(diagrams: Sequence[Diagram | None]) -> np.ndarray:
    """[E, len(SCALE_FREE_FEATURES)]: each diagram's median H0 death (NaN without deaths),
    entropies, total persistences, longest bars and landscape norms, the columns of
    `diagram_features` that need no scale. Row by row: a row's values do not depend on the
    other rows (the pool computes them for the clouds it speculates on; rows of None are
    meaningless)."""
    h0, h1 = pad_diagrams(diagrams)
    return _scale_free(h0, h1)


def _scale_free(h0: np.ndarray, h1: np.ndarray) -> np.ndarray:
    med = nanmedian_last(np.where(np.isfinite(h0), h0, np.nan))
    life0 = h0
    life1 = h1[..., 1] - h1[..., 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        max0 = np.nan_to_num(np.nanmax(life0, axis=1), nan=0.0)
        max1 = np.nan_to_num(np.nanmax(life1, axis=1), nan=0.0)
    return np.column_stack([
        med,
        _entropy(life0),
        _entropy(life1),
        row_sum(life0),
        row_sum(life1),
        max0,
        max1,
        _landscapes(h1),
    ])


def diagram_features(diagrams: Sequence[Diagram | None], scale: np.ndarray,
                     free: np.ndarray | None = None) -> np.ndarray:
    """[E, len(DIAGRAM_FEATURES)] features; rows of entities without a diagram are NaN.

    `scale` [E] is the calibrated scale for the Betti numbers (NaN: use the window's own).
    `free` [E, len(SCALE_FREE_FEATURES)]: the diagrams' `scale_free_features` when already
    computed (the same values, not recomputed).
    """
    e = len(diagrams)
    known = np.array([d is not None for d in diagrams], dtype=bool)
    h0, h1 = pad_diagrams(diagrams)
    if e == 0:
        return np.empty((0, len(DIAGRAM_FEATURES)))
    if free is None:
        free = _scale_free(h0, h1)
    # connectivity_scale of each row at once (the same medians: sorted finite deaths).
    med = free[:, 0]
    own = np.where(known, np.where(np.isnan(med), 0.0, SCALE_FACTOR * med), np.nan)
    eps = np.where(np.isfinite(scale), scale, own)
    with np.errstate(invalid="ignore"):
        betti0 = 1.0 + (h0 > eps[:, None]).sum(axis=1)
        betti1 = ((h1[..., 0] <= eps[:, None]) & (h1[..., 1] > eps[:, None])).sum(axis=1)
    feats = np.column_stack([betti0, betti1, free[:, 1:], eps])
    feats[~known] = np.nan
    return feats


def window_features(z: np.ndarray, values: np.ndarray,
                    zquartiles: np.ndarray | None = None) -> np.ndarray:
    """[E, len(WINDOW_FEATURES)] from normalised z[E, S, T] and raw values (for missingness).

    level: largest |median z| over signals (robust units from the baseline centre);
    spread: median over signals of the robust spread of z (1 = as in the baseline);
    trend: largest |least-squares slope| over signals, in z units per window;
    roughness: median over signals of mean |step-to-step change| of z;
    missing_ratio: share of missing samples.
    `zquartiles` [3, E, S] (25/50/75 % of z) may be passed when already known (they are an
    affine map of the raw quartiles): percentiles are the costliest part.
    """
    e, s, t = z.shape
    missing = np.isnan(z)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if zquartiles is None:
            zquartiles = nan_percentile(z, [25, 50, 75], axis=2)
        q25, med, q75 = zquartiles
        level = np.nanmax(np.abs(med), axis=1)
        spread = nanmedian_last((q75 - q25) / IQR_TO_SIGMA)
        # Least squares over the present samples: times and values centred on their means.
        # Rows without a gap share their times (their sums are computed once, the same
        # bits); only rows with one sum their own (sums of small integers: exact).
        ar = np.arange(t, dtype=np.float64)
        zz = np.where(missing, 0.0, z)
        n = t - np.count_nonzero(missing, axis=2)[..., None]
        gaps = n[..., 0] < t
        tsum = np.full((e, s, 1), ar.sum())
        tsum[gaps] = np.where(missing[gaps], 0.0, ar).sum(axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            # Centred values: zz (0 where missing) less the mean, then 0 where missing again
            # (the values of np.where(missing, 0, z - mean), one temporary fewer).
            zc = zz - zz.sum(axis=2, keepdims=True) / n
            np.copyto(zc, 0.0, where=missing)
            # Centred times: rows without a gap all have `full` (= ar - tsum / n there, the
            # same bits), so only gap rows build their own.
            full = ar - ar.sum() / t
            tss = np.full((e, s), (full * full).sum())
            prod = zc * full
            if gaps.any():
                tc = np.where(missing[gaps], 0.0, ar - tsum[gaps] / n[gaps])
                tss[gaps] = (tc * tc).sum(axis=-1)
                prod[gaps] = tc * zc[gaps]
            slope = prod.sum(axis=2) / tss
        trend = np.nanmax(np.abs(slope), axis=1) * t
        # Mean |step change| over the present steps: np.nanmean's arithmetic (NaN -> 0, sum,
        # divide by the count), in place on the one temporary.
        step = np.diff(z, axis=2)
        np.abs(step, out=step)
        gone = np.isnan(step)
        cnt = (t - 1) - np.count_nonzero(gone, axis=2)  # the present steps' count
        np.copyto(step, 0.0, where=gone)
        rough = nanmedian_last(np.divide(step.sum(axis=2), cnt))
    # The share of missing samples (bool mean: the count over s * t, exact integers).
    frac = np.count_nonzero(missing, axis=(1, 2)) / (s * t) if values.size else np.ones(e)
    return np.column_stack([level, spread, trend, rough, frac])


# Fixed-normalisation summary of a score diagram (clouds in the entity's robust units, clipped
# to +-Z_CLIP): Betti curves at fixed radii plus total persistence and the longest H0 bars.
SUMMARY_RADII = (0.5, 1.0, 2.0, 4.0, 8.0)
SUMMARY_TOP = 3
# Short scale: the newest RECENT_POINTS points of the score cloud with its anchor.
RECENT_POINTS = 3
SUMMARY_SIZE = 2 * len(SUMMARY_RADII) + 2 + SUMMARY_TOP + RECENT_POINTS


def recent_summaries(points: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """[E, RECENT_POINTS] H0 deaths (descending) of each score cloud's newest RECENT_POINTS
    points plus its anchor (the cloud's last point), NaN where a cloud is shorter.

    The second window scale: in the whole cloud the anchor's bar is its distance to the
    *nearest* of all points, so a departure of the last half hour stays hidden until the
    window has left the baseline; here it shows at once.
    """
    e = len(counts)
    out = np.full((e, RECENT_POINTS), np.nan)
    ok = counts > RECENT_POINTS
    if not ok.any():
        return out
    idx = counts[ok, None] - 1 - np.arange(RECENT_POINTS, -1, -1)[None, :]  # newest + anchor
    sub = np.take_along_axis(points[ok], idx[:, :, None], axis=1)
    out[ok] = h0_deaths(sub)
    return out


def summaries(diagrams: Sequence[Diagram | None],
              recent: np.ndarray | None = None) -> np.ndarray:
    """[E, SUMMARY_SIZE] vectors of diagrams; rows of entities without one are NaN.

    beta_0(r), beta_1(r) at SUMMARY_RADII (Betti curves, Umeda 2017; the infinite H0 bar
    not counted), H0/H1 total persistence and the SUMMARY_TOP longest H0 bars (the anchor's
    bar first when the window left its baseline). The radii are in robust units of the
    entity's own baseline, the same for every entity and window, so vectors compare by L1.
    recent [E, RECENT_POINTS]: the short scale (`recent_summaries`); zeros when None.
    """
    e = len(diagrams)
    known = np.array([d is not None for d in diagrams], dtype=bool)
    h0, h1 = pad_diagrams(diagrams)
    r = np.asarray(SUMMARY_RADII)
    with np.errstate(invalid="ignore"):
        b0 = (h0[:, :, None] > r).sum(axis=1)
        b1 = ((h1[:, :, 0, None] <= r) & (h1[:, :, 1, None] > r)).sum(axis=1)
    top = -np.sort(-np.nan_to_num(h0, nan=0.0), axis=1)[:, :SUMMARY_TOP]
    top = np.pad(top, [(0, 0), (0, SUMMARY_TOP - top.shape[1])])
    if recent is None:
        recent = np.zeros((e, RECENT_POINTS))
    out = np.column_stack([b0, b1, row_sum(h0),
                           row_sum(h1[..., 1] - h1[..., 0]), top,
                           recent]).astype(np.float64)
    out = out.reshape(e, SUMMARY_SIZE)
    out[~known] = np.nan
    return out
