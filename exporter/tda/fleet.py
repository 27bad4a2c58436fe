"""Topology of the fleet: entities as points (their current feature vectors, robustly scaled).

- Columns are scaled by the fleet's median and floored IQR (`numeric.median_iqr`), so no
  feature dominates and a few extreme entities do not set the scale.
- Betti numbers of the fleet come from Rips persistence of at most `FLEET_POINTS` entities
  (a stable subsample by label hash: PH is ~N^2 and the fleet shape needs no more), read at the
  fleet's own calibrated scale (the Tukey fence of its H0 deaths, as for entities): β0 = groups
  of entities that behave differently, β1 = loops.
- Outlier score per entity: r = distance to its k-th nearest peer / the fleet's median of
  that distance; score = 1 - 1/r for r > 1 else 0 (0 = as close to peers as is typical,
  0.5 = twice as far, 0.9 = ten times). Fewer than `MIN_FLEET` entities: NaN.
"""

from __future__ import annotations

import numpy as np

from exporter.numeric import median_iqr
from exporter.tda.features import connectivity_scale
from exporter.tda.rips import rips_diagram

FLEET_POINTS = 256
MIN_FLEET = 5
KNN = 5


class FleetTopology:
    """Estimator: feature vectors [E, K] -> fleet Betti numbers and per-entity outlier scores.

    `fit(features, order)` learns `betti_` [2] and `outlier_` [E]; `order` is a stable per-entity
    key (e.g. label hashes) choosing the subsample. `transform()` returns them (fitted check).
    betti=False leaves `betti_` NaN (its Rips diagram is most of the cost; replays skip it).
    """

    def __init__(self, max_points: int = FLEET_POINTS, k: int = KNN, betti: bool = True):
        self.max_points = max_points
        self.k = k
        self.betti = betti

    def fit(self, features: np.ndarray, order: np.ndarray | None = None) -> FleetTopology:
        """Learn `betti_` [2] and `outlier_` [E] from features [E, K] (rows with a NaN are
        left out and get NaN; fewer than MIN_FLEET known rows: all NaN). `order` [E]: the
        stable keys choosing the FLEET_POINTS subsample of the Betti numbers."""
        from scipy.spatial.distance import cdist

        e = len(features)
        self.betti_ = np.full(2, np.nan)
        self.outlier_ = np.full(e, np.nan)
        known = np.isfinite(features).all(axis=1) if e else np.zeros(0, dtype=bool)
        x = features[known]
        if len(x) < MIN_FLEET:
            return self
        med, scale = median_iqr(x)
        z = (x - med) / scale
        keys = order[known] if order is not None else np.arange(len(x))
        sample = np.argsort(keys, kind="stable")[: self.max_points]
        if self.betti:
            h0, h1 = rips_diagram(z[sample])
            eps = connectivity_scale(h0)
            self.betti_ = np.array([
                1.0 + float((h0 > eps).sum()),
                float(((h1[:, 0] <= eps) & (h1[:, 1] > eps)).sum()) if len(h1) else 0.0,
            ])
        ref = z[sample]
        k = min(self.k, len(ref) - 1)
        dist = np.sort(cdist(z, ref), axis=1)
        # An entity in the sample sees itself at distance 0: skip one neighbour for those.
        in_sample = np.zeros(len(z), dtype=bool)
        in_sample[sample] = True
        kth = np.where(in_sample, dist[:, min(k, dist.shape[1] - 1)], dist[:, k - 1])
        typical = np.median(kth)
        ratio = kth / typical if typical > 0 else np.where(kth > 0, np.inf, 1.0)
        with np.errstate(divide="ignore"):
            score = np.where(ratio > 1, 1.0 - 1.0 / ratio, 0.0)
        self.outlier_[known] = score
        return self

    def transform(self) -> tuple[np.ndarray, np.ndarray]:
        """(betti_ [2], outlier_ [E] in 0..1); RuntimeError before `fit`."""
        if not hasattr(self, "betti_"):
            raise RuntimeError("FleetTopology is not fitted: call fit() first")
        return self.betti_, self.outlier_
