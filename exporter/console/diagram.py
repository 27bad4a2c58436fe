"""Persistence diagram, barcode and Betti curve of one entity's current window, on demand.

The snapshot carries Betti numbers and entropies, not diagrams (they would cost memory for
every entity every cycle), so the entity view recomputes the one diagram it shows with the
topology stage's own building blocks: robust normalisation (exporter.tda.embedding), the
configured delay embedding, pooling to `max_points` (+ the anchor) and Rips H0/H1 with ripser
(exporter.tda.persistence.rips_diagram). Normalisation uses the window's own robust statistics,
not the entity's learned baseline (which the snapshot does not carry), so the diagram can
differ slightly from the one the stage scored. One 60-point cloud costs a few milliseconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from exporter.config import TopologyConfig
from exporter.tda.embedding import delay_embed, normalise, pack_clouds, robust_stats
from exporter.tda.persistence import rips_diagram

CURVE_POINTS = 48


def entity_diagram(values: np.ndarray, cfg: TopologyConfig) -> dict[str, Any]:
    """values [S, T] of one entity -> {h0: [[0, death]], h1: [[birth, death]], betti_curve}.

    `betti_curve` = {scale: [CURVE_POINTS], b0, b1}: the Betti numbers at each filtration scale
    (the infinite H0 bar counts as one component everywhere). Too few finite points: empty
    bars and an empty curve.
    """
    v = np.asarray(values, dtype=np.float64)[None]
    center, scale = robust_stats(v)
    z = normalise(v, center, scale)
    clouds = pack_clouds(delay_embed(z, cfg.embedding_dimension, cfg.embedding_delay),
                         cfg.max_points, cfg.min_points, cfg.anchor)
    n = int(clouds.counts[0])
    if n < 2:
        return {"h0": [], "h1": [], "betti_curve": {"scale": [], "b0": [], "b1": []}}
    h0, h1 = rips_diagram(clouds.points[0, :n])
    top = max(float(h0.max()) if len(h0) else 0.0, float(h1[:, 1].max()) if len(h1) else 0.0)
    grid = np.linspace(0.0, top * 1.05 if top > 0 else 1.0, CURVE_POINTS)
    b0 = 1 + (h0[None, :] > grid[:, None]).sum(axis=1)
    b1 = ((h1[None, :, 0] <= grid[:, None]) & (h1[None, :, 1] > grid[:, None])).sum(axis=1)
    return {
        "h0": [[0.0, round(float(d), 4)] for d in h0],
        "h1": [[round(float(b), 4), round(float(d), 4)] for b, d in h1],
        "betti_curve": {"scale": [round(float(s), 4) for s in grid], "b0": b0.tolist(),
                        "b1": b1.tolist()},
    }
