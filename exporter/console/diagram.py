"""Persistence diagrams of one entity's current window, and of its own baseline, on demand.

`entity_diagram`: the diagram, barcode and Betti curve of the window's feature cloud.
`baseline_diagrams`: the *score* diagrams (what the anomaly score compares, see
exporter/tda/baseline.py) of the current window and of a representative window of the
entity's own reservoir (its medoid, `BaselineStore.view`), in the same robust units.

The snapshot carries Betti numbers and entropies, not diagrams (they would cost memory for
every entity every cycle), so the entity view recomputes the one diagram it shows with the
topology stage's own building blocks: robust normalisation (exporter.tda.embedding), the
configured delay embedding, pooling to `max_points` (+ the anchor) and Rips H0/H1 with ripser
(exporter.tda.rips.rips_diagram). Normalisation uses the window's own robust statistics,
not the entity's learned baseline, so the diagram can differ slightly from the one the
stage computed. One 60-point cloud costs a few milliseconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from exporter.config import TopologyConfig
from exporter.tda.baseline import BaselineView
from exporter.tda.embedding import delay_embed, normalise, pack_clouds, robust_stats
from exporter.tda.persistence import Diagram, rips_diagram


def entity_diagram(values: np.ndarray, cfg: TopologyConfig) -> dict[str, Any]:
    """values [S, T] of one entity -> {h0: [[0, death]], h1: [[birth, death]], betti_curve}.

    `betti_curve` = {scale: [P], b0: [P], b1: [P]}: the Betti numbers as exact step functions
    of the filtration scale (robust units): at scale[i] they step to b0[i], b1[i] and hold
    until scale[i + 1] (right-continuous: a bar [b, d) counts at b, not at d); the steps are
    every birth and death, from 0 to 5 % past the last death. Counts, so integers >= 0 (the
    infinite H0 bar counts as one component everywhere). Too few finite points: empty bars
    and an empty curve.
    """
    v = np.asarray(values, dtype=np.float64)[None]
    center, scale = robust_stats(v)
    z = normalise(v, center, scale)
    clouds = pack_clouds(delay_embed(z, cfg.embedding_dimension, cfg.embedding_delay),
                         cfg.max_points, cfg.min_points, cfg.anchor, absent=0.0)
    n = int(clouds.counts[0])
    if n < 2:
        return {"h0": [], "h1": [], "betti_curve": {"scale": [], "b0": [], "b1": []}}
    h0, h1 = rips_diagram(clouds.points[0, :n])
    top = max(float(h0.max()) if len(h0) else 0.0, float(h1[:, 1].max()) if len(h1) else 0.0)
    # Sampled on a fixed grid, a curve drawn point to point slanted between samples and
    # missed short bars; the steps are exact (at the 4 decimals the bars are sent with).
    h0, h1 = np.round(h0, 4), np.round(h1, 4)
    grid = np.unique(np.round(np.concatenate([[0.0, top * 1.05 if top > 0 else 1.0], h0,
                                              h1.ravel()]), 4))
    b0 = 1 + (h0[None, :] > grid[:, None]).sum(axis=1)
    b1 = ((h1[None, :, 0] <= grid[:, None]) & (h1[None, :, 1] > grid[:, None])).sum(axis=1)
    return {
        "h0": [[0.0, round(float(d), 4)] for d in h0],
        "h1": [[round(float(b), 4), round(float(d), 4)] for b, d in h1],
        "betti_curve": {"scale": grid.tolist(), "b0": b0.tolist(),
                        "b1": b1.tolist()},
    }


def _pairs(dgm: Diagram) -> dict[str, list[list[float]]]:
    h0, h1 = dgm
    return {"h0": [[0.0, round(float(d), 4)] for d in h0],
            "h1": [[round(float(b), 4), round(float(d), 4)] for b, d in h1]}


def _score_diagram(cloud: np.ndarray, center: np.ndarray, scale: np.ndarray) -> Diagram:
    """Rips diagram of one coarse cloud [P, S] (raw units) as the score sees it: normalised,
    clipped and anchored at the baseline centre (embedding.score_clouds)."""
    from exporter.tda.embedding import Clouds, score_clouds

    clouds = score_clouds(Clouds(cloud[None], np.array([len(cloud)])), center[None],
                          scale[None])
    return rips_diagram(clouds.points[0, : int(clouds.counts[0])])


def baseline_diagrams(view: BaselineView, values: np.ndarray,
                      cfg: TopologyConfig) -> dict[str, Any]:
    """The entity's own baseline for its page: reservoir size and the two score diagrams.

    values [S, T]: the current window. Returns {windows, first, last, fitted, at, current,
    baseline, stored, recomputed}: `baseline` = the representative reservoir window's score
    diagram ({h0: [[0, death]], h1: [[birth, death]]}) and `current` = the current window's,
    both under the entity's normalisation in use now (`recomputed`: True), so they share units
    (a stored diagram keeps the normalisation of its admission); `stored` = the counts of
    H0 and H1 points of the diagram the reservoir stores. One-signal analyses score a delay
    embedding the reservoir does not keep: `baseline` is the stored diagram and `current`
    None (`recomputed`: False). A few milliseconds (two 13-point Rips diagrams).
    """
    v = np.asarray(values, dtype=np.float64)
    out: dict[str, Any] = {
        "windows": view.windows, "first": round(view.first, 1), "last": round(view.last, 1),
        "fitted": view.fitted, "at": round(view.at, 1),
        "stored": {"h0": len(view.diagram[0]), "h1": len(view.diagram[1])},
        "current": None, "baseline": _pairs(view.diagram), "recomputed": False,
    }
    usable = (v.shape[0] > 1 and len(view.cloud) > 0 and np.isfinite(view.center).all()
              and np.isfinite(view.scale).all())
    if not usable:
        return out
    coarse = pack_clouds(v.T[None], cfg.score_points, cfg.min_points, False)
    if coarse.counts[0] > 0:
        out["current"] = _pairs(_score_diagram(coarse.cloud(0), view.center, view.scale))
    out["baseline"] = _pairs(_score_diagram(view.cloud, view.center, view.scale))
    out["recomputed"] = True
    return out
