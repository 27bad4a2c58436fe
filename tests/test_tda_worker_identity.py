"""The persistence workers' faster paths give the same bits as the code they replaced
(issue 16): the Rips diagrams of the replay's speculated clouds must not change by a bit, or
the fixed-seed backtest would not stay byte-identical.
"""

from __future__ import annotations

import numpy as np
import pytest

from exporter.tda.rips import (
    _diagram_of,
    _pairwise_sum0,
    distance_matrices,
    distance_matrix,
    rips_diagram,
    rips_diagrams,
)


def _numpy_distances(points: np.ndarray) -> np.ndarray:
    """The former expression: numpy broadcasting and numpy's own sum over the last axis."""
    diff = points[:, None, :] - points[None, :, :]
    return np.sqrt((diff * diff).sum(axis=2))


def _former_diagram(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(points) < 2:
        return np.empty(0), np.empty((0, 2))
    return _diagram_of(_numpy_distances(points), None, None)


# What a failure of a bit-for-bit comparison with numpy's expression means.
NUMPY_ORDER = (f"numpy {np.__version__} sums differently from _pairwise_sum0; AURA's own "
               "distances (and diagrams) keep their bits: update this check, not the code")


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _cloud(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """Coordinates over many magnitudes per column, so that the order of the sum matters."""
    return rng.normal(size=(n, dim)) * 10.0 ** rng.uniform(-6, 6, size=(1, dim))


@pytest.mark.parametrize("dim", [*range(1, 20), 23, 31, 32, 40, 64, 127, 128, 129, 200])
def test_distance_matrices_equal_numpy_bit_for_bit(dim: int) -> None:
    rng = np.random.default_rng(dim)
    for n in (1, 2, 5, 13):
        clouds = np.stack([_cloud(rng, n, dim) for _ in range(3)])
        clouds[0, -1] = clouds[0, 0]  # a repeated point: distance 0
        want = np.stack([_numpy_distances(c) for c in clouds])
        assert _same(distance_matrices(clouds), want), NUMPY_ORDER
        for c, w in zip(clouds, want, strict=True):
            got = distance_matrix(c)
            assert _same(got, w), NUMPY_ORDER
            # Symmetric bit for bit: the GUDHI engine takes column maxima for row maxima.
            assert _same(got, np.ascontiguousarray(got.T))
            g32 = got.astype(np.float32)
            assert g32.max(axis=0).min() == g32.max(axis=1).min()


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_distance_matrix_special_values_and_layouts_equal_numpy() -> None:
    rng = np.random.default_rng(5)
    p = _cloud(rng, 9, 9)
    p[1, 2], p[2, 3], p[3, 4], p[4, 0] = np.inf, -np.inf, np.nan, -0.0
    p[5] = 0.0
    assert _same(distance_matrix(p), _numpy_distances(p))
    # (Clouds this small take numpy's expression in `distance_matrix`: the slabs directly.)
    assert _same(distance_matrices(p[None])[0], _numpy_distances(p)), NUMPY_ORDER
    padded = np.zeros((4, 61, 9))
    padded[2, :13] = _cloud(rng, 13, 9)
    view = padded[2, :13]  # a strided view of a padded array, as the workers slice them
    assert _same(distance_matrix(view), _numpy_distances(view))
    assert _same(distance_matrices(view[None])[0], _numpy_distances(view)), NUMPY_ORDER
    wide = _cloud(rng, 11, 12)[:, :9]  # rows apart in memory (padding columns)
    assert _same(distance_matrix(wide), _numpy_distances(wide))
    assert _same(distance_matrices(wide[None])[0], _numpy_distances(wide)), NUMPY_ORDER
    big = _cloud(rng, 61, 9)  # above _SLAB_MIN_VALUES: the slab path in distance_matrix too
    big[3, 1], big[7, 0] = np.inf, -0.0
    assert _same(distance_matrix(big), _numpy_distances(big)), NUMPY_ORDER
    # Layouts where numpy sums the coordinates in another order keep numpy's expression.
    base = _cloud(rng, 7, 18)
    for other in (np.asfortranarray(base[:, :9]), base[::-1, :9], base[:, ::2]):
        assert _same(distance_matrix(other), _numpy_distances(other))
    # Other dtypes keep numpy's expression (its sums depend on the dtype).
    p32 = _cloud(rng, 7, 9).astype(np.float32)
    assert _same(distance_matrix(p32), _numpy_distances(p32))


@pytest.mark.parametrize("m", range(1, 129))
def test_pairwise_sum0_is_numpys_float64_sum_order(m: int) -> None:
    rng = np.random.default_rng(m)
    x = (rng.normal(size=(5, m)) * 10.0 ** rng.uniform(-8, 8, size=(5, m))) ** 2
    want = x.sum(axis=1)
    got = _pairwise_sum0(np.ascontiguousarray(x.T))
    assert _same(got, want), NUMPY_ORDER


def test_rips_diagrams_equal_the_former_diagrams_in_order() -> None:
    rng = np.random.default_rng(16)
    shapes = [(61, 9), (13, 9), (61, 9), (1, 9), (0, 9), (2, 9), (13, 9), (13, 4), (61, 9)]
    clouds: list[np.ndarray] = [_cloud(rng, n, d) for n, d in shapes]
    clouds += [_cloud(rng, 13, 9) for _ in range(60)]  # more than one batch of a shape
    clouds.append(_cloud(rng, 10, 3).astype(np.float32))  # kept apart, as rips_diagram does
    clouds.append(np.asfortranarray(_cloud(rng, 13, 9)))  # numpy sums these otherwise
    want = [_former_diagram(c) for c in clouds]
    for got in (rips_diagrams(clouds), [rips_diagram(c) for c in clouds]):
        assert len(got) == len(want)
        for (g0, g1), (w0, w1) in zip(got, want, strict=True):
            assert _same(g0, w0) and _same(g1, w1)
    assert rips_diagrams([]) == []


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


def test_rips_diagrams_with_a_threshold_equal_rips_diagram() -> None:
    rng = np.random.default_rng(11)
    clouds = [np.cumsum(rng.normal(size=(n, 9)), axis=0) for n in (13, 13, 13, 61, 5)]
    for thresh in (0.5, 2.0, 8.0):
        got = rips_diagrams(clouds, thresh)
        for c, (h0, h1) in zip(clouds, got, strict=True):
            w0, w1 = rips_diagram(c, thresh)
            assert _same(h0, w0) and _same(h1, w1)
            assert (h1[:, 1] <= thresh).all() if len(h1) else True


def test_distance_matrices_refuse_what_numpy_would_sum_otherwise() -> None:
    with pytest.raises(TypeError, match="float64"):
        distance_matrices(np.zeros((2, 3, 4), dtype=np.float32))
    with pytest.raises(TypeError, match="float64"):
        distance_matrices(np.zeros((3, 4)))
