"""The topology stage: one cycle's Window -> TopologyResult, learning per-entity baselines.

Chain per cycle (all entities batched): robust normalisation against each entity's baseline
(its own window before one exists) -> optional delay embedding -> feature clouds pooled to
`max_points` (+ anchor) and score clouds of `score_points` means (+ anchor; for one-signal
analyses a Takens embedding, `takens_parameters`) -> Rips H0/H1 of both on the process pool
-> features; score-diagram summaries -> distance to the entity's own same-time-of-day
history -> calibrated anomaly scores (exporter/tda/baseline.py) and signal contributions ->
baseline admission/refits/re-normalisation -> fleet topology. Degenerate windows (constant,
two-state, missing) get no score. `run_batch` runs many cycles with their persistence in one
pool map. See the module docstrings of exporter.tda.* for each choice;
`benchmarks/bench_topology.py`, `benchmarks/eval_topology.py` and
`benchmarks/eval_anomaly.py` hold the figures. `learn` (the cold-start replay) runs only the
baseline half of this chain.
"""

from __future__ import annotations

import bisect
import logging
import time
import warnings
from collections.abc import Sequence
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
class _Plan:
    """An entity's clouds sent ahead in `run_batch`: the normalisation they used, whether the
    entity was fitted then, and the index of the first window not sent."""

    center: np.ndarray
    scale: np.ndarray
    fitted: bool
    upto: int


def _concat(parts: list[Clouds]) -> Clouds:
    """Clouds of consecutive row blocks (same width) as one."""
    if len(parts) == 1:
        return parts[0]
    return Clouds(np.concatenate([p.points for p in parts]),
                  np.concatenate([p.counts for p in parts]))


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

    def _clouds(self, values: np.ndarray, center: np.ndarray, scale: np.ndarray):  # type: ignore[no-untyped-def]
        c = self.config
        z = normalise(values, center, scale)
        clouds = _concat([pack_clouds(delay_embed(z[b], c.embedding_dimension,
                                                  c.embedding_delay),
                                      c.max_points, c.min_points, c.anchor)
                          for b in self._blocks(len(z))])
        return z, clouds

    def _window_features(self, z: np.ndarray, values: np.ndarray,
                         zquart: np.ndarray) -> np.ndarray:
        return np.concatenate([window_features(z[b], values[b], zquart[:, b])
                               for b in self._blocks(len(z))])

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
        """`run(w, now)` for each pair in order, with the persistence computed ahead.

        Same results as the sequential calls (the baselines are updated window by window as
        `run` does): a Rips diagram is a pure function of its cloud, and an entity's clouds
        depend on the baselines only through its normalisation, which changes rarely (first
        window, then every RENORMALISE_EVERY at a refit). So each entity's clouds of the
        coming windows are built under its current normalisation, as far as it is known to
        hold (`_stable_upto`), and sent to the pool at once; the sequential pass looks each
        cloud up by its exact bits (waiting for it if in flight) and computes the few that
        differ inline. An entity whose normalisation changed is sent ahead again. With one
        worker nothing runs ahead (no wasted work). For replays of many cycles (the
        backtest), where per-cycle pool hand-offs would dominate.

        features=False: the caller reads neither the diagram features nor what comes from
        them (betti, entropy, fleet outliers): the feature clouds' persistence is skipped and
        those are NaN (a replay of fewer than `fleet.MIN_FLEET` entities with a model without
        topology inputs). fleet_betti=False: the fleet's Betti numbers (a Rips diagram of up
        to FLEET_POINTS entities per window, only ever exported) are NaN.
        """
        if len(windows) != len(nows):
            raise TopologyError(f"run_batch got {len(windows)} windows and {len(nows)} times")
        started = time.perf_counter()
        times = [float(t) for t in nows]
        cache = DiagramCache()
        # Only the feature clouds are worth the pool: a score cloud's PH costs about its
        # hand-off.
        ahead = features and self._persistence.workers_ > 1
        stats: dict[int, _Stats] = {}
        rows: dict[int, dict[tuple[str, ...], int]] = {}
        plans: dict[tuple[str, ...], _Plan] = {}
        out = []
        try:
            for k, (w, now) in enumerate(zip(windows, times, strict=True)):
                p = self._prepare(w, stats.pop(k, None))
                rows.pop(k, None)
                if ahead:
                    self._send_ahead(k, p, windows, times, stats, rows, plans, cache)
                out.append(self._run(w, now, time.perf_counter(), cache, p, features,
                                     fleet_betti))
        except TopologyError:
            raise
        except Exception as err:
            raise TopologyError(f"topology stage failed: {err!r}") from err
        log.debug("stage=tda windows=%d diagrams=%d duration_seconds=%.3f", len(windows),
                  len(cache), time.perf_counter() - started)
        return out

    def _send_ahead(self, k: int, p: _Prepared, windows: Sequence[Window],
                    nows: list[float], stats: dict[int, _Stats],
                    rows: dict[int, dict[tuple[str, ...], int]],
                    plans: dict[tuple[str, ...], _Plan], cache: DiagramCache) -> None:
        """Send to the pool the clouds of later windows that window k's normalisations
        predict and that were not sent yet (see `run_batch`). Window k's own clouds go too
        on the batch's first window; later, the few of an entity whose normalisation just
        changed are computed inline (queued behind the rest they would arrive last)."""
        want: dict[int, list[tuple[tuple[str, ...], np.ndarray, np.ndarray]]] = {}
        first = k + 1 if k else 0
        for i, key in enumerate(p.keys):
            c, s = p.center[i], p.scale[i]
            entry = p.store.entries.get(key)
            fitted = entry is not None and entry.model is not None
            plan = plans.get(key)
            same = (plan is not None and np.array_equal(plan.center, c, equal_nan=True)
                    and np.array_equal(plan.scale, s, equal_nan=True))
            if same and plan.fitted == fitted and plan.upto > k + 1:  # type: ignore[union-attr]
                continue
            start = max(plan.upto, first) if same else first  # type: ignore[union-attr]
            upto = self._stable_upto(key, entry if fitted else None, nows, k)
            plans[key] = _Plan(c.copy(), s.copy(), fitted, max(upto, start))
            for j in range(start, upto):
                want.setdefault(j, []).append((key, c, s))
        if not want:
            return
        self._ensure_takens(p.values)
        clouds: list[np.ndarray] = []
        for j in sorted(want):
            st = stats.get(j)
            if st is None:
                st = stats[j] = self._stats(windows[j])
            index = rows.get(j)
            if index is None:
                index = rows[j] = {e: r for r, e in enumerate(windows[j].entities)}
            items = [(index[key], c, s) for key, c, s in want[j] if key in index]
            if not items:
                continue
            sub = np.array([r for r, _, _ in items])
            center = np.stack([c for _, c, _ in items])
            scale = np.stack([s for _, _, s in items])
            _, fine = self._clouds(st.values[sub], center, scale)
            coarse = Clouds(st.coarse.points[sub], st.coarse.counts[sub])
            scored = self._score_clouds_of(st.values[sub], coarse, center, scale)
            for cl in (fine, scored):
                clouds.extend(cl.cloud(int(r)) for r in np.flatnonzero(cl.counts > 0))
        self._persistence.speculate(cache, clouds)

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
            score = p.store.score(p.keys, raw, now, p.coarse)
            # The score clouds' H0 medians are not the feature clouds' (Betti scale): none kept.
            p.store.update(p.keys, diagrams, p.coarse, np.full(len(p.keys), np.nan), p.deciles,
                           score, now, p.center, p.scale, raw, vecs, replay=True)
        except TopologyError:
            raise
        except Exception as err:
            raise TopologyError(f"topology replay failed: {err!r}") from err

    def _stats(self, window: Window) -> _Stats:
        """The window's own statistics and coarse clouds (no baseline involved)."""
        values = np.asarray(window.values, dtype=np.float64)
        blocks = self._blocks(len(values))
        # [P, E, S], once
        pct = np.concatenate([nan_percentile(values[b], list(WINDOW_PERCENTILES), axis=2)
                              for b in blocks], axis=1)
        quart = pct[[WINDOW_PERCENTILES.index(q) for q in (25.0, 50.0, 75.0)]]
        deciles = np.moveaxis(pct[[WINDOW_PERCENTILES.index(q) for q in DECILES]], 0, -1)
        center = quart[1].copy()
        scale = np.concatenate([
            max_spread_sigma(values[b], center[b], deciles[b, :, 0], quart[0, b], quart[2, b],
                             deciles[b, :, -1]) for b in blocks])
        c = self.config
        coarse = _concat([pack_clouds(values[b].transpose(0, 2, 1), c.score_points,
                                      c.min_points, False) for b in blocks])
        flat = np.concatenate([degenerate(values[b]) for b in blocks])
        return _Stats(values, quart, deciles, center, scale, coarse, flat)

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
             features: bool = True, fleet_betti: bool = True) -> TopologyResult:
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
        z, clouds = self._clouds(values, center, scale)
        scored = self._score_clouds(p)
        pending = self._persistence.submit(clouds, None, betti_scale, scored, cache, features)
        # Per-window work overlaps with the workers' PH.
        # Percentiles commute with the monotone x -> clip((x - c) / s).
        zquart = clipped_z(quart, center[None], scale[None], Z_CLIP)
        wfeats = self._window_features(z, values, zquart)
        diagrams, _, dfeats, h0_median = pending.result()
        known = clouds.counts > 0

        vecs = self._summaries(diagrams, scored, p.degenerate)
        raw = store.distance(keys, vecs, now)
        score = store.score(keys, raw, now, coarse)
        warming = store.warming(keys)  # before update: this cycle's distance not yet counted

        feats = np.concatenate([dfeats, wfeats], axis=1)
        feats[~known] = np.nan
        contribution = self._contribution(deciles, center, scale, base_z, fitted & known)
        store.update(keys, diagrams, coarse, h0_median, deciles, score, now, center, scale, raw,
                     vecs)
        store.forget(set(keys))

        order = np.array([shard_of(k, 2**31) for k in keys], dtype=np.int64)
        fleet_b, fleet_outlier = FleetTopology(betti=fleet_betti).fit(feats, order).transform()
        log.debug("stage=tda entities=%d diagrams=%d fitted=%d duration_seconds=%.3f",
                  e, int(known.sum()), int(fitted.sum()), time.perf_counter() - started)
        return TopologyResult(
            anomaly_score=np.where(warming, np.nan, score),
            betti=feats[:, :2].copy(),
            entropy=feats[:, 2:4].copy(),
            features=feats,
            feature_names=FEATURE_NAMES,
            signal_contribution=contribution,
            fleet_betti=fleet_b,
            fleet_outlier=fleet_outlier,
            baseline=store,
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
            log.info("msg=%s dimension=%d delay=%d", "topology score embedding",
                     *self._takens)

    def _score_clouds_of(self, values: np.ndarray, coarse: Clouds, center: np.ndarray,
                         scale: np.ndarray) -> Clouds:
        m, tau = self._takens  # type: ignore[misc]
        if m == 1:
            return score_clouds(coarse, center, scale)
        c = self.config
        z = normalise(values, center, scale)
        return pack_clouds(delay_embed(z, m, tau), c.score_points, c.min_points, True)

    @staticmethod
    def _summaries(diagrams: list[Diagram | None], scored: Clouds,
                   degenerate: np.ndarray) -> np.ndarray:
        """Score diagrams' summaries [E, SUMMARY_SIZE] with the short scale of the score
        clouds; NaN for degenerate windows (no score: a constant or two-state window has no
        shape to compare, and its distances are 0 or ties that used to calibrate to the top
        of the range)."""
        recent = recent_summaries(scored.points, scored.counts) if RECENT_SCALE else None
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
            z, clouds = self._clouds(values, center, scale)
            pending = self._persistence.submit(clouds)
            wfeats = window_features(z, values)
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
