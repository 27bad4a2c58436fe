"""Per-entity baselines (exporter/tda/baseline.py): fit contract and saved state."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.tda import TopologyStage
from exporter.tda.baseline import BaselineError, EntityBaseline
from tests.test_tda_stage import analysis, drive, fleet_series, window_at


def test_fit_refuses_too_little_non_overlapping_history():
    with pytest.raises(BaselineError, match="too little"):
        EntityBaseline().fit([], [], [], np.empty(0), 0.0, 7200.0, np.zeros(2), np.ones(2))


def test_state_written_with_a_calibration_sample_still_loads():
    # Before issue 17 the state carried each fitted baseline's (unused, empty) calibration
    # sample as `calib_counts` / `calib`; such a file loads and scores the same.
    series = fleet_series(6, 30, seed=3)
    stage = TopologyStage(analysis(), workers=1)
    drive(stage, series, range(24))
    saved = stage.state()
    assert "calib" not in saved and "calib_counts" not in saved
    fitted = int(saved["fitted"].sum())
    assert fitted > 0
    old = {k: v.copy() for k, v in saved.items()}
    old["calib_counts"] = np.zeros(fitted, dtype=np.int64)
    old["calib"] = np.empty(0)
    twin = TopologyStage(analysis(), workers=1)
    twin.restore(old)
    a = drive(stage, series, range(24, 30))
    b = drive(twin, series, range(24, 30))
    stage.close()
    twin.close()
    for ra, rb in zip(a, b, strict=True):
        np.testing.assert_array_equal(ra.anomaly_score, rb.anomaly_score)
    assert np.isfinite(a[-1].anomaly_score).any()


def test_an_entity_missing_for_a_while_keeps_its_baselines_and_one_gone_for_long_is_dropped():
    """An entity absent from a cycle's window (a scrape gap longer than the window, a host
    down for maintenance) keeps its baselines for FORGET_AFTER; gone longer, it is dropped.
    Forgotten at once, a two-hour gap cost days of history and hours without a score
    (helper-57). After a restore the absence counts from the first cycle."""
    from exporter.tda.baseline import FORGET_AFTER

    series = fleet_series(3, 30, seed=4)
    stage = TopologyStage(analysis(), workers=1)
    try:
        drive(stage, series, range(24))
        store = stage._store
        assert store is not None and ("h2",) in store.entries
        before = store.entries[("h2",)]
        last = 23 * 5 * 60.0  # drive's last cycle: h2 seen then
        two = window_at(series, 24).select(np.array([0, 1]))  # h2 missing from the window
        stage.run(two, last + 300.0)
        assert store.entries[("h2",)] is before  # kept, history and all
        stage.run(two, last + FORGET_AFTER)  # still within the grace
        assert ("h2",) in store.entries
        now = last + FORGET_AFTER + 60.0
        stage.run(two, now)
        assert ("h2",) not in store.entries and ("h0",) in store.entries
        # Restored baselines: an entity absent at the first cycle after it starts counting.
        again = TopologyStage(analysis(), workers=1)
        try:
            again.restore(stage.state())
            saved = {("h0",), ("h1",)}
            assert set(again._store.entries) == saved
            again._store.forget({("h0",)}, now + 10 * FORGET_AFTER)
            assert set(again._store.entries) == saved
            again._store.forget({("h0",)}, now + 11 * FORGET_AFTER + 1.0)
            assert set(again._store.entries) == {("h0",)}
        finally:
            again.close()
    finally:
        stage.close()
