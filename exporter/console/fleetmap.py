"""The fleet topology map: each entity's topology feature vector projected to 2-D.

Principal component analysis (numpy SVD) of the features scaled per column by the fleet's
median and IQR (floored at 1e-9, the same robust scaling as exporter.tda.fleet), so no feature
dominates and a few extreme entities do not set the scale. Each component's sign is fixed so
its largest loading is positive: the map does not flip between cycles. Entities without
features (no cloud, warming up) get no position. Outliers are the entities the topology
stage's fleet outlier score puts at least twice as far from their peers as is typical
(score >= 0.5, see exporter.tda.fleet).
"""

from __future__ import annotations

import numpy as np

OUTLIER_SCORE = 0.5


def embed(features: np.ndarray) -> np.ndarray:
    """features [E, K] -> positions [E, 2] scaled to 0..1 per axis; NaN rows stay NaN.

    Fewer than 3 usable entities: every position NaN.
    """
    features = np.asarray(features, dtype=np.float64)
    e = features.shape[0]
    out = np.full((e, 2), np.nan)
    ok = np.isfinite(features).all(axis=1) if features.ndim == 2 and features.shape[1] else \
        np.zeros(e, dtype=bool)
    if ok.sum() < 3:
        return out
    x = features[ok]
    med = np.median(x, axis=0)
    iqr = np.subtract(*np.percentile(x, [75, 25], axis=0))
    z = (x - med) / np.maximum(iqr, 1e-9)
    z = z - z.mean(axis=0)
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    comps = vt[:2]
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    proj = z @ (comps * signs[:, None]).T
    if proj.shape[1] < 2:
        proj = np.column_stack([proj, np.zeros(len(proj))])
    lo, hi = proj.min(axis=0), proj.max(axis=0)
    out[ok] = (proj - lo) / np.where(hi > lo, hi - lo, 1.0)
    return out


def outliers(fleet_outlier: np.ndarray) -> np.ndarray:
    """[E] bool: the fleet outlier score is at least OUTLIER_SCORE (NaN: not an outlier)."""
    return np.nan_to_num(np.asarray(fleet_outlier, dtype=np.float64), nan=0.0) >= OUTLIER_SCORE
