"""Rips persistence diagram (H0 + H1) of one point cloud, and H0 of many small clouds at once.

- The distance matrix is scipy's `cdist` (`distance_matrix`: exact differences, no BLAS;
  0.022 against numpy broadcasting's 0.157 ms on a 61-point cloud, 0.005 against 0.011 ms on
  a 13-point one, the same float32 distances) and is handed, in float32 as
  `ripser.ripser` would pass it, to a compiled Ripser routine (`_rips_engine`): GUDHI's
  `_ripser_ext` (Inria, MIT; the Ripser implementation behind `gudhi.sklearn.RipsPersistence`)
  when it loads, else ripser.py's. Both give the diagrams of the documented `ripser.ripser`
  call bit for bit, in the same order (tests/test_tda_persistence.py); on the 61-point feature
  clouds GUDHI's costs 0.40 ms against ripser.py's 1.35 ms (3.4x; 1.4x on the 13-point score
  clouds: `benchmarks/bench_topology.py --overhead-only`). Neither wrapper is called: both
  import scikit-learn (1-3.5 s per process) and check their input on every call.
- Only GUDHI's MIT-licensed `_ripser_ext` module is loaded, from its file, without running
  `gudhi/__init__.py`: that would load every GUDHI extension, including the CGAL-based ones
  (GPLv3 in practice) and the bundled GMP/MPFR (LGPL), into AURA's processes (AURA is
  Apache-2.0). The wheel still installs them; AURA never imports them.
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

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

Diagram = tuple[np.ndarray, np.ndarray]  # (h0 deaths [n0], h1 pairs [n1, 2])


def _load_gudhi_ripser() -> Any:
    """GUDHI's `_ripser_ext` extension module, loaded from its file alone (not through the
    `gudhi` package, whose __init__ imports every GUDHI extension: module docstring).

    Raises ImportError when GUDHI is not installed or has no such module.
    """
    import importlib.machinery
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("gudhi")  # a top-level package: not imported by this
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("gudhi is not installed")
    for folder in spec.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(folder) / f"_ripser_ext{suffix}"
            if path.is_file():
                name = "gudhi._ripser_ext"
                loader = importlib.machinery.ExtensionFileLoader(name, str(path))
                ext_spec = importlib.util.spec_from_file_location(name, path, loader=loader)
                if ext_spec is None:  # pragma: no cover - a file path always gives a spec
                    break
                module = importlib.util.module_from_spec(ext_spec)
                loader.exec_module(module)
                return module
    raise ImportError("gudhi has no _ripser_ext module (GUDHI >= 3.10 ships it)")


def _gudhi_engine():  # type: ignore[no-untyped-def]
    """GUDHI's compiled Ripser (`_ripser_ext._full`) as an engine, or None when it does not
    load or does not answer a 3-point probe (a GUDHI whose routine changed its signature
    falls back to ripser.py instead of failing every cycle).

    Called as `gudhi.sklearn.RipsPersistence` calls it on a full distance matrix: the edge
    threshold is the matrix's enclosing radius, min over points of the max distance, above
    which a Rips complex is a cone and has no homology left (Bauer 2021, Ripser, section 3),
    or the caller's `thresh` when smaller.
    """
    try:
        full = _load_gudhi_ripser()._full
    except (ImportError, OSError, AttributeError):
        return None

    def engine(dist: np.ndarray, thresh: float | None) -> list[np.ndarray]:
        d32 = np.ascontiguousarray(dist, dtype=np.float32)
        # Row maxima as column maxima (a distance matrix is symmetric, bit for bit): one
        # vectorised pass instead of a short reduction per row.
        cone = float(d32.max(axis=0).min())
        edge = cone if thresh is None else min(float(thresh), cone)
        dgms = [np.asarray(d, dtype=np.float64).reshape(-1, 2)
                for d in full(d32, max_dimension=1, max_edge_length=edge,
                              homology_coeff_field=2)]
        # GUDHI leaves out trailing empty dimensions (a 2-point cloud has no H1 list).
        return dgms + [np.empty((0, 2))] * (2 - len(dgms))

    try:
        probe = engine(np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 1.5], [2.0, 1.5, 0.0]]), None)
        if len(probe) != 2 or sorted(probe[0][:, 1].tolist()) != [1.0, 1.5, np.inf]:
            raise ValueError(f"unexpected diagram {probe!r}")
    except Exception as err:  # noqa: BLE001 - any failure means: use ripser.py instead
        log.warning("gudhi ripser probe failed, using ripser.py err=%r", err)
        return None
    return engine


def _ripser_engine():  # type: ignore[no-untyped-def]
    """ripser.py's compiled routine (`pyRipser.doRipsFiltrationDM`) as an engine, or None.

    Called with the wrapper's exact argument (the condensed distance matrix in float32,
    row-major upper triangle), as `ripser.ripser(dist, maxdim=1, distance_matrix=True)` does.
    """
    try:
        from pyRipser import doRipsFiltrationDM
    except ImportError:  # pragma: no cover - a ripser build without the module name
        return None

    def engine(dist: np.ndarray, thresh: float | None) -> list[np.ndarray]:
        n = len(dist)
        iu = _TRIU.get(n)
        if iu is None:
            iu = _TRIU[n] = np.triu_indices(n, 1)
        res = doRipsFiltrationDM(np.array(dist[iu], dtype=np.float32), 1,
                                 np.inf if thresh is None else thresh, 2, False)
        return [np.asarray(d).reshape(-1, 2) for d in res["births_and_deaths_by_dim"]]

    return engine


# In order of preference.
ENGINES = {"gudhi": _gudhi_engine, "ripser": _ripser_engine}


def _rips_engine(name: str | None = None):  # type: ignore[no-untyped-def]
    """The compiled routine `rips_diagram` uses: `name` from ENGINES, or the first installed
    of GUDHI's and ripser.py's; None when neither loads (then the `ripser.ripser` wrapper)."""
    if name is not None:
        if name not in _NAMED:
            _NAMED[name] = ENGINES[name]()
        return _NAMED[name]
    global _ENGINE
    if _ENGINE is None:
        for candidate, make in ENGINES.items():
            _ENGINE = make()
            if _ENGINE is not None:
                log.debug("rips engine chosen engine=%s", candidate)
                break
        else:  # pragma: no cover - ripser is a dependency
            _ENGINE = False
    return _ENGINE or None


_ENGINE: Any = None  # the chosen engine, or False when none loads
_NAMED: dict[str, Any] = {}  # engines asked for by name (tests, benchmarks)
_TRIU: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def rips_diagram(points: np.ndarray, thresh: float | None = None,
                 engine_name: str | None = None) -> Diagram:
    """H0 deaths (finite) and H1 pairs of the Rips filtration of one cloud points[n, D].

    Computed by Ripser (Bauer 2021; GUDHI's implementation, or ripser.py: Tralie, Saul &
    Bar-On 2018) on the Euclidean distance matrix (`_rips_engine`; `engine_name` forces one
    of ENGINES, for tests and benchmarks). Returns h0 [n0] float64 sorted ascending and h1
    [n1, 2] float64 (birth, death); deaths capped at `thresh` when given.
    """
    if len(points) < 2:
        return np.empty(0), np.empty((0, 2))
    return _diagram_of(distance_matrix(points), thresh, engine_name)


def _diagram_of(dist: np.ndarray, thresh: float | None, engine_name: str | None) -> Diagram:
    """`rips_diagram`'s diagram from the cloud's distance matrix [n, n] (n >= 2)."""
    engine = _rips_engine(engine_name)
    if engine is not None:
        dgms = engine(dist, thresh)
    else:  # pragma: no cover - see _rips_engine
        from ripser import ripser

        kwargs = {"thresh": thresh} if thresh is not None else {}
        dgms = ripser(dist, maxdim=1, distance_matrix=True, **kwargs)["dgms"]
    h0 = dgms[0][:, 1]
    h0 = np.sort(h0[np.isfinite(h0)])
    h1 = np.asarray(dgms[1], dtype=np.float64).reshape(-1, 2)
    if thresh is not None and len(h1):
        h1[:, 1] = np.minimum(h1[:, 1], thresh)
    return h0.astype(np.float64), h1


def distance_matrix(points: np.ndarray) -> np.ndarray:
    """Euclidean distances [n, n] (the points' units) of a cloud points[n, D].

    float64 clouds (all the product's): `scipy.spatial.distance.cdist`, whose compiled loop
    costs 0.018 ms on a 61-point 9-D cloud against 0.156 ms for numpy's broadcast expression
    (`benchmarks/bench_topology.py --overhead-only`; the expression reduced a 9-value axis
    once per distance, ~1/3 of a feature cloud's diagram). Its sums go in another order than
    numpy's, so float64 bits can differ; Ripser compares float32 distances, and those agreed
    on every cloud measured (the benchmark counts them). Symmetric bit for bit ((a - b)^2 =
    (b - a)^2, the coordinates summed in one order), with an exact 0 diagonal. Other dtypes
    (float32 reservoir clouds) keep numpy's expression, summed in their own precision.
    """
    if points.dtype == np.float64 and points.ndim == 2:
        from scipy.spatial.distance import cdist  # lazily: scipy is ~36 MB per process

        return cdist(points, points)
    diff = points[:, None, :] - points[None, :, :]
    return np.sqrt((diff * diff).sum(axis=2))


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
