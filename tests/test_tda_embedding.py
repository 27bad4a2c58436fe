"""Point clouds from windows: normalisation, missing samples, delay embedding."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.tda.embedding import (
    Clouds,
    EmbeddingError,
    delay_embed,
    normalise,
    pack_clouds,
    robust_stats,
)


def clouds_of(v: np.ndarray, center: np.ndarray | None = None, scale: np.ndarray | None = None,
              *, dimension: int = 1, delay: int = 1, max_points: int = 60, min_points: int = 8,
              anchor: bool = True) -> Clouds:
    """The topology stage's chain (`TopologyStage._clouds`): normalise, embed, pack.

    Without center/scale the window's own robust statistics (the stage before a baseline).
    """
    if center is None or scale is None:
        center, scale = robust_stats(v)
    return pack_clouds(delay_embed(normalise(v, center, scale), dimension, delay),
                       max_points, min_points, anchor)


def test_bad_embedding_parameters_raise():
    with pytest.raises(EmbeddingError):
        delay_embed(np.zeros((1, 2, 20)), 0, 1)


def test_missing_points_dropped_and_sparse_entities_skipped():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(3, 2, 40))
    v[1, 0, :10] = np.nan  # 30 finite steps left
    v[2] = np.nan
    v[2, :, :5] = 1.0  # 5 points < min_points
    clouds = clouds_of(v, min_points=8, anchor=False)
    assert clouds.counts.tolist() == [40, 30, 0]
    assert np.isfinite(clouds.cloud(1)).all()


def test_constant_window_is_finite_and_degenerate():
    v = np.full((1, 3, 30), 5.0)
    center, scale = robust_stats(v)
    assert np.isfinite(scale).all() and (scale > 0).all()
    clouds = clouds_of(v)
    assert np.all(clouds.cloud(0) == 0)  # the anchor coincides with the constant


def test_subsample_and_delay_embedding_shapes():
    v = np.random.default_rng(1).normal(size=(2, 4, 200))
    clouds = clouds_of(v, dimension=3, delay=2, max_points=50)
    assert clouds.points.shape[2] == 12
    assert clouds.counts.tolist() == [51, 51]  # 50 + anchor
    emb = delay_embed(v, 3, 2)
    assert emb.shape == (2, 196, 12)
    np.testing.assert_array_equal(emb[0, 0, :4], v[0, :, 0])
    np.testing.assert_array_equal(emb[0, 0, 8:], v[0, :, 4])


def test_pooling_keeps_level_and_trend():
    # 120 steps -> 60 means of consecutive pairs: the window mean and a linear trend survive.
    t = np.arange(120, dtype=np.float64)
    v = np.stack([2.0 * t + 5.0, np.where(t % 2 == 0, 1.0, -1.0)])[None]  # trend, alternation
    # Scale 100 keeps every value inside the +-Z_CLIP normalised range.
    clouds = clouds_of(v, np.zeros((1, 2)), np.full((1, 2), 100.0), anchor=False)
    assert clouds.counts.tolist() == [60]
    pts = clouds.cloud(0) * 100.0
    np.testing.assert_allclose(pts[:, 0], 2.0 * (2 * np.arange(60) + 0.5) + 5.0)
    assert pts[:, 0].mean() == pytest.approx(v[0, 0].mean())
    np.testing.assert_allclose(pts[:, 1], 0.0)  # pairs average the alternation out
    # Missing steps: the finite points are pooled in order, min_points counts observed steps.
    w = v.copy()
    w[0, 1, :30] = np.nan
    clouds = clouds_of(w, np.zeros((1, 2)), np.full((1, 2), 100.0), anchor=False)
    assert clouds.counts.tolist() == [60] and np.isfinite(clouds.cloud(0)).all()
    # 90 finite steps -> 60 groups of 1-2 steps, the first = steps 30 and 31.
    assert clouds.cloud(0)[0, 0] * 100.0 == pytest.approx(2.0 * 30.5 + 5.0)


def test_normalisation_survives_sparse_signals_and_clips():
    # An error counter: zero but for two events. The IQR is 0; the scale must not collapse
    # to the 1e-9 floor (one event used to normalise to ~1e7 and swamp every distance).
    from exporter.tda.embedding import Z_CLIP

    v = np.zeros((1, 2, 120))
    v[0, 0, [10, 70]] = 1.0 / 60
    v[0, 1] = np.linspace(0, 1, 120)
    center, scale = robust_stats(v)
    assert scale[0, 0] > 1e-4  # the mean absolute deviation sees the events
    z = normalise(v * 1000, center, scale)
    assert np.nanmax(np.abs(z)) == Z_CLIP and np.isfinite(z).all()


def test_takens_parameters_from_the_data():
    from exporter.tda.embedding import takens_parameters

    rng = np.random.default_rng(0)
    t = np.arange(120)
    # A noisy oscillation of period 40 steps: AMI falls over the first lags (measured first
    # local minimum: 4); lags are bounded to keep half the window (15 here).
    x = np.sin(2 * np.pi * t / 40)[None] + 0.05 * rng.normal(size=(8, 120))
    m, tau = takens_parameters(x)
    assert 2 <= m <= 3 and 3 <= tau <= 15
    assert takens_parameters(np.full((4, 120), 3.0)) == (1, 1)  # nothing to learn from
    assert takens_parameters(x[:, :6]) == (1, 1)  # too short for any lag


def test_pack_clouds_leaves_out_a_coordinate_an_entity_has_no_value_of():
    from exporter.tda.embedding import pack_clouds

    rng = np.random.default_rng(2)
    pts = rng.normal(size=(4, 20, 3))
    pts[1, :, 2] = np.nan  # no value of coordinate 2 at all: left out
    pts[2, 5, 0] = np.nan  # one missing point: that point dropped, as before
    pts[3] = np.nan  # nothing: no cloud
    raw = pack_clouds(pts, 8, 4, False)
    z = pack_clouds(pts, 8, 4, True, absent=0.0)
    whole = pack_clouds(np.where(np.isnan(pts[1:2]), 0.0, pts[1:2]), 8, 4, False)
    assert raw.counts.tolist() == [8, 8, 8, 0] and z.counts.tolist() == [9, 9, 9, 0]
    n = raw.counts[1]
    assert np.isnan(raw.points[1, :n, 2]).all()  # raw units: NaN, the centre once normalised
    np.testing.assert_array_equal(raw.points[1, :n, :2], whole.points[0, :n, :2])
    assert (z.points[1, : z.counts[1], 2] == 0.0).all()  # z space: the centre
    np.testing.assert_array_equal(z.points[1, :n, :2], whole.points[0, :n, :2])
    # Rows with every coordinate are what they were without the others.
    alone = pack_clouds(pts[[0, 2]], 8, 4, False)
    np.testing.assert_array_equal(raw.points[[0, 2]], alone.points)
