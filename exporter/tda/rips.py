"""Rips persistence diagram (H0 + H1) of one point cloud, and H0 of many small clouds at once.

- The distance matrix is computed by numpy broadcasting (no BLAS, exact differences; scipy's
  pdist had more call overhead than work on small clouds) and handed, in float32 as
  `ripser.ripser` would pass it, to a compiled Ripser routine (`_rips_engine`): GUDHI's
  `_ripser_ext` (Inria, MIT; the Ripser implementation behind `gudhi.sklearn.RipsPersistence`)
  when it loads, else ripser.py's. Both give the diagrams of the documented `ripser.ripser`
  call bit for bit, in the same order (tests/test_tda_persistence.py); on the 61-point feature
  clouds GUDHI's costs 0.56 ms against ripser.py's 1.54 ms (2.7x; 1.3x on the 13-point score
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
from collections.abc import Sequence
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


def rips_diagrams(clouds: Sequence[np.ndarray], thresh: float | None = None) -> list[Diagram]:
    """`rips_diagram` of each cloud [n_i, D], the same diagrams bit for bit: the distance
    matrices of clouds of one shape computed together (`distance_matrices`), a few at a time;
    then one Ripser call per cloud."""
    out: list[Diagram | None] = [None] * len(clouds)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, c in enumerate(clouds):
        if _rows_contiguous(c) and len(c) >= 2:
            groups.setdefault(c.shape, []).append(i)
        else:  # what rips_diagram does with it
            out[i] = rips_diagram(c, thresh)
    for (n, dim), idx in groups.items():
        step = max(1, _BATCH_VALUES // (n * n * max(dim, 1)))
        for a in range(0, len(idx), step):
            part = idx[a:a + step]
            # float32 as the engines take it (the same rounding per matrix), all at once.
            dists = distance_matrices(np.stack([clouds[i] for i in part])).astype(np.float32)
            for i, dist in zip(part, dists, strict=True):
                out[i] = _diagram_of(dist, thresh, None)
    return out  # type: ignore[return-value]


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
    """Euclidean distances [n, n] of a cloud points[n, D]: the bits of numpy's
    `np.sqrt(((p[:, None] - p[None]) ** 2).sum(axis=2))`, by `distance_matrices` where
    that sums each distance's squares in one order (`_rows_contiguous`) and the cloud is
    large enough for it to be faster (n * n * D >= _SLAB_MIN_VALUES)."""
    if _rows_contiguous(points) and points.size * len(points) >= _SLAB_MIN_VALUES:
        return _distance_matrices(points[None])[0]
    # Other dtypes and layouts: numpy's own expression (its sums differ by dtype, and by
    # layout: Fortran-ordered coordinates are summed one by one, not pairwise).
    diff = points[:, None, :] - points[None, :, :]
    return np.sqrt((diff * diff).sum(axis=2))


def _rows_contiguous(points: Any) -> bool:
    """A float64 cloud [n, D] whose coordinates lie contiguous within each row, rows in
    order: numpy's broadcast differences then keep the coordinates innermost, and its sum
    adds each distance's squares in `_pairwise_sum0`'s order."""
    return (isinstance(points, np.ndarray) and points.dtype == np.float64
            and points.ndim == 2 and points.strides[1] == points.itemsize
            and points.strides[0] >= points.itemsize * points.shape[1])


def distance_matrices(points: np.ndarray) -> np.ndarray:
    """Euclidean distances [k, n, n] (float64, the points' units) of k clouds
    points[k, n, D] (float64), bit for bit numpy's broadcast expression
    `np.sqrt((diff * diff).sum(axis=-1))` on each cloud laid out by rows (C order:
    `_rows_contiguous`), whatever the layout of `points`.

    Raises TypeError for anything but a 3-D float64 array (numpy's expression would sum
    other dtypes in other orders and types).

    That expression reduces a short last axis (D values) once per distance, mostly per-call
    overhead: ~1/3 of a 61-point, 9-D cloud's diagram. Here the coordinates go first
    ([D, k, n, n]) and the squares are added over whole [k, n, n] slices in the order numpy's
    float64 sum uses for D <= 128 (`_pairwise_sum0`), so each distance adds the same values
    in the same order; tests/test_tda_worker_identity.py checks the bits against numpy,
    and `benchmarks/bench_topology.py --overhead-only` prints both costs.
    (Rips diagrams need these exact bits: Ripser compares float32 distances.) Kept over
    `scipy.spatial.distance.cdist` (~3x faster still) for that continuity: cdist sums in
    another order, and although its float32 roundings matched on every cloud measured, a
    long replay could see a distance flip, and every diagram and score after it.
    """
    if not (isinstance(points, np.ndarray) and points.dtype == np.float64 and points.ndim == 3):
        raise TypeError(f"distance_matrices takes float64 clouds [k, n, D], got "
                        f"{getattr(points, 'dtype', type(points))} "
                        f"{getattr(points, 'shape', '')}")
    return _distance_matrices(points)


def _distance_matrices(points: np.ndarray) -> np.ndarray:
    """`distance_matrices` without the input check (callers pass float64 [k, n, D])."""
    k, n, dim = points.shape
    if dim == 0 or dim > _PAIRWISE_BLOCK:
        diff = points[:, :, None, :] - points[:, None, :, :]
        return np.sqrt((diff * diff).sum(axis=-1))
    t = points.transpose(2, 0, 1)  # [D, k, n]
    # Both operands spelt out first: a subtraction of two whole arrays runs as one loop,
    # where broadcasting them ran one short loop per row (~1.5x the time of both copies).
    sq = np.empty((dim, k, n, n))
    np.copyto(sq, t[:, :, :, None])  # sq[d, c, i, j] = points[c, i, d]
    other = np.empty_like(sq)
    np.copyto(other, t[:, :, None, :])  # points[c, j, d]
    np.subtract(sq, other, out=sq)
    del other
    np.multiply(sq, sq, out=sq)
    out = _pairwise_sum0(sq)
    del sq
    return np.sqrt(out, out=out)


# numpy's pairwise summation sums up to this many values in one block (PW_BLOCKSIZE).
_PAIRWISE_BLOCK = 128
# Below this many values (n * n * D) numpy's expression is faster for a single cloud (the
# same bits): 13-point 9-D clouds 9.9 us against 12.9 us, 61-point ones 155 against 66 us
# (benchmarks/bench_topology.py --overhead-only; helper-40's review, 2026-11-30).
_SLAB_MIN_VALUES = 3000
# Values of the [D, k, n, n] temporaries per `rips_diagrams` group (~1 MiB: they stay in
# cache; 61-point 9-D clouds go one by one, 13-point ones ~40 at a time).
_BATCH_VALUES = 64 * 1024


def _pairwise_sum0(x: np.ndarray) -> np.ndarray:
    """Sum of x[m, ...] over axis 0 (a new array), in the order of numpy's float64
    `add.reduce` over a contiguous axis of 1 <= m <= 128 values (numpy's `pairwise_sum`):
    below 8 values one by one; else 8 partial sums (r[j] = x[j] + x[j + 8] + ..., in x's
    first 8 rows, so x is overwritten from 16 values), combined as ((r0 + r1) + (r2 + r3)) +
    ((r4 + r5) + (r6 + r7)), then the m % 8 values left one by one. numpy adds that to its
    initial value (0.0, or -0.0 in newer numpy), which changes no sum of squares."""
    m = len(x)
    if m < 8:
        res = x[0] + x[1] if m > 1 else x[0].copy()
        for i in range(2, m):
            res += x[i]
        return res
    whole = m - m % 8
    r = x[0:8]
    for i in range(8, whole, 8):
        r += x[i:i + 8]
    s = np.add(r[0::2], r[1::2])  # r0 + r1, r2 + r3, r4 + r5, r6 + r7
    h = np.add(s[0::2], s[1::2])
    res = np.add(h[0], h[1])
    for i in range(whole, m):
        res += x[i]
    return res


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
