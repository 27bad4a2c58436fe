"""The fleet topology map: each entity's topology feature vector projected to 2-D, its
clusters and its outliers.

Projection: principal component analysis (numpy SVD) of the features scaled per column by the
fleet's median and IQR (exporter.numeric.median_iqr, as exporter.tda.fleet scales them), so no
feature dominates and a few extreme entities do not set the scale. Each component's sign is
fixed so its largest loading is positive: the map does not flip between cycles. The axes are
fitted on the entities that are not outliers (else the first component is just "the outlier
versus the rest"), which span the inner frame INNER_LO..INNER_HI of the 0..1 map. Anything
projected beyond the frame (the outliers, mostly) is drawn in the margin around it on a
compressed scale (a broken axis: distance d beyond the frame, in frame widths, lands at
MARGIN * d / (d + 0.25) past its edge, so nothing reaches the map's border and the order along
each axis is kept). Entities without features (no cloud, warming up) get no position.

Outliers are the entities the topology stage's fleet outlier score puts at least twice as far
from their peers as is typical (score >= 0.5, see exporter.tda.fleet).

Clusters: k-means (scikit-learn, Lloyd) on the two components of the non-outliers, with k
chosen from 2..MAX_CLUSTERS by the largest mean silhouette (Rousseeuw 1987) on a fixed-seed
sample of at most SAMPLE entities; when even the best silhouette is below MIN_SILHOUETTE
(Kaufman & Rousseeuw's "no substantial structure" bound) the fleet is one cluster. On the
components, not the raw features, so that what is marked is what the reader sees grouped, but
before each axis is stretched to the frame (that stretch turns the noise along a weak second
component into apparent groups); by
k-means with a data-chosen k rather than DBSCAN because DBSCAN's radius would need tuning per
fleet density and its neighbour lists grow with the square of a dense group's size. Cost at
10 000 entities: ~30 ms of one core per cycle (fitted on the sample, the rest assigned to the
nearest centre), paid when the fleet state is built (console.live), not per request.
"""

from __future__ import annotations

import numpy as np

from exporter.numeric import median_iqr

OUTLIER_SCORE = 0.5
INNER_LO, INNER_HI = 0.12, 0.88  # the frame the non-outliers span
MARGIN = 0.10  # the compressed band outside the frame (positions stay in 0.02..0.98)
MAX_CLUSTERS = 5
MIN_SILHOUETTE = 0.5
SAMPLE = 600


def embed(features: np.ndarray, fit: np.ndarray | None = None) -> np.ndarray:
    """features [E, K] -> positions [E, 2] in 0..1 (see the module docstring); NaN rows stay NaN.

    `fit` [E] bool: the entities that define the axes (default: all); the others are
    projected onto them. Fewer than 3 usable entities: every position NaN.
    """
    return place(project(features, fit), fit)


def _usable(x: np.ndarray, fit: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    e = x.shape[0]
    ok = np.isfinite(x).all(axis=1) if x.ndim == 2 and x.shape[1] else np.zeros(e, dtype=bool)
    base = ok & (np.ones(e, dtype=bool) if fit is None else np.asarray(fit, dtype=bool))
    if base.sum() < 3:
        base = ok
    return ok, base


def project(features: np.ndarray, fit: np.ndarray | None = None) -> np.ndarray:
    """features [E, K] -> the first two principal components [E, 2] in scaled feature units
    (the same unit on both axes: what `clusters` groups), NaN for rows that have none."""
    features = np.asarray(features, dtype=np.float64)
    e = features.shape[0]
    out = np.full((e, 2), np.nan)
    ok, base = _usable(features, fit)
    if base.sum() < 3:
        return out
    x = features[base]
    med, scale = median_iqr(x)
    z = (x - med) / scale
    mean = z.mean(axis=0)
    _, _, vt = np.linalg.svd(z - mean, full_matrices=False)
    comps = vt[:2]
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    comps = comps * signs[:, None]
    proj = ((features[ok] - med) / scale - mean) @ comps.T
    if proj.shape[1] < 2:
        proj = np.column_stack([proj, np.zeros(len(proj))])
    out[ok] = proj
    return out


def place(projected: np.ndarray, fit: np.ndarray | None = None) -> np.ndarray:
    """`project`'s components [E, 2] -> map positions [E, 2] in 0..1 (each axis scaled so the
    `fit` entities fill the frame, the rest on the broken axis; see the module docstring)."""
    projected = np.asarray(projected, dtype=np.float64)
    ok, base = _usable(projected, fit)
    out = np.full(projected.shape, np.nan)
    if base.sum() < 3:
        return out
    proj = projected[ok]
    # The entities that define the axes fill the frame; the rest goes into the compressed
    # margin: with a plain min-max scale one far outlier squeezed the fleet into a corner.
    ref = proj[base[ok]]
    lo, hi = ref.min(axis=0), ref.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    out[ok] = _broken_axis((proj - lo) / span)
    return out


def _broken_axis(u: np.ndarray) -> np.ndarray:
    """Frame units (0..1 = the frame) -> map units: linear inside, compressed outside."""
    width = INNER_HI - INNER_LO
    below, above = np.maximum(-u, 0.0), np.maximum(u - 1.0, 0.0)
    return (INNER_LO + width * np.clip(u, 0.0, 1.0) - MARGIN * below / (below + 0.25)
            + MARGIN * above / (above + 0.25))


def outliers(fleet_outlier: np.ndarray) -> np.ndarray:
    """[E] bool: the fleet outlier score is at least OUTLIER_SCORE (NaN: not an outlier)."""
    return np.nan_to_num(np.asarray(fleet_outlier, dtype=np.float64), nan=0.0) >= OUTLIER_SCORE


def clusters(positions: np.ndarray, member: np.ndarray | None = None) -> np.ndarray:
    """positions [E, 2] (`project`'s), member [E] bool (default: all) -> [E] int cluster 0..k-1,
    -1 for entities without a position or not members (the outliers).

    Clusters are numbered by their centre's x, then y (stable between cycles while the groups
    stay where they are). Fewer than 2 * MAX_CLUSTERS members: one cluster. See the module
    docstring for the method.
    """
    from sklearn.cluster import KMeans  # imported on first use: ~0.5 s, only with a console
    from sklearn.metrics import silhouette_score
    from threadpoolctl import threadpool_limits

    pos = np.asarray(positions, dtype=np.float64)
    e = len(pos)
    use = np.isfinite(pos).all(axis=1) if pos.ndim == 2 else np.zeros(e, dtype=bool)
    if member is not None:
        use &= np.asarray(member, dtype=bool)
    out = np.full(e, -1, dtype=np.int64)
    x = pos[use]
    if len(x) < 2 * MAX_CLUSTERS or np.ptp(x, axis=0).max() == 0:
        out[use] = 0
        return out
    rng = np.random.default_rng(0)
    sample = x if len(x) <= SAMPLE else x[rng.choice(len(x), SAMPLE, replace=False)]
    best: tuple[float, KMeans | None] = (MIN_SILHOUETTE, None)
    # One thread: OpenMP's default team on a busy 2-core machine made each fit ~20x slower.
    with threadpool_limits(1):
        for k in range(2, MAX_CLUSTERS + 1):
            km = KMeans(k, n_init=2, random_state=0).fit(sample)
            if len(set(km.labels_.tolist())) < 2:
                continue
            score = float(silhouette_score(sample, km.labels_))
            if score > best[0]:
                best = (score, km)
        km = best[1]
        if km is None:
            out[use] = 0
            return out
        labels = km.predict(x)
    centres = km.cluster_centers_
    order = np.lexsort((centres[:, 1], centres[:, 0]))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    out[use] = rank[labels]
    return out
