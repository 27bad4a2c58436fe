"""Persistence, features and diagram distances on inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.tda.embedding import Clouds
from exporter.tda.features import DIAGRAM_FEATURES, FEATURE_NAMES, diagram_features
from exporter.tda.persistence import (
    PersistenceError,
    RipsPersistence,
    rips_diagram,
    wasserstein_h0,
    wasserstein_h1,
)


def noisy_circle(n: int = 100, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0, 2 * np.pi, n)
    return np.column_stack([np.cos(theta), np.sin(theta)]) + rng.normal(0, noise, (n, 2))


def two_clusters(n: int = 60, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.vstack([rng.normal(0, 0.3, (n, 3)), rng.normal(0, 0.3, (n, 3)) + [8, 0, 0]])


def col(name: str) -> int:
    return FEATURE_NAMES.index(name)


def test_noisy_circle_has_one_dominant_loop_and_betti1_is_one():
    h0, h1 = rips_diagram(noisy_circle())
    life = np.sort(h1[:, 1] - h1[:, 0])[::-1]
    assert life[0] > 0.8  # the circle's loop lives about from the spacing to ~sqrt(3)
    assert life[0] > 5 * life[1]
    feats = diagram_features([(h0, h1)], np.array([np.nan]))
    assert feats[0, col("betti_1")] == 1
    assert feats[0, col("betti_0")] == 1
    assert feats[0, col("max_lifetime_1")] == pytest.approx(life[0])


def test_two_separated_clusters_have_betti0_two():
    h0, h1 = rips_diagram(two_clusters())
    feats = diagram_features([(h0, h1)], np.array([np.nan]))
    assert feats[0, col("betti_0")] == 2
    # One gap bar, all others within-cluster.
    assert np.sort(h0)[-1] > 5 and np.sort(h0)[-2] < 1.5


def test_constant_cloud_gives_no_bars_and_finite_features():
    h0, h1 = rips_diagram(np.ones((40, 4)))
    assert len(h0) == 0 and len(h1) == 0
    feats = diagram_features([(h0, h1), None], np.array([np.nan, np.nan]))
    assert np.isfinite(feats[0]).all()
    assert feats[0, col("betti_0")] == 1 and feats[0, col("betti_1")] == 0
    assert feats[0, col("entropy_0")] == 0
    assert np.isnan(feats[1]).all()
    assert feats.shape == (2, len(DIAGRAM_FEATURES))


def test_wasserstein_h1_matches_persim():
    from persim import wasserstein

    rng = np.random.default_rng(3)
    dgms = [rips_diagram(rng.normal(size=(60, 4)))[1] for _ in range(12)]
    dgms += [np.empty((0, 2)), np.array([[0.1, 0.5]])]
    for a in dgms:
        for b in dgms[::3]:
            assert wasserstein_h1(a, b) == pytest.approx(wasserstein(a, b), abs=1e-8)


def test_wasserstein_h0_is_sorted_transport():
    a = np.array([0.3, 0.1, 0.2])
    b = np.array([0.25, 0.15])
    # sorted: [0.1, 0.2, 0.3] vs [0, 0.15, 0.25] -> 0.1 + 0.05 + 0.05
    assert wasserstein_h0(a, b) == pytest.approx(0.2)
    assert wasserstein_h0(b, a) == pytest.approx(0.2)
    assert wasserstein_h0(a, a) == 0


def test_submit_before_fit_raises():
    clouds = Clouds(np.zeros((1, 10, 2)), np.array([10]))
    with pytest.raises(PersistenceError):
        RipsPersistence().submit(clouds)


def test_pool_gives_the_same_diagrams_as_inline():
    rng = np.random.default_rng(5)
    pts = rng.normal(size=(40, 30, 3))
    counts = np.full(40, 30)
    counts[3] = 0
    clouds = Clouds(pts, counts)
    inline, _, _, _ = RipsPersistence(workers=1).fit().submit(clouds).result()
    pooled_est = RipsPersistence(workers=2).fit()
    try:
        pooled, _, _, _ = pooled_est.submit(clouds).result()
        again, _, _, _ = pooled_est.submit(clouds).result()  # the pool is reused
    finally:
        pooled_est.close()
    assert inline[3] is None and pooled[3] is None
    for a, b, c in zip(inline, pooled, again, strict=True):
        if a is None:
            continue
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(b[1], c[1])


def test_pool_tasks_give_the_inline_results_with_rows_missing():
    # Enough work for the pool (MIN_POOL_WORK), several tasks; two entities without a cloud
    # make one task's rows non-consecutive (copied, the others are views).
    rng = np.random.default_rng(6)
    e = 300
    pts = rng.normal(size=(e, 21, 3))
    counts = np.full(e, 21)
    counts[[7, 150]] = 0
    spts = rng.normal(size=(e, 6, 3))
    scnt = np.where(counts > 0, 6, 0)
    scale = np.where(np.arange(e) % 2 == 0, np.nan, 0.5)
    args = (Clouds(pts, counts), None, scale, Clouds(spts, scnt))
    inline = RipsPersistence(workers=1).fit().submit(*args).result()
    pooled_est = RipsPersistence(workers=2).fit()
    try:
        pending = pooled_est.submit(*args)
        assert len(pending._parts) >= 2 and all(hasattr(p, "result") for p in pending._parts)
        pooled = pending.result()
    finally:
        pooled_est.close()
    assert inline[0][7] is None and pooled[0][150] is None
    for a, b in zip(inline[0], pooled[0], strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
    for a, b in zip(inline[1:], pooled[1:], strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(pooled[2][0]).all() and np.isnan(pooled[2][7]).all()


def test_summaries_are_betti_curves_at_fixed_radii():
    from exporter.tda.features import SUMMARY_RADII, SUMMARY_SIZE, summaries

    h0 = np.array([0.3, 0.7, 3.0])
    h1 = np.array([[0.8, 2.5]])
    out = summaries([(h0, h1), None])
    assert out.shape == (2, SUMMARY_SIZE) and np.isnan(out[1]).all()
    r = len(SUMMARY_RADII)  # radii 0.5, 1, 2, 4, 8
    assert out[0, :r].tolist() == [2, 1, 1, 0, 0]  # H0 bars alive beyond each radius
    assert out[0, r : 2 * r].tolist() == [0, 1, 1, 0, 0]  # the loop is open over [0.8, 2.5)
    np.testing.assert_allclose(out[0, 2 * r :], [4.0, 1.7, 3.0, 0.7, 0.3, 0.0, 0.0, 0.0])


def test_h0_deaths_of_small_clouds_equal_ripser():
    from exporter.tda.features import recent_summaries
    from exporter.tda.rips import h0_deaths, rips_diagram

    clouds = np.random.default_rng(1).normal(size=(5, 6, 3))
    expected = [np.sort(rips_diagram(c)[0])[::-1] for c in clouds]
    np.testing.assert_allclose(h0_deaths(clouds), expected)
    # The short scale: the 3 newest points before the anchor (the last point), plus it.
    rec = recent_summaries(clouds, np.array([6, 6, 6, 3, 0]))
    np.testing.assert_allclose(rec[0], np.sort(rips_diagram(clouds[0, 2:])[0])[::-1])
    assert np.isnan(rec[3:]).all()


@pytest.mark.parametrize("engine", ["gudhi", "ripser"])
@pytest.mark.parametrize("thresh", [None, 0.8])
def test_rips_diagram_equals_the_ripser_wrapper_bit_for_bit(thresh: float | None,
                                                            engine: str) -> None:
    # rips_diagram calls GUDHI's or ripser.py's compiled routine directly (no scikit-learn
    # import): the diagrams, and the order of their pairs, must be exactly those of the
    # documented `ripser.ripser` call, whichever engine is installed.
    from ripser import ripser

    from exporter.tda.rips import _rips_engine

    assert _rips_engine(engine) is not None, f"{engine} is a dependency (pyproject.toml)"
    rng = np.random.default_rng(16)
    clouds = [noisy_circle(40, seed=3), two_clusters(20), np.ones((5, 2)), rng.normal(size=(2, 3))]
    clouds += [np.cumsum(rng.normal(size=(n, d)), axis=0) for n, d in ((13, 9), (61, 9), (31, 3))]
    # Ties: points on a grid (many equal distances, several pairs born at the same edge).
    clouds += [np.stack(np.meshgrid(np.arange(5.0), np.arange(4.0)), -1).reshape(-1, 2)]
    clouds += [np.cumsum(rng.normal(size=(61, 8)), axis=0) * 0.1 + rng.normal(size=(61, 8))
               for _ in range(40)]
    for points in clouds:
        diff = points[:, None, :] - points[None, :, :]
        dist = np.sqrt((diff * diff).sum(axis=2))
        kwargs = {"thresh": thresh} if thresh is not None else {}
        h0, h1 = ripser(dist, maxdim=1, distance_matrix=True, **kwargs)["dgms"]
        h0 = np.sort(h0[np.isfinite(h0[:, 1]), 1])
        h1 = np.asarray(h1, dtype=np.float64).reshape(-1, 2)
        if thresh is not None and len(h1):
            h1[:, 1] = np.minimum(h1[:, 1], thresh)
        got0, got1 = rips_diagram(points, thresh, engine_name=engine)
        assert got0.dtype == h0.dtype and got0.tobytes() == h0.tobytes()
        assert got1.shape == h1.shape and got1.tobytes() == h1.tobytes()


def test_rips_engine_falls_back_to_ripser_without_gudhi(monkeypatch: pytest.MonkeyPatch) -> None:
    # GUDHI's routine is preferred when it loads; when GUDHI is not installed (its package
    # cannot be found) ripser.py's routine is used, with the same diagrams.
    import importlib.util

    from exporter.tda import rips

    points = np.cumsum(np.random.default_rng(5).normal(size=(61, 8)), axis=0)
    monkeypatch.setattr(rips, "_ENGINE", None)
    preferred = rips.rips_diagram(points)
    assert rips._ENGINE.__qualname__.startswith("_gudhi_engine")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gudhi" else find_spec(name, *a))
    monkeypatch.setattr(rips, "_ENGINE", None)
    fallback = rips.rips_diagram(points)
    assert rips._ENGINE.__qualname__.startswith("_ripser_engine")
    for a, b in zip(preferred, fallback, strict=True):
        assert a.tobytes() == b.tobytes()


def test_rips_engine_falls_back_when_gudhi_fails_its_probe(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # A GUDHI whose routine changed (here: another signature) is caught once, at the choice,
    # not in every cycle: ripser.py's routine is used and the reason is logged.
    from types import SimpleNamespace

    from exporter.tda import rips

    def changed(matrix: np.ndarray) -> None:
        raise TypeError("_full() takes 1 argument")

    monkeypatch.setattr(rips, "_load_gudhi_ripser", lambda: SimpleNamespace(_full=changed))
    monkeypatch.setattr(rips, "_ENGINE", None)
    with caplog.at_level("WARNING", logger="exporter.tda.rips"):
        h0, h1 = rips.rips_diagram(two_clusters(10))
    assert rips._ENGINE.__qualname__.startswith("_ripser_engine")
    assert len(h0) == 19 and "probe failed" in caplog.text


def test_features_of_a_diagram_do_not_depend_on_its_batch() -> None:
    # Padding to the batch's longest diagram must not change an entity's features by a bit
    # (np.sum's pairwise order depends on the row length): the pool's chunking and the
    # backtest's --jobs split would otherwise change results.
    from exporter.tda.features import summaries

    small = rips_diagram(np.cumsum(np.random.default_rng(0).normal(size=(13, 4)), axis=0))
    big = rips_diagram(np.cumsum(np.random.default_rng(2).normal(size=(61, 4)), axis=0))
    scale = np.array([np.nan, np.nan])
    alone = diagram_features([small], scale[:1])
    batched = diagram_features([small, big], scale)
    assert alone[0].tobytes() == batched[0].tobytes()
    assert summaries([small])[0].tobytes() == summaries([small, big])[0].tobytes()


def _exact_norms(h1: np.ndarray) -> tuple[float, float, float]:
    """||lambda_1||_1, ||lambda_1||_2, ||lambda_2||_1 from persim's exact landscape."""
    from persim.landscapes import PersLandscapeExact

    land = PersLandscapeExact(dgms=[np.zeros((1, 2)), h1], hom_deg=1)

    def norms(pairs: list) -> tuple[float, float]:
        p = np.asarray(pairs, dtype=float)
        x, y = p[:, 0], p[:, 1]
        dx = np.diff(x)
        l1 = float(np.sum(dx * (y[:-1] + y[1:]) / 2))
        # A linear piece's exact integral of y^2: dx * (y0^2 + y0 y1 + y1^2) / 3.
        l2sq = float(np.sum(dx * (y[:-1] ** 2 + y[:-1] * y[1:] + y[1:] ** 2) / 3))
        return l1, l2sq ** 0.5

    l1, l2 = norms(land.critical_pairs[0])
    l1b = norms(land.critical_pairs[1])[0] if len(land.critical_pairs) > 1 else 0.0
    return l1, l2, l1b


def test_landscape_norms_match_persim_exact_landscapes():
    """The H1 landscape features (a 48-point grid) against persim's exact landscapes."""
    from exporter.tda.features import _landscapes

    rng = np.random.default_rng(11)
    dgms = []
    for n in (1, 2, 3, 6):
        birth = rng.uniform(0, 1, n)
        dgms.append(np.column_stack([birth, birth + rng.uniform(0.2, 1.5, n)]))
    width = max(len(d) for d in dgms)
    padded = np.full((len(dgms), width, 2), np.nan)
    for i, d in enumerate(dgms):
        padded[i, : len(d)] = d
    got = _landscapes(padded)
    for i, d in enumerate(dgms):
        want = _exact_norms(d)
        # A 48-point trapezoid over the diagram's span: within 1 % of the exact norms.
        assert np.allclose(got[i], want, rtol=0.01, atol=0.002), (i, got[i], want)


def test_persistence_entropy_matches_its_definition():
    """Persistence entropy -sum p log p, p = lifetime / total (Chintakunta et al. 2015),
    against scipy.stats.entropy of the lifetimes (which normalises them itself)."""
    from scipy.stats import entropy

    from exporter.tda.features import _entropy

    rng = np.random.default_rng(12)
    lifetimes = np.full((3, 5), np.nan)
    lifetimes[0, :5] = rng.uniform(0.1, 2, 5)
    lifetimes[1, :2] = [1.0, 1.0]
    got = _entropy(lifetimes)
    assert np.isclose(got[0], entropy(lifetimes[0, :5]))
    assert np.isclose(got[1], np.log(2))
    assert got[2] == 0.0
