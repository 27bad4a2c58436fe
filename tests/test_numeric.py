"""exporter.numeric against its oracles: numpy's NaN statistics and scipy.stats."""

import warnings

import numpy as np
import pytest
from scipy import stats

from exporter.numeric import (
    DECILE_TO_SIGMA,
    IQR_TO_SIGMA,
    MEAN_ABS_TO_SIGMA,
    bin_medians,
    clipped_z,
    floor_scale,
    mad_sigma,
    max_spread_sigma,
    median_iqr,
    nan_percentile,
    nanmedian_last,
    theil_sen,
)


def _gappy(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    x[rng.random(x.shape) < 0.2] = np.nan
    x[2] = np.nan  # an all-missing entity
    x[3, ..., 1:] = np.nan  # one sample left
    return x


def test_nan_percentile_matches_numpy():
    x = _gappy(4, (30, 5, 50))
    q = [10.0, 25.0, 50.0, 75.0, 90.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for axis in (0, 2):
            ref = np.nanpercentile(x, q, axis=axis)
            got = nan_percentile(x, q, axis=axis)
            assert got.shape == ref.shape
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12, equal_nan=True)
        # A scalar q drops the leading axis, as numpy does.
        ref = np.nanpercentile(x, 50.0, axis=2)
        np.testing.assert_allclose(nan_percentile(x, 50.0, axis=2), ref, atol=1e-12,
                                   equal_nan=True)


def test_nanmedian_last_matches_numpy():
    x = _gappy(5, (20, 4, 31))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = np.nanmedian(x, axis=-1)
    np.testing.assert_allclose(nanmedian_last(x), ref, rtol=0, atol=1e-12, equal_nan=True)
    even = _gappy(6, (10, 30))  # even counts: the mean of the two middle values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        np.testing.assert_allclose(nanmedian_last(even), np.nanmedian(even, axis=-1),
                                   atol=1e-12, equal_nan=True)
    assert nanmedian_last(np.empty((3, 0))).shape == (3,)
    assert np.isnan(nanmedian_last(np.empty((3, 0)))).all()


def test_mad_sigma_matches_scipy():
    x = _gappy(7, (12, 3, 40))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the all-missing row
        ref = stats.median_abs_deviation(x, axis=-1, scale="normal", nan_policy="omit")
    got = mad_sigma(x)
    # scipy's normal scale is 1 / Phi^-1(3/4) = 1.482602...; ours is rounded to 1.4826.
    np.testing.assert_allclose(got, np.asarray(ref), rtol=2e-6, equal_nan=True)
    center = np.zeros(x.shape[:-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref_c = 1.4826 * np.nanmedian(np.abs(x), axis=-1)
    np.testing.assert_allclose(mad_sigma(x, center), ref_c, atol=1e-12, equal_nan=True)


def test_max_spread_sigma_is_the_largest_normal_scaled_spread():
    x = _gappy(8, (10, 2, 60))
    x[4, 0] = 0.0
    x[4, 0, [5, 40]] = 1.0  # sparse: IQR and decile range 0, the mean deviation is not
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        q10, q25, med, q75, q90 = np.nanpercentile(x, [10, 25, 50, 75, 90], axis=-1)
        got = max_spread_sigma(x, med, q10, q25, q75, q90)
        ref = np.fmax.reduce([
            stats.iqr(x, axis=-1, nan_policy="omit") / IQR_TO_SIGMA,
            (q90 - q10) / DECILE_TO_SIGMA,
            MEAN_ABS_TO_SIGMA * np.nanmean(np.abs(x - med[..., None]), axis=-1),
        ])
    ref = np.maximum(ref, 1e-3 * np.abs(med) + 1e-9)
    np.testing.assert_allclose(got, ref, rtol=1e-12, equal_nan=True)
    assert got[4, 0] == pytest.approx(MEAN_ABS_TO_SIGMA * 2 / 60)
    # Normal-scaled: each estimate is ~1 on a large normal sample.
    big = np.random.default_rng(0).normal(size=(1, 200_000))
    q = np.percentile(big, [10, 25, 50, 75, 90], axis=-1)
    assert max_spread_sigma(big, q[2], q[0], q[1], q[3], q[4])[0] == pytest.approx(1.0, abs=0.01)


def test_floor_scale_and_clipped_z():
    scale = np.array([0.0, np.nan, 5.0])
    center = np.array([1000.0, 1.0, 1.0])
    np.testing.assert_array_equal(floor_scale(scale, center), [1.0 + 1e-9, np.nan, 5.0])
    x = np.array([[0.0, 1.0, 1e9, np.nan]])
    z = clipped_z(x, np.array([1.0])[:, None], np.array([0.5])[:, None], 10.0)
    np.testing.assert_array_equal(z, [[-2.0, 0.0, 10.0, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a zero scale gives +-limit or NaN, never a warning
        z0 = clipped_z(np.array([1.0, 2.0, 0.0]), np.array(1.0), np.array(0.0), 3.0)
    np.testing.assert_array_equal(z0, [np.nan, 3.0, -3.0])


def test_theil_sen_matches_scipy():
    rng = np.random.default_rng(9)
    x = np.arange(16, dtype=np.float64)
    y = 0.5 * x + 3 + rng.normal(scale=0.1, size=(5, 16))
    y[1, [3, 9]] = 100.0  # outliers do not tilt the line
    y[2, :13] = np.nan  # too few points
    slope, intercept = theil_sen(y, x)
    for r in (0, 1, 3, 4):
        ref = stats.theilslopes(y[r], x, method="joint")
        assert slope[r] == pytest.approx(ref.slope, abs=1e-12)
        assert intercept[r] == pytest.approx(ref.intercept, abs=1e-12)
    assert slope[1] == pytest.approx(0.5, abs=0.05)
    assert np.isnan(slope[2]) and np.isnan(intercept[2])


def test_bin_medians_pads_and_takes_the_last_blocks():
    v = np.arange(10, dtype=np.float64)[None]
    np.testing.assert_array_equal(bin_medians(v, 3, 3), [[2.0, 5.0, 8.0]])
    np.testing.assert_array_equal(bin_medians(v, 4, 3), [[0.5, 3.5, 7.5]])  # 2 NaN pads
    np.testing.assert_array_equal(bin_medians(v[:, :2], 2, 2), [[np.nan, 0.5]])


def test_median_iqr_matches_numpy_and_floors_constant_columns():
    rng = np.random.default_rng(4)
    x = np.column_stack([rng.normal(5.0, 2.0, 41), rng.exponential(1.0, 41),
                         np.full(41, 3.0), np.full(41, -2e6)])
    med, iqr = median_iqr(x)
    np.testing.assert_array_equal(med, np.median(x, axis=0))
    q75, q25 = np.percentile(x, [75, 25], axis=0)
    np.testing.assert_array_equal(iqr[:2], (q75 - q25)[:2])
    np.testing.assert_allclose(iqr[:2], stats.iqr(x[:, :2], axis=0), rtol=1e-12)
    # Constant columns: 0 IQR floored at 1e-6 (|median| + 1), so they scale to zeros.
    np.testing.assert_array_equal(iqr[2:], [4e-6, 1e-6 * (2e6 + 1)])
    np.testing.assert_array_equal(((x - med) / iqr)[:, 2:], 0.0)
