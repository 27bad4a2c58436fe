"""TopologyStage end to end on synthetic windows: NaN policy, state, anomaly, calibration."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.config import AnalysisConfig, Duration, SignalConfig, TopologyConfig
from exporter.tda import FEATURE_NAMES, TopologyError, TopologyStage
from exporter.windows import Window

S = 4
STEP = 60.0
T = 30  # 30-minute windows keep the PH cheap
SHIFT = 5  # one cycle = 5 steps
SIGNALS = tuple(f"s{i}" for i in range(S))


def analysis() -> AnalysisConfig:
    return AnalysisConfig(
        name="t",
        window=Duration(T * STEP),
        step=Duration(STEP),
        signals=tuple(SignalConfig(name=n, query="q") for n in SIGNALS),
        topology=TopologyConfig(baseline_admit_every=Duration(SHIFT * STEP),
                                baseline_every=Duration(1800)),
    )


def fleet_series(e: int, cycles: int, seed: int = 0) -> np.ndarray:
    """AR(1) noise around per-entity levels, [E, S, T + cycles*SHIFT]."""
    rng = np.random.default_rng(seed)
    n = T + cycles * SHIFT
    eps = rng.normal(size=(e, S, n))
    x = np.zeros_like(eps)
    for t in range(1, n):
        x[:, :, t] = 0.6 * x[:, :, t - 1] + eps[:, :, t]
    return x + rng.uniform(10, 50, (e, S, 1))


def window_at(series: np.ndarray, c: int, entities=None) -> Window:
    e = len(series)
    ents = entities or tuple((f"h{i}",) for i in range(e))
    now = c * SHIFT * STEP
    v = series[:, :, c * SHIFT : c * SHIFT + T]
    return Window("t", ("instance",), ents, SIGNALS[: series.shape[1]],
                  now - STEP * np.arange(T - 1, -1, -1), v)


def drive(stage: TopologyStage, series: np.ndarray, cycles: range):
    out = []
    for c in cycles:
        out.append(stage.run(window_at(series, c), c * SHIFT * STEP))
    return out


def test_constant_and_missing_entities_are_safe():
    series = fleet_series(8, 1)
    series[1] = 7.0  # constant
    series[2] = np.nan  # all missing
    stage = TopologyStage(analysis(), workers=1)
    r = stage.run(window_at(series, 0), 0.0)
    stage.close()
    assert r.features.shape == (8, len(FEATURE_NAMES))
    assert r.betti[1].tolist() == [1.0, 0.0]  # no spurious bars
    assert np.isfinite(r.features[1]).all() and np.isfinite(r.entropy[1]).all()
    assert np.isnan(r.features[2]).all() and np.isnan(r.anomaly_score[2])
    assert np.isnan(r.signal_contribution[2]).all()
    others = np.delete(np.arange(8), 2)
    assert np.isfinite(r.betti[others]).all() and np.isfinite(r.fleet_betti).all()
    assert np.isfinite(r.fleet_outlier[others]).all() and np.isnan(r.fleet_outlier[2])


def test_shifted_regime_scores_above_healthy_continuation_and_state_round_trip():
    cycles = 40
    series = fleet_series(12, cycles + 6, seed=1)
    # Entities 0-5 change regime in the last cycles: variance x3 and a level step on s0.
    start = (cycles + 1) * SHIFT + T - 10
    series[:6, 0, start:] += 6.0
    series[:6, 1, start:] = series[:6, 1, start:] * 3 - 2 * series[:6, 1, start - 1 : start]
    stage = TopologyStage(analysis(), workers=1)
    drive(stage, series, range(cycles))
    saved = stage.state()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in saved.values())
    twin = TopologyStage(analysis(), workers=1)
    twin.restore({k: v.copy() for k, v in saved.items()})
    a = drive(stage, series, range(cycles, cycles + 5))
    b = drive(twin, series, range(cycles, cycles + 5))
    stage.close()
    for ra, rb in zip(a, b, strict=True):
        np.testing.assert_array_equal(ra.anomaly_score, rb.anomaly_score)
        np.testing.assert_array_equal(ra.features, rb.features)
    last = a[-1].anomaly_score
    assert np.isfinite(last).all()
    assert np.median(last[:6]) > np.median(last[6:])
    contrib = a[-1].signal_contribution
    np.testing.assert_allclose(contrib.sum(axis=1), 1.0)
    # The shifted signals drive the shifted entities' anomaly.
    assert (contrib[:6, :2].sum(axis=1) > 0.5).all()


def test_healthy_scores_spread_over_unit_interval():
    series = fleet_series(16, 70, seed=2)
    stage = TopologyStage(analysis(), workers=1)
    results = drive(stage, series, range(70))
    stage.close()
    # Warming up (fewer than MIN_RAW_HISTORY own distances): no score, not a guessed one.
    assert np.isnan(results[20].anomaly_score).all()
    scores = np.concatenate([r.anomaly_score for r in results[35:]])
    assert np.isfinite(scores).all()
    q10, q50, q90 = np.quantile(scores, [0.1, 0.5, 0.9])
    assert q10 < 0.3 and 0.2 < q50 < 0.8 and q90 > 0.7


def test_entity_churn_and_mismatched_signals():
    series = fleet_series(4, 2)
    stage = TopologyStage(analysis(), workers=1)
    stage.run(window_at(series, 0), 0.0)
    ents = (("h9",), ("h1",), ("h2",), ("h3",))
    r = stage.run(window_at(series, 1, ents), SHIFT * STEP)
    assert r.features.shape[0] == 4
    # h0 is missing from this window: kept for FORGET_AFTER (a gap, a host down), not yet
    # dropped; h9 is new (test_tda_baseline.py tests the forgetting itself).
    assert ("h0",) in stage._store.entries and ("h9",) in stage._store.entries
    assert set(r.features.shape[:1]) == {4}
    bad = window_at(series, 1)
    bad = Window("t", bad.label_names, bad.entities, ("a", "b", "c", "d"), bad.timestamps,
                 bad.values)
    with pytest.raises(TopologyError):
        stage.run(bad, 2 * SHIFT * STEP)
    stage.close()


def test_features_only_batch():
    series = fleet_series(5, 1)
    stage = TopologyStage(analysis(), workers=1)
    feats = stage.features_only(series[:, :, :T])
    stage.close()
    assert feats.shape == (5, len(FEATURE_NAMES)) and np.isfinite(feats).all()


def test_developing_drift_scores_above_healthy_entities():
    # Entities 0-5 start a slow ramp on s0 (a leak: +0.25 sigma of the AR noise per step) after
    # the baselines are learned; the healthy six keep going. The coarse score clouds see
    # where the state moves, so the drifting entities must outrank the healthy ones.
    cycles = 50
    series = fleet_series(12, cycles + 1, seed=3)
    start = 40 * SHIFT + T
    ramp = np.maximum(np.arange(series.shape[2]) - start, 0) * 0.25 * 1.25
    series[:6, 0] += ramp
    stage = TopologyStage(analysis(), workers=1)
    results = drive(stage, series, range(cycles))
    stage.close()
    last = np.mean([r.anomaly_score for r in results[-3:]], axis=0)
    assert np.isfinite(last).all()
    assert np.median(last[:6]) > 0.9 > np.median(last[6:])
    assert (last[:6] > np.median(last[6:])).all()
    assert (results[-1].signal_contribution[:6, 0] > 0.5).all()


def test_normalisation_is_reestimated_from_the_reservoir(monkeypatch):
    from exporter.tda import baseline

    monkeypatch.setattr(baseline, "RENORMALISE_EVERY", 1800.0)
    series = fleet_series(6, 40, seed=4)
    stage = TopologyStage(analysis(), workers=1)
    drive(stage, series, range(40))
    stage.close()
    now = 39 * SHIFT * STEP
    for entry in stage._store.entries.values():
        # Each entity re-normalised at its own phase within the last period...
        assert entry.model is not None and now - entry.normalised_at < 1800 + SHIFT * STEP
        # ... from its reservoir's clouds.
        baseline.BaselineStore.renormalise(entry, now, stage._store.size)
        clouds = entry.reservoir.clouds
        np.testing.assert_allclose(entry.center, np.median(np.concatenate(clouds), axis=0))


def test_saved_baselines_of_another_format_are_refused():
    series = fleet_series(4, 30, seed=5)
    stage = TopologyStage(analysis(), workers=1)
    drive(stage, series, range(30))
    stage.close()
    saved = stage.state()
    saved.pop("format")
    with pytest.raises(TopologyError, match="format 1"):
        TopologyStage(analysis(), workers=1).restore(saved)


def test_learn_builds_baselines_without_features():
    # The cold-start replay: baselines only. A live cycle afterwards has scores and features.
    series = fleet_series(6, 60, seed=6)
    stage = TopologyStage(analysis(), workers=1)
    for c in range(59):
        stage.learn(window_at(series, c), c * SHIFT * STEP)
    entries = stage._store.entries
    assert all(e.model is not None and np.isnan(e.model.betti_scale_) for e in entries.values())
    r = stage.run(window_at(series, 59), 59 * SHIFT * STEP)
    stage.close()
    assert np.isfinite(r.anomaly_score).all() and np.isfinite(r.features).all()


def _same(a, b) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


def _sequential_and_batched(windows, nows, split: int):
    """`run` window by window (one worker) and `run_batch` in two batches (two workers)."""
    seq = TopologyStage(analysis(), workers=1)
    expected = [seq.run(w, now) for w, now in zip(windows, nows, strict=True)]
    batch = TopologyStage(analysis(), workers=2)
    try:
        got = (batch.run_batch(windows[:split], nows[:split])
               + batch.run_batch(windows[split:], nows[split:]))
    finally:
        batch.close()
        seq.close()
    return seq, batch, expected, got


def _assert_same_results(expected, got) -> None:
    for x, y in zip(expected, got, strict=True):
        for field in ("anomaly_score", "betti", "entropy", "features", "signal_contribution",
                      "fleet_betti", "fleet_outlier", "history_seconds"):
            assert _same(getattr(x, field), getattr(y, field)), field


def test_run_batch_equals_sequential_runs():
    series = fleet_series(6, 40, seed=3)
    series[1] = 7.0  # constant
    series[2, :, 120:140] += 25.0  # an incident mid-run
    cycles = range(40)
    windows = [window_at(series, c) for c in cycles]
    nows = [c * SHIFT * STEP for c in cycles]
    # An entity that joins late: the batch must predict its frozen first-window statistics.
    late = tuple((f"h{i}",) for i in range(5))
    windows[30:] = [window_at(series, c, late[:5] + (("new",),)) for c in cycles[30:]]
    seq, batch, expected, got = _sequential_and_batched(windows, nows, 25)
    assert np.isfinite(expected[-1].anomaly_score).sum() >= 4  # scores were exported
    _assert_same_results(expected, got)
    assert _same(batch.state()["rawhist"], seq.state()["rawhist"])


def test_run_batch_rejects_mismatched_lengths():
    stage = TopologyStage(analysis(), workers=1)
    with pytest.raises(TopologyError):
        stage.run_batch([window_at(fleet_series(2, 1), 0)], [])


def test_degenerate_windows_get_no_score():
    # Constant, all-zero and two-state entities next to noisy ones (case 14): no score at
    # all (absent, "unknown") rather than one at the top of the calibrated range.
    series = fleet_series(8, 40, seed=7)
    series[0] = 7.0
    series[1] = 0.0
    series[2] = np.where(np.arange(series.shape[2]) % 2, 0.1, 0.2)[None, None]
    stage = TopologyStage(analysis(), workers=1)
    results = drive(stage, series, range(40))
    stage.close()
    last = results[-1].anomaly_score
    assert np.isnan(last[:3]).all() and np.isfinite(last[3:]).all()
    assert all(np.isnan(r.anomaly_score[:3]).all() for r in results)


def test_one_signal_analysis_scores_a_takens_embedding():
    from exporter.tda import stage as stage_mod

    cfg = analysis()
    one = AnalysisConfig(name="t", window=cfg.window, step=cfg.step,
                         signals=cfg.signals[:1], topology=cfg.topology)
    n = T + 40 * SHIFT
    t = np.arange(n)
    rng = np.random.default_rng(8)
    series = (np.sin(2 * np.pi * t / 12)[None, None] + 0.1 * rng.normal(size=(6, 1, n))
              + rng.uniform(5, 10, (6, 1, 1)))
    stage = TopologyStage(one, workers=1)
    drive(stage, series, range(40))
    stage.close()
    m, tau = stage._takens
    assert 2 <= m <= 3 and 1 <= tau <= 4
    assert stage.state()["takens"].tolist() == [m, tau]
    flat = TopologyStage(one, workers=1)
    stage_mod_takens = stage_mod.TAKENS
    try:
        stage_mod.TAKENS = False
        drive(flat, series, range(2))
    finally:
        stage_mod.TAKENS = stage_mod_takens
        flat.close()
    assert flat._takens == (1, 1)


def test_run_batch_equals_sequential_runs_for_one_signal():
    # The Takens parameters are chosen from the first window: the batch must choose them
    # from the same one before predicting its clouds.
    cfg = analysis()
    one = AnalysisConfig(name="t", window=cfg.window, step=cfg.step,
                         signals=cfg.signals[:1], topology=cfg.topology)
    series = fleet_series(5, 30, seed=9)[:, :1]
    windows = [window_at(series, c) for c in range(30)]
    nows = [c * SHIFT * STEP for c in range(30)]
    seq, batch = TopologyStage(one, workers=1), TopologyStage(one, workers=1)
    expected = [seq.run(w, now) for w, now in zip(windows, nows, strict=True)]
    got = batch.run_batch(windows, nows)
    seq.close()
    batch.close()
    assert seq._takens == batch._takens and seq._takens[0] >= 2
    assert np.isfinite(expected[-1].anomaly_score).any()
    for x, y in zip(expected, got, strict=True):
        assert _same(x.anomaly_score, y.anomaly_score) and _same(x.features, y.features)


def test_state_keeps_label_values_holding_any_character():
    """Baselines of entities whose labels hold U+00FF, commas or quotes survive a restart."""
    series = fleet_series(3, 8, seed=4)
    ents = (("l-haÿ-les-roses",), ('a,"b"',), ("\xff\xff",))
    stage = TopologyStage(analysis(), workers=1)
    for c in range(8):
        stage.run(window_at(series, c, ents), c * SHIFT * STEP)
    saved = stage.state()
    twin = TopologyStage(analysis(), workers=1)
    twin.restore({k: v.copy() for k, v in saved.items()})
    a = stage.run(window_at(series, 7, ents), 8 * SHIFT * STEP)
    b = twin.run(window_at(series, 7, ents), 8 * SHIFT * STEP)
    stage.close()
    twin.close()
    np.testing.assert_array_equal(a.anomaly_score, b.anomaly_score)
    assert twin.state()["keys"].tolist() == saved["keys"].tolist()


def test_run_batch_sends_clouds_ahead_across_renormalisations():
    # 130 cycles of 5 min: every entity is fitted, then re-normalised (RENORMALISE_EVERY, 6 h,
    # phase-staggered) inside the batches, so clouds sent ahead under the old normalisation
    # are not the ones needed: the pool's batch must still give exactly the sequential runs.
    cycles = range(130)
    series = fleet_series(6, len(cycles), seed=11)
    series[3, :, 400:] += 3.0  # a level shift the re-normalisation absorbs
    windows = [window_at(series, c) for c in cycles]
    nows = [c * SHIFT * STEP for c in cycles]
    seq, batch, expected, got = _sequential_and_batched(windows, nows, 70)
    first = windows[0]
    own = np.nanmedian(first.values, axis=2)
    moved = [not np.array_equal(seq._store.entries[k].center, own[i])  # type: ignore[union-attr]
             for i, k in enumerate(first.entities)]
    assert sum(moved) >= 4  # re-normalised inside the run
    _assert_same_results(expected, got)


def test_run_batch_without_features_keeps_the_score():
    # features=False (a replay whose outputs read no diagram feature) skips the feature
    # clouds' persistence; the anomaly score, contributions and baselines are unchanged.
    cycles = range(40)
    series = fleet_series(3, len(cycles), seed=12)
    windows = [window_at(series, c) for c in cycles]
    nows = [c * SHIFT * STEP for c in cycles]
    full, lean = TopologyStage(analysis(), workers=1), TopologyStage(analysis(), workers=1)
    want = full.run_batch(windows, nows)
    got = lean.run_batch(windows, nows, features=False, fleet_betti=False)
    full.close()
    lean.close()
    assert np.isfinite(want[-1].anomaly_score).all()
    for x, y in zip(want, got, strict=True):
        assert _same(x.anomaly_score, y.anomaly_score)
        assert _same(x.signal_contribution, y.signal_contribution)
        assert np.isnan(y.betti).all() and np.isnan(y.fleet_betti).all()
        assert _same(x.features[:, -5:], y.features[:, -5:])  # window features stay
    assert _same(full.state()["rawhist"], lean.state()["rawhist"])


def test_topology_shards_give_the_stage_results():
    # The stage split by entity over 2 processes (aura backtest --jobs): same results, the
    # fleet terms computed on the merged rows; a window without one shard's entities makes
    # that shard forget them, as the whole stage does; a child's error is a TopologyError.
    from exporter.tda.shards import TopologyShards
    from exporter.windows import shard_of

    cycles = range(30)
    series = fleet_series(6, len(cycles), seed=13)
    ents = tuple((f"h{i}",) for i in range(6))
    zero = tuple(i for i, k in enumerate(ents) if shard_of(k, 2) == 0)
    assert 0 < len(zero) < 6
    windows = [window_at(series, c, ents) for c in cycles]
    windows[12] = windows[12].select(np.array(zero))  # shard 1's entities gone for a cycle
    nows = [c * SHIFT * STEP for c in cycles]
    seq = TopologyStage(analysis(), workers=1)
    expected = [seq.run(w, now) for w, now in zip(windows, nows, strict=True)]
    seq.close()
    shards = TopologyShards(analysis(), 2)
    try:
        got = shards.run_batch(windows[:20], nows[:20]) + shards.run_batch(windows[20:], nows[20:])
        _assert_same_results(expected, got)
        bad = Window("t", ("instance",), ents[:2], ("x",) * S, windows[0].timestamps,
                     windows[0].values[:2])
        with pytest.raises(TopologyError, match="shard"):
            shards.run_batch([bad], [nows[-1] + 300])
    finally:
        shards.close()


def test_row_blocks_change_nothing_but_memory():
    # The row-wise array work runs in blocks of row_block entities: bit-identical results.
    cycles = range(12)
    series = fleet_series(7, len(cycles), seed=14)
    series[2, :, 40:] = np.nan  # a gap in one entity
    windows = [window_at(series, c) for c in cycles]
    nows = [c * SHIFT * STEP for c in cycles]
    whole = TopologyStage(analysis(), workers=1)
    blocks = TopologyStage(analysis(), workers=1, row_block=3)
    expected = [whole.run(w, now) for w, now in zip(windows, nows, strict=True)]
    got = blocks.run_batch(windows, nows)
    whole.close()
    blocks.close()
    _assert_same_results(expected, got)


def test_live_runs_in_row_blocks_give_the_same_results():
    # run() builds its clouds and window features block by block (the normalised window is
    # never whole): bit-identical to one block, with a gap and an entity without a cloud.
    cycles = range(8)
    series = fleet_series(7, len(cycles), seed=15)
    series[2, :, 40:] = np.nan  # a gap in one entity
    series[4, :, :] = np.nan  # no sample at all: no cloud
    whole = TopologyStage(analysis(), workers=1)
    blocks = TopologyStage(analysis(), workers=1, row_block=3)
    expected = drive(whole, series, cycles)
    got = drive(blocks, series, cycles)
    whole.close()
    blocks.close()
    assert np.isnan(got[-1].features[4]).all()
    _assert_same_results(expected, got)


def test_history_seconds_is_the_span_of_the_score_history():
    # What arms the decision stage's sustained anomaly (exporter/decision.py): the time since
    # the entity's oldest own raw distance, 0 for an entity the stage has not seen.
    series = fleet_series(3, 40)
    stage = TopologyStage(analysis(), workers=1)
    try:
        first = drive(stage, series, range(1))[0]
        assert first.history_seconds is not None and first.history_seconds.shape == (3,)
        results = drive(stage, series, range(1, 40))
        spans = np.array([r.history_seconds for r in results])
        assert (np.diff(spans, axis=0) >= 0).all() and (spans[-1] > 0).all()
        oldest = np.array([stage._store.entries[(f"h{i}",)].hist_times[0] for i in range(3)])
        np.testing.assert_allclose(spans[-1], 39 * SHIFT * STEP - oldest)
        ents = (("new",), ("h1",), ("h2",))
        r = stage.run(window_at(series, 40, ents), 40 * SHIFT * STEP)
        assert r.history_seconds[0] == 0 and r.history_seconds[1] > 0
    finally:
        stage.close()


def test_an_entity_without_one_signal_is_scored_on_the_others():
    # A host that does not export one signal (NaN over every window) keeps its clouds,
    # features and anomaly score: the signal is left out (the baseline centre, z = 0), not
    # every point dropped. Before, it had no cloud and never a score. Its scores are those of
    # the same host with that signal constant (what "left out" means in z space), and the
    # other entities' are untouched.
    cycles = range(40)
    series = fleet_series(6, 40, seed=5)
    series[3, :, 120:140] += 25.0  # an incident mid-run on the host
    lacking, flat = series.copy(), series.copy()
    lacking[3, 2] = np.nan
    flat[3, 2] = 7.0
    runs = []
    for s in (lacking, flat, series):
        stage = TopologyStage(analysis(), workers=1)
        runs.append(drive(stage, s, cycles))
        stage.close()
    got, same, full = runs
    scored = np.array([np.isfinite(r.anomaly_score) for r in got])
    assert scored[:, 3].sum() == scored[:, 0].sum() >= 16  # from the history's minimum on
    assert np.isfinite(got[-1].features[3]).all()
    assert np.isfinite(got[-1].signal_contribution[3]).all()
    for x, y, z in zip(got, same, full, strict=True):
        for e in (0, 1, 2, 4, 5):
            assert _same(x.anomaly_score[e], z.anomaly_score[e])
        assert _same(x.betti[3], y.betti[3]) and _same(x.features[3, :4], y.features[3, :4])
    # The incident on the host (windows of cycles 19-27) still scores above its calm end.
    hot = np.array([r.anomaly_score[3] for r in got])
    assert np.nanmean(hot[24:32]) > np.nanmean(hot[34:]) + 0.3


def test_run_batch_equals_sequential_runs_with_a_signal_an_entity_lacks():
    series = fleet_series(6, 40, seed=4)
    series[2, 1] = np.nan  # one host lacks a signal throughout
    series[4, 3, 60:100] = np.nan  # another loses one for longer than a window
    cycles = range(40)
    windows = [window_at(series, c) for c in cycles]
    nows = [c * SHIFT * STEP for c in cycles]
    seq, batch, expected, got = _sequential_and_batched(windows, nows, 25)
    assert np.isfinite([r.anomaly_score[2] for r in expected]).sum() > 10
    _assert_same_results(expected, got)


def test_an_entity_missing_different_signals_at_different_times_keeps_its_score():
    # One signal absent in the first half, another in the second: the renormalisation takes
    # each signal's statistics from the points that have it, so the entity keeps a finite
    # centre and scale on the signals it has and keeps being scored. (Before, only points
    # with every signal counted: none, an all-NaN normalisation and no score ever after.)
    cycles = 300
    series = fleet_series(6, cycles, seed=5)
    n = series.shape[2]
    series[4, 1, : n // 2] = np.nan
    series[4, 2, n // 2:] = np.nan
    stage = TopologyStage(analysis(), workers=1)
    got = drive(stage, series, range(cycles))
    entry = stage._store.entries[("h4",)]
    stage.close()
    late = np.array([r.anomaly_score[4] for r in got[-100:]])
    assert np.isfinite(late).sum() >= 95
    assert np.isfinite(entry.center[[0, 1, 3]]).all()
    assert stage._store.view(("h4",)).cloud.shape[0] > 0


def test_a_window_mostly_missing_exports_no_anomaly_score():
    """Fewer than MIN_COVERAGE of the steps with a sample of each signal the entity has: no
    exported score (helper-57: the windows at either end of a scrape gap scored 0.93-0.9998);
    a signal the entity does not have in the window does not count against it. The sustained
    form, which the decisions read, keeps the window."""
    from exporter.tda.stage import MIN_COVERAGE, sparse

    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 3, 24))
    keep = int(np.ceil(MIN_COVERAGE * 24))
    x[1, :, keep:] = np.nan  # just enough steps
    x[2, :, keep - 1:] = np.nan  # one step short
    x[3, 0, :] = np.nan  # a signal it does not have here: the others are whole
    x[4, 1, ::2] = np.nan  # half of one signal's steps missing
    x[5] = np.nan  # nothing at all
    assert sparse(x).tolist() == [False, False, True, False, True, True]
    # Through the stage: the same window with most of one entity's steps gone.
    series = fleet_series(4, 30, seed=6)
    stage = TopologyStage(analysis(), workers=1)
    try:
        drive(stage, series, range(26))
        w = window_at(series, 26)
        values = w.values.copy()
        values[0, :, : T // 2] = np.nan  # h0: half its window missing
        gap = Window(w.analysis, w.label_names, w.entities, w.signals, w.timestamps, values)
        r = stage.run(gap, 26 * SHIFT * STEP)
        assert np.isnan(r.anomaly_score[0]) and np.isfinite(r.anomaly_score[1:]).all()
        assert np.isfinite(r.sustained_score[0])
    finally:
        stage.close()
