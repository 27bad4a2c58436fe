"""Per-entity baselines (exporter/tda/baseline.py): fit contract and saved state."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.tda import TopologyStage
from exporter.tda.baseline import BaselineError, EntityBaseline
from tests.test_tda_stage import analysis, drive, fleet_series


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
