"""The persistence workers' faster paths keep the diagrams of the code they replaced
(issue 16): scipy's `cdist` for the distance matrices (the same float32 distances Ripser
compares as numpy's broadcast expression), the pool workers' heap setting.
"""

from __future__ import annotations

import numpy as np
import pytest

from exporter.tda.rips import _diagram_of, distance_matrix, rips_diagram


def _numpy_distances(points: np.ndarray) -> np.ndarray:
    """The former expression: numpy broadcasting and numpy's own sum over the last axis."""
    diff = points[:, None, :] - points[None, :, :]
    return np.sqrt((diff * diff).sum(axis=2))


def _former_diagram(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(points) < 2:
        return np.empty(0), np.empty((0, 2))
    return _diagram_of(_numpy_distances(points), None, None)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _cloud(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """Coordinates over many magnitudes per column, so that the order of the sum matters."""
    return rng.normal(size=(n, dim)) * 10.0 ** rng.uniform(-6, 6, size=(1, dim))


@pytest.mark.parametrize("dim", [1, 2, 3, 8, 9, 16, 19, 40])
def test_distances_are_numpys_in_float32_symmetric_with_a_zero_diagonal(dim: int) -> None:
    # What Ripser compares: the float32 distances. cdist's float64 sums may differ from
    # numpy's in the last bit; rounded to float32 they must agree (on the product's clouds
    # and on these, with coordinates over 12 orders of magnitude).
    rng = np.random.default_rng(dim)
    for n in (2, 5, 13, 61):
        for _ in range(20):
            c = _cloud(rng, n, dim) if dim > 3 else np.cumsum(rng.normal(size=(n, dim)), 0)
            c[-1] = c[0]  # a repeated point: distance 0
            got = distance_matrix(c)
            want = _numpy_distances(c)
            assert got.dtype == np.float64 and got.shape == (n, n)
            np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)
            assert _same(got.astype(np.float32), want.astype(np.float32))
            assert _same(got, np.ascontiguousarray(got.T))  # the cone radius takes columns
            assert not np.diagonal(got).any() and got[0, -1] == 0.0


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_distance_matrix_special_values_layouts_and_dtypes() -> None:
    rng = np.random.default_rng(5)
    p = _cloud(rng, 9, 9)
    p[1, 2], p[2, 3], p[3, 4], p[4, 0] = np.inf, -np.inf, np.nan, -0.0
    p[5] = 0.0
    got, want = distance_matrix(p), _numpy_distances(p)
    assert _same(np.isnan(got), np.isnan(want)) and _same(np.isinf(got), np.isinf(want))
    padded = np.zeros((4, 61, 9))
    padded[2, :13] = _cloud(rng, 13, 9)
    for view in (padded[2, :13], np.asfortranarray(padded[2, :13]), padded[2, 12::-1],
                 _cloud(rng, 11, 12)[:, :9]):  # strided, Fortran, reversed, rows apart
        assert _same(distance_matrix(view).astype(np.float32),
                     _numpy_distances(view).astype(np.float32))
    # Other dtypes keep numpy's expression (summed in their own precision).
    p32 = _cloud(rng, 7, 9).astype(np.float32)
    assert _same(distance_matrix(p32), _numpy_distances(p32))


def test_diagrams_equal_the_former_diagrams() -> None:
    rng = np.random.default_rng(16)
    shapes = [(61, 9), (13, 9), (61, 9), (1, 9), (0, 9), (2, 9), (13, 9), (13, 4), (61, 9)]
    clouds: list[np.ndarray] = [_cloud(rng, n, d) for n, d in shapes]
    clouds += [_cloud(rng, 13, 9) for _ in range(60)]
    clouds.append(_cloud(rng, 10, 3).astype(np.float32))
    clouds.append(np.asfortranarray(_cloud(rng, 13, 9)))
    want = [_former_diagram(c) for c in clouds]
    for c, (w0, w1) in zip(clouds, want, strict=True):
        g0, g1 = rips_diagram(c)
        assert _same(g0, w0) and _same(g1, w1)


def test_keep_heap_sets_glibc_malloc_parameters_in_a_fresh_process() -> None:
    """The persistence workers' heap setting is accepted by glibc (a separate process: it
    changes that process's allocator)."""
    import platform
    import subprocess
    import sys

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    code = "from exporter.heap import keep_heap; print(keep_heap())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "True"


def test_keep_heap_is_false_without_glibc(monkeypatch) -> None:
    from exporter import heap

    monkeypatch.setattr(heap, "_LIBC", False)  # as on musl or macOS
    assert heap.keep_heap() is False
    heap.release_free_heap()  # and the other job does nothing there either


def test_pool_workers_set_the_heap_parameters() -> None:
    # `_init_worker` (what each pool worker runs first) calls keep_heap; run in a separate
    # process, as a worker is (it also limits BLAS threads for the whole process).
    import subprocess
    import sys

    code = ("from exporter.tda import persistence; calls = []; "
            "persistence.keep_heap = lambda: calls.append(1) or True; "
            "persistence._init_worker(); print(len(calls))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "1"


def test_diagrams_with_a_threshold_equal_the_former_diagrams() -> None:
    rng = np.random.default_rng(11)
    clouds = [np.cumsum(rng.normal(size=(n, 9)), axis=0) for n in (13, 13, 13, 61, 5)]
    for thresh in (0.5, 2.0, 8.0):
        for c in clouds:
            h0, h1 = rips_diagram(c, thresh)
            w0, w1 = _diagram_of(_numpy_distances(c), thresh, None)
            assert _same(h0, w0) and _same(h1, w1)
            assert (h1[:, 1] <= thresh).all() if len(h1) else True
