"""The replay's faster paths give the same bits as the code they replaced (issue 16).

Each test compares a shortcut taken for the batched replay's main-process CPU with the
straightforward computation it stands for, bit for bit (np.array_equal, not allclose): the
fixed-seed backtest must stay byte-identical.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from exporter.numeric import (
    DECILE_TO_SIGMA,
    IQR_TO_SIGMA,
    MEAN_ABS_TO_SIGMA,
    clipped_z,
    mad_sigma,
    max_spread_sigma,
    nan_percentile,
    nanmedian_last,
    theil_sen,
)
from exporter.tda.baseline import Reservoir, _Entry, _LazyDiagrams
from exporter.tda.embedding import Clouds, pack_clouds, pool_points, pool_starts, robust_stats
from exporter.tda.features import (
    DIAGRAM_FEATURES,
    WINDOW_PERCENTILES,
    connectivity_scale,
    diagram_features,
    median_h0_deaths,
    window_features,
)
from exporter.tda.seasonal import SeasonalLevels


@pytest.mark.parametrize("seed", range(40))
def test_sort_path_percentiles_equal_numpy_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, s = int(rng.integers(1, 80)), int(rng.integers(1, 9))
    x = rng.normal(size=(n, s, 9)) * 10.0 ** rng.uniform(-5, 5)
    if seed % 3 == 0:
        x = np.round(x, 1)  # ties
    x = x.astype(np.float32).astype(np.float64)  # the reservoir keeps float32
    q = [50.0] if seed % 2 else [0.0, 10.0, 25.0, 33.3, 50.0, 75.0, 90.0, 100.0]
    want = np.percentile(x, q, axis=0)
    got = nan_percentile(x, q, axis=0, always_sort=True)
    assert np.array_equal(want, got)


@pytest.mark.parametrize("seed", range(20))
def test_sort_path_window_percentiles_equal_numpy_bytes(seed: int) -> None:
    # The topology stage's window percentiles ([E, S, T], last axis) take the sort path on
    # windows without NaN too: the same bytes as np.percentile.
    rng = np.random.default_rng(seed)
    e, s, t = int(rng.integers(1, 64)), int(rng.integers(1, 9)), int(rng.integers(2, 130))
    x = rng.normal(size=(e, s, t)) * 10.0 ** rng.uniform(-5, 5)
    if seed % 3 == 0:
        x = np.round(x, 1) + 1.0  # ties (no signed zeros: those compare equal either way)
    q = list(WINDOW_PERCENTILES)
    want = np.percentile(x, q, axis=2)
    got = nan_percentile(x, q, axis=2, always_sort=True)
    assert want.tobytes() == got.tobytes()


def _window_features_reference(z: np.ndarray) -> np.ndarray:
    """window_features' trend and roughness columns as written before the in-place
    arithmetic: np.where for the centred values and times, np.nanmean for the steps."""
    _, _, t = z.shape
    missing = np.isnan(z)
    ar = np.arange(t, dtype=np.float64)
    zz = np.where(missing, 0.0, z)
    n = t - np.count_nonzero(missing, axis=2)[..., None]
    tsum = np.where(missing, 0.0, ar).sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        tc = np.where(missing, 0.0, ar - tsum / n)
        zc = np.where(missing, 0.0, z - zz.sum(axis=2, keepdims=True) / n)
        slope = (tc * zc).sum(axis=2) / (tc * tc).sum(axis=-1)
        trend = np.nanmax(np.abs(slope), axis=1) * t
        rough = nanmedian_last(np.nanmean(np.abs(np.diff(z, axis=2)), axis=2))
    return np.column_stack([trend, rough])


@pytest.mark.parametrize("seed", range(20))
def test_window_features_trend_roughness_equal_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    e, s, t = int(rng.integers(1, 40)), int(rng.integers(1, 9)), int(rng.integers(2, 130))
    z = rng.normal(size=(e, s, t)) * 10.0 ** rng.uniform(-3, 3)
    if seed % 2:
        z[rng.random(z.shape) < rng.choice([0.02, 0.3, 0.95])] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = window_features(z, z)[:, 2:4]
    assert got.tobytes() == _window_features_reference(z).tobytes()


@pytest.mark.parametrize("seed", range(10))
def test_max_spread_sigma_equals_nanmean_formula(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(int(rng.integers(1, 30)), 4, int(rng.integers(1, 60))))
    x[rng.random(x.shape) < 0.3] = np.nan
    x[0, 0] = np.nan  # a row without samples
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        center = np.nanmedian(x, axis=-1)
        q10, q25, q75, q90 = np.nanpercentile(x, [10, 25, 75, 90], axis=-1)
        mean_abs = np.nanmean(np.abs(x - center[..., None]), axis=-1)
    with np.errstate(invalid="ignore"):
        scale = np.fmax(np.fmax((q75 - q25) / IQR_TO_SIGMA, (q90 - q10) / DECILE_TO_SIGMA),
                        MEAN_ABS_TO_SIGMA * mean_abs)
    floor = 1e-3 * np.abs(center) + 1e-9
    want = np.where(np.isnan(scale), scale, np.maximum(scale, floor))
    got = max_spread_sigma(x, center, q10, q25, q75, q90)
    assert np.isnan(got[0, 0])
    assert want.tobytes() == got.tobytes()


def _random_diagram(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h0 = np.sort(rng.exponential(size=int(rng.integers(0, 30))))
    if rng.random() < 0.2:
        h0 = np.append(h0, np.inf)  # an infinite bar is not a finite death
    birth = rng.uniform(0, 2, size=int(rng.integers(0, 6)))
    h1 = np.stack([birth, birth + rng.exponential(size=len(birth))], axis=1)
    return h0, h1.reshape(-1, 2)


def test_diagram_features_scale_equals_connectivity_scale_per_row() -> None:
    rng = np.random.default_rng(3)
    diagrams = [None if i % 7 == 3 else _random_diagram(rng) for i in range(60)]
    feats = diagram_features(diagrams, np.full(len(diagrams), np.nan))
    col = DIAGRAM_FEATURES.index("scale")
    want = np.array([connectivity_scale(d[0]) if d is not None else np.nan for d in diagrams])
    assert np.array_equal(feats[:, col], want, equal_nan=True)
    # A diagram without finite H0 deaths has scale 0 (one point), not NaN.
    one = diagram_features([(np.array([np.inf]), np.empty((0, 2)))], np.array([np.nan]))
    assert one[0, col] == 0.0


def test_pool_points_equal_the_uncached_groups() -> None:
    rng = np.random.default_rng(5)
    for n in (13, 60, 61, 118, 119, 120):
        pts = rng.normal(size=(4, n, 9))
        starts = pool_starts(n, 12)
        sizes = np.diff(np.append(starts, n)).astype(np.float64)
        want = np.add.reduceat(pts, starts, axis=-2) / sizes[:, None]
        assert np.array_equal(pool_points(pts, 12), want)
        assert np.array_equal(pool_points(pts[0], 12), want[0])


def test_seasonal_add_whole_row_equals_masked_update() -> None:
    rng = np.random.default_rng(11)
    fast, masked = SeasonalLevels(5), SeasonalLevels(5)
    for k in range(400):
        level = rng.normal(size=5) * 100
        now = 1.7e9 + 300.0 * k
        fast.add(level, now)
        # The masked update of every element, as before the whole-row path.
        hour = int(now // 3600.0)
        row = hour % len(masked.hours)
        if masked.hours[row] != hour:
            masked.hours[row] = hour
            masked.means[row] = masked.m2[row] = 0.0
            masked.counts[row] = 0
        ok = np.isfinite(level) & (masked.counts[row] < 255)
        x = level[ok].astype(np.float32)
        masked.counts[row, ok] += 1
        delta = x - masked.means[row, ok]
        masked.means[row, ok] += delta / masked.counts[row, ok]
        masked.m2[row, ok] += delta * (x - masked.means[row, ok])
    assert np.array_equal(fast.means, masked.means)
    assert np.array_equal(fast.m2, masked.m2)
    assert np.array_equal(fast.counts, masked.counts)
    # A NaN signal is left alone on the masked path.
    before = fast.counts.copy()
    fast.add(np.array([1.0, np.nan, 2.0, 3.0, 4.0]), 1.7e9 + 300.0 * 399)
    row = int((1.7e9 + 300.0 * 399) // 3600.0) % len(fast.hours)
    assert fast.counts[row, 1] == before[row, 1]
    assert fast.counts[row, 0] == before[row, 0] + 1


def test_lazy_diagrams_equal_the_reservoir_list() -> None:
    rng = np.random.default_rng(2)
    res = Reservoir(12, 3)
    for k in range(9):
        res.append(rng.normal(size=(12, 3)), _random_diagram(rng), rng.normal(size=(3, 9)),
                   1.0, 600.0 * k, 6)
    lazy = _LazyDiagrams(res)
    full = res.diagrams
    assert len(lazy) == len(full) == 6
    for j in (*range(6), -1, np.int64(2)):
        for a, b in zip(lazy[j], full[j], strict=True):
            assert a.dtype == b.dtype == np.float64
            assert np.array_equal(a, b)
    assert len(lazy[1:4]) == 3
    with pytest.raises(IndexError):
        lazy[6]


def test_median_h0_deaths_equal_np_median_per_diagram() -> None:
    rng = np.random.default_rng(8)
    diagrams = [_random_diagram(rng) for _ in range(50)]
    diagrams = [(h0[np.isfinite(h0)], h1) for h0, h1 in diagrams]  # as rips_diagram gives
    diagrams.append((np.empty(0), np.empty((0, 2))))
    want = np.array([float(np.median(d[0])) if len(d[0]) else 0.0 for d in diagrams])
    got = median_h0_deaths(diagrams)
    assert np.array_equal(got, want)
    assert median_h0_deaths([]).shape == (0,)


@pytest.mark.parametrize("shape", [(40, 9, 120), (40, 9, 6), (30, 4, 12, 10), (5, 3), (0, 4),
                                   (7, 1)])
@pytest.mark.parametrize("missing", [0.0, 0.02, 0.5, 1.0])
def test_nanmedian_last_equals_np_nanmedian(shape: tuple[int, ...], missing: float) -> None:
    import warnings

    rng = np.random.default_rng(len(shape) * 100 + int(missing * 10))
    a = rng.normal(size=shape)
    a[rng.random(shape) < missing] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
        want = np.nanmedian(a, axis=-1) if a.size else np.full(shape[:-1], np.nan)
    assert np.array_equal(nanmedian_last(a), want, equal_nan=True)


def _window_trend_before(z: np.ndarray) -> np.ndarray:
    """The trend column as window_features computed it before issue 16's replay work."""
    e, s, t = z.shape
    missing = np.isnan(z)
    tt = np.broadcast_to(np.arange(t, dtype=np.float64), z.shape)
    zz = np.where(missing, 0.0, z)
    n = (~missing).sum(axis=2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        tt = np.where(missing, 0.0, tt)
        tc = np.where(missing, 0.0, tt - tt.sum(axis=2, keepdims=True) / n)
        zc = np.where(missing, 0.0, zz - zz.sum(axis=2, keepdims=True) / n)
        slope = (tc * zc).sum(axis=2) / (tc * tc).sum(axis=2)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmax(np.abs(slope), axis=1) * t


@pytest.mark.parametrize("seed", range(30))
def test_window_trend_equals_the_plain_least_squares(seed: int) -> None:
    from exporter.tda.features import WINDOW_FEATURES, window_features

    rng = np.random.default_rng(seed)
    e, s, t = int(rng.integers(1, 40)), int(rng.integers(1, 10)), int(rng.integers(2, 130))
    z = rng.normal(size=(e, s, t)) * 10.0 ** rng.uniform(-3, 3)
    z[rng.random(z.shape) < [0.0, 0.01, 0.3, 1.0][seed % 4]] = np.nan
    if e > 1:
        z[1, :, : t // 3] = np.nan  # a gap in every signal
    got = window_features(z, z)[:, WINDOW_FEATURES.index("trend")]
    assert np.array_equal(got, _window_trend_before(z), equal_nan=True)


@pytest.mark.parametrize("seed", range(20))
def test_nan_percentile_with_gaps_equals_numpy_bit_for_bit(seed: int) -> None:
    import warnings

    rng = np.random.default_rng(100 + seed)
    shape = tuple(int(v) for v in rng.integers(1, 25, size=3))
    x = rng.normal(size=shape) * 10.0 ** rng.uniform(-4, 4)
    x[rng.random(shape) < [0.02, 0.3, 1.0, 0.1][seed % 4]] = np.nan
    axis = seed % 3
    q = [10.0, 25.0, 50.0, 75.0, 90.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        want = np.nanpercentile(x, q, axis=axis)
    assert np.array_equal(nan_percentile(x, q, axis=axis), want, equal_nan=True)


def _pack_row_by_row(points: np.ndarray, max_points: int, min_points: int) -> Clouds:
    """pack_clouds (no anchor) as it pooled rows with a missing point before: one by one."""
    e, t, d = points.shape
    finite = np.isfinite(points).all(axis=2)
    out = np.zeros((e, min(max_points, t), d))
    counts = np.zeros(e, dtype=np.int64)
    for row in range(e):
        if finite[row].sum() >= min_points:
            pooled = pool_points(points[row, finite[row]], min(max_points, t))
            out[row, : len(pooled)] = pooled
            counts[row] = len(pooled)
    return Clouds(out, counts)


@pytest.mark.parametrize("seed", range(12))
def test_pack_clouds_pools_rows_with_gaps_as_row_by_row(seed: int) -> None:
    rng = np.random.default_rng(seed)
    e, t, d = int(rng.integers(1, 40)), int(rng.integers(1, 130)), int(rng.integers(1, 10))
    points = rng.normal(size=(e, t, d))
    points[rng.random((e, t)) < [0.0, 0.01, 0.1, 0.6][seed % 4]] = np.nan
    points[rng.random((e, t, d)) < 0.002] = np.inf
    got = pack_clouds(points, 60, 8, False)
    want = _pack_row_by_row(points, 60, 8)
    assert np.array_equal(got.counts, want.counts)
    assert np.array_equal(got.points, want.points)


def _distance_before(entry: _Entry, vec: np.ndarray, now: float, window: float) -> float:
    """One entity's raw distance as BaselineStore.distance computed it before issue 16."""
    from exporter.tda.baseline import DAY, MAX_REFERENCES, NEIGHBOURS, PHASE_TOLERANCE

    age = now - entry.hist_times
    ok = age >= window
    if age.max() >= DAY - PHASE_TOLERANCE:
        ok &= np.abs((age + DAY / 2) % DAY - DAY / 2) <= PHASE_TOLERANCE
    ok[np.flatnonzero(ok)[:-MAX_REFERENCES]] = False
    if not ok.any():
        return float("nan")
    dist = np.abs(entry.vec_hist[ok].astype(np.float64) - vec).sum(axis=1)
    k = min(NEIGHBOURS, len(dist))
    return float(np.partition(dist, k - 1)[:k].mean())


def _with_histories(store, now: float, lengths: list[int], shifted: list[bool],  # type: ignore[no-untyped-def]
                    summaries) -> tuple[tuple[str, ...], ...]:
    """Keys of entities h0.. added to store with raw-distance histories of the given lengths
    (one per 10 min up to now; shifted: 7 s off the others') and summaries(n) [n, 17]."""
    shared = now - 600.0 * np.arange(max(lengths))[::-1] - 60.0
    keys = tuple((f"h{i}",) for i in range(len(lengths)))
    for key, n, off in zip(keys, lengths, shifted, strict=True):
        entry = store.entries[key] = _Entry(Reservoir(12, 2))
        entry.hist_times = shared[len(shared) - n:] - (7.0 if off else 0.0)
        entry.vec_hist = summaries(n).astype(np.float16)
    return keys


def test_distance_shares_references_and_keeps_each_entitys_value() -> None:
    from exporter.tda.baseline import BaselineStore

    rng = np.random.default_rng(4)
    store = BaselineStore(("a", "b"), 72, 1800.0, 1200.0, window=7200.0)
    now = 1.7e9
    keys = _with_histories(store, now, [[500, 500, 40, 0, 500, 200][i % 6] for i in range(12)],
                           [i % 6 == 4 for i in range(12)], lambda n: rng.random((n, 17)))
    vecs = rng.random((len(keys), 17))
    vecs[5] = np.nan
    got = store.distance(keys, vecs, now)
    want = [float("nan") if i == 5 or not len(store.entries[k].hist_times) else
            _distance_before(store.entries[k], vecs[i], now, 7200.0)
            for i, k in enumerate(keys)]
    assert np.array_equal(got, np.array(want), equal_nan=True)
    assert np.isfinite(got).sum() >= 8


def test_refits_of_a_cycle_equal_one_by_one_fits() -> None:
    from exporter.tda.baseline import BaselineStore, EntityBaseline
    from exporter.tda.features import SUMMARY_SIZE

    rng = np.random.default_rng(6)
    e, s = 7, 3
    store = BaselineStore(("a", "b", "c"), 20, 120.0, 60.0, window=600.0, points=4)
    keys = tuple((f"h{i}",) for i in range(e))
    refits = 0
    for k in range(60):
        now = 1.7e9 + 60.0 * k
        diagrams = [_random_diagram(rng) for _ in range(e)]
        deciles = np.sort(rng.normal(size=(e, s, 9)), axis=2)
        deciles[2, 1] = np.nan  # a signal without samples
        clouds = Clouds(rng.normal(size=(e, 4, s)), np.full(e, 4))
        refits += store.update(keys, diagrams, clouds, rng.random(e), deciles,
                               np.full(e, np.nan), now, np.zeros((e, s)), np.ones((e, s)),
                               rng.random(e), rng.random((e, SUMMARY_SIZE)))
        for key in keys:
            entry = store.entries[key]
            if entry.model is None or entry.last_refresh != now:
                continue
            res = entry.reservoir
            alone = EntityBaseline().fit(res.diagrams, res.h0_medians.tolist(),
                                         list(res.deciles), res.times, now, 600.0,
                                         entry.center, entry.scale)  # type: ignore[arg-type]
            assert np.array_equal(alone.zdeciles_, entry.model.zdeciles_, equal_nan=True)
    assert refits > 2 * e


def test_pool_traffic_packing_round_trips_clouds_and_diagrams_bit_for_bit() -> None:
    """speculate's tasks carry clouds stacked in one array and diagrams in four: unpacked
    they are the same arrays (values, dtype, shape), including empty H0/H1 and 1-point
    clouds; the key is the former numpy-built one."""
    from exporter.tda.persistence import (
        cloud_key,
        pack_clouds,
        pack_diagrams,
        unpack_clouds,
        unpack_diagrams,
    )
    from exporter.tda.rips import rips_diagram

    rng = np.random.default_rng(7)
    clouds = [rng.normal(size=(int(n), 5)) for n in [1, 2, 13, 61, 3, 1, 40]]
    flat, counts = pack_clouds(clouds)
    back = unpack_clouds(flat, counts)
    assert len(back) == len(clouds)
    for a, b in zip(clouds, back, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
        assert cloud_key(a) == np.asarray(a.shape, dtype=np.int64).tobytes() + a.tobytes()
        assert cloud_key(a) == cloud_key(b)
    dgms = [rips_diagram(c) for c in clouds]
    assert any(len(d[1]) == 0 for d in dgms) and any(len(d[0]) == 0 for d in dgms)
    for a, b in zip(dgms, unpack_diagrams(pack_diagrams(dgms)), strict=True):
        for x, y in zip(a, b, strict=True):
            assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)
    assert unpack_diagrams(pack_diagrams([])) == []


def test_scale_free_features_from_other_batches_give_the_same_features() -> None:
    """diagram_features with scale-free rows computed in other batches (the pool's chunks)
    equals computing them with the window's own padding, bit for bit."""
    from exporter.tda.features import scale_free_features
    from exporter.tda.rips import rips_diagram

    rng = np.random.default_rng(3)
    dgms = [rips_diagram(rng.normal(size=(int(n), 4))) for n in [1, 2, 5, 30, 61, 8, 45]]
    window: list = [dgms[0], None, *dgms[1:]]
    scale = np.where(rng.random(len(window)) < 0.5, np.nan, rng.uniform(0.5, 3, len(window)))
    want = diagram_features(window, scale)
    free = np.concatenate([scale_free_features(window[:3]), scale_free_features(window[3:4]),
                           scale_free_features(window[4:])])
    got = diagram_features(window, scale, free)
    assert np.array_equal(want, got, equal_nan=True)


def test_speculated_features_equal_the_inline_ones() -> None:
    """Clouds speculated on a real pool (feature clouds flagged, some not sent ahead) give
    submit's diagrams, features and H0 medians bit for bit as the inline path."""
    from exporter.tda.persistence import DiagramCache, RipsPersistence

    rng = np.random.default_rng(11)
    counts = np.array([61, 0, 13, 40, 61, 2, 61, 30])
    points = np.zeros((len(counts), 61, 4))
    for i, n in enumerate(counts):
        points[i, :n] = rng.normal(size=(n, 4))
    clouds = Clouds(points, counts)
    scale = np.array([np.nan, 1.0, 0.7, np.nan, 2.0, np.nan, 0.3, np.nan])
    inline = RipsPersistence(workers=1).fit()
    want = inline.submit(clouds, None, scale).result()
    pool = RipsPersistence(workers=2).fit()
    try:
        cache = DiagramCache()
        ahead = [clouds.cloud(i) for i in range(len(counts)) if 0 < counts[i] and i != 3]
        pool.speculate(cache, ahead, chunk=3, features=[i % 2 == 0 for i in range(len(ahead))])
        got = pool.submit(clouds, None, scale, cache=cache).result()
    finally:
        pool.close()
    assert len(cache.free) == 3
    for a, b in zip(want[0], got[0], strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    for x, y in zip(want[1:], got[1:], strict=True):
        assert np.array_equal(x, y, equal_nan=True)


def _append_by_concatenation(res: Reservoir, cloud: np.ndarray, dgm, deciles: np.ndarray,
                             h0_median: float, now: float, size: int) -> None:
    """Reservoir.append as it was: concatenate, then keep the newest `size`."""
    from exporter.tda.baseline import _pad_diagrams, _widen

    keep = slice(max(len(res) + 1 - size, 0), None)
    row = np.full((1, *res.cloud_arr.shape[1:]), np.nan, dtype=np.float32)
    row[0, : len(cloud)] = cloud
    res.cloud_arr = np.concatenate([res.cloud_arr, row])[keep]
    h0, h1 = _pad_diagrams([dgm], res.h0_arr.shape[1], res.h1_arr.shape[1])
    res.h0_arr = np.concatenate([_widen(res.h0_arr, h0.shape[1]), h0])[keep]
    res.h1_arr = np.concatenate([_widen(res.h1_arr, h1.shape[1]), h1])[keep]
    res.deciles = np.concatenate([res.deciles, deciles[None].astype(np.float32)])[keep]
    res.h0_medians = np.append(res.h0_medians, np.float32(h0_median))[keep]
    res.times = np.append(res.times, now)[keep]


def test_reservoir_append_equals_concatenation() -> None:
    from exporter.tda.rips import rips_diagram

    rng = np.random.default_rng(5)
    fast, slow = Reservoir(13, 3), Reservoir(13, 3)
    for k in range(40):
        cloud = rng.normal(size=(int(rng.integers(1, 14)), 3)) * 10.0 ** rng.uniform(-3, 3)
        dgm = rips_diagram(cloud)
        deciles = rng.normal(size=(3, 9))
        args = (cloud, dgm, deciles, float(rng.normal()), 60.0 * k, 7)
        fast.append(*args)
        _append_by_concatenation(slow, *args)
        for name in ("cloud_arr", "h0_arr", "h1_arr", "deciles", "h0_medians", "times"):
            x, y = getattr(fast, name), getattr(slow, name)
            assert x.dtype == y.dtype and x.shape == y.shape, name
            assert np.array_equal(x, y, equal_nan=True), name


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clipped_z_equals_np_clip(dtype: type) -> None:
    rng = np.random.default_rng(7)
    values = (rng.normal(size=(20, 4, 30)) * 10.0).astype(dtype)
    values[rng.random(values.shape) < 0.2] = np.nan
    values[0, 0, :3] = [np.inf, -np.inf, -0.0]
    center = rng.normal(size=(20, 4, 1)).astype(dtype)
    scale = np.abs(rng.normal(size=(20, 4, 1)))
    scale[0, 0] = 0.0  # division by zero: +-inf, clipped
    with np.errstate(invalid="ignore", divide="ignore"):
        want = np.clip((values - center) / scale, -8.0, 8.0)
    got = clipped_z(values, center, scale, 8.0)
    assert got.dtype == want.dtype
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("seed", range(10))
def test_nanmedian_overwrite_input_same_values(seed: int) -> None:
    # overwrite_input sorts the caller's temporary instead of a copy: the same medians;
    # mad_sigma and theil_sen use it on their own temporaries and leave their input alone.
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(int(rng.integers(1, 30)), 3, int(rng.integers(2, 60))))
    a[rng.random(a.shape) < 0.3] = np.nan
    kept = a.copy()
    scratch = a.copy()
    assert nanmedian_last(scratch, overwrite_input=True).tobytes() == \
        nanmedian_last(a).tobytes()
    assert np.array_equal(scratch, np.sort(a, axis=-1), equal_nan=True)
    mad_sigma(a)
    theil_sen(a, np.arange(a.shape[-1], dtype=np.float64))
    assert np.array_equal(a, kept, equal_nan=True)


@pytest.mark.parametrize("seed", range(5))
def test_robust_stats_sort_path_equals_np_percentile(seed: int) -> None:
    # A renormalisation's reservoir points ([1, S, thousands], no NaN) by the sort path.
    rng = np.random.default_rng(seed)
    x = rng.lognormal(size=(1, 6, int(rng.integers(100, 5000))))
    center, scale = robust_stats(x)
    q10, q25, med, q75, q90 = np.percentile(x, [10, 25, 50, 75, 90], axis=-1)
    assert center.tobytes() == med.tobytes()
    assert scale.tobytes() == max_spread_sigma(x, med, q10, q25, q75, q90).tobytes()


@pytest.mark.parametrize(("gappy", "block"), [(False, 10**6), (True, 10**6), (False, 7),
                                               (True, 7)])
def test_decision_quantiles_sort_path_equal_np_percentile_per_row(gappy: bool,
                                                                  block: int) -> None:
    # `DecisionStage._quantiles` takes the sort path in every block, NaN present or not: each
    # row's reference quantile is np.percentile of its samples inside the reference, bit
    # for bit, whatever the block size.
    from exporter.config import DecisionConfig
    from exporter.decision import DecisionStage, _inside, _window
    from exporter.windows import decode_entity_key

    stage = DecisionStage(DecisionConfig(), exclude_recent=4 * 3600.0, row_block=block)
    n, slots, now, step = 30, stage.slots, 1_700_000_000.0, stage.sample_every
    rng = np.random.default_rng(3)
    times = np.tile((now - step * np.arange(slots))[::-1], (n, 1)).astype(np.uint32)
    risk = rng.beta(1, 5, (n, slots)).astype(np.float32)
    risk[:4, : slots // 3] = np.round(risk[:4, : slots // 3], 2)  # ties
    if gappy:
        risk[n // 2:][rng.random((n - n // 2, slots)) < 0.05] = np.nan
        risk[-2:] = np.nan
    keys = np.array([f'{{"host":"h{i}"}}' for i in range(n)])
    stage.restore({"version": np.array([2]), "keys": keys, "risk": risk, "time": times,
                   "last": np.full(n, now - step)})
    assert [decode_entity_key(str(k)) for k in keys] == list(stage.rows_)
    for lagged in (False, True):
        got, counts = stage._quantiles(now, lagged)
        lag = stage.exclude_recent if lagged else 0.0
        inside = _inside(times, _window(now - float(stage.cfg.reference) - lag, now - lag))
        for r in range(n):
            ref = risk[r][inside[r] & ~np.isnan(risk[r])].astype(np.float64)
            assert counts[r] == len(ref)
            want = np.percentile(ref, 100.0 * stage.quantile) if len(ref) else np.nan
            assert np.float64(want).tobytes() == got[r].tobytes()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pool_points_of_one_or_two_equal_reduceat(dtype: type) -> None:
    # Groups of at most two points are summed by gathers and one addition instead of
    # np.add.reduceat: the same bits, signed zeros, infinities and NaN included.
    rng = np.random.default_rng(11)
    for n, m in ((120, 60), (119, 60), (61, 60), (100, 60), (118, 59), (9, 8), (120, 12)):
        pts = (rng.normal(size=(7, n, 5)) * 10.0 ** rng.uniform(-8, 8, (7, n, 5))).astype(dtype)
        special = rng.random(pts.shape)
        pts[special < 0.05] = 0.0
        pts[(special >= 0.05) & (special < 0.1)] = -0.0
        pts[0, :3, 0] = (np.inf, -np.inf, np.nan)
        starts = pool_starts(n, m)
        sizes = np.diff(np.append(starts, n)).astype(np.float64)[:, None]
        with np.errstate(invalid="ignore"):  # inf + -inf in one group
            want = np.add.reduceat(pts, starts, axis=-2) / sizes
            got = pool_points(pts, m)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes()
        assert pool_points(pts[2], m).tobytes() == want[2].tobytes()


def _pack_reduceat(points: np.ndarray, max_points: int, min_points: int,
                   anchor: bool) -> Clouds:
    """pack_clouds as it was: each row's finite points pooled by np.add.reduceat, one by one,
    and an anchor (a zero point) after each non-empty cloud."""
    e, t, d = points.shape
    cap = min(max_points, t)
    out = np.zeros((e, cap + int(anchor), d))
    counts = np.zeros(e, dtype=np.int64)
    for row in range(e):
        pts = points[row][np.isfinite(points[row]).all(axis=1)]
        if len(pts) < min_points:
            continue
        if len(pts) > cap:
            starts = pool_starts(len(pts), cap)
            sizes = np.diff(np.append(starts, len(pts))).astype(np.float64)[:, None]
            pts = np.add.reduceat(pts, starts, axis=0) / sizes
        out[row, : len(pts)] = pts
        counts[row] = len(pts) + int(anchor)
    return Clouds(out, counts)


@pytest.mark.parametrize("seed", range(16))
def test_pack_clouds_equal_reduceat_row_by_row(seed: int) -> None:
    # pack_clouds pools every row unmasked (then zeroes the incomplete ones) and pools
    # pairs by one addition: the same bytes as reduceat row by row, in delay_embed's layout
    # (time contiguous) or C order, with gaps, infinities and too-short rows.
    from exporter.tda.embedding import delay_embed

    rng = np.random.default_rng(seed)
    e, s = int(rng.integers(1, 40)), int(rng.integers(1, 9))
    t = int(rng.choice([120, 119, 61, 60, 30, int(rng.integers(2, 200))]))
    z = rng.normal(size=(e, s, t)) * 10.0 ** rng.uniform(-3, 3)
    z[rng.random((e, s, t)) < [0.0, 0.001, 0.01, 0.2][seed % 4]] = np.nan
    z[rng.random((e, s, t)) < 0.001] = -np.inf
    z[rng.random((e, s, t)) < 0.01] = -0.0
    points = delay_embed(z, 1 + seed % 2, 1)
    if seed % 3 == 0:
        points = np.ascontiguousarray(points)
    anchor = seed % 4 != 1
    got = pack_clouds(points, 60, 8, anchor)
    want = _pack_reduceat(points, 60, 8, anchor)
    assert got.counts.tobytes() == want.counts.tobytes()
    assert got.points.shape == want.points.shape
    assert got.points.tobytes() == want.points.tobytes()


@pytest.mark.parametrize("row_block", [7, 1000])
def test_clouds_and_window_features_from_one_normalisation(row_block: int) -> None:
    # `_speculate` normalises each block once for the feature clouds and the window
    # features: the same bytes as `_clouds` and `_window_features` each normalising it.
    from exporter.tda import TopologyStage
    from exporter.tda.embedding import Z_CLIP
    from tests.test_tda_stage import analysis

    stage = TopologyStage(analysis(), workers=1, row_block=row_block)
    rng = np.random.default_rng(4)
    e, s, t = 23, 3, 120
    values = rng.lognormal(size=(e, s, t)) * 10.0 ** rng.uniform(-2, 2, (e, s, 1))
    values[rng.random((e, s, t)) < 0.02] = np.nan
    values[3] = np.nan
    with warnings.catch_warnings():  # entity 3 has no sample
        warnings.simplefilter("ignore", RuntimeWarning)
        center = np.nanmedian(values, axis=2)
        scale = np.nanstd(values, axis=2) + 1e-3
        quart = np.nanpercentile(values, [25, 50, 75], axis=2)
    zquart = clipped_z(quart, center[None], scale[None], Z_CLIP)
    clouds, feats = stage._clouds_and_features(values, center, scale, zquart)
    want = stage._clouds(values, center, scale)
    assert clouds.points.tobytes() == want.points.tobytes()
    assert clouds.counts.tobytes() == want.counts.tobytes()
    assert feats.tobytes() == stage._window_features(values, center, scale, zquart).tobytes()


@pytest.mark.parametrize("rows_with_nan", [0, 1, 5, 40])
@pytest.mark.parametrize("t", [24, 120])
def test_counts_of_the_rows_with_nan_alone_equal_numpy(rows_with_nan: int, t: int) -> None:
    # nanmedian_last and nan_percentile count the finite values of the rows ending in NaN
    # alone when they are few (one pass over all rows when many): numpy's values either way.
    rng = np.random.default_rng(rows_with_nan + t)
    x = rng.normal(size=(50, 3, t))
    for r in rng.choice(50, rows_with_nan, replace=False):
        x[r, rng.integers(3), rng.random(t) < rng.uniform(0.05, 1.0)] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert nanmedian_last(x).tobytes() == np.nanmedian(x, axis=-1).tobytes()
        want = np.nanpercentile(x, [10.0, 50.0, 95.0], axis=-1)
    assert nan_percentile(x, [10.0, 50.0, 95.0], axis=-1, always_sort=True).tobytes() == \
        want.tobytes()


def test_speculated_cloud_keys_are_the_clouds_keys_and_results_unchanged() -> None:
    # The keys `speculate` computed are kept with the rows computed ahead and handed to
    # `submit` (no second hash): each kept key is its row's cloud_key at the time the window
    # is run (rows computed again under a new normalisation drop theirs), and the results
    # equal the sequential runs'.
    from exporter.tda import TopologyStage
    from exporter.tda.persistence import cloud_key
    from tests import test_tda_stage as ts

    checked = [0, 0]  # keys compared, rows without one

    class Checking(TopologyStage):
        def _run(self, window, now, started, cache=None, p=None, features=True,  # type: ignore[no-untyped-def]
                 fleet_betti=True, spec=None):
            if spec is not None:
                for clouds, keys in ((spec.fine, spec.keys[0]), (spec.scored, spec.keys[1])):
                    for row, key in enumerate(keys):
                        if key is None:
                            checked[1] += 1
                        else:
                            assert key == cloud_key(clouds.cloud(row))
                            checked[0] += 1
            return super()._run(window, now, started, cache, p, features, fleet_betti, spec)

    series = ts.fleet_series(5, 160, seed=3)
    series[1, :, 400:440] *= 3.0  # an incident mid-run
    windows = [ts.window_at(series, c) for c in range(160)]
    nows = [c * ts.SHIFT * ts.STEP for c in range(160)]
    seq, batch = TopologyStage(ts.analysis(), workers=1), Checking(ts.analysis(), workers=2)
    try:
        expected = [seq.run(w, now) for w, now in zip(windows, nows, strict=True)]
        got = []
        for a, b in ((0, 1), (1, 70), (70, 160)):
            got += batch.run_batch(windows[a:b], nows[a:b])
        ts._assert_same_results(expected, got)
    finally:
        seq.close()
        batch.close()
    assert checked[0] > 1000 and checked[1] > 0


@pytest.mark.parametrize("seed", range(6))
def test_distances_of_entities_sharing_references_equal_one_by_one(seed: int) -> None:
    # `BaselineStore.distance` computes the entities that share their history times together
    # ([G, R] at once): each entity's bytes are those of its own computation, ties and
    # fewer references than NEIGHBOURS included.
    from exporter.tda.baseline import BaselineStore

    rng = np.random.default_rng(seed)
    store = BaselineStore(("a", "b"), 72, 1800.0, 1200.0, window=7200.0)
    now = 1.7e9
    keys = _with_histories(store, now, rng.choice([500, 500, 500, 14, 13, 200], 40).tolist(),
                           [i % 7 == 3 for i in range(40)],
                           lambda n: np.round(rng.random((n, 17)), int(rng.integers(1, 4))))
    vecs = np.round(rng.random((len(keys), 17)), 2)
    got = store.distance(keys, vecs, now)
    want = np.array([_distance_before(store.entries[k], vecs[i], now, 7200.0)
                     for i, k in enumerate(keys)])
    assert got.tobytes() == want.tobytes()
    assert np.isfinite(got).sum() >= 30


@pytest.mark.parametrize("g", [3, 9])
def test_seasonal_levels_added_together_equal_one_by_one(g: int) -> None:
    # `add_levels` counts a cycle's levels of all entities in one array step (from
    # BATCH_MIN entities on): the same bytes as each entity's own `add`, through new hours,
    # missing values, counts at their maximum (255 levels in one hour) and a level older
    # than its slot's hour.
    from exporter.tda.seasonal import add_levels

    rng = np.random.default_rng(12)
    s = 4
    together = [SeasonalLevels(s) for _ in range(g)]
    alone = [SeasonalLevels(s) for _ in range(g)]
    nows = [1.7e9 + 300.0 * k for k in range(60)] + [1.7e9 + 300.0 * 59 + k for k in range(300)]
    nows.append(1.7e9 - 7200.0)  # older than what its slot holds
    for k, now in enumerate(nows):
        values = rng.normal(size=(g, s)) * 10.0 ** rng.uniform(-3, 3, (g, 1))
        values[rng.random((g, s)) < 0.05] = np.nan
        if k % 17 == 0:
            values[k % g] = np.nan
        add_levels(together, list(values), now)
        for lv, v in zip(alone, values, strict=True):
            lv.add(v, now)
    for a, b in zip(together, alone, strict=True):
        for name in ("hours", "means", "m2", "counts"):
            assert getattr(a, name).tobytes() == getattr(b, name).tobytes()
    assert max(int(lv.counts.max()) for lv in together) == 255


def test_seasonal_deviations_together_equal_one_by_one() -> None:
    # `deviations` (a cycle's entities at once) gives each entity's `deviation` bytes:
    # without a reference (NaN), with one, clipped at MAX_DEVIATION, with missing levels.
    from exporter.tda.seasonal import MAX_DEVIATION, deviations

    rng = np.random.default_rng(13)
    g, s, start = 12, 3, 1.7e9
    levels = [SeasonalLevels(s) for _ in range(g)]
    for k in range(12 * 24 * 3):  # three days at 5 min: references from the second day
        values = rng.normal(size=(g, s)) * 10.0 ** np.arange(g)[:, None] / 1e3
        values[0] = 5.0  # a constant signal: scale at its floor
        values[rng.random((g, s)) < 0.03] = np.nan
        for lv, v in zip(levels[: g - 2], values, strict=False):  # the last two: no history
            lv.add(v, start + 300.0 * k)
    seen = set()
    for now in start + 86400.0 * 3 + np.array([0.0, 1800.0, 3600.0, 7300.0]):
        values = rng.normal(size=(g, s)) * 50.0
        values[0] = 5.0 + np.array([0.0, 1e9, np.nan])
        values[3, 1] = np.nan
        for pooled in (False, True):  # the MAD scale (sustained form) and the pooled one
            got = deviations(levels, values, now)[int(pooled)]
            want = np.array([lv.deviation(v, now, pooled)
                             for lv, v in zip(levels, values, strict=True)])
            assert got.tobytes() == want.tobytes()
            seen |= {"nan" if v != v else "max" if v == MAX_DEVIATION else "finite" for v in got}
        assert not np.array_equal(*deviations(levels, values, now), equal_nan=True)
    assert seen == {"nan", "max", "finite"}
