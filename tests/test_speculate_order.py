"""`RipsPersistence.speculate` holds its tasks in the cache and starts them soonest needed
first (a real two-worker pool): the pool is never given the whole replay at once."""

from __future__ import annotations

import numpy as np

from exporter.tda.persistence import (
    SPECULATE_IN_FLIGHT,
    DiagramCache,
    RipsPersistence,
    cloud_key,
)
from exporter.tda.rips import rips_diagram


def _clouds(seed: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(13, 3)) for _ in range(n)]


def _same(got, want) -> bool:  # type: ignore[no-untyped-def]
    return got is not None and all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


def test_held_tasks_start_soonest_needed_first_and_on_demand() -> None:
    later, sooner = _clouds(1, 20), _clouds(2, 20)
    pool = RipsPersistence(workers=2).fit()
    try:
        cache = DiagramCache()
        pool.speculate(cache, later, chunk=2, priority=[10.0] * len(later))
        pool.speculate(cache, sooner, chunk=2, priority=[1.0] * len(sooner))
        assert all(cloud_key(c) in cache for c in later + sooner)
        assert cache._held_keys and not cache._pending  # nothing on the pool yet
        pool.pump(cache)
        started = [cloud_key(c) in cache._pending for c in sooner + later]
        # The limit's worth of the sooner tasks (2 clouds each), none of the later ones.
        assert sum(started) == 2 * SPECULATE_IN_FLIGHT * 2
        assert all(started[:sum(started)])
        # A held cloud asked for starts its task at once and gives its diagram.
        assert _same(cache.get(cloud_key(later[-1])), rips_diagram(later[-1], pool.thresh))
        # due: everything needed by then starts whatever the limit.
        pool.pump(cache, due=10.0)
        assert not cache._held_keys
        for c in sooner + later:
            assert _same(cache.get(cloud_key(c)), rips_diagram(c, pool.thresh))
    finally:
        pool.close()
