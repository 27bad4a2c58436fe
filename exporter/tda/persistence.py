"""Rips persistence (H0 + H1, ripser) batched over entities on a process pool; diagram distances.

- ripser holds the GIL, so threads give nothing: a persistent process pool (created lazily on
  the first large batch, reused every cycle, closed by `close()`) runs chunks of clouds. Workers
  start with the `forkserver` method (forking a process that runs an event loop and threads is
  unsafe) and limit BLAS to one thread (idle OpenBLAS threads spin and double CPU time).
- One cloud's diagram (ripser's compiled routine, the infinite H0 bar left out, no `thresh`
  by default) is `exporter.tda.rips`; the diagram features computed in the workers are
  `exporter.tda.features`.
- Distances to the entity's baseline prototypes and the diagram features are computed in the
  same worker task, so they run in parallel too, and `submit` lets the stage do its own
  per-window work while the workers run. `speculate`'s tasks carry their clouds stacked in
  one array and return their diagrams in four (`pack_clouds`, `pack_diagrams`): one array to
  pickle each way instead of one or two per cloud. Distances:
  * H0: every H0 bar is born at 0, so the diagram is the multiset of MST edge lengths; its
    distance is the 1-D transport cost between the sorted deaths (the shorter padded with zeros
    = bars of length 0), i.e. a sort, not an assignment problem. This is a metric on H0 diagrams
    (it charges an unmatched bar its length where persim charges length/sqrt(2)); documented and
    used consistently for scores and calibration.
  * H1: `wasserstein_h1` solves the problem `persim.wasserstein` solves (same value)
    in a reduced form (see its docstring) with
    `scipy.optimize.linear_sum_assignment`; tests check it against persim within 1e-8.
"""

from __future__ import annotations

import heapq
import logging
import os
import struct
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from exporter.heap import keep_heap
from exporter.tda.embedding import Clouds
from exporter.tda.features import (
    DIAGRAM_FEATURES,
    diagram_features,
    median_h0_deaths,
    scale_free_features,
)
from exporter.tda.rips import Diagram, _rips_engine, rips_diagram

log = logging.getLogger(__name__)

# Below this much work (sum of squared cloud sizes: Rips PH costs ~n^2, 16 clouds of 61
# points) a batch runs inline: pool hand-off costs more than it saves. Score clouds (13
# points, ~0.06 ms each) go to the pool only beyond ~350 of them.
MIN_POOL_WORK = 16 * 61 * 61
# A pool task holds at most this many clouds (at least 4 tasks per worker): a worker's peak
# grows with its task (the clouds, their diagrams, the padded feature arrays).
POOL_TASK_CLOUDS = 128
# Clouds per `speculate` task: 64 cost ~0.4 s less main-process CPU than 32 on the 48-host
# x 3-day replay (fewer tasks to hand over and collect), the same wall time; 16 was slower
# and 128 no better (benchmarks/bench_backtest.py --case 48,3, 2026-11-30, load ~1.7).
SPECULATE_TASK_CLOUDS = 64
# `speculate` tasks on the pool at once per worker; the others wait in the cache, soonest
# needed first. All at once (FIFO) queued the whole replay's clouds behind window 0, and the
# clouds re-sent after a first fit behind them: the main process waited ~12 s of the 48-host
# x 3-day replay, then the workers idled. 2 since a finished task starts the next one
# (`DiagramCache(refill=True)`): faster than 3 (4 of 4 alternated pairs) and 1 (2 of 2) on
# the 48-host x 3-day replay, 5-11 % (load 3.4-6.2, 2026-11-30): clouds re-sent after a
# refit queue behind less work.
SPECULATE_IN_FLIGHT = 2
_SQRT_HALF = float(np.sqrt(0.5))
_SHAPE2 = struct.Struct("=2q")  # a cloud's shape in `cloud_key`


class PersistenceError(RuntimeError):
    """Persistent homology could not be computed (worker crash, bad input)."""


def cloud_key(points: np.ndarray) -> bytes:
    """Exact identity of one cloud (shape and bits): diagrams are a pure function of it.

    The shape as native int64s, then the float64 values in C order."""
    # tobytes() writes C order whatever the layout, so only the dtype (and a 0-d input,
    # which ascontiguousarray makes 1-d) needs the conversion (~half a call's cost).
    if not isinstance(points, np.ndarray) or points.dtype != np.float64 or points.ndim == 0:
        points = np.ascontiguousarray(points, dtype=np.float64)
    shape = points.shape
    head = _SHAPE2.pack(*shape) if len(shape) == 2 else struct.pack(f"={len(shape)}q", *shape)
    return head + points.tobytes()


def _cached_diagram(points: np.ndarray, thresh: float | None,
                    cache: DiagramCache | None, key: bytes | None = None) -> Diagram:
    if cache is None:
        return rips_diagram(points, thresh)
    if key is None:
        key = cloud_key(points)
    dgm = cache.get(key)
    if dgm is None:
        dgm = cache[key] = rips_diagram(points, thresh)
    return dgm


def _take(points: np.ndarray, rows: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """points[rows] without the padding columns no row of them needs (less to pickle): a
    view when rows are consecutive (usually every entity has a cloud), else a copy. A copy
    of every cloud for the pool, held until its last chunk is done, was 37 MiB at 10 000
    entities."""
    width = int(counts.max()) if len(counts) else 0
    if len(rows) and rows[-1] - rows[0] == len(rows) - 1:
        return points[rows[0]:rows[-1] + 1, :width]
    return points[rows, :width]


_Packed = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def pack_clouds(clouds: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Clouds [n_i, D] (one D and dtype) -> (their rows stacked [sum n_i, D], n [k]): one
    array to pickle to a worker instead of k."""
    return np.concatenate(clouds), np.array([len(c) for c in clouds], dtype=np.int64)


def unpack_clouds(flat: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    """Inverse of `pack_clouds`: views [n_i, D] of `flat`, the same values and dtype."""
    out, a = [], 0
    for n in counts.tolist():
        out.append(flat[a:a + n])
        a += n
    return out


def pack_diagrams(dgms: Sequence[Diagram]) -> _Packed:
    """Diagrams -> (all H0 deaths [sum n0], n0 [k], all H1 pairs [sum n1, 2], n1 [k]): four
    arrays to pickle back instead of 2k."""
    h0 = np.concatenate([d[0] for d in dgms]) if dgms else np.empty(0)
    h1 = np.concatenate([d[1] for d in dgms]) if dgms else np.empty((0, 2))
    n0 = np.array([len(d[0]) for d in dgms], dtype=np.int64)
    n1 = np.array([len(d[1]) for d in dgms], dtype=np.int64)
    return h0, n0, h1, n1


def unpack_diagrams(packed: _Packed) -> list[Diagram]:
    """Inverse of `pack_diagrams`: each diagram's arrays are views of the packed ones (the
    same values; diagrams are only read)."""
    h0, n0, h1, n1 = packed
    out: list[Diagram] = []
    a0 = a1 = 0
    for k0, k1 in zip(n0.tolist(), n1.tolist(), strict=True):
        out.append((h0[a0:a0 + k0], h1[a1:a1 + k1]))
        a0 += k0
        a1 += k1
    return out


def _diagrams_task(flat: np.ndarray, counts: np.ndarray, thresh: float | None,
                   with_free: np.ndarray | None = None) -> tuple[_Packed, np.ndarray | None]:
    """Worker body of `RipsPersistence.speculate`: packed clouds -> packed diagrams, and the
    `scale_free_features` of those flagged in `with_free` [k] (rows in their order)."""
    return _diagrams_list_task(unpack_clouds(flat, counts), thresh, with_free)


def _diagrams_list_task(clouds: Sequence[np.ndarray], thresh: float | None,
                        with_free: np.ndarray | None = None
                        ) -> tuple[_Packed, np.ndarray | None]:
    """`_diagrams_task` for clouds that cannot share one array."""
    dgms = [rips_diagram(c, thresh) for c in clouds]
    free = None
    if with_free is not None and with_free.any():
        free = scale_free_features([d for d, f in zip(dgms, with_free, strict=True) if f])
    return pack_diagrams(dgms), free


def wasserstein_h0(a: np.ndarray, b: np.ndarray) -> float:
    """1-Wasserstein distance of two H0 death multisets (all births 0) by sorting."""
    n = max(len(a), len(b))
    sa = np.zeros(n)
    sb = np.zeros(n)
    if len(a):
        sa[n - len(a):] = np.sort(a)
    if len(b):
        sb[n - len(b):] = np.sort(b)
    return float(np.abs(sa - sb).sum())


def wasserstein_h1(s: np.ndarray, t: np.ndarray) -> float:
    """1-Wasserstein distance of two diagrams: the value persim.wasserstein computes.

    persim solves the (M+N)x(M+N) assignment with Euclidean cross costs c(s, t) and Euclidean
    distances to the diagonal d(s). Equivalently: sum of all d plus the best partial matching
    under reduced costs c(s, t) - d(s) - d(t); only negative reduced costs can help, so rows and
    columns without one are dropped (most short noise bars) and the rest is a small rectangular
    problem with costs clamped at 0 (= both to the diagonal). Same optimum, ~3x faster.
    """
    from scipy.optimize import linear_sum_assignment

    s = s[np.isfinite(s[:, 1])] if len(s) else np.zeros((0, 2))
    t = t[np.isfinite(t[:, 1])] if len(t) else np.zeros((0, 2))
    ds = (s[:, 1] - s[:, 0]) * _SQRT_HALF
    dt = (t[:, 1] - t[:, 0]) * _SQRT_HALF
    base = float(ds.sum() + dt.sum())
    if len(s) == 0 or len(t) == 0:
        return base
    diff = s[:, None, :2] - t[None, :, :2]
    reduced = np.sqrt((diff * diff).sum(axis=2)) - ds[:, None] - dt[None, :]
    neg = reduced < 0
    rows, cols = neg.any(axis=1), neg.any(axis=0)
    if not rows.any():
        return base
    cost = np.minimum(reduced[rows][:, cols], 0.0)
    if cost.shape[0] > cost.shape[1]:
        cost = cost.T
    r, c = linear_sum_assignment(cost)
    return base + float(cost[r, c].sum())


def diagram_distance(a: Diagram, b: Diagram) -> float:
    """W1 on H0 (by sorting) plus W1 on H1: the anomaly distance between two diagrams."""
    return wasserstein_h0(a[0], b[0]) + wasserstein_h1(a[1], b[1])


def distance_to_prototypes(d: Diagram, protos: Sequence[Diagram]) -> float:
    """Median distance of one diagram to a set of baseline prototypes (NaN when none)."""
    if not protos:
        return float("nan")
    return float(np.median([diagram_distance(d, p) for p in protos]))


def _chunk_task(
    points: np.ndarray, counts: np.ndarray, protos: list[list[Diagram] | None],
    scale: np.ndarray, thresh: float | None, score_points: np.ndarray | None = None,
    score_counts: np.ndarray | None = None, cache: DiagramCache | None = None,
    features: bool = True,
    keys: tuple[Sequence[bytes | None], Sequence[bytes | None]] | None = None,
) -> tuple[list[Diagram], np.ndarray, np.ndarray, np.ndarray]:
    """Worker body: a chunk's diagrams, distances to their prototypes and diagram features.

    With score clouds, the returned diagrams and distances are theirs (the coarse clouds of
    the anomaly score) and the features and H0 medians come from `points`; without, all come
    from `points`. features=False (only with score clouds): the feature clouds' diagrams are
    not computed; features and H0 medians are NaN. keys (with a cache): the feature and
    score clouds' `cloud_key`s where already known (None: computed here).
    """
    score = score_points is not None and score_counts is not None
    free = None
    fine_keys, score_keys = keys if keys is not None else ([None] * len(counts),) * 2
    if (features or not score) and cache is not None:
        known = [cloud_key(points[i, :n]) if k is None else k
                 for (i, n), k in zip(enumerate(counts), fine_keys, strict=True)]
        fine: list[Diagram] = [_cached_diagram(points[i, :n], thresh, cache, k)
                               for (i, n), k in zip(enumerate(counts), known, strict=True)]
        free = cache.scale_free(known, fine)
    elif features or not score:
        fine = [rips_diagram(points[i, :n], thresh) for i, n in enumerate(counts)]
    if not score:
        dgms = fine
    else:
        dgms = [_cached_diagram(score_points[i, :n], thresh, cache, k)  # type: ignore[index]
                for (i, n), k in zip(enumerate(score_counts), score_keys,  # type: ignore[arg-type]
                                     strict=True)]
    raw = np.full(len(counts), np.nan)
    for i, dgm in enumerate(dgms):
        if protos[i]:
            raw[i] = distance_to_prototypes(dgm, protos[i])  # type: ignore[arg-type]
    if not (features or not score):
        return dgms, raw, np.full((len(counts), len(DIAGRAM_FEATURES)), np.nan), \
            np.full(len(counts), np.nan)
    if free is None:
        return dgms, raw, diagram_features(fine, scale), median_h0_deaths(fine)
    # median_h0_deaths' values: the same medians of the same finite deaths, 0.0 for none.
    h0_median = np.where(np.array([len(d[0]) > 0 for d in fine], dtype=bool), free[:, 0], 0.0)
    return dgms, raw, diagram_features(fine, scale, free), h0_median


@dataclass
class _HeldTask:
    """A `speculate` task kept off the pool: its cloud keys, and the function that submits
    it (None once it has been submitted)."""

    keys: list[bytes]
    start: Callable[[], Future[Any]] | None


class DiagramCache:
    """Diagrams by `cloud_key`, some still being computed on the pool (`speculate`).

    `get` waits for a diagram in flight; a key neither known nor in flight is a miss (None):
    the caller computes it and stores it with `cache[key] = diagram`.

    refill=True: each held task that finishes on the pool starts the next held one, soonest
    needed first (from the pool's result thread, so the workers keep busy while the caller
    is away from `pump`, e.g. in a replay's other stages), up to the last `pump`'s limit;
    `stop()` ends it. False: held tasks start only at `pump` or `get`.
    """

    def __init__(self, refill: bool = False) -> None:
        self.done: dict[bytes, Diagram] = {}
        self.free: dict[bytes, np.ndarray] = {}
        self._pending: dict[bytes, tuple[list[bytes], Future[tuple[_Packed, np.ndarray | None]],
                                         np.ndarray | None]] = {}
        # Tasks not yet on the pool: (priority, sequence, task) in a heap and by key.
        self._held: list[tuple[float, int, _HeldTask]] = []
        self._held_keys: dict[bytes, _HeldTask] = {}
        self._flying: set[Future[Any]] = set()
        self._seq = 0
        self._refill = refill
        self._limit = 0
        # Held and in-flight bookkeeping is shared with the pool's result thread (refill).
        self._lock = threading.RLock()

    def hold(self, keys: list[bytes], priority: float,
             start: Callable[[], Future[Any]]) -> None:
        """Keep a task of `keys` until `pump` (lowest priority first) or a `get` of one of
        them calls start(), which submits it and returns its future (`add_pending` done)."""
        task = _HeldTask(keys, start)
        with self._lock:
            heapq.heappush(self._held, (priority, self._seq, task))
            self._seq += 1
            for k in keys:
                self._held_keys[k] = task

    def _start(self, task: _HeldTask) -> None:
        if task.start is None:  # already on the pool
            return
        start, task.start = task.start, None
        fut = start()  # its keys are pending before they stop being held
        for k in task.keys:
            self._held_keys.pop(k, None)
        self._flying.add(fut)
        if self._refill:
            fut.add_done_callback(self._landed)

    def _landed(self, fut: Future[Any]) -> None:
        """A started task finished (or was cancelled): start the next held ones (refill)."""
        try:
            with self._lock:
                self._flying.discard(fut)
                if not fut.cancelled():
                    self._top_up()
        except Exception as err:  # the pool shut down: nothing more starts from here
            self._refill = False
            log.debug("msg=%s err=%r", "speculated persistence refill stopped", err)

    def _top_up(self) -> None:
        while self._held and len(self._flying) < self._limit:
            self._start(heapq.heappop(self._held)[2])

    def pump(self, limit: int, due: float) -> None:
        """Start the held tasks of priority <= `due`, then more, lowest priority first,
        until `limit` are on the pool."""
        with self._lock:
            self._limit = limit
            self._flying = {f for f in self._flying if not f.done()}
            while self._held and self._held[0][0] <= due:
                self._start(heapq.heappop(self._held)[2])
            self._top_up()

    def stop(self) -> None:
        """Start nothing more (refill) and drop the held tasks."""
        with self._lock:
            self._refill = False
            self._limit = 0
            for _, _, task in self._held:
                task.start = None
            self._held.clear()
            self._held_keys.clear()

    def get(self, key: bytes) -> Diagram | None:
        """The diagram of `key`, waiting for it if in flight (starting it if held); None
        when unknown."""
        dgm = self.done.get(key)
        if dgm is None:
            with self._lock:
                task = self._held_keys.get(key)
                if task is not None:
                    self._start(task)
                entry = self._pending.get(key)
            if entry is not None:
                keys, fut, with_free = entry
                packed, free = fut.result()
                for k, d in zip(keys, unpack_diagrams(packed), strict=True):
                    self.done[k] = d
                    self._pending.pop(k, None)
                if free is not None and with_free is not None:
                    for k, row in zip([k for k, f in zip(keys, with_free, strict=True) if f],
                                      free, strict=True):
                        self.free[k] = row
                dgm = self.done[key]
        return dgm

    def scale_free(self, keys: Sequence[bytes], dgms: Sequence[Diagram]) -> np.ndarray:
        """`scale_free_features` rows [len(keys), F] of the done diagrams `dgms` of `keys`:
        those computed with them on the pool, the others here (rows are independent)."""
        rows = [self.free.get(k) for k in keys]
        missing = [i for i, r in enumerate(rows) if r is None]
        if missing:
            for i, r in zip(missing, scale_free_features([dgms[i] for i in missing]),
                            strict=True):
                rows[i] = r
        if not rows:
            return scale_free_features([])
        return np.stack(rows)  # type: ignore[arg-type]

    def __setitem__(self, key: bytes, dgm: Diagram) -> None:
        self.done[key] = dgm

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self.done or key in self._pending or key in self._held_keys

    def __len__(self) -> int:
        with self._lock:
            return len(self.done) + len(self._pending) + len(self._held_keys)

    def add_pending(self, keys: list[bytes], fut: Future[tuple[_Packed, np.ndarray | None]],
                    with_free: np.ndarray | None = None) -> None:
        """Mark `keys` as in flight: `fut` will give their diagrams in the same order, packed
        (`pack_diagrams`), and the `scale_free_features` rows of the keys flagged in
        `with_free` (None: no rows)."""
        for k in keys:
            self._pending[k] = (keys, fut, with_free)


class Pending:
    """Diagrams being computed; `result()` waits and assembles them in entity order."""

    def __init__(self, owner: RipsPersistence, e: int, rows: np.ndarray, parts: list) -> None:  # type: ignore[type-arg]
        self._owner, self._e, self._rows, self._parts = owner, e, rows, parts

    def result(self) -> tuple[list[Diagram | None], np.ndarray, np.ndarray, np.ndarray]:
        """Diagrams (None without a cloud), raw distances [E], diagram features [E, F] and
        the median H0 death of each entity's feature cloud [E] (NaN without a cloud)."""
        out: list[Diagram | None] = [None] * self._e
        raw = np.full(self._e, np.nan)
        feats = np.full((self._e, len(DIAGRAM_FEATURES)), np.nan)
        h0_median = np.full(self._e, np.nan)
        try:
            results = [p.result() if hasattr(p, "result") else p for p in self._parts]
        except Exception as err:  # a broken pool or a ripser failure: the stage reports it
            self._owner.close()
            raise PersistenceError(f"persistence failed: {err!r}") from err
        k = 0
        for dgms, r, f, m in results:
            idx = self._rows[k : k + len(dgms)]
            for j, dgm in zip(idx, dgms, strict=True):
                out[j] = dgm
            raw[idx] = r
            feats[idx] = f
            h0_median[idx] = m
            k += len(dgms)
        return out, raw, feats, h0_median


def _init_worker() -> None:
    """Keep each worker to one BLAS thread; ripser itself is single threaded.

    Each worker also starts its own session: with Linux autogroup scheduling (the default on
    desktop/VM kernels) all processes of one session share ONE CPU share, so on a busy host two
    workers in the exporter's session ran no faster than one (measured: 0.9-1.25x at load 6.5 on
    2 cores). A worker still exits when the exporter closes the pool or dies (its call queue
    breaks); it no longer receives the terminal's Ctrl-C, which the exporter handles anyway.
    """
    try:
        os.setsid()
    except OSError:  # already a session leader
        pass
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn (ripser dep)
        pass
    kept = keep_heap()
    log.debug("persistence worker started keep_heap=%s", kept)
    # Pay the import once per worker, not in the first cycle's critical path. (scipy loads
    # with the first diagram: `rips.distance_matrix` is its cdist, ~36 MB per process.)
    _rips_engine()


def default_workers() -> int:
    """The CPUs this process may run on (its affinity mask; os.cpu_count() elsewhere)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class RipsPersistence:
    """Estimator: point clouds -> H0/H1 diagrams (+ distances to per-entity prototypes).

    Parameters
    ----------
    workers: processes for large batches (None: the CPUs this process may use; 1: inline).
    thresh: optional Rips threshold (cuts cost; H1 deaths above it are capped at it).

    Stateless like giotto-tda's `VietorisRipsPersistence`: `fit` only checks parameters;
    `submit(clouds, ...)` starts a batch and its `Pending.result()` returns the diagrams, raw
    distances [E], diagram features [E, F] and median H0 deaths [E] (the stage does other work
    in between; there is no blocking `transform`). Holds a process pool between calls; call
    `close()` when done. Raises PersistenceError before `fit` and when a worker fails.
    """

    def __init__(self, workers: int | None = None, thresh: float | None = None):
        self.workers = workers
        self.thresh = thresh
        self._pool = None

    def fit(self, clouds: Clouds | None = None) -> RipsPersistence:
        """Resolve `workers_` (clouds are not read: nothing is learnt); returns self."""
        self.workers_ = default_workers() if self.workers is None else max(1, int(self.workers))
        return self

    def submit(
        self, clouds: Clouds, prototypes: Sequence[list[Diagram] | None] | None = None,
        scale: np.ndarray | None = None, score_clouds: Clouds | None = None,
        cache: DiagramCache | None = None, features: bool = True,
        keys: tuple[Sequence[bytes | None], Sequence[bytes | None]] | None = None,
    ) -> Pending:
        """Start computing; the caller may do other work before `Pending.result()`.

        prototypes: per entity, baseline diagrams to measure the raw distance to (or None).
        scale: [E] calibrated Betti scale per entity (NaN: the diagram's own).
        score_clouds: per entity, the anomaly score's clouds (present wherever `clouds` has
            points): their diagrams are returned and measured against the prototypes.
        cache: diagrams already computed or in flight (`speculate`): the batch then runs
            inline, looking every cloud up first (misses are computed and added).
        features: False (with score_clouds): the feature clouds' diagrams, features and H0
            medians are left out (NaN), for callers that read only the score.
        keys: per entity, the `cloud_key`s of its feature and score cloud where known (None:
            not known; used with a cache only): those are not hashed again.
        """
        if not hasattr(self, "workers_"):
            raise PersistenceError("RipsPersistence is not fitted: call fit() first")
        e = len(clouds.counts)
        protos = list(prototypes) if prototypes is not None else [None] * e
        eps = np.full(e, np.nan) if scale is None else np.asarray(scale, dtype=np.float64)
        rows = np.flatnonzero(clouds.counts > 0)
        if len(rows) == 0:
            return Pending(self, e, rows, [])
        cnt = clouds.counts[rows]
        sub = [protos[r] for r in rows]
        scnt = spts = None
        if score_clouds is not None:
            scnt, spts = score_clouds.counts[rows], score_clouds.points
        try:
            work = int((cnt.astype(np.int64) ** 2).sum()) if features or scnt is None else 0
            if scnt is not None:
                work += int((scnt.astype(np.int64) ** 2).sum())
            if cache is not None or self.workers_ <= 1 or work < MIN_POOL_WORK:
                known = None if keys is None else (
                    [keys[0][r] for r in rows.tolist()], [keys[1][r] for r in rows.tolist()])
                return Pending(self, e, rows, [_chunk_task(
                    _take(clouds.points, rows, cnt), cnt, sub, eps[rows], self.thresh,
                    None if spts is None else _take(spts, rows, scnt), scnt, cache,  # type: ignore[arg-type]
                    features, known)])
            pool = self._ensure_pool()
            n_chunks = min(len(rows), max(self.workers_ * 4,
                                          -(-len(rows) // POOL_TASK_CLOUDS)))
            bounds = np.linspace(0, len(rows), n_chunks + 1).astype(int)
            parts = [
                pool.submit(_chunk_task, _take(clouds.points, rows[a:b], cnt[a:b]), cnt[a:b],
                            sub[a:b], eps[rows[a:b]], self.thresh,
                            None if spts is None else _take(spts, rows[a:b], scnt[a:b]),  # type: ignore[index]
                            None if scnt is None else scnt[a:b], None, features)
                for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a
            ]
        except Exception as err:
            self.close()
            raise PersistenceError(f"persistence failed: {err!r}") from err
        return Pending(self, e, rows, parts)

    def speculate(self, cache: DiagramCache, clouds: Sequence[np.ndarray],
                  chunk: int = SPECULATE_TASK_CLOUDS,
                  features: Sequence[bool] | None = None,
                  priority: Sequence[float] | None = None) -> list[bytes]:
        """Start computing the diagrams of clouds [n_i, D] on the pool, into `cache` (those
        already there or duplicated computed once): the parallel half of
        `TopologyStage.run_batch`. Inline with one worker (nothing runs ahead then).
        Returns the clouds' `cloud_key`s (for `submit`'s keys).

        features: per cloud, whether the pool also computes its diagram's
        `scale_free_features` (a feature cloud's: `submit` with this cache then only adds
        the scale-dependent columns).
        priority: per cloud, when it is needed (lower sooner; None: all now, in order). Only
        SPECULATE_IN_FLIGHT tasks per worker are on the pool at a time; the others wait in
        the cache, the soonest needed first (a task's priority is its first cloud's), and
        start at `pump` or when a `get` asks for one of their clouds.
        Clouds come in priority order within a call (a call's tasks keep its order)."""
        if not hasattr(self, "workers_"):
            raise PersistenceError("RipsPersistence is not fitted: call fit() first")
        flags = [False] * len(clouds) if features is None else list(features)
        prio = [0.0] * len(clouds) if priority is None else list(priority)
        todo: dict[bytes, np.ndarray] = {}
        wants: dict[bytes, bool] = {}
        first: dict[bytes, float] = {}
        all_keys = [cloud_key(c) for c in clouds]
        for c, f, q, key in zip(clouds, flags, prio, all_keys, strict=True):
            if key not in cache:
                todo.setdefault(key, c)
                first.setdefault(key, q)
                wants[key] = wants.get(key, False) or f
        if not todo:
            return all_keys
        keys, pts = list(todo), list(todo.values())
        want = np.array([wants[k] for k in keys], dtype=bool)
        try:
            if self.workers_ <= 1:
                for k, c in zip(keys, pts, strict=True):
                    cache[k] = rips_diagram(c, self.thresh)
                return all_keys
            pool = self._ensure_pool()
            for a in range(0, len(keys), chunk):
                part, with_free = pts[a:a + chunk], want[a:a + chunk]
                args = (self.thresh, with_free if with_free.any() else None)
                cache.hold(keys[a:a + chunk], first[keys[a]],
                           self._starter(pool, cache, keys[a:a + chunk], part, args))
        except Exception as err:
            self.close()
            raise PersistenceError(f"persistence failed: {err!r}") from err
        return all_keys

    def pump(self, cache: DiagramCache, due: float = float("-inf")) -> None:
        """Start `cache`'s held `speculate` tasks of priority <= `due`, and top the pool
        up with the next ones."""
        try:
            cache.pump(SPECULATE_IN_FLIGHT * self.workers_, due)
        except Exception as err:
            self.close()
            raise PersistenceError(f"persistence failed: {err!r}") from err

    @staticmethod
    def _starter(pool: Any, cache: DiagramCache, keys: list[bytes], part: list[np.ndarray],
                 args: tuple[float | None, np.ndarray | None]) -> Callable[[], Future[Any]]:
        """A function submitting one `speculate` task and marking its keys in flight."""
        def start() -> Future[Any]:
            if len({(c.dtype, c.shape[1:]) for c in part}) == 1:
                fut = pool.submit(_diagrams_task, *pack_clouds(part), *args)
            else:  # mixed dtypes would be cast by packing: sent one by one
                fut = pool.submit(_diagrams_list_task, part, *args)
            cache.add_pending(keys, fut, args[1])
            return fut
        return start

    def diagrams_here(self, clouds: Sequence[np.ndarray], cache: DiagramCache) -> list[Diagram]:
        """Diagrams of clouds [n_i, D] computed in this process whatever `workers` (looked
        up in `cache` first, added to it): the same diagrams `submit` with that cache gives."""
        return [_cached_diagram(c, self.thresh, cache) for c in clouds]

    def _ensure_pool(self):  # type: ignore[no-untyped-def]
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            ctx = multiprocessing.get_context("forkserver")
            self._pool = ProcessPoolExecutor(self.workers_, mp_context=ctx,
                                             initializer=_init_worker)
            log.info("msg=%s workers=%d", "persistence pool started", self.workers_)
        return self._pool

    def close(self) -> None:
        """Shut the worker pool down (a later `submit` starts a new one)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __del__(self) -> None:  # best effort; close() is the contract
        try:
            self.close()
        except Exception:
            pass
