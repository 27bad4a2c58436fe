"""The topology stage: one cycle's Window -> TopologyResult, learning per-entity baselines.

Chain per cycle (all entities batched): robust normalisation against each entity's baseline
(its own window before one exists) -> optional delay embedding -> feature clouds pooled to
`max_points` (+ anchor) and score clouds of `score_points` means (+ anchor; for one-signal
analyses a Takens embedding, `takens_parameters`) -> Rips H0/H1 of both on the process pool
-> features; score-diagram summaries -> distance to the entity's own same-time-of-day
history -> calibrated anomaly scores (exporter/tda/baseline.py) and signal contributions ->
baseline admission/refits/re-normalisation -> fleet topology. Degenerate windows (constant,
two-state, missing) get no score. A signal with no sample in an entity's whole window (a host
that does not export it) is left out of that entity's clouds (at the baseline centre, z = 0;
`embedding.pack_clouds`), so the entity is scored on its other signals. `run_batch` runs many cycles with their persistence in one
pool map (`batch`: in steps, so that a replay overlaps one batch's persistence with the
previous batch's other stages). See the module docstrings of exporter.tda.* for each choice;
`benchmarks/bench_topology.py`, `benchmarks/eval_topology.py` and
`benchmarks/eval_anomaly.py` hold the figures. `learn` (the cold-start replay) runs only the
baseline half of this chain.
"""

from __future__ import annotations

import bisect
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from exporter.config import AnalysisConfig
from exporter.numeric import clipped_z, max_spread_sigma, nan_percentile
from exporter.results import TopologyResult
from exporter.tda.baseline import DECILES, RENORMALISE_EVERY, BaselineStore, EntityBaseline
from exporter.tda.embedding import (
    Z_CLIP,
    Clouds,
    delay_embed,
    normalise,
    pack_clouds,
    robust_stats,
    score_clouds,
    takens_parameters,
)
from exporter.tda.features import (
    FEATURE_NAMES,
    RECENT_POINTS,
    SUMMARY_SIZE,
    WINDOW_FEATURES,
    WINDOW_PERCENTILES,
    recent_summaries,
    summaries,
    window_features,
)
from exporter.tda.fleet import FleetTopology
from exporter.tda.persistence import Diagram, DiagramCache, RipsPersistence
from exporter.windows import Window, shard_of

log = logging.getLogger(__name__)
# One-signal analyses: Takens-embed the window for the anomaly score (ablation switch).
TAKENS = True
# The score's second window scale (features.recent_summaries; ablation switch).
RECENT_SCALE = True
# The row-wise array work of a window (percentiles, clouds, window features) runs in blocks
# of this many entities: the same values, but temporaries of [block, S, T] rather than
# [E, S, T] (at 10 000 entities x 8 x 120 they peaked at 180 / 330 / 470 MiB).
ROW_BLOCK = 1024
# run_batch sends an entity's clouds at least this many windows ahead (a few may be wasted
# when its normalisation changes sooner; fewer would leave the pool waiting).
SEND_AHEAD_MIN = 4
# With a pool, `_speculate` computes and sends this many rows first, then blocks of
# `row_block`: the workers, idle at a replay batch's start, get work sooner.
SPECULATE_FIRST_ROWS = 128
# The exported anomaly score is left out (NaN) for a window with a sample of each of its
# signals at fewer than this share of its steps (`sparse`): its coarse cloud is then the few
# steps left, unpooled or short, and compares as unusual with every full window (helper-57:
# 0.93-0.9998 at either end of a two-hour scrape gap). The sustained form, the histories and
# the decisions still read such windows: made a degenerate window for all of them, a failing
# host's partial windows were lost as evidence too (a detection fewer and a false alert more
# on the independent fleets; benchmarks/README.md "Scrape gaps").
MIN_COVERAGE = 0.75


class TopologyError(RuntimeError):
    """The topology stage failed for this cycle."""


@dataclass(frozen=True, eq=False)
class _Stats:
    """What `_prepare` computes from the window alone (no baseline): values, raw quartiles
    [3, E, S] and deciles [E, S, 9], the window's own centre/scale [E, S], the coarse score
    clouds in raw units and the degenerate mask [E]."""

    values: np.ndarray
    quart: np.ndarray
    deciles: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    coarse: Clouds
    degenerate: np.ndarray


@dataclass(frozen=True, eq=False)
class _Prepared(_Stats):
    """One window's shared preparation (`TopologyStage._prepare`): its `_Stats` with
    centre/scale [E, S] replaced by each entity's baseline normalisation where fitted, its
    provisional one before, and the baselines."""

    store: BaselineStore
    keys: tuple[tuple[str, ...], ...]
    models: list[EntityBaseline | None]
    fitted: np.ndarray


@dataclass
class _Spec:
    """A window's normalisation-dependent products computed ahead in `run_batch`, rows in
    its entity order: `done` [E] rows computed, under the normalisation center/scale [E, S];
    window features [E, len(WINDOW_FEATURES)], feature and score clouds, and the score
    clouds' short-scale summaries [E, RECENT_POINTS] (None without RECENT_SCALE); without
    a pool also their summaries [E, SUMMARY_SIZE] (`_summaries`) and diagrams (None where
    there is no feature cloud, as `RipsPersistence.submit` gives them; else both None);
    keys: the feature and score clouds' `cloud_key`s [E] where they were sent to the pool
    (None: not computed, or the row computed again since), so `submit` does not hash them
    again."""

    done: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    wfeats: np.ndarray
    fine: Clouds
    scored: Clouds
    recent: np.ndarray | None
    vecs: np.ndarray | None
    dgms: list[Diagram | None] | None
    keys: tuple[list[bytes | None], list[bytes | None]]


def _same_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[E] True where rows a[i] and b[i] ([E, S] float64) have the same bits."""
    return (np.ascontiguousarray(a).view(np.int64)
            == np.ascontiguousarray(b).view(np.int64)).all(axis=1)


def _rows(vals: list[np.ndarray], offsets: np.ndarray, b: slice) -> np.ndarray:
    """Rows b (a slice of the stacked rows) of the arrays vals, stacked."""
    parts = []
    for i in range(len(vals)):
        lo, hi = max(b.start, offsets[i]), min(b.stop, offsets[i + 1])
        if hi > lo:
            parts.append(vals[i][lo - offsets[i]:hi - offsets[i]])
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def score_embedding(values: np.ndarray) -> tuple[int, int]:
    """(dimension, delay) of the score clouds' embedding for the first window values[E, S, T]
    an analysis sees: `embedding.takens_parameters` for one signal (TAKENS), else (1, 1)."""
    return takens_parameters(values[:, 0]) if values.shape[1] == 1 and TAKENS else (1, 1)


def degenerate(values: np.ndarray) -> np.ndarray:
    """[E] True where every signal of values[E, S, T] takes at most two distinct values over
    the window (constant, all-zero, two-state flapping) or is all missing."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo = np.nanmin(values, axis=2, keepdims=True)
        hi = np.nanmax(values, axis=2, keepdims=True)
    two = ((values == lo) | (values == hi) | np.isnan(values)).all(axis=2)
    return two.all(axis=1)


def sparse(values: np.ndarray) -> np.ndarray:
    """[E] True where fewer than MIN_COVERAGE of the steps of values[E, S, T] have a sample of
    every signal the entity has in the window (the ends of a scrape gap, a host going down),
    or none has any."""
    missing = np.isnan(values)
    present = ~missing.all(axis=2)  # [E, S]: the signals the entity has in this window
    steps = (~missing | ~present[:, :, None]).all(axis=1) & present.any(axis=1)[:, None]
    return steps.mean(axis=1) < MIN_COVERAGE if values.shape[2] else np.ones(len(values), bool)


class TopologyStage:
    """Topology features, anomaly scores and fleet topology of one analysis.

    Parameters
    ----------
    analysis: the analysis (signals, `topology` settings).
    workers: persistence processes (None: all CPUs this process may use; 1: inline).
    row_block: entities per block of the row-wise array work (memory only, same results).
    """

    def __init__(self, analysis: AnalysisConfig, workers: int | None = None,
                 row_block: int = ROW_BLOCK):
        self.analysis = analysis
        self.config = analysis.topology
        self.workers = workers
        self.row_block = max(1, int(row_block))
        self._persistence = RipsPersistence(workers).fit()
        self._store: BaselineStore | None = None
        self._takens: tuple[int, int] | None = None  # score embedding (dimension, delay)
        if analysis.signals:
            self._store = self._new_store(tuple(s.name for s in analysis.signals))

    def _new_store(self, signals: tuple[str, ...]) -> BaselineStore:
        c = self.config
        return BaselineStore(signals, c.baseline_size, float(c.baseline_every),
                             float(c.baseline_admit_every), c.baseline_admit_quantile,
                             float(self.analysis.window), c.score_points)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Column names of `TopologyResult.features` (features.FEATURE_NAMES)."""
        return FEATURE_NAMES

    def _blocks(self, e: int) -> list[slice]:
        """Row blocks of `row_block` entities covering range(e) (one empty block for e = 0)."""
        return [slice(a, a + self.row_block) for a in range(0, e, self.row_block)] or [slice(0, 0)]

    def _clouds(self, values: np.ndarray, center: np.ndarray, scale: np.ndarray) -> Clouds:
        """Feature clouds of values [E, S, T] normalised by center/scale [E, S], written block
        by block into one array: the normalised window is never whole (at 10 000 x 8 x 120
        it was 73 MiB, plus 37 MiB of block clouds being joined, at the stage's peak)."""
        return self._clouds_and_features(values, center, scale, None)[0]

    def _clouds_and_features(self, values: np.ndarray, center: np.ndarray, scale: np.ndarray,
                             zquart: np.ndarray | None) -> tuple[Clouds, np.ndarray]:
        """`_clouds`, and with zquart [3, E, S] also `_window_features` from each block's
        same normalised values (the same bits, one normalisation instead of two; without
        zquart the features are [E, 0])."""
        c = self.config
        points: np.ndarray | None = None
        counts = np.zeros(len(values), dtype=np.int64)
        feats: list[np.ndarray] = []
        for b in self._blocks(len(values)):
            z = normalise(values[b], center[b], scale[b])
            part = pack_clouds(delay_embed(z, c.embedding_dimension, c.embedding_delay),
                               c.max_points, c.min_points, c.anchor, absent=0.0)
            if points is None:
                points = np.empty((len(values), *part.points.shape[1:]))
            points[b], counts[b] = part.points, part.counts
            if zquart is not None:
                feats.append(window_features(z, values[b], zquart[:, b]))
        return Clouds(points, counts), (  # type: ignore[arg-type]
            np.concatenate(feats) if zquart is not None else np.empty((len(values), 0)))

    def _window_features(self, values: np.ndarray, center: np.ndarray, scale: np.ndarray,
                         zquart: np.ndarray) -> np.ndarray:
        """`window_features` of values [E, S, T] normalised by center/scale, block by block
        (the normalised block is computed again here rather than kept from `_clouds`)."""
        return np.concatenate([
            window_features(normalise(values[b], center[b], scale[b]), values[b], zquart[:, b])
            for b in self._blocks(len(values))])

    def run(self, window: Window, now: float) -> TopologyResult:
        """Analyse one cycle's window; rows follow `window.entities`."""
        started = time.perf_counter()
        try:
            return self._run(window, now, started)
        except TopologyError:
            raise
        except Exception as err:
            raise TopologyError(f"topology stage failed: {err!r}") from err

    def run_batch(self, windows: Sequence[Window], nows: Sequence[float], *,
                  features: bool = True, fleet_betti: bool = True) -> list[TopologyResult]:
        """`run(w, now)` for each pair in order, with the per-window array work and the
        persistence computed ahead.

        Same results as the sequential calls (the baselines are updated window by window as
        `run` does; tests/test_tda_stage_batched.py). The windows' own statistics
        (percentiles, scales, coarse clouds, degenerate mask) need no baseline: they are
        computed for all windows at once, rows stacked (`_stats_many`). The rest depends on
        the baselines only through each entity's normalisation, which changes rarely (first
        window, then every RENORMALISE_EVERY at a refit): each entity's window features,
        feature and score clouds and short-scale summaries of the coming windows are
        computed stacked under its current normalisation, as far as it is known to hold
        (`_stable_upto`), and each window uses the rows computed under exactly its
        normalisation, recomputing the others (`_speculate`). A Rips diagram is a pure
        function of its cloud: with a pool the clouds computed ahead are sent to it at once
        and the sequential pass looks each one up by its exact bits (waiting for it if in
        flight); with one worker they are computed when looked up. Only the baselines'
        distance, score and update (sequential state), the signal contributions and the
        fleet terms run window by window. For replays of many cycles (the backtest), where
        per-cycle work would dominate.

        features=False: the caller reads neither the diagram features nor what comes from
        them (betti, entropy, fleet outliers): the feature clouds' persistence is skipped and
        those are NaN (a replay of fewer than `fleet.MIN_FLEET` entities with a model without
        topology inputs). fleet_betti=False: the fleet's Betti numbers (a Rips diagram of up
        to FLEET_POINTS entities per window, only ever exported) are NaN.
        """
        return self.batch(windows, nows, features=features, fleet_betti=fleet_betti).results()

    def batch(self, windows: Sequence[Window], nows: Sequence[float], *,
              features: bool = True, fleet_betti: bool = True) -> TopologyBatch:
        """`run_batch(windows, nows, ...)` in three steps, for a caller that overlaps them
        with other work (a replay's next batch with its current one): this call computes the
        windows' own statistics (no baseline read: it may run while an earlier batch is
        unfinished); `start()` reads the baselines and sends the first window's clouds, and
        those computed along, to the pool, where each finished task starts the next held one
        (`DiagramCache(refill=True)`), so the workers keep busy while the caller is away;
        `results()` runs the sequential pass (starting first if not started). Between
        `start()` and `results()` nothing else may use this stage. Raises TopologyError."""
        if len(windows) != len(nows):
            raise TopologyError(f"run_batch got {len(windows)} windows and {len(nows)} times")
        batch = TopologyBatch(self, windows, [float(t) for t in nows], features, fleet_betti)
        with _stage_errors():
            batch.stats = self._stats_many(windows)
        return batch

    def _speculate(self, k: int, p: _Prepared, windows: Sequence[Window], nows: list[float],
                   stats: list[_Stats], specs: dict[int, _Spec],
                   rows: dict[int, dict[tuple[str, ...], int]], cache: DiagramCache,
                   ahead: bool) -> None:
        """Make `specs[k]` hold window k's normalisation-dependent products under the
        normalisations of `p`, computing those of later windows along (see `run_batch`).

        Rows of window k computed earlier under the same normalisation (the same bits) are
        kept; the others are computed now, together with the entity's rows of the windows
        its normalisation surely holds for (`_stable_upto`), all stacked: every step is
        row-wise, so a row's values are those of its window alone. An entity whose rows run
        out at window k + 1 is extended from there. With a pool (`ahead`) the clouds of
        later windows (and window 0's) go to it, a few tasks at a time, the soonest needed
        first (`RipsPersistence.speculate`); window k's own are computed inline when
        submitted."""
        n = len(windows)
        e = len(p.keys)
        sp = specs.get(k)
        ok = np.zeros(e, dtype=bool) if sp is None else \
            sp.done & _same_rows(sp.center, p.center) & _same_rows(sp.scale, p.scale)
        extend = np.zeros(e, dtype=bool)
        if k + 1 < n and ok.any():
            nxt = specs.get(k + 1)
            if nxt is None:
                extend = ok
            else:
                index = self._index(k + 1, windows, rows)
                for i in np.flatnonzero(ok):
                    r = index.get(p.keys[i])
                    extend[i] = r is not None and not nxt.done[r]
        todo = np.flatnonzero(~ok | extend)
        if len(todo) == 0:
            if ahead:
                self._persistence.pump(cache, k + 1)
            return
        self._ensure_takens(p.values)
        # window j -> (rows of j, rows of k giving their normalisation)
        want: dict[int, tuple[list[int], list[int]]] = {}
        for i in todo:
            key = p.keys[i]
            entry = p.store.entries.get(key)
            fitted = entry is not None and entry.model is not None
            start = k + 1 if ok[i] else k
            upto = max(start + 1, self._stable_upto(key, entry if fitted else None, nows, k))
            for j in range(start, upto):
                r = int(i) if j == k else self._index(j, windows, rows).get(key)
                if r is not None:
                    rs, src = want.setdefault(j, ([], []))
                    rs.append(r)
                    src.append(int(i))
        items = [(j, np.array(want[j][0]), np.array(want[j][1])) for j in sorted(want)]
        # With a pool, a small first chunk: the workers start while the rest is computed.
        for chunk in self._item_chunks(items, SPECULATE_FIRST_ROWS if ahead else 0):
            clouds: list[np.ndarray] = []
            is_fine: list[bool] = []
            needed: list[float] = []
            where: list[tuple[list[bytes | None], int]] = []  # each cloud's key slot
            values = np.concatenate([stats[j].values[d] for j, d, _ in chunk])
            center = np.concatenate([p.center[src] for _, _, src in chunk])
            scale = np.concatenate([p.scale[src] for _, _, src in chunk])
            quart = np.concatenate([stats[j].quart[:, d] for j, d, _ in chunk], axis=1)
            coarse = Clouds(np.concatenate([stats[j].coarse.points[d] for j, d, _ in chunk]),
                            np.concatenate([stats[j].coarse.counts[d] for j, d, _ in chunk]))
            fine, wfeats = self._clouds_and_features(
                values, center, scale, clipped_z(quart, center[None], scale[None], Z_CLIP))
            scored = self._score_clouds_of(values, coarse, center, scale)
            recent = recent_summaries(scored.points, scored.counts) if RECENT_SCALE else None
            vecs = None
            if not ahead:  # the score diagrams now, here (submit would compute them here)
                dgms = self._persistence.diagrams_here(
                    [scored.cloud(int(r)) for r in np.flatnonzero(fine.counts)], cache)
                full: list[Diagram | None] = [None] * len(fine.counts)
                for row, dgm in zip(np.flatnonzero(fine.counts), dgms, strict=True):
                    full[row] = dgm
                vecs = self._summaries(full, scored, np.concatenate(
                    [stats[j].degenerate[d] for j, d, _ in chunk]), recent)
            a = 0
            for j, d, _ in chunk:
                b = a + len(d)
                spec = specs.get(j)
                if spec is None:
                    spec = specs[j] = self._empty_spec(len(windows[j].entities),
                                                       center.shape[1], fine, scored,
                                                       not ahead)
                spec.done[d] = True
                spec.center[d], spec.scale[d] = center[a:b], scale[a:b]
                spec.wfeats[d] = wfeats[a:b]
                for dst, cl, known in ((spec.fine, fine, spec.keys[0]),
                                       (spec.scored, scored, spec.keys[1])):
                    dst.points[d], dst.counts[d] = cl.points[a:b], cl.counts[a:b]
                    for at in d.tolist():
                        known[at] = None
                if recent is not None:
                    spec.recent[d] = recent[a:b]  # type: ignore[index]
                if vecs is not None:
                    spec.vecs[d] = vecs[a:b]  # type: ignore[index]
                    for row, got in zip(d, full[a:b], strict=True):
                        spec.dgms[row] = got  # type: ignore[index]
                if ahead and (j > k or k == 0):
                    for cl, known in ((fine, spec.keys[0]), (scored, spec.keys[1])):
                        sent = [r for r in range(a, b) if cl.counts[r] > 0]
                        clouds.extend(cl.cloud(r) for r in sent)
                        is_fine.extend([cl is fine] * len(sent))
                        needed.extend([float(j)] * len(sent))
                        where.extend((known, int(d[r - a])) for r in sent)
                a = b
            if clouds:  # chunk by chunk: the workers start while the next is computed
                keys = self._persistence.speculate(cache, clouds, features=is_fine,
                                                   priority=needed)
                for (known, at), ckey in zip(where, keys, strict=True):
                    known[at] = ckey
                self._persistence.pump(cache, k + 1)
        if ahead:  # the next window's clouds now, then the soonest needed
            self._persistence.pump(cache, k + 1)

    @staticmethod
    def _index(j: int, windows: Sequence[Window],
               rows: dict[int, dict[tuple[str, ...], int]]) -> dict[tuple[str, ...], int]:
        index = rows.get(j)
        if index is None:
            index = rows[j] = {key: r for r, key in enumerate(windows[j].entities)}
        return index

    def _item_chunks(self, items: list[tuple[int, np.ndarray, np.ndarray]], first: int = 0,
                     ) -> list[list[tuple[int, np.ndarray, np.ndarray]]]:
        """(window, rows, source rows) items in chunks of about `row_block` rows (an item of
        more rows is split); first > 0: the first chunk holds only the first `first` rows."""
        chunks: list[list[tuple[int, np.ndarray, np.ndarray]]] = []
        n = 0
        if first > 0:
            head, rest = [], []
            for j, d, src in items:
                m = max(0, min(len(d), first - n))
                if m:
                    head.append((j, d[:m], src[:m]))
                    n += m
                if m < len(d):
                    rest.append((j, d[m:], src[m:]))
            chunks, items, n = [head], rest, self.row_block
        for j, d, src in items:
            for a in range(0, len(d), self.row_block):
                m = min(len(d), a + self.row_block) - a
                if not chunks or (n > 0 and n + m > self.row_block):
                    chunks.append([])
                    n = 0
                chunks[-1].append((j, d[a:a + m], src[a:a + m]))
                n += m
        return chunks

    @staticmethod
    def _empty_spec(e: int, s: int, fine: Clouds, scored: Clouds, vecs: bool) -> _Spec:
        """A `_Spec` of e rows, none done, clouds shaped as `fine` and `scored`, with
        summaries when `vecs`."""
        def clouds(c: Clouds) -> Clouds:
            return Clouds(np.zeros((e, *c.points.shape[1:])), np.zeros(e, dtype=np.int64))

        return _Spec(np.zeros(e, dtype=bool), np.full((e, s), np.nan), np.full((e, s), np.nan),
                     np.full((e, len(WINDOW_FEATURES)), np.nan), clouds(fine), clouds(scored),
                     np.full((e, RECENT_POINTS), np.nan) if RECENT_SCALE else None,
                     np.full((e, SUMMARY_SIZE), np.nan) if vecs else None,
                     [None] * e if vecs else None, ([None] * e, [None] * e))

    def _stable_upto(self, key: tuple[str, ...], entry, nows: list[float], k: int) -> int:  # type: ignore[no-untyped-def]
        """Index after the last window (from k on) that surely keeps the entity's current
        normalisation (at least SEND_AHEAD_MIN windows on). The baseline re-normalises at
        the first refit (every refresh_every after the last) at least RENORMALISE_EVERY
        after the last re-normalisation, and the window after that refit sees the new one
        (`BaselineStore.update`); an unfitted entity (entry None) keeps its first window's
        until its first fit, which staggers the next re-normalisation by the key's phase.
        A hint for `_send_ahead` only: a wrong one costs time, never a different result."""
        floor = min(len(nows), k + 1 + SEND_AHEAD_MIN)
        if entry is None:
            phase = shard_of(key, 1000) / 1000.0
            j = bisect.bisect_left(nows, nows[k] + (1.0 - phase) * RENORMALISE_EVERY, lo=k)
            return max(floor, min(len(nows), j + 1))
        every = self._store.refresh_every  # type: ignore[union-attr]
        due = entry.last_refresh + every
        j = k
        while True:
            j = bisect.bisect_left(nows, due, lo=j)
            if j >= len(nows):
                return len(nows)
            if nows[j] - entry.normalised_at >= RENORMALISE_EVERY:
                return max(floor, j + 1)
            due = nows[j] + every
            j += 1

    def learn(self, window: Window, now: float) -> None:
        """Feed a past window to the baselines only (the cold-start bootstrap replay).

        Only what the baselines keep is computed: the coarse score clouds' diagrams and
        distances, scores for admission, deciles. No 60-point feature clouds, features or fleet
        topology (a replay discards them): measured ~5x cheaper per window than `run`.
        """
        try:
            p = self._prepare(window)
            scored = self._score_clouds(p)
            diagrams, _, _, _ = self._persistence.submit(scored).result()
            vecs = self._summaries(diagrams, scored, p.degenerate)
            raw = p.store.distance(p.keys, vecs, now)
            admit = np.empty(len(p.keys))
            p.store.score(p.keys, raw, now, p.coarse, admit=admit)
            # The score clouds' H0 medians are not the feature clouds' (Betti scale): none kept.
            p.store.update(p.keys, diagrams, p.coarse, np.full(len(p.keys), np.nan), p.deciles,
                           admit, now, p.center, p.scale, raw, vecs, replay=True)
        except TopologyError:
            raise
        except Exception as err:
            raise TopologyError(f"topology replay failed: {err!r}") from err

    def _stats(self, window: Window) -> _Stats:
        """The window's own statistics and coarse clouds (no baseline involved)."""
        return self._stats_many([window])[0]

    def _stats_many(self, windows: Sequence[Window]) -> list[_Stats]:
        """`_stats` of each window, computed on their rows stacked (windows of one [S, T]
        shape), in chunks of `row_block` rows: every step is row-wise, so the values are
        those of one window alone. `nan_percentile` takes a sort path for an array with a
        missing sample and `np.percentile` otherwise (documented to agree only to about the
        last bit; no difference measured), so each row goes the way its window's row block
        went: blocks with a NaN are stacked with each other (whole, so every chunk has one),
        the others apart."""
        vals = [np.asarray(w.values, dtype=np.float64) for w in windows]
        if len({v.shape[1:] for v in vals}) > 1:
            return [s for v in vals for s in self._stats_rows([v])]
        return self._stats_rows(vals)

    def _stats_rows(self, vals: list[np.ndarray]) -> list[_Stats]:
        if not vals:
            return []
        c = self.config
        _, s, t = vals[0].shape
        total = sum(len(v) for v in vals)
        # The rows of each path, as (window, block) slices in stacking order.
        nan_rows: list[tuple[int, slice]] = []
        clean_rows: list[tuple[int, slice]] = []
        for i, v in enumerate(vals):
            for b in self._blocks(len(v)):
                (nan_rows if np.isnan(v[b]).any() else clean_rows).append((i, b))
        pct = np.empty((len(WINDOW_PERCENTILES), total, s))
        offsets = np.cumsum([0] + [len(v) for v in vals])
        for group in (nan_rows, clean_rows):
            for chunk in self._row_chunks(group, vals):
                x = vals[chunk[0][0]][chunk[0][1]] if len(chunk) == 1 else \
                    np.concatenate([vals[i][b] for i, b in chunk])
                # The sort path for the clean chunks too: np.percentile's values bit for bit
                # (tests/test_replay_speed_identity.py), 4-8x faster on [512, 8, 24-120]
                # (its partition at 11 quantiles is slower than one sort).
                q = nan_percentile(x, list(WINDOW_PERCENTILES), axis=2, always_sort=True)
                n = 0
                for i, b in chunk:
                    m = len(vals[i][b])
                    pct[:, offsets[i] + b.start:offsets[i] + b.start + m] = q[:, n:n + m]
                    n += m
        qi = [WINDOW_PERCENTILES.index(q) for q in (25.0, 50.0, 75.0)]
        di = [WINDOW_PERCENTILES.index(q) for q in DECILES]
        scale = np.empty((total, s))
        points: np.ndarray | None = None
        counts = np.empty(total, dtype=np.int64)
        flat = np.empty(total, dtype=bool)
        allv = vals[0] if len(vals) == 1 else None
        for a in range(0, total, self.row_block):
            b = slice(a, min(total, a + self.row_block))
            x = allv[b] if allv is not None else _rows(vals, offsets, b)
            p = pct[:, b]
            scale[b] = max_spread_sigma(x, p[qi[1]], p[di[0]], p[qi[0]], p[qi[2]], p[di[-1]])
            coarse = pack_clouds(x.transpose(0, 2, 1), c.score_points, c.min_points, False)
            if points is None:
                points = np.empty((total, *coarse.points.shape[1:]))
            points[b] = coarse.points
            counts[b] = coarse.counts
            flat[b] = degenerate(x)
        if points is None:  # no rows at all
            points = pack_clouds(np.empty((0, t, s)), c.score_points, c.min_points,
                                 False).points
        out = []
        for i, v in enumerate(vals):
            r = slice(offsets[i], offsets[i + 1])
            pw = pct[:, r]
            quart = pw[qi]
            out.append(_Stats(v, quart, np.moveaxis(pw[di], 0, -1), quart[1].copy(),
                              scale[r], Clouds(points[r], counts[r]), flat[r]))
        return out

    def _row_chunks(self, group: list[tuple[int, slice]],
                    vals: list[np.ndarray]) -> list[list[tuple[int, slice]]]:
        """(window, block) slices grouped into chunks of about `row_block` rows."""
        chunks: list[list[tuple[int, slice]]] = []
        n = 0
        for i, b in group:
            m = len(vals[i][b])
            if not chunks or (n > 0 and n + m > self.row_block):
                chunks.append([])
                n = 0
            chunks[-1].append((i, b))
            n += m
        return chunks

    def _prepare(self, window: Window, stats: _Stats | None = None) -> _Prepared:
        """What `run` and `learn` share: baselines, window percentiles, normalisation, coarse
        score clouds in raw units (the baseline keeps them so). `stats`: `_stats(window)`
        when already computed."""
        if self._store is None:
            self._store = self._new_store(tuple(window.signals))
        store = self._store
        if tuple(window.signals) != store.signals:
            raise TopologyError(
                f"window signals {window.signals} differ from the baselines' {store.signals}"
            )
        st = self._stats(window) if stats is None else stats
        keys = window.entities
        models = store.models(keys)
        fitted = np.array([m is not None for m in models], dtype=bool)
        center, scale = st.center.copy(), st.scale.copy()
        store.provisional(keys, center, scale)
        for i in np.flatnonzero(fitted):
            center[i], scale[i] = models[i].center_, models[i].scale_  # type: ignore[union-attr]
        return _Prepared(st.values, st.quart, st.deciles, center, scale, st.coarse,
                         st.degenerate, store, keys, models, fitted)

    def _run(self, window: Window, now: float, started: float,
             cache: DiagramCache | None = None, p: _Prepared | None = None,
             features: bool = True, fleet_betti: bool = True,
             spec: _Spec | None = None) -> TopologyResult:
        if p is None:
            p = self._prepare(window)
        values, store, keys, models, fitted = p.values, p.store, p.keys, p.models, p.fitted
        quart, deciles, center, scale, coarse = p.quart, p.deciles, p.center, p.scale, p.coarse
        e, s, _ = values.shape
        base_z = np.full((e, s, 9), np.nan)
        betti_scale = np.full(e, np.nan)
        for i in np.flatnonzero(fitted):
            base_z[i] = models[i].zdeciles_  # type: ignore[union-attr]
            betti_scale[i] = models[i].betti_scale_  # type: ignore[union-attr]
        if spec is None:
            clouds = self._clouds(values, center, scale)
            scored = self._score_clouds(p)
        else:  # computed ahead (run_batch) under these center/scale
            clouds, scored = spec.fine, spec.scored
        if spec is not None and spec.dgms is not None and not features:
            # What submit(..., features=False) gives: the score diagrams where there is a
            # feature cloud, NaN features and H0 medians.
            diagrams, wfeats = list(spec.dgms), spec.wfeats
            dfeats = np.full((e, len(FEATURE_NAMES) - len(WINDOW_FEATURES)), np.nan)
            h0_median = np.full(e, np.nan)
        else:
            pending = self._persistence.submit(clouds, None, betti_scale, scored, cache,
                                               features, None if spec is None else spec.keys)
            # Per-window work overlaps with the workers' PH.
            if spec is None:
                # Percentiles commute with the monotone x -> clip((x - c) / s).
                zquart = clipped_z(quart, center[None], scale[None], Z_CLIP)
                wfeats = self._window_features(values, center, scale, zquart)
            else:
                wfeats = spec.wfeats
            diagrams, _, dfeats, h0_median = pending.result()
        known = clouds.counts > 0

        if spec is not None and spec.vecs is not None:
            vecs = spec.vecs
        else:
            vecs = self._summaries(diagrams, scored, p.degenerate,
                                   None if spec is None else spec.recent)
        # The clouds are done with: not held under the baselines' work (37 + 8 MiB at 10 000
        # entities).
        del clouds, scored
        raw = store.distance(keys, vecs, now)
        held, admit = np.empty(len(keys)), np.empty(len(keys))
        score = store.score(keys, raw, now, coarse, sustained=held, admit=admit)
        warming = store.warming(keys)  # before update: this cycle's distance not yet counted

        feats = np.concatenate([dfeats, wfeats], axis=1)
        feats[~known] = np.nan
        contribution = self._contribution(deciles, center, scale, base_z, fitted & known)
        # Admission reads the calibrated 30-min average (ADMIT): a window hot for one cycle's
        # onset alone is still admitted, and so is one the drift holds up for hours.
        store.update(keys, diagrams, coarse, h0_median, deciles, admit, now, center, scale,
                     raw, vecs)
        store.forget(set(keys), now)

        order = np.array([shard_of(k, 2**31) for k in keys], dtype=np.int64)
        fleet_b, fleet_outlier = FleetTopology(betti=fleet_betti).fit(feats, order).transform()
        log.debug("stage=tda entities=%d diagrams=%d fitted=%d duration_seconds=%.3f",
                  e, int(known.sum()), int(fitted.sum()), time.perf_counter() - started)
        return TopologyResult(
            anomaly_score=np.where(warming | sparse(values), np.nan, score),
            sustained_score=np.where(warming, np.nan, held),
            betti=feats[:, :2].copy(),
            entropy=feats[:, 2:4].copy(),
            features=feats,
            feature_names=FEATURE_NAMES,
            signal_contribution=contribution,
            fleet_betti=fleet_b,
            fleet_outlier=fleet_outlier,
            baseline=store,
            history_seconds=store.history_seconds(keys, now),
        )

    def _score_clouds(self, p: _Prepared) -> Clouds:
        """The anomaly score's clouds: the coarse clouds normalised and anchored; for a
        one-signal analysis a Takens embedding of the normalised window pooled to the same
        size (+ anchor), its dimension and delay chosen once from the first window seen
        (`embedding.takens_parameters`, kept in the state)."""
        self._ensure_takens(p.values)
        return self._score_clouds_of(p.values, p.coarse, p.center, p.scale)

    def _ensure_takens(self, values: np.ndarray) -> None:
        if self._takens is None:
            self._takens = score_embedding(values)
            if self._takens[0] > 1:  # a multi-signal analysis's cloud is no delay embedding
                log.info("msg=%s dimension=%d delay=%d", "topology score embedding",
                         *self._takens)

    def _score_clouds_of(self, values: np.ndarray, coarse: Clouds, center: np.ndarray,
                         scale: np.ndarray) -> Clouds:
        m, tau = self._takens  # type: ignore[misc]
        if m == 1:
            return score_clouds(coarse, center, scale)
        c = self.config
        z = normalise(values, center, scale)
        return pack_clouds(delay_embed(z, m, tau), c.score_points, c.min_points, True,
                           absent=0.0)

    @staticmethod
    def _summaries(diagrams: list[Diagram | None], scored: Clouds,
                   degenerate: np.ndarray, recent: np.ndarray | None = None) -> np.ndarray:
        """Score diagrams' summaries [E, SUMMARY_SIZE] with the short scale of the score
        clouds; NaN for degenerate windows (no score: a constant or two-state window has no
        shape to compare, and its distances are 0 or ties that used to calibrate to the top
        of the range). `recent` [E, RECENT_POINTS]: the short scale when already computed."""
        if recent is None and RECENT_SCALE:
            recent = recent_summaries(scored.points, scored.counts)
        vecs = summaries(diagrams, recent)
        vecs[degenerate] = np.nan
        return vecs

    @staticmethod
    def _contribution(deciles: np.ndarray, center: np.ndarray, scale: np.ndarray,
                      base_z: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """[E, S] shares of each signal's decile deviation from the baseline (rows sum 1)."""
        e, s = center.shape
        out = np.full((e, s), np.nan)
        if not rows.any():
            return out
        zq = clipped_z(deciles[rows], center[rows, :, None], scale[rows, :, None], Z_CLIP)
        dev = np.nan_to_num(np.abs(zq - base_z[rows]).mean(axis=2), nan=0.0)
        total = dev.sum(axis=1, keepdims=True)
        out[rows] = np.where(total > 0, dev / np.where(total > 0, total, 1.0), 1.0 / s)
        return out

    def features_only(self, values: np.ndarray) -> np.ndarray:
        """Feature vectors [B, K] of a batch of windows values[B, S, T], each normalised by its
        own robust statistics (no baselines; for LNN training). Rows without a cloud are NaN."""
        try:
            values = np.asarray(values, dtype=np.float64)
            center, scale = robust_stats(values)
            clouds = self._clouds(values, center, scale)
            pending = self._persistence.submit(clouds)
            # Whole, not by block: window_features' percentile path depends on the array.
            wfeats = window_features(normalise(values, center, scale), values)
            _, _, dfeats, _ = pending.result()
            feats = np.concatenate([dfeats, wfeats], axis=1)
            feats[clouds.counts == 0] = np.nan
            return feats
        except Exception as err:
            raise TopologyError(f"topology features failed: {err!r}") from err

    def state(self) -> dict[str, np.ndarray]:
        """Baselines as a flat dict of numeric/unicode arrays (for the StateStore)."""
        if self._store is None:
            return {}
        out = self._store.state()
        if self._takens is not None:
            out["takens"] = np.array(self._takens, dtype=np.int64)
        return out

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Load baselines saved by `state()`; raise TopologyError when they do not fit."""
        if not arrays:
            return
        try:
            signals = tuple(arrays["signals"].tolist())
            if self._store is None:
                self._store = self._new_store(signals)
            self._store.restore(arrays)
            if "takens" in arrays:
                m, tau = (int(v) for v in arrays["takens"])
                self._takens = (m, tau)
        except (KeyError, ValueError, IndexError) as err:
            raise TopologyError(f"cannot restore topology baselines: {err!r}") from err

    def close(self) -> None:
        """Stop the persistence worker pool."""
        self._persistence.close()


@contextmanager
def _stage_errors() -> Iterator[None]:
    """Raise anything but a TopologyError as one (the stage's error contract)."""
    try:
        yield
    except TopologyError:
        raise
    except Exception as err:
        raise TopologyError(f"topology stage failed: {err!r}") from err


class TopologyBatch:
    """A `TopologyStage.run_batch` in steps (`TopologyStage.batch`): window statistics
    computed, `start()` sends the first persistence to the pool, `results()` runs the
    sequential pass once and returns the results in window order."""

    def __init__(self, stage: TopologyStage, windows: Sequence[Window], nows: list[float],
                 features: bool, fleet_betti: bool) -> None:
        self.stage, self.windows, self.nows = stage, windows, nows
        self.features, self.fleet_betti = features, fleet_betti
        self.started = time.perf_counter()
        self.cache = DiagramCache(refill=True)
        # Only the feature clouds are worth the pool: a score cloud's PH costs about its
        # hand-off.
        self.ahead = features and stage._persistence.workers_ > 1
        self.specs: dict[int, _Spec] = {}
        self.rows: dict[int, dict[tuple[str, ...], int]] = {}
        self.stats: list[_Stats] = []
        self.first: _Prepared | None = None

    def start(self) -> None:
        """Window 0's normalisation-dependent products under the baselines as they are now,
        their clouds and those computed along sent to the pool. Raises TopologyError."""
        if self.first is not None or not self.windows:
            return
        st = self.stage
        try:
            with _stage_errors():
                self.first = st._prepare(self.windows[0], self.stats[0])
                st._speculate(0, self.first, self.windows, self.nows, self.stats, self.specs,
                              self.rows, self.cache, self.ahead)
        except BaseException:
            self.cache.stop()
            raise

    def results(self) -> list[TopologyResult]:
        """`run(w, now)` of each window in order (see `TopologyStage.run_batch`). Raises
        TopologyError."""
        self.start()
        st, windows, stats = self.stage, self.windows, self.stats
        out = []
        try:
            with _stage_errors():
                for k, (w, now) in enumerate(zip(windows, self.nows, strict=True)):
                    if k == 0:
                        p = self.first
                    else:
                        p = st._prepare(w, stats[k])
                        st._speculate(k, p, windows, self.nows, stats, self.specs, self.rows,
                                      self.cache, self.ahead)
                    stats[k] = None  # type: ignore[call-overload]
                    self.rows.pop(k, None)
                    out.append(st._run(w, now, time.perf_counter(), self.cache, p,
                                       self.features, self.fleet_betti, self.specs.pop(k, None)))
        finally:
            self.cache.stop()
        log.debug("stage=tda windows=%d diagrams=%d duration_seconds=%.3f", len(windows),
                  len(self.cache), time.perf_counter() - self.started)
        return out
