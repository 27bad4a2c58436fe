"""TopologyStage.run_batch computes the per-window array work of many windows stacked: the
window statistics (`_stats_many`) and the normalisation-dependent products (`_speculate`)
must be bit for bit those of one window alone, whatever rows share a stack."""

from __future__ import annotations

import numpy as np

from exporter.tda import TopologyStage
from exporter.windows import Window
from tests.test_tda_stage import (
    SHIFT,
    STEP,
    _assert_same_results,
    _same,
    analysis,
    fleet_series,
    window_at,
)


def _windows_with_gaps(e: int, cycles: int, seed: int):
    series = fleet_series(e, cycles, seed=seed)
    series[1, 2, 40:43] = np.nan  # a few windows of entity 1 miss samples
    series[3, :, 90:] = np.nan  # entity 3 goes dark
    return series, [window_at(series, c) for c in range(cycles)]


def test_stacked_window_statistics_equal_each_window_alone():
    _, windows = _windows_with_gaps(5, 30, seed=4)
    # A window of another length is computed on its own.
    short = window_at(fleet_series(5, 1, seed=5)[:, :, :20], 0)
    windows.insert(7, short)
    for row_block in (2, 1024):
        stage = TopologyStage(analysis(), workers=1, row_block=row_block)
        try:
            stacked = stage._stats_many(windows)
            for w, got in zip(windows, stacked, strict=True):
                want = stage._stats(w)
                for field in ("values", "quart", "deciles", "center", "scale", "degenerate"):
                    a, b = getattr(want, field), getattr(got, field)
                    assert a.shape == b.shape and a.tobytes() == b.tobytes(), field
                assert want.coarse.points.tobytes() == got.coarse.points.tobytes()
                assert np.array_equal(want.coarse.counts, got.coarse.counts)
        finally:
            stage.close()


def test_one_worker_batches_equal_sequential_runs_across_renormalisations_and_churn():
    # 130 cycles of 5 min (every entity fitted, then re-normalised inside the batches), gaps,
    # an entity leaving and one joining, row blocks of 2 rows: the products computed ahead
    # under a normalisation that no longer holds must be recomputed, the rest reused.
    cycles = range(130)
    series, windows = _windows_with_gaps(5, len(cycles), seed=12)
    series[2, :, 400:] += 3.0
    windows = [window_at(series, c) for c in cycles]
    late = tuple((f"h{i}",) for i in range(4)) + (("new",),)
    windows[60:] = [window_at(series, c, late) for c in cycles[60:]]
    nows = [c * SHIFT * STEP for c in cycles]
    seq = TopologyStage(analysis(), workers=1)
    batch = TopologyStage(analysis(), workers=1, row_block=2)
    try:
        expected = [seq.run(w, now) for w, now in zip(windows, nows, strict=True)]
        got = batch.run_batch(windows[:50], nows[:50]) + batch.run_batch(windows[50:], nows[50:])
        _assert_same_results(expected, got)
        assert _same(batch.state()["rawhist"], seq.state()["rawhist"])
        assert np.isfinite(expected[-1].anomaly_score).sum() >= 3
    finally:
        seq.close()
        batch.close()


def test_a_window_without_entities_inside_a_batch():
    series = fleet_series(3, 8, seed=2)
    windows = [window_at(series, c) for c in range(8)]
    w = windows[3]
    windows[3] = Window(w.analysis, w.label_names, (), w.signals, w.timestamps,
                        np.empty((0, *w.values.shape[1:])))
    nows = [c * SHIFT * STEP for c in range(8)]
    seq, batch = TopologyStage(analysis(), workers=1), TopologyStage(analysis(), workers=1)
    try:
        expected = [seq.run(x, now) for x, now in zip(windows, nows, strict=True)]
        got = batch.run_batch(windows, nows)
        assert got[3].anomaly_score.shape == (0,)
        _assert_same_results(expected, got)
    finally:
        seq.close()
        batch.close()
