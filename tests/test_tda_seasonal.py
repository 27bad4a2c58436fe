"""Seasonal level deviation, tail probabilities and the fused topology score (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.config import AnalysisConfig, Duration, SignalConfig, TopologyConfig
from exporter.tda import TopologyError, TopologyStage, baseline, seasonal
from exporter.tda.seasonal import SeasonalLevels, drift, fisher, survival, tippett
from exporter.windows import Window

DAY = 86400.0
EVERY = 600.0  # one level / one cycle per 10 min


def daily(t: np.ndarray) -> np.ndarray:
    return 50.0 + 10.0 * np.sin(2 * np.pi * t / DAY)


def test_a_daily_pattern_is_not_a_deviation_but_a_same_hour_level_shift_is():
    rng = np.random.default_rng(0)
    levels = SeasonalLevels(2)
    for t in np.arange(0.0, 4 * DAY, EVERY):
        levels.add(np.array([daily(t) + rng.normal(0, 0.3), 5.0]), t)
    day5 = np.arange(4 * DAY, 5 * DAY, EVERY)
    noise = rng.normal(0, 0.3, len(day5))
    usual = [levels.deviation(np.array([daily(t) + n, 5.0]), t)
             for t, n in zip(day5, noise, strict=True)]
    # +5 all day long: inside the day's range (40..60), outside the range of each hour.
    shifted = [levels.deviation(np.array([daily(t) + n + 5.0, 5.0]), t)
               for t, n in zip(day5, noise, strict=True)]
    assert np.median(shifted) > 3 * np.median(usual)
    assert np.mean(np.array(shifted) > np.percentile(usual, 90)) > 0.9
    # The other signal alone moving counts the same (max over signals).
    assert levels.deviation(np.array([daily(day5[0]), 5.5]), day5[0]) > np.max(usual)


def test_no_deviation_without_same_hour_history_and_old_slots_are_dropped():
    levels = SeasonalLevels(1)
    levels.add(np.array([1.0]), 0.0)
    assert np.isnan(levels.deviation(np.array([1.0]), DAY))  # one same-hour mean only
    hours = np.arange(0, (seasonal.DAYS + 2) * 24)
    for h in hours:
        levels.add(np.array([float(h)]), h * 3600.0)
    # The ring holds the newest SLOTS hours (DAYS days and the two the oldest day needs).
    np.testing.assert_array_equal(np.sort(levels.hours), hours[-seasonal.SLOTS:])
    # A sample older than what its slot holds is dropped.
    levels.add(np.array([-99.0]), 0.0)
    assert -99.0 not in levels.means


def test_survival_is_a_calibrated_tail_probability_beyond_the_history():
    rng = np.random.default_rng(1)
    hist = rng.exponential(size=432)
    # Calibrated on fresh draws from the same distribution: P(p <= a) ~ a.
    fresh = rng.exponential(size=4000)
    p = np.array([survival(x, hist) for x in fresh])
    for a in (0.01, 0.05, 0.5):
        assert abs((p <= a).mean() - a) < max(0.5 * a, 0.01)
    # Beyond the maximum values keep being ranked (no tie at the top), always > 0.
    top = [survival(hist.max() + d, hist) for d in (0.0, 1.0, 5.0)]
    assert 0 < top[2] < top[1] < top[0] < 1.0 / len(hist)
    assert np.isnan(survival(float("nan"), hist))
    assert survival(1e9, hist) > 0 and np.isfinite(fisher(survival(1e9, hist)))
    assert fisher(0.5, float("nan")) == pytest.approx(-2 * np.log(0.5))
    # Two p-values: -2 ln of their combined p (chi2, 4 degrees of freedom), so uniform
    # p-values give chi2 with 2 whatever their number (the level joins after a day).
    from scipy.stats import chi2

    assert fisher(0.3, 0.02) == pytest.approx(-2 * np.log(chi2.sf(-2 * np.log(0.006), 4)))
    u = np.random.default_rng(1).uniform(size=(4000, 2))
    two = np.array([fisher(a, b) for a, b in u])
    assert abs((two > -2 * np.log(0.05)).mean() - 0.05) < 0.015
    assert fisher(1.0, 1.0) == 0.0 and fisher() == 0.0


def _analysis() -> AnalysisConfig:
    # 20-minute windows of 1-minute steps: cheap PH, same code as the product's 2 h.
    return AnalysisConfig(
        name="t", window=Duration(1200.0), step=Duration(60.0),
        signals=tuple(SignalConfig(name=n, query="q") for n in ("a", "b")),
        topology=TopologyConfig(baseline_admit_every=Duration(EVERY),
                                baseline_every=Duration(3600)),
    )


def _series(days: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two entities x 2 signals of a daily pattern plus AR(1) noise, 1-minute steps."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, days * DAY, 60.0)
    eps = rng.normal(0, 0.4, (2, 2, len(t)))
    x = np.zeros_like(eps)
    for k in range(1, len(t)):
        x[..., k] = 0.7 * x[..., k - 1] + eps[..., k]
    return t, x + daily(t)


def _scores(t: np.ndarray, x: np.ndarray, learn_until: float) -> tuple[np.ndarray, np.ndarray]:
    stage = TopologyStage(_analysis(), workers=1)
    steps = 20
    out, at = [], []
    try:
        for end in range(steps - 1, len(t), int(EVERY / 60)):
            w = Window("t", ("instance",), (("h0",), ("h1",)), ("a", "b"),
                       t[end - steps + 1 : end + 1], x[:, :, end - steps + 1 : end + 1])
            if t[end] < learn_until:
                stage.learn(w, float(t[end]))
            else:
                out.append(stage.run(w, float(t[end])).anomaly_score)
                at.append(t[end])
    finally:
        stage.close()
    return np.array(at), np.array(out)


def test_fused_score_flags_a_same_hour_level_shift_and_not_the_daily_pattern(monkeypatch):
    t, x = _series(4.2, seed=2)
    shift = t >= 4 * DAY + 2 * 3600.0
    x[1][:, shift] += 2.5  # h1 settles 2.5 higher, both signals: the day's range is 40..60
    at, fused = _scores(t, x, 3 * DAY)
    late = at >= 4 * DAY + 2 * 3600.0 + 1200.0  # windows wholly after the shift
    assert np.nanmax(fused[late, 1]) > 0.99
    assert np.nanmedian(fused[late, 1]) > 0.95
    # h0 follows its daily pattern: no more high scores than calibration allows.
    assert np.nanmedian(fused[:, 0]) < 0.9
    assert (fused[:, 0] > 0.99).mean() < 0.1
    # The topology alone (the score before the fusion) misses most of it.
    monkeypatch.setattr(baseline, "FUSION", False)
    _, alone = _scores(t, x, 3 * DAY)
    assert np.nanmedian(alone[late, 1]) < np.nanmedian(fused[late, 1])


def _learned(days: float, seed: int) -> TopologyStage:
    """A stage (closed) that replayed `days` of `_series` through `learn`."""
    t, x = _series(days, seed=seed)
    stage = TopologyStage(_analysis(), workers=1)
    for end in range(19, len(t), 10):
        w = Window("t", ("instance",), (("h0",), ("h1",)), ("a", "b"), t[end - 19 : end + 1],
                   x[:, :, end - 19 : end + 1])
        stage.learn(w, float(t[end]))
    stage.close()
    return stage


def test_seasonal_state_round_trips_and_old_formats_are_refused():
    stage = _learned(1.2, seed=3)
    saved = stage.state()
    again = TopologyStage(_analysis(), workers=1)
    again.restore(saved)
    again.close()
    for key, entry in stage._store.entries.items():
        other = again._store.entries[key]
        assert entry.levels is not None and other.levels is not None
        np.testing.assert_array_equal(entry.levels.hours, other.levels.hours)
        np.testing.assert_array_equal(entry.levels.means, other.levels.means)
        np.testing.assert_array_equal(entry.levels.counts, other.levels.counts)
        for name in ("seas_hist", "fis_hist", "smooth_hist", "raw_hist"):
            np.testing.assert_array_equal(getattr(entry, name), getattr(other, name))
        assert np.isfinite(entry.fis_hist).any()
    saved["format"] = np.array([3])
    with pytest.raises(TopologyError, match="format 3"):
        TopologyStage(_analysis(), workers=1).restore(saved)


def _first_days(days: float, seed: int, entities: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Fused scores [cycles, entities] of healthy entities scored from their first window on,
    at the product's window (2 h, 12 score points: one own value per 10 min), 5-min steps:
    a daily pattern of random amplitude and phase plus AR(1) noise, two signals."""
    rng = np.random.default_rng(seed)
    step = 300.0
    t = np.arange(0.0, days * DAY, step) + 1.7e9
    amp = rng.uniform(0.0, 20.0, (entities, 2, 1))
    phase = rng.uniform(0.0, 2 * np.pi, (entities, 2, 1))
    rho = rng.uniform(0.3, 0.95, (entities, 2))
    eps = rng.normal(0.0, 1.0, (entities, 2, len(t))) * rng.uniform(0.5, 3.0, (entities, 2, 1))
    x = np.zeros_like(eps)
    for k in range(1, len(t)):
        x[..., k] = rho * x[..., k - 1] + eps[..., k]
    x += 50.0 + amp * np.sin(2 * np.pi * t / DAY + phase)
    analysis = AnalysisConfig(
        name="t", window=Duration(7200.0), step=Duration(step),
        signals=tuple(SignalConfig(name=n, query="q") for n in ("a", "b")),
        topology=TopologyConfig())
    stage = TopologyStage(analysis, workers=1)
    steps = int(7200.0 / step)
    keys = tuple((f"h{i}",) for i in range(entities))
    out = []
    try:
        for end in range(steps - 1, len(t), int(EVERY / step)):
            w = Window("t", ("instance",), keys, ("a", "b"), t[end - steps + 1 : end + 1],
                       x[:, :, end - steps + 1 : end + 1])
            out.append(stage.run(w, float(t[end])).anomaly_score)
    finally:
        stage.close()
    return np.arange(len(out)) * EVERY + (steps - 1) * step, np.array(out)


def test_fused_score_is_calibrated_in_a_healthy_entitys_first_two_days():
    # The second day is when the same-time-of-day references (topology and level) first
    # have an earlier day: a Fisher statistic whose number of terms changes against its own
    # history, a level calibrated on a few hours of its values and a 30-min average
    # re-calibrated on a few hours of itself ran hot there (fleetgen-303: AuraTopologyAnomaly
    # far from incidents 0.56 -> 0.99 per entity-day with the fusion).
    at, fused = _first_days(2.0, seed=5)
    assert np.isfinite(fused[at >= DAY]).mean() > 0.95  # scored, not withheld, on day 2
    v = fused[np.isfinite(fused)]
    # Measured (4 entities x 2 days): above 0.95 on 15.7 % of cycles before the first-days
    # rules, 11.0 % after; 11.6 % with the onset exported (10.7 % with the three views), the
    # raw distances calibrated from the reference switch on (13.4 % without); 5.9 % once
    # summaries taken in the first day's other units are no references (UNITS_TOLERANCE;
    # seeds 6 and 7: 10.5 -> 2.6 %, 8.7 -> 2.1 %). The alert's condition (> 0.95 held 30
    # min) met 20 times before, 10 after, 12 with the onset, 6 now (0.75 per entity-day;
    # seeds 6 and 7: 9 -> 2 and 7 -> 3).
    assert (v > 0.95).mean() < 0.08
    assert (v > 0.99).mean() < 0.04
    held = 0
    for row in fused.T:
        run = 0
        for x in row:
            run = run + 1 if x > 0.95 else 0
            held += run == 4  # a 10-min cycle: > 0.95 on 4 in a row is 30 min held
    assert held <= 1.0 * len(fused.T) * 2  # per entity-day


def test_second_day_compares_only_with_summaries_in_its_own_units():
    # While the reservoir fills, the entity's scale moved 1.5-3x at each re-estimate; the
    # second day's same-time-of-day comparisons with summaries of the first day's other
    # units ran hot: above 0.95 on 27.1 % of hours 24-36 (seeds 5 and 7: 25.3 and 31.2 %);
    # 0.0 % with those summaries left out (3.5 and 0.7 %).
    at, fused = _first_days(1.6, seed=6)
    v = fused[(at >= DAY) & (at < 1.5 * DAY)]
    v = v[np.isfinite(v)]
    assert len(v) > 200
    assert (v > 0.95).mean() < 0.06


def test_references_leave_out_summaries_of_other_units_unless_none_is_old_enough():
    store = baseline.BaselineStore(("a",), 72, 3600.0, 1200.0, window=7200.0)
    times = np.arange(0.0, 3 * DAY, EVERY)
    now = 3 * DAY
    every = store._references(times, now)
    assert len(every) == 13 + 13 + 7  # +-1 h at 1, 2 days ago; 3 days ago its last hour
    assert np.all(np.abs((now - times[every] + DAY / 2) % DAY - DAY / 2) <= 3600.0)
    # In the current units for 1.5 days: still the same time of day, only from then on.
    refs = store._references(times, now, 1.5 * DAY)
    assert len(refs) and np.all(times[refs] >= 1.5 * DAY)
    assert np.all(np.abs((now - times[refs] + DAY / 2) % DAY - DAY / 2) <= 3600.0)
    assert set(refs) < set(every)
    # For half a day: any of them at least a window old, as in an entity's first day.
    refs = store._references(times, now, 2.5 * DAY)
    assert np.all(times[refs] >= 2.5 * DAY) and np.all(now - times[refs] >= 7200.0)
    assert len(refs) == baseline.MAX_REFERENCES
    # For less than a window: none would do, so all of them are compared, as before.
    np.testing.assert_array_equal(store._references(times, now, now - 3600.0), every)


def test_units_that_moved_while_the_reservoir_filled_round_trip_and_older_states_ignore_them():
    stage = _learned(2.6, seed=3)
    moved = [k for k, e in stage._store.entries.items()
             if e.comparable_since > e.hist_times[0]]
    assert moved  # the first day's re-estimates moved the units
    saved = stage.state()
    again = TopologyStage(_analysis(), workers=1)
    again.restore(saved)
    older = TopologyStage(_analysis(), workers=1)
    older.restore({k: v for k, v in saved.items() if k != "comparable_since"})
    for key, entry in stage._store.entries.items():
        assert again._store.entries[key].comparable_since == entry.comparable_since
        assert older._store.entries[key].comparable_since == -np.inf


def _null_fisher(n: int, rng: np.random.Generator, top: float = 1.0) -> np.ndarray:
    """Fisher statistics of n pairs of independent p-values, uniform on (0, top]."""
    u = rng.uniform(0.0, top, size=(n, 2))
    return np.array([fisher(a, b) for a, b in np.fmax(u, 1e-12)])


def _drifts(stats: np.ndarray) -> np.ndarray:
    out, prev = [], 0.0
    for x in stats:
        prev = drift(prev, float(x))
        out.append(prev)
    return np.array(out)


def test_drift_accumulates_moderate_evidence_that_a_30_min_average_misses():
    # Both views only mildly unusual for 6 h (36 values at 10 min; p-values uniform on
    # (0, 0.4]: each window alone is "1 in 2.5"): at one false alarm in 1000 healthy values,
    # the CUSUM of the Fisher statistic crosses in (nearly) every such episode, the 30-min
    # (3-value) average of the same statistics in a minority (measured: 1.0 vs 0.375).
    rng = np.random.default_rng(4)
    null = _null_fisher(20000, rng)
    drift_null = _drifts(null)
    avg_null = np.convolve(null, np.ones(3) / 3, mode="valid")
    # Under the null the drift keeps returning to 0 and stays small.
    assert (drift_null == 0).mean() > 0.3
    assert np.quantile(drift_null, 0.99) < 25
    by_drift = by_average = 0
    for _ in range(100):
        episode = _null_fisher(36, rng, top=0.4)
        by_drift += _drifts(episode).max() > np.quantile(drift_null, 0.999)
        by_average += (np.convolve(episode, np.ones(3) / 3, mode="valid").max()
                       > np.quantile(avg_null, 0.999))
    assert by_drift >= 95 and by_average <= 60
    # NaN statistics are skipped; a NaN previous value restarts from 0.
    assert np.isnan(drift(5.0, float("nan")))
    assert drift(float("nan"), 7.0) == pytest.approx(7.0 - seasonal.DRIFT_K)


def test_tippett_of_independent_calibrated_scores_stays_calibrated():
    u = np.random.default_rng(6).uniform(size=(20000, 2))
    combined = np.array([tippett(a, b) for a, b in u])
    for q in (0.5, 0.95, 0.99):
        assert abs((combined > q).mean() - (1 - q)) < max(0.2 * (1 - q), 0.003)
    assert tippett(0.3, float("nan")) == 0.3 and np.isnan(tippett())


def test_drift_history_round_trips_and_older_states_restart_it():
    # 2.6 days replayed: the level's p-value joins after a day of its own deviations, then
    # the drift accumulates.
    stage = _learned(2.6, seed=3)
    saved = stage.state()
    assert np.isfinite(saved["drift_hist"]).sum() >= 100  # 2 entities x ~0.6 day
    assert (saved["drift_hist"][np.isfinite(saved["drift_hist"])] >= 0).all()
    again = TopologyStage(_analysis(), workers=1)
    again.restore(saved)
    older = TopologyStage(_analysis(), workers=1)
    older.restore({k: v for k, v in saved.items() if k != "drift_hist"})
    for key, entry in stage._store.entries.items():
        np.testing.assert_array_equal(entry.drift_hist, again._store.entries[key].drift_hist)
        old = older._store.entries[key]
        assert len(old.drift_hist) == len(entry.drift_hist) and np.isnan(old.drift_hist).all()


def test_pooled_history_and_switch_time_round_trip_and_older_states_get_them_back():
    # The onset's own state: the pooled-scale deviations and when the raw distance's
    # references turned to the same time of day. Baselines saved before they were kept load
    # with no pooled deviations and the switch time found from the history itself.
    for days, want in ((2.6, "switch"), (0.6, "nan")):
        stage = _learned(days, seed=3)
        saved = stage.state()
        again = TopologyStage(_analysis(), workers=1)
        again.restore(saved)
        older = TopologyStage(_analysis(), workers=1)
        older.restore({k: v for k, v in saved.items()
                       if k not in ("pooled_hist", "seasonal_since")})
        # Pooled deviations combined over signals another way (the max, before "joint"; or
        # saved before the way was recorded) are no history for this one: dropped.
        other_way = [TopologyStage(_analysis(), workers=1) for _ in range(2)]
        other_way[0].restore({**saved, "pooled_combine": np.array(["max"])})
        other_way[1].restore({k: v for k, v in saved.items() if k != "pooled_combine"})
        for key, entry in stage._store.entries.items():
            other, old = again._store.entries[key], older._store.entries[key]
            np.testing.assert_array_equal(entry.pooled_hist, other.pooled_hist)
            for st in other_way:
                mixed = st._store.entries[key]
                assert len(mixed.pooled_hist) == len(entry.pooled_hist)
                assert np.isnan(mixed.pooled_hist).all()
                np.testing.assert_array_equal(mixed.seas_hist, entry.seas_hist)
            assert other.seasonal_since == entry.seasonal_since or (
                np.isnan(other.seasonal_since) and np.isnan(entry.seasonal_since))
            assert len(old.pooled_hist) == len(entry.pooled_hist)
            assert np.isnan(old.pooled_hist).all()
            if want == "nan":  # less than a day of history: set when the switch comes
                assert np.isnan(entry.seasonal_since) and np.isnan(old.seasonal_since)
            else:
                assert np.isfinite(entry.pooled_hist).sum() >= 100
                # The switch counts from the first summary in the current units (the
                # history's first unless the units moved while the reservoir filled).
                first = float(entry.hist_times[0])
                if entry.comparable_since >= first:  # the row after the re-estimate
                    first = float(entry.hist_times[entry.hist_times.searchsorted(
                        entry.comparable_since, side="right")])
                # Set at the first cycle on or after the switch (one cycle = EVERY).
                assert 0 <= entry.seasonal_since - (first + DAY - 3600.0) <= EVERY
                assert old.seasonal_since == first + DAY - 3600.0
                assert baseline._since(old) is not None


def test_reference_quartiles_are_numpys_lower_quantiles():
    rng = np.random.default_rng(8)
    for _ in range(50):
        a = rng.normal(size=(seasonal.SLOTS, 5)).astype(np.float32)
        a[rng.uniform(size=a.shape) < 0.5] = np.nan
        a[:, 0] = np.nan  # a signal never seen is left out by the caller
        q25, q75 = seasonal._nanquantiles(a[:, 1:])
        want = np.nanquantile(a[:, 1:], [0.25, 0.75], axis=0, method="lower")
        np.testing.assert_array_equal(q25, want[0])
        np.testing.assert_array_equal(q75, want[1])


def test_onset_makes_a_cycle_at_least_as_rare_as_its_own_fisher_p_value(monkeypatch):
    # Raw distances 1.2-10 times the largest of the entity's history in one cycle:
    # the 30-min average spreads such a cycle over its own values and the drift needs
    # several. The exported onset is exactly this cycle's Fisher combination of the
    # topology's and the level's tail probabilities (the topology's under the raw
    # distances since the references turned to the same time of day); with the three
    # views (the sixth session's score) it is at least as rare as that, Sidak-corrected
    # for three views (1 - score <= 1 - (1 - p)^3).
    stage = _learned(2.6, seed=3)
    store = stage._store
    beaten = since_used = 0
    for entry in store.entries.values():
        now = float(entry.hist_times[-1]) + EVERY
        level = np.full(2, np.nan)
        seas = float(np.nanmedian(entry.seas_hist))
        p_level = survival(seas, entry.seas_hist)
        top = float(np.nanmax(entry.raw_hist))
        usual = float(np.nanmedian(entry.raw_hist))
        since = baseline._since(entry)
        since_used += since is not None
        for raw in [m * top for m in (1.2, 1.5, 2.0, 3.0, 5.0, 10.0)] + [usual]:
            p_views = float(np.exp(-0.5 * fisher(survival(raw, entry.raw_hist), p_level)))
            p_onset = float(np.exp(-0.5 * fisher(
                survival(raw, entry.raw_hist if since is None else since), p_level)))
            for onset, exported in ((True, "onset"), (True, "views"), (False, "views")):
                monkeypatch.setattr(baseline, "ONSET", onset)
                monkeypatch.setattr(baseline, "EXPORTED", exported)
                entry.fits = None
                rarity = 1.0 - store._fused(entry, raw, now, level, seas, float("nan"))[0]
                bound = -np.expm1(3.0 * np.log1p(-p_views))
                if exported == "onset":
                    assert rarity == pytest.approx(p_onset, rel=1e-9, abs=1e-15)
                elif onset:
                    assert rarity <= bound * (1 + 1e-9) + 1e-15
                else:
                    beaten += rarity > bound * 1.5
    assert since_used  # 2.6 days: the first day's raw distances are still in the history
    assert beaten >= 2  # without the onset view the bound fails (measured: 2 of the 14 cycles)
    # With a pooled-scale deviation the exported onset reads the level on that scale.
    monkeypatch.setattr(baseline, "ONSET", True)
    monkeypatch.setattr(baseline, "EXPORTED", "onset")
    for entry in store.entries.values():
        assert np.isfinite(entry.pooled_hist).sum() >= baseline.MIN_LEVEL_HISTORY
        now = float(entry.hist_times[-1]) + EVERY
        seas = float(np.nanmedian(entry.seas_hist))
        since = baseline._since(entry)
        raw = 2.0 * float(np.nanmax(entry.raw_hist))
        for pooled in (0.5 * float(np.nanmax(entry.pooled_hist)),
                       3.0 * float(np.nanmax(entry.pooled_hist))):
            entry.fits = None
            p_onset = float(np.exp(-0.5 * fisher(
                survival(raw, entry.raw_hist if since is None else since),
                survival(pooled, entry.pooled_hist))))
            rarity = 1.0 - store._fused(entry, raw, now, np.full(2, np.nan), seas, pooled)[0]
            assert rarity == pytest.approx(p_onset, rel=1e-9, abs=1e-15)


def test_pooled_scale_is_the_standard_deviation_of_every_level_in_the_reference_hours():
    # The slots' Welford statistics pooled (law of total variance) give numpy's sample
    # standard deviation of the levels they counted, per signal; NaN below two levels.
    rng = np.random.default_rng(7)
    levels = SeasonalLevels(3)
    seen: list[np.ndarray] = []
    for t in np.arange(0.0, 5 * 3600.0, 300.0):
        x = np.array([rng.normal(10 + t / 3600, 2), rng.exponential(5), 7.0])
        levels.add(x, t)
        seen.append(x)
    used = levels.hours >= 0
    got = seasonal._pooled_std(levels.counts[used], levels.means[used], levels.m2[used])
    np.testing.assert_allclose(got, np.std(np.array(seen), axis=0, ddof=1), rtol=1e-4,
                               atol=1e-5)
    one = seasonal._pooled_std(np.ones((1, 1), np.uint8), np.ones((1, 1), np.float32),
                               np.zeros((1, 1), np.float32))
    assert np.isnan(one).all()


def test_the_stage_exports_the_onset_and_hands_the_decisions_the_score_without_it(monkeypatch):
    # What the topology agent and the sustained-anomaly warning read (sustained_score) is
    # the score as it was without the onset view, cycle for cycle.
    t, x = _series(3.3, seed=8)

    def run() -> tuple[np.ndarray, np.ndarray]:
        stage = TopologyStage(_analysis(), workers=1)
        out, held = [], []
        try:
            for end in range(19, len(t), int(EVERY / 60)):
                w = Window("t", ("instance",), (("h0",), ("h1",)), ("a", "b"),
                           t[end - 19 : end + 1], x[:, :, end - 19 : end + 1])
                if t[end] < 2.5 * DAY:
                    stage.learn(w, float(t[end]))
                else:
                    r = stage.run(w, float(t[end]))
                    out.append(r.anomaly_score)
                    held.append(r.sustained())
        finally:
            stage.close()
        return np.array(out), np.array(held)

    score, sustained = run()
    monkeypatch.setattr(baseline, "ONSET", False)
    before, _ = run()
    assert np.isfinite(sustained).mean() > 0.9
    np.testing.assert_array_equal(sustained, before)
    assert not np.array_equal(score, sustained, equal_nan=True)


def test_joint_z_is_one_signals_own_z_and_each_further_signal_off_raises_it():
    z = np.array([[2.5, np.nan, np.nan],  # one signal with a reference: its own z
                  [3.0, 3.0, 3.0],  # all equally off: that z
                  [3.0, 3.0, 0.0],
                  [3.0, 0.0, 0.0],
                  [np.nan, np.nan, np.nan],  # no reference: none
                  [1e9, 0.0, 0.0]])  # clipped at MAX_DEVIATION before it combines
    got = seasonal.joint_z(z)
    assert got[0] == 2.5  # exactly: one signal's score is what the max gave
    assert got[1] == pytest.approx(3.0)
    assert got[3] == pytest.approx(np.sqrt(np.expm1(np.log1p(9.0) / 3)))
    assert got[1] > got[2] > got[3]  # each further signal off raises it
    assert np.isnan(got[4])
    assert got[5] == pytest.approx(np.sqrt(np.expm1(np.log1p(1e12) / 3)))


def test_the_exported_level_combines_signals_jointly_and_the_sustained_level_keeps_the_max():
    # The pooled-scale deviation (the exported onset's level) is joint_z over signals; the
    # MAD-scale one (the sustained form the failure warnings read) stays the max; one entity
    # at a time and a cycle's entities at once give the same numbers.
    rng = np.random.default_rng(3)
    levels = [SeasonalLevels(4) for _ in range(seasonal.BATCH_MIN)]
    for t in np.arange(0.0, 4 * DAY, EVERY):
        for lv in levels:
            lv.add(rng.normal(10.0, 1.0, 4), t)
    now = 4 * DAY + 1800.0
    values = rng.normal(10.0, 1.0, (len(levels), 4))
    values[0, :3] += 3.0  # three signals moderately off
    values[1, 0] += 6.0  # one signal further off
    mad, pooled = seasonal.deviations(levels, values, now)
    for g, lv in enumerate(levels):
        centre, mad_scale, pool_centre, pool_scale = lv.reference(now)
        assert mad[g] == pytest.approx(np.max(np.abs(values[g] - centre) / mad_scale))
        assert pooled[g] == pytest.approx(
            seasonal.joint_z((np.abs(values[g] - pool_centre) / pool_scale)[None])[0])
        assert lv.deviation(values[g], now) == pytest.approx(mad[g])
        assert lv.deviation(values[g], now, pooled=True) == pytest.approx(pooled[g])
    assert pooled[0] > pooled[1]  # jointly, three at ~3 sigma outrank one at ~6
    assert mad[1] > mad[0]  # the max ranks them the other way round


def _first_principles(rows, hour, days, floor_hours):
    """The reference at `hour` from the levels rows [(t, level [S])] themselves: (centre,
    MAD scale, pooled centre, pooled scale) over the same hour +-1 h of the last `days` days,
    the MAD pair's floor from the hourly means of the `floor_hours` hours before `hour`, the
    pooled pair's from those of the ring's SLOTS hours before it."""
    import exporter.tda.seasonal as sz
    from exporter.numeric import IQR_TO_SIGMA

    by_hour: dict[int, list] = {}
    for t, v in rows:
        by_hour.setdefault(int(t // 3600), []).append(v)
    means = {h: np.mean(v, axis=0) for h, v in by_hour.items()}

    def floor(n):
        m = np.sort(np.array([means[h] for h in means if 1 <= hour - h <= n]), axis=0)
        k = len(m) - 1
        return sz.SPREAD_FLOOR * (m[(3 * k) // 4] - m[k // 4]) / IQR_TO_SIGMA

    back = [24 * k - d for k in range(1, days + 1) for d in sz.NEAR]
    ref = np.array([means[hour - b] for b in back if hour - b in means])
    centre = np.median(ref, axis=0)
    mad = np.fmax(1.4826 * np.median(np.abs(ref - centre), axis=0), floor(3 * 24 + 2))
    every = np.concatenate([by_hour[hour - b] for b in back if hour - b in by_hour])
    pooled = np.fmax(np.std(every, axis=0, ddof=1), floor(sz.SLOTS))
    return centre, mad, pooled


def test_the_sustained_reference_reads_the_newest_days_and_the_exported_one_the_week():
    """The MAD pair (the sustained form's, which the failure warnings read) comes from the
    newest SUSTAINED_DAYS days and its floor from the 74 hours before now, as the three-day
    ring gave it; the pooled pair (the exported score's) from every day of the week's ring.
    Around midnight the level is the same every day, so the MAD is 0 and the floor decides:
    the older days' other hours sit 20 higher, which a floor over the whole ring would read."""
    import exporter.tda.seasonal as sz

    rng = np.random.default_rng(11)
    days = sz.DAYS + 1
    rows = []
    for t in np.arange(0.0, days * DAY, EVERY):
        hod = (t % DAY) / 3600.0
        shift = 20.0 if t < days * DAY - (3 * 24 + 2) * 3600.0 else 0.0
        quiet = hod >= 22.0 or hod < 2.0
        rows.append((t, np.array([0.0 if quiet else shift + np.sin(hod / 3.0), 5.0])
                     + (0.0 if quiet else rng.normal(0.0, 0.01, 2))))
    level = SeasonalLevels(2)
    for t, v in rows:
        level.add(v, t)
    now = days * DAY + 600.0  # just after midnight
    hour = int(now // 3600)
    centre, mad, centre_p, pooled = level.reference(now)
    want_c, want_mad, _ = _first_principles(rows, hour, sz.SUSTAINED_DAYS, 0)
    np.testing.assert_allclose(centre, want_c, atol=1e-6)
    np.testing.assert_allclose(mad, want_mad, rtol=1e-3)  # float32 Welford means
    assert mad[0] > 1e-3  # the floor decided it (the same-hour means are all 0) ...
    all_c, _, all_pool = _first_principles(rows, hour, sz.DAYS, 0)
    np.testing.assert_allclose(centre_p, all_c, atol=1e-6)
    np.testing.assert_allclose(pooled, all_pool, rtol=2e-3)
    # ... from the newest days only: the ring's older, wider days would set a floor several
    # times larger.
    from exporter.numeric import IQR_TO_SIGMA

    olds = np.array([np.mean([v for t, v in rows if int(t // 3600) == h], axis=0)
                     for h in range(hour - sz.SLOTS, hour)
                     if any(int(t // 3600) == h for t, _ in rows)])
    q = np.sort(olds, axis=0)
    k = len(q) - 1
    assert mad[0] * 3 < sz.SPREAD_FLOOR * (q[(3 * k) // 4, 0] - q[k // 4, 0]) / IQR_TO_SIGMA


def _three_day_ring(levels: SeasonalLevels) -> tuple[np.ndarray, ...]:
    """(hours [74], means, m2, counts [74, S]) of `levels` as the three-day ring of 74 slots
    held them: the newest 74 hours, each in row hour % 74."""
    slots = 3 * 24 + 2
    keep = np.argsort(levels.hours)[-slots:]
    order = np.argsort(levels.hours[keep] % slots)
    idx = keep[order]
    return levels.hours[idx], levels.means[idx], levels.m2[idx], levels.counts[idx]


def test_a_ring_saved_shorter_is_re_placed_by_hour_not_relearned():
    """Baselines saved with the three-day ring (74 slots, before the week's) load into this
    version's ring hour by hour: the same hours, means, M2 and counts, and the same MAD-pair
    reference; where two saved hours share a row of the new ring the newest is kept; and a
    TopologyStage restores such a state."""
    import exporter.tda.seasonal as sz

    rng = np.random.default_rng(5)
    full = SeasonalLevels(2)
    for t in np.arange(0.0, 5 * DAY, EVERY):
        full.add(rng.normal([1.0, 9.0], 0.5), t)
    hours, means, m2, counts = _three_day_ring(full)
    assert len(hours) == 74 and (np.sort(hours) == np.arange(120 - 74, 120)).all()
    got = SeasonalLevels.restored(hours, means, m2, counts)
    assert sorted(got.hours[got.hours >= 0].tolist()) == sorted(hours.tolist())
    for h in hours.tolist():
        a, b = int(np.flatnonzero(got.hours == h)[0]), int(np.flatnonzero(full.hours == h)[0])
        np.testing.assert_array_equal(got.means[a], full.means[b])
        np.testing.assert_array_equal(got.m2[a], full.m2[b])
        np.testing.assert_array_equal(got.counts[a], full.counts[b])
    now = 5 * DAY + 600.0
    np.testing.assert_array_equal(got.reference(now)[:2], full.reference(now)[:2])
    # Two saved hours on one row of the new ring (10 and 10 + SLOTS): the newer one is kept.
    two = SeasonalLevels.restored(np.array([10 + sz.SLOTS, 10]), np.array([[2.0], [1.0]]),
                                  np.zeros((2, 1)), np.ones((2, 1), dtype=np.uint8))
    assert two.hours[10] == 10 + sz.SLOTS and two.means[10, 0] == 2.0
    assert (two.hours >= 0).sum() == 1
    # Through a whole stage's state: each entity's ring saved the three-day way.
    stage = _learned(1.2, seed=3)
    for entry in stage._store.entries.values():
        entry.levels = SeasonalLevels(2)
        for t in np.arange(0.0, 5 * DAY, EVERY):
            entry.levels.add(rng.normal([1.0, 9.0], 0.5), t)
    saved = stage.state()
    rings = [_three_day_ring(e.levels) for e in stage._store.entries.values()]
    cut = {**saved, **{f"levels_{name}": np.stack([r[j] for r in rings])
                       for j, name in enumerate(("hours", "means", "m2", "counts"))}}
    again = TopologyStage(_analysis(), workers=1)
    again.restore(cut)
    again.close()
    for key, entry in stage._store.entries.items():
        lv = again._store.entries[key].levels
        assert lv is not None and lv.hours.shape == (sz.SLOTS,)
        assert set(lv.hours[lv.hours >= 0].tolist()) == set(range(120 - 74, 120))
        np.testing.assert_array_equal(lv.reference(now)[:2], entry.levels.reference(now)[:2])
