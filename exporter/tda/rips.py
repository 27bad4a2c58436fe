"""Rips persistence diagram (H0 + H1) of one point cloud, and H0 of many small clouds at once.

- The distance matrix is computed by numpy broadcasting (no BLAS, exact differences; scipy's
  pdist had more call overhead than work on small clouds) and handed to ripser's compiled
  routine as the condensed float32 matrix `ripser.ripser` would pass it (`_rips_core`: same
  diagrams bit for bit, without the wrapper's scikit-learn import and per-call checks).
- The infinite H0 bar (every cloud has exactly one) is removed from the diagrams: every window
  of an entity has it, so it carries no information. Features that need it (Betti 0) count it
  explicitly as one component alive at every scale, i.e. it is capped at +inf for β0 and left
  out of entropy, total persistence and distances.
- Infinite H1 deaths only occur with a Rips `thresh`; they are capped at `thresh`.
- No `thresh` by default, and H0 from ripser rather than a separate minimum spanning tree
  (measured 2026-11-25 on 61-point clouds, d = 8, AR(1) windows, load ~3 on 2 cores): full
  H0+H1 3.6 ms, with `thresh` at the 20 / 30 / 50 % distance quantile 1.1 / 2.0 / 1.9 ms, and
  ripser's H0 alone 1.6 ms of fixed per-call cost. A threshold would cap H1 lifetimes (entropy,
  landscapes, distances change, diagrams no longer equal plain ripser's) for at most ~half of
  a cost that, after pooling clouds to 60 points (exporter/tda/embedding.py), is no longer the
  whole cycle; a separate MST for H0 only pays once H1 is thresholded (ripser's H0 is a
  union-find pass inside the same call). `rips_diagram(thresh=...)` stays available.
"""

from __future__ import annotations

import numpy as np

Diagram = tuple[np.ndarray, np.ndarray]  # (h0 deaths [n0], h1 pairs [n1, 2])


def _rips_core():  # type: ignore[no-untyped-def]
    """ripser.py's compiled Rips routine (`pyRipser.doRipsFiltrationDM`), or None.

    `ripser.ripser` is a thin Python wrapper around it; importing the wrapper imports
    scikit-learn (~2-3.5 s per process, measured: every pool worker and every backtest paid it)
    and its per-call checks cost ~0.1-0.3 ms, more than the PH of a 13-point score cloud.
    Called with the wrapper's exact argument (the condensed distance matrix in float32, row-
    major upper triangle) the diagrams are bit-identical (tests/test_tda_persistence.py).
    """
    global _CORE
    if _CORE is None:
        try:
            from pyRipser import doRipsFiltrationDM

            _CORE = doRipsFiltrationDM
        except ImportError:  # pragma: no cover - a ripser build without the module name
            _CORE = False
    return _CORE or None


_CORE = None
_TRIU: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def rips_diagram(points: np.ndarray, thresh: float | None = None) -> Diagram:
    """H0 deaths (finite) and H1 pairs of the Rips filtration of one cloud points[n, D].

    Computed by ripser (Bauer 2021, ripser.py: Tralie, Saul & Bar-On 2018) on the Euclidean
    distance matrix, through its compiled routine when available (`_rips_core`).
    """
    if len(points) < 2:
        return np.empty(0), np.empty((0, 2))
    # Pairwise Euclidean distances by broadcasting: for these small clouds scipy's
    # pdist + squareform cost more in call overhead than the arithmetic (~40 % of a 13-point
    # diagram's time, profiled in benchmarks/eval_anomaly.py).
    diff = points[:, None, :] - points[None, :, :]
    dist = np.sqrt((diff * diff).sum(axis=2))
    core = _rips_core()
    if core is not None:
        n = len(points)
        iu = _TRIU.get(n)
        if iu is None:
            iu = _TRIU[n] = np.triu_indices(n, 1)
        res = core(np.array(dist[iu], dtype=np.float32), 1,
                   np.inf if thresh is None else thresh, 2, False)
        dgms = [np.array(d).reshape(-1, 2) for d in res["births_and_deaths_by_dim"]]
    else:  # pragma: no cover - see _rips_core
        from ripser import ripser

        kwargs = {"thresh": thresh} if thresh is not None else {}
        dgms = ripser(dist, maxdim=1, distance_matrix=True, **kwargs)["dgms"]
    h0 = dgms[0][:, 1]
    h0 = np.sort(h0[np.isfinite(h0)])
    h1 = np.asarray(dgms[1], dtype=np.float64).reshape(-1, 2)
    if thresh is not None and len(h1):
        h1[:, 1] = np.minimum(h1[:, 1], thresh)
    return h0.astype(np.float64), h1


def h0_deaths(points: np.ndarray) -> np.ndarray:
    """H0 Rips persistence of many small clouds at once: points[E, n, D] -> deaths [E, n-1],
    sorted descending (the infinite bar left out, as in `rips_diagram`).

    The H0 deaths of a Rips filtration are the edge lengths of a minimum spanning tree
    (Carlsson 2009); Prim's algorithm vectorised over the clouds, O(n^2) per cloud, for the
    score's short scale (a few points), where a ripser call per cloud would cost more in
    overhead than in work.
    """
    points = np.asarray(points, dtype=np.float64)
    e, n, _ = points.shape
    if n < 2:
        return np.empty((e, 0))
    d = np.sqrt(((points[:, :, None, :] - points[:, None, :, :]) ** 2).sum(axis=3))
    inside = np.zeros((e, n), dtype=bool)
    inside[:, 0] = True
    best = d[:, 0].copy()
    out = np.empty((e, n - 1))
    rows = np.arange(e)
    for k in range(n - 1):
        j = np.argmin(np.where(inside, np.inf, best), axis=1)
        out[:, k] = best[rows, j]
        inside[rows, j] = True
        best = np.minimum(best, d[rows, j])
    return -np.sort(-out, axis=1)
