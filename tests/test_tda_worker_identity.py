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
        assert _same(distance_matrices(clouds), want)
        for c, w in zip(clouds, want, strict=True):
            got = distance_matrix(c)
            assert _same(got, w)
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
    padded = np.zeros((4, 61, 9))
    padded[2, :13] = _cloud(rng, 13, 9)
    view = padded[2, :13]  # a strided view of a padded array, as the workers slice them
    assert _same(distance_matrix(view), _numpy_distances(view))
    wide = _cloud(rng, 11, 12)[:, :9]  # rows apart in memory (padding columns)
    assert _same(distance_matrix(wide), _numpy_distances(wide))
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
    assert _same(got, want)


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
    code = "from exporter.tda.persistence import keep_heap; print(keep_heap())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "True"
