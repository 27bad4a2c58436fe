"""Point clouds from windows: normalisation, missing samples, delay embedding."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.tda.embedding import EmbeddingError, WindowEmbedder, delay_embed, robust_stats


def test_transform_before_fit_raises():
    with pytest.raises(EmbeddingError):
        WindowEmbedder().transform(np.zeros((1, 2, 20)))


def test_missing_points_dropped_and_sparse_entities_skipped():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(3, 2, 40))
    v[1, 0, :10] = np.nan  # 30 finite steps left
    v[2] = np.nan
    v[2, :, :5] = 1.0  # 5 points < min_points
    clouds = WindowEmbedder(min_points=8, anchor=False).fit_transform(v)
    assert clouds.counts.tolist() == [40, 30, 0]
    assert np.isfinite(clouds.cloud(1)).all()


def test_constant_window_is_finite_and_degenerate():
    v = np.full((1, 3, 30), 5.0)
    center, scale = robust_stats(v)
    assert np.isfinite(scale).all() and (scale > 0).all()
    clouds = WindowEmbedder().fit_transform(v)
    assert np.all(clouds.cloud(0) == 0)  # the anchor coincides with the constant


def test_subsample_and_delay_embedding_shapes():
    v = np.random.default_rng(1).normal(size=(2, 4, 200))
    clouds = WindowEmbedder(dimension=3, delay=2, max_points=50).fit_transform(v)
    assert clouds.points.shape[2] == 12
    assert clouds.counts.tolist() == [51, 51]  # 50 + anchor
    emb = delay_embed(v, 3, 2)
    assert emb.shape == (2, 196, 12)
    np.testing.assert_array_equal(emb[0, 0, :4], v[0, :, 0])
    np.testing.assert_array_equal(emb[0, 0, 8:], v[0, :, 4])
