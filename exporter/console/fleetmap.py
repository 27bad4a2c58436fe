"""The fleet topology map: each entity's topology feature vector projected to 2-D.

Principal component analysis (numpy SVD) of the features scaled per column by the fleet's
median and IQR (exporter.numeric.median_iqr, as exporter.tda.fleet scales them), so no feature
dominates and a few extreme entities do not set the scale. Each component's sign is fixed so
its largest loading is positive: the map does not flip between cycles. The axes are fitted on
the entities that are not outliers (else the first component is just "the outlier versus the
rest"), which span 0.1..0.9; outliers are projected onto them and clipped to the edges. Entities without
features (no cloud, warming up) get no position. Outliers are the entities the topology
stage's fleet outlier score puts at least twice as far from their peers as is typical
(score >= 0.5, see exporter.tda.fleet).
"""

from __future__ import annotations

import numpy as np

from exporter.numeric import median_iqr

OUTLIER_SCORE = 0.5


def embed(features: np.ndarray, fit: np.ndarray | None = None) -> np.ndarray:
    """features [E, K] -> positions [E, 2] in 0..1 (see the module docstring); NaN rows stay NaN.

    `fit` [E] bool: the entities that define the axes (default: all); the others are
    projected onto them. Fewer than 3 usable entities: every position NaN.
    """
    features = np.asarray(features, dtype=np.float64)
    e = features.shape[0]
    out = np.full((e, 2), np.nan)
    ok = np.isfinite(features).all(axis=1) if features.ndim == 2 and features.shape[1] else \
        np.zeros(e, dtype=bool)
    base = ok & (np.ones(e, dtype=bool) if fit is None else np.asarray(fit, dtype=bool))
    if base.sum() < 3:
        base = ok
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
    # The entities that define the axes span 0.1..0.9; the rest is clipped to the edges: with
    # a plain min-max scale one far outlier squeezed the whole fleet into a corner.
    ref = proj[base[ok]]
    lo, hi = ref.min(axis=0), ref.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    out[ok] = np.clip(0.1 + 0.8 * (proj - lo) / span, 0.0, 1.0)
    return out


def outliers(fleet_outlier: np.ndarray) -> np.ndarray:
    """[E] bool: the fleet outlier score is at least OUTLIER_SCORE (NaN: not an outlier)."""
    return np.nan_to_num(np.asarray(fleet_outlier, dtype=np.float64), nan=0.0) >= OUTLIER_SCORE
