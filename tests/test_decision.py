"""exporter.decision: a level counts only when the risk is rare for the entity and its fleet."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from exporter.config import DecisionConfig, Duration
from exporter.decision import (
    MARGIN,
    DecisionError,
    DecisionStage,
    exported_risk,
    gate,
    threshold_quantile,
)
from exporter.results import Consensus
from exporter.windows import decode_entity_key

H = 3600.0
STEP = 600.0


def _stage(**kw: float) -> DecisionStage:
    cfg = DecisionConfig(**{k: Duration(v) for k, v in kw.items()})
    return DecisionStage(cfg, exclude_recent=4 * H)


def _level(risk: np.ndarray) -> np.ndarray:
    return np.where(risk >= 0.8, 2, np.where(risk >= 0.5, 1, 0))


def _replay(stage: DecisionStage, risk: np.ndarray, t0: float = 0.0) -> np.ndarray:
    """Feed risk [E, N] (one column per STEP); return the gated levels [E, N]."""
    entities = [(f"e{i}",) for i in range(risk.shape[0])]
    out = np.zeros(risk.shape, dtype=int)
    for k in range(risk.shape[1]):
        out[:, k] = stage.decide(entities, risk[:, k], _level(risk[:, k]), t0 + k * STEP).level
    return out


def _sawtooth(n: int, period: int, rng: np.random.Generator) -> np.ndarray:
    """A benign pattern the model mistakes for a failure: risk 0.9 for 4 steps every period."""
    r = 0.1 + 0.02 * rng.standard_normal(n)
    for start in range(period // 2, n, period):
        r[start:start + 4] = 0.9
    return np.clip(r, 0, 1)


def test_threshold_quantile_from_budget() -> None:
    # 0.05 alerts/day of about an hour each: 0.2 % of the samples may lie above the threshold.
    assert threshold_quantile(0.05, STEP) == pytest.approx(1 - 0.05 / 24)
    assert threshold_quantile(0.0, STEP) == 1.0
    assert threshold_quantile(1000.0, STEP) == 0.5


def test_periodic_benign_pattern_stops_alerting_after_the_reference_holds_it() -> None:
    rng = np.random.default_rng(1)
    n = 3 * 144  # three days at 10 minutes
    fleet = np.vstack([_sawtooth(n, 18, rng)] + [np.clip(0.1 + 0.02 * rng.standard_normal(n),
                                                          0, 1) for _ in range(5)])
    stage = _stage()
    gated = _replay(stage, fleet)
    raw_peaks = (_level(fleet[0]) >= 1).sum()
    # From when the entity's own reference applies: a day of its own history, lagged 4 h.
    own = int((float(stage.cfg.min_reference) + stage.exclude_recent) / 600)
    late = slice(own + 1, None)
    assert (_level(fleet[0, late]) >= 1).sum() > 20
    assert (gated[0, late] >= 1).sum() == 0, "the sawtooth is usual once the reference holds it"
    assert (gated[0] >= 1).sum() < raw_peaks


def test_novel_ramp_alerts_although_the_entity_had_benign_peaks() -> None:
    rng = np.random.default_rng(2)
    n = 3 * 144
    r = np.clip(0.1 + 0.02 * rng.standard_normal(n), 0, 1)
    r[100:104] = 0.6  # an earlier benign bump to 0.6
    ramp = np.linspace(0.2, 0.99, 24)  # a precursor rising to never-seen risk over 4 h
    r[400:424] = ramp
    fleet = np.vstack([r] + [np.clip(0.1 + 0.02 * rng.standard_normal(n), 0, 1)
                             for _ in range(5)])
    gated = _replay(_stage(), fleet)
    assert (gated[0, 400:424] == 2).sum() >= 4
    # Every step of the ramp above the earlier bump (plus the margin) alerts; below, it is usual.
    novel = ramp > 0.6 + 0.02
    assert (gated[0, 400:424][novel] == _level(ramp)[novel]).all()
    assert (gated[0, 400:424][~novel] == 0).all()


def test_cold_start_needs_the_prior_threshold() -> None:
    stage = _stage()
    risk = np.array([0.9, 0.7, 0.1])
    d = stage.decide([("a",), ("b",), ("c",)], risk, _level(risk), 0.0)
    # Nothing learned: a near-certain risk passes, a middling one waits for a reference.
    assert d.level.tolist() == [2, 0, 0]
    assert d.suppressed.tolist() == [False, True, False]
    assert np.allclose(d.threshold, 0.8 - 0.02)


def test_fleet_reference_covers_a_new_entity() -> None:
    # Most of the fleet shows the same benign 0.7 bumps: a new entity's 0.7 is usual too.
    rng = np.random.default_rng(3)
    n = 144
    fleet = np.vstack([_sawtooth(n, 12, rng) * 0.78 for _ in range(6)])
    stage = _stage()
    _replay(stage, fleet)
    risk, level = np.array([0.7]), np.array([1])
    d = stage.decide([("newcomer",)], risk, level, n * STEP)
    assert d.level.tolist() == [0] and d.suppressed.tolist() == [True]
    d = stage.decide([("newcomer",)], np.array([0.95]), np.array([2]), (n + 1) * STEP)
    assert d.level.tolist() == [2]


def test_undecided_and_ok_levels_pass_through() -> None:
    stage = _stage()
    rng = np.random.default_rng(4)
    _replay(stage, np.clip(0.3 + 0.01 * rng.standard_normal((4, 100)), 0, 1))
    d = stage.decide([("e0",), ("e1",)], np.array([np.nan, 0.1]), np.array([-1, 0]), 100 * STEP)
    assert d.level.tolist() == [-1, 0]


def test_excluded_incident_is_left_out_of_the_reference() -> None:
    rng = np.random.default_rng(5)
    n = 2 * 144
    r = np.clip(0.1 + 0.02 * rng.standard_normal(n), 0, 1)
    r[60:80] = 0.95  # a real failure's precursor on day 1
    fleet = np.vstack([r] + [np.clip(0.1 + 0.02 * rng.standard_normal(n), 0, 1)
                             for _ in range(4)])
    plain, taught = _stage(), _stage()
    taught.exclude([(("e0",), 80 * STEP, 82 * STEP)])
    _replay(plain, fleet)
    _replay(taught, fleet)
    now = n * STEP
    again = (np.array([0.95]), np.array([2]))
    assert plain.decide([("e0",)], *again, now).level.tolist() == [0]
    assert taught.decide([("e0",)], *again, now).level.tolist() == [2]


def test_state_round_trip_including_awkward_label_values() -> None:
    stage = _stage()
    keys = [("a\xffb",), ("quote\"comma,",), ("plain",)]
    for k in range(50):
        stage.decide(keys, np.array([0.1, 0.2, 0.3]), np.zeros(3, int), k * STEP)
    again = _stage()
    again.restore(stage.state())
    assert again.rows_ == stage.rows_
    np.testing.assert_array_equal(again.risk_, stage.risk_)
    with pytest.raises(ValueError):
        _stage(reference=86400).restore(stage.state())


def test_bad_shapes_raise() -> None:
    with pytest.raises(DecisionError):
        _stage().decide([("a",)], np.array([0.1, 0.2]), np.array([0, 0]), 0.0)


def test_gate_rewrites_suppressed_entities_only() -> None:
    stage = _stage()
    rng = np.random.default_rng(6)
    _replay(stage, np.vstack([_sawtooth(300, 12, rng) for _ in range(4)]))
    c = Consensus(agents=("forecast",), risk=np.array([0.9, 0.99]), level=np.array([2, 2]),
                  voters=np.array([1, 1]), action=("scale_up", "scale_up"),
                  time_to_failure=np.array([600.0, 600.0]), contribution=np.zeros((2, 0)),
                  agreeing=np.ones((2, 1), bool), explanation=("x", "y"))
    out = gate(stage, [("e0",), ("e1",)], c, 300 * STEP)
    assert out.level.tolist() == [0, 2]
    assert out.action == ("none", "scale_up")
    assert np.isnan(out.time_to_failure[0]) and out.time_to_failure[1] == 600.0
    assert out.explanation[0].startswith("usual for this entity") and out.explanation[1] == "y"
    assert out.threshold is not None and np.isfinite(out.threshold).all()


def test_resolution_replaces_the_open_incident_span() -> None:
    stage = _stage()
    stage.exclude([(("e0",), 1000.0, None)])
    stage.exclude([(("e0",), 1000.0, 5000.0)])
    assert len(stage.excluded_) == 1 and stage.excluded_[0][2] == 5000.0


def test_webhook_incidents_reach_the_decision_references(tmp_path) -> None:
    """Pipeline.record_incidents (the webhook's callback) excludes spans per analysis."""
    from exporter.config import parse_config
    from exporter.pipeline import Pipeline

    cfg = parse_config({"analyses": [{"name": "a", "entity_labels": ["instance"],
                                      "signals": [{"name": "cpu", "query": "up"}]}]})

    class NoSource:
        async def fetch(self, *_: object) -> None:
            raise AssertionError("not called")

    p = Pipeline(cfg, NoSource())  # type: ignore[arg-type]
    p.record_incidents(1, [({"instance": "n1", "alertname": "NodeDown"}, 100.0, None),
                           ({"job": "x"}, 100.0, None)])
    rt = p.runtimes[0]
    assert rt.decision is not None
    assert [x[0] for x in rt.decision.excluded_] == [("n1",)]
    assert p.stats.incidents_recorded_total == 1


def test_entities_gone_for_longer_than_the_reference_are_forgotten() -> None:
    stage = _stage(reference=86400)
    for k in range(6):  # pod-a reports for an hour, then is replaced by pod-b
        stage.decide([("pod-a",)], np.array([0.1]), np.array([0]), k * STEP)
    later = 2 * 86400.0
    for k in range(6):
        stage.decide([("pod-b",)], np.array([0.2]), np.array([0]), later + k * STEP)
    assert list(stage.rows_) == [("pod-b",)]
    assert stage.risk_.shape == (1, stage.slots) and stage.last_.shape == (1,)
    assert np.nanmax(stage.risk_[0]) == pytest.approx(0.2)


def test_own_history_counts_before_the_cold_period_ends() -> None:
    """An entity whose first hours already reach high risks (a noisy role, a model that
    misreads it) is judged by those hours too, not by the fleet and the cold floor alone:
    on day 1 the same benign bump to 0.9 alerts the first time, then is usual."""
    rng = np.random.default_rng(5)
    n = 144  # one day at 10 minutes: the cold floor holds all along
    r = np.clip(0.1 + 0.02 * rng.standard_normal(n), 0, 1)
    bumps = [10, 70, 130]  # 0.9 for 4 steps at 1 h 40, 11 h 40 and 21 h 40 (lag 4 h)
    for b in bumps:
        r[b:b + 4] = 0.9
    fleet = np.vstack([r] + [np.clip(0.1 + 0.02 * rng.standard_normal(n), 0, 1)
                             for _ in range(5)])
    stage = _stage()
    gated = _replay(stage, fleet)
    assert (gated[0, 10:14] == 2).all(), "the first bump is news: above the cold floor"
    # 10 h later the first bump is in the lagged own reference: the same risk is usual.
    assert (gated[0, 70:74] == 0).all() and (gated[0, 130:134] == 0).all()
    assert float(stage.cfg.min_reference) >= 86400  # still inside the cold period


def test_daily_pattern_peaking_a_little_higher_does_not_page() -> None:
    # A daily surge the capacity agent projects: risk 0.80 at 19 h on day 1, a little higher on
    # day 2 (0.88: above the entity's own maximum + the margin, below PHASE_ODDS x its odds).
    n = 3 * 144
    day = 144
    quiet = 0.1 + 0.01 * np.sin(np.arange(n))
    surge = quiet.copy()
    for d, peak in ((0, 0.80), (1, 0.88), (2, 0.87)):
        k = d * day + 114  # 19:00
        surge[k:k + 6] = peak
    # The same 0.88 at an hour the entity never reached an alert's level is news.
    novel = surge.copy()
    novel[day + 114:day + 120] = quiet[day + 114:day + 120]
    novel[day + 60:day + 66] = 0.88  # 10:00 on day 2
    fleet = np.vstack([surge, novel] + [quiet] * 4)
    gated = _replay(_stage(), fleet)
    day2 = slice(day, 2 * day)
    assert (gated[0, day2] >= 1).sum() == 0 and (gated[0, 2 * day:] >= 1).sum() == 0
    assert (gated[1, day2] >= 1).sum() >= 4


def _mixed_state(stage: DecisionStage, n: int, now: float, seed: int) -> dict[str, np.ndarray]:
    """A saved state of n entities: full references, gappy ones, young ones, and none."""
    rng = np.random.default_rng(seed)
    slots = stage.slots
    times = np.tile((now - STEP * np.arange(slots))[::-1], (n, 1)).astype(np.uint32)
    risk = rng.beta(1, 5, (n, slots)).astype(np.float32)
    risk[n // 2:][rng.random((n - n // 2, slots)) < 0.05] = np.nan  # gaps
    young = rng.integers(0, slots, n)
    risk[n - n // 8:][np.arange(slots) < young[n - n // 8:, None]] = np.nan
    risk[-3:] = np.nan
    risk[: n // 10, slots - 150:slots - 140] = 0.7  # a daily surge a day ago
    keys = np.array([f'{{"host":"h{i}"}}' for i in range(n)])
    return {"version": np.array([2]), "keys": keys, "risk": risk, "time": times,
            "last": np.full(n, now - STEP)}


@pytest.mark.parametrize("gappy", [True, False])
def test_blocked_references_equal_one_block(gappy: bool) -> None:
    """The references are computed a block of rows at a time (memory); the decisions are
    those of one block over all entities, bit for bit, whether every reference is full or
    only some are (numpy's nan percentile takes another path when a NaN is present)."""
    n, now = 3000, 1_700_000_000.25
    # Random risks put hundreds of entities at a level at once: the fleet-wide rule is off
    # here (tested on its own below).
    cfg = DecisionConfig(fleet_wide_alpha=0.0)
    one, blocks = (DecisionStage(cfg, 4 * H, row_block=b) for b in (10**6, 256))
    arrays = _mixed_state(one, n, now, seed=8)
    if not gappy:
        arrays["risk"] = np.nan_to_num(arrays["risk"], nan=0.1)
    one.restore({k: v.copy() for k, v in arrays.items()})
    blocks.restore({k: v.copy() for k, v in arrays.items()})
    entities = [decode_entity_key(str(k)) for k in arrays["keys"]]
    rng = np.random.default_rng(9)
    for k in range(4):
        risk = rng.beta(1, 3, n)
        a, b = (s.decide(entities, risk, _level(risk), now + k * STEP / 2) for s in (one, blocks))
        for field in ("level", "threshold", "own_samples", "suppressed"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert np.isfinite(a.threshold).sum() > n // 2
    assert a.suppressed.any() and (a.level >= 1).any()


@pytest.mark.parametrize("now", [1_700_000_000.0, 1_700_000_000.5, 5400.25, 3.0, 0.0])
def test_integer_time_bounds_equal_the_float_comparison(now: float) -> None:
    from exporter.decision import _inside, _time_bounds, _window

    t = (np.arange(-20_000, 20_000) + int(now)).clip(0).astype(np.uint32)
    for low, high in ((now - 86400.0 - 4 * H, now - 4 * H), (now - 7200.0, now)):
        want = (t.astype(np.float64) > low) & (t.astype(np.float64) <= high)
        np.testing.assert_array_equal(_inside(t, _window(low, high)), want)
    assert _window(-np.inf, np.inf) == (0, 2**32 - 1) and _window(np.nan, now) is None
    assert _window(now, now) is None and _time_bounds(lambda x: x > 1.0, np.nan, 9.0) is None
    at = now - 86400.0 + 12_345.678
    bounds = _time_bounds(lambda x: abs(x - at) <= 5400.0, at - 5400.0, at + 5400.0)
    np.testing.assert_array_equal(_inside(t, bounds),
                                  np.abs(t.astype(np.float64) - at) <= 5400.0)


def test_restored_references_are_not_answered_from_the_last_cycle() -> None:
    """The quantiles are reused while the references hold the same samples; a restored
    state with the same sample times but other risks must be read again."""
    stage = DecisionStage(DecisionConfig(fleet_wide_alpha=0.0), exclude_recent=4 * H)
    now = 1_700_000_000.0
    arrays = _mixed_state(stage, 40, now, seed=3)
    arrays["last"][:] = now  # nothing is learned in between: only the restore changes them
    held = ~np.isnan(arrays["risk"])
    arrays["risk"][held] = 0.1
    stage.restore({k: v.copy() for k, v in arrays.items()})
    entities = [decode_entity_key(str(k)) for k in arrays["keys"]]
    risk = np.full(40, 0.5)  # a warning; below PHASE_MIN_RISK, so no daily pattern
    assert (stage.decide(entities, risk, _level(risk), now).level[:30] == 1).all()
    arrays["risk"][held] = 0.49
    stage.restore(arrays)
    assert (stage.decide(entities, risk, _level(risk), now + 1.0).level[:30] == 0).all()


def _consensus(risk: list[float]) -> Consensus:
    n = len(risk)
    return Consensus(agents=("capacity",), risk=np.array(risk), level=_level(np.array(risk)),
                     voters=np.ones(n, int), action=("scale_out",) * n,
                     time_to_failure=np.full(n, 600.0), contribution=np.zeros((n, 0)),
                     agreeing=np.ones((n, 1), bool), explanation=("cpu rises",) * n)


def _after_one_peak_yesterday(peak: float, steps: int, now_risk: float):
    """Two days of a quiet 4-entity fleet where e0 reached `peak` for `steps` samples at
    19:00 on day 1; then the decision for e0 at `now_risk` (critical) at 19:10 on day 2."""
    quiet = np.full((4, 2 * 144), 0.1)
    quiet[0, 114:114 + steps] = peak
    stage = _stage()
    _replay(stage, quiet)
    return stage.decide([(f"e{i}",) for i in range(4)], np.array([now_risk, 0.1, 0.1, 0.1]),
                        np.array([2, 0, 0, 0]), (144 + 115) * STEP)


def test_suppressed_explanation_names_the_bound_and_the_bar_with_its_margin() -> None:
    stage = _stage()
    out = gate(stage, [("a",)], _consensus([0.7]), 0.0)
    assert out.explanation[0] == ("usual for this entity: consensus risk 0.70 needs more than "
                                  "0.80, the cold-start bar while it has less than 1d of history "
                                  "(cpu rises)")
    # A daily pattern: 0.80 yesterday at this hour, a quiet fleet, 0.85 now.
    d = _after_one_peak_yesterday(0.80, 6, 0.85)
    assert d.suppressed[0] and d.bound[0] == "daily" and d.phase_high[0] == pytest.approx(0.8)
    assert d.threshold[0] == pytest.approx(0.868, abs=0.001)


def test_daily_pattern_bar_never_exceeds_what_the_own_maximum_asks() -> None:
    # 0.97 once yesterday at this hour (nothing recorded): a risk of 1.0 now still pages
    # (odds x e^0.5 alone would ask for 0.98 + the margin, i.e. more than 1).
    d = _after_one_peak_yesterday(0.97, 3, 1.0)
    assert d.level[0] == 2 and d.threshold[0] == pytest.approx(0.97, abs=1e-6)


# ------------------------------------------------------------ sustained extreme anomalies

DAY_STEPS = int(86400 / STEP)


def _quiet_days(stage: DecisionStage, days: float, n: int = 4) -> float:
    """Replay `days` of a quiet fleet of n entities (risk 0.1, no anomaly); the next time."""
    steps = int(days * DAY_STEPS)
    _replay(stage, np.full((n, steps), 0.1))
    return steps * STEP


def _hot_run(stage: DecisionStage, t0: float, scores: list[float], n: int = 4):
    """Decisions while e0's anomaly score follows `scores` (one per STEP), the rest 0.5."""
    keys = [(f"e{i}",) for i in range(n)]
    out = []
    for k, a in enumerate(scores):
        anomaly = np.array([a] + [0.5] * (n - 1))
        out.append(stage.decide(keys, np.full(n, 0.1), np.zeros(n, int), t0 + k * STEP, anomaly))
    return out


def test_sustained_extreme_anomaly_raises_a_warning_once_held_and_history_is_long() -> None:
    stage = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    t0 = _quiet_days(stage, 2.1)
    d = _hot_run(stage, t0, [0.999] * 5)
    # 30 min at one cycle per 10 min: raised at the 4th extreme cycle, not before.
    assert [int(x.level[0]) for x in d] == [0, 0, 0, 1, 1]
    assert [bool(x.escalated[0]) for x in d] == [False, False, False, True, True]
    assert d[3].anomaly_since[0] == t0 and np.isnan(d[3].anomaly_since[1])
    assert all((x.level[1:] == 0).all() for x in d)


def test_a_sustained_anomaly_needs_the_failure_model_where_it_forecasts() -> None:
    """Rarity alone is what a week's first Sunday full backup or first Monday morning has
    too: where the failure model forecasts for the entity, the run raises the level only
    once its probability of a failure within its largest horizon has reached
    CORROBORATE_FORECAST at a cycle of the run, and stays raised after; where it has not
    forecast for the entity during the run (NaN), rarity alone does; a cycle without a
    forecast amid cycles with one does not."""
    from exporter.decision import CORROBORATE_FORECAST

    keys = [(f"e{i}",) for i in range(4)]

    def run(forecasts, anomalies=None):
        stage = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
        t0 = _quiet_days(stage, 2.1)
        out = []
        for k, f in enumerate(forecasts):
            a = 0.999 if anomalies is None else anomalies[k]
            fc = None if f is None else np.array([f, 0.9, 0.9, 0.9])
            out.append(int(stage.decide(keys, np.full(4, 0.1), np.zeros(4, int),
                                        t0 + k * STEP, np.array([a, 0.5, 0.5, 0.5]),
                                        forecast=fc).level[0]))
        return out

    low, bar = CORROBORATE_FORECAST - 0.01, CORROBORATE_FORECAST
    assert run([low] * 7) == [0] * 7  # held 30 min and more: the model sees nothing
    assert run([low] * 4 + [bar] + [low] * 2) == [0] * 4 + [1] * 3  # backed late, then kept
    assert run([bar] + [low] * 4) == [0, 0, 0, 1, 1]  # backed early in the run
    # Backed before the run began (the anomaly not yet extreme): not this run's backing.
    assert run([bar] + [low] * 6, [0.5] + [0.999] * 6) == [0] * 7
    assert run([np.nan] * 5) == [0, 0, 0, 1, 1]  # never forecast for it: rarity alone
    assert run([np.nan] * 4 + [low] * 3) == [0, 0, 0, 1, 1, 1, 1]  # raised, then kept
    # A cycle without a forecast (a failed forecast stage) amid low ones raises nothing.
    assert run([low] * 3 + [None] + [low] * 3) == [0] * 7
    assert run([low] * 3 + [np.nan] + [low] * 3) == [0] * 7


def test_the_failure_models_backing_survives_forgetting_and_a_restore() -> None:
    """backed_ and seen_ stay row-aligned when rows are forgotten and round-trip through
    state(); a state saved before them restores with none seen."""
    from exporter.decision import CORROBORATE_FORECAST

    stage = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    t0 = _quiet_days(stage, 2.1, n=4)
    keys = [(f"e{i}",) for i in range(4)]
    hot = np.array([0.999, 0.5, 0.5, 0.5])
    fc = np.array([CORROBORATE_FORECAST, 0.1, 0.1, 0.1])
    stage.decide(keys, np.full(4, 0.1), np.zeros(4, int), t0, hot, forecast=fc)
    low = np.full(4, 0.1)
    saved = stage.state()
    assert "anomaly_backed" in saved and "forecast_seen" in saved
    twin = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    twin.restore(saved)
    got = [int(twin.decide(keys, np.full(4, 0.1), np.zeros(4, int), t0 + k * STEP, hot,
                           forecast=low).level[0]) for k in range(1, 4)]
    assert got == [0, 0, 1]  # backed at the run's first cycle, before the save
    old = {k: v for k, v in saved.items() if k not in ("anomaly_backed", "forecast_seen")}
    twin = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    twin.restore(old)
    assert np.isnan(twin.backed_).all() and np.isnan(twin.seen_).all()
    got = [int(twin.decide(keys, np.full(4, 0.1), np.zeros(4, int), t0 + k * STEP, hot,
                           forecast=low).level[0]) for k in range(1, 5)]
    assert got == [0, 0, 0, 0]  # the backing was not saved: low forecasts since hold it
    # Forget e0..e2 (no sample for longer than the reference): e3's row keeps its own.
    later = t0 + 10 * 86400.0
    stage.decide([keys[3]], np.array([0.1]), np.zeros(1, int), later, np.array([0.5]),
                 forecast=np.array([0.9]))
    n = len(stage.rows_)
    assert n == 1 and all(len(a) == n for a in (stage.since_, stage.hot_, stage.raised_,
                                                 stage.excused_, stage.lit_, stage.onset_,
                                                 stage.backed_, stage.seen_))
    assert stage.backed_[0] == later and stage.seen_[0] == later


def test_sustained_anomaly_needs_two_days_of_history() -> None:
    stage = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    t0 = _quiet_days(stage, 1.5)
    assert [int(x.level[0]) for x in _hot_run(stage, t0, [0.9999] * 8)] == [0] * 8


def test_a_cycle_below_the_threshold_or_without_a_score_restarts_the_run() -> None:
    stage = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    t0 = _quiet_days(stage, 2.1)
    d = _hot_run(stage, t0, [0.999, 0.999, 0.99, 0.999, 0.999, np.nan, 0.999, 0.999, 0.999,
                             0.999])
    assert [int(x.level[0]) for x in d] == [0] * 9 + [1]
    # A cycle without topology (None) also ends the run.
    keys = [(f"e{i}",) for i in range(4)]
    later = t0 + 10 * STEP
    after = stage.decide(keys, np.full(4, 0.1), np.zeros(4, int), later)
    assert not after.escalated.any() and np.isnan(after.anomaly_since).all()


def test_sustained_anomaly_off_at_threshold_one_and_validated() -> None:
    from exporter.config import ConfigError, parse_config

    stage = DecisionStage(DecisionConfig(sustained_anomaly_threshold=1.0), exclude_recent=4 * H)
    t0 = _quiet_days(stage, 2.1)
    assert not any(x.escalated.any() for x in _hot_run(stage, t0, [1.0] * 6))
    for bad in (0.0, 1.5):
        with pytest.raises(ConfigError, match="sustained_anomaly_threshold"):
            parse_config({"analyses": [{"name": "a", "entity_labels": ["instance"],
                                            "signals": [{"name": "cpu", "query": "up"}]}],
                              "agents": {"decision": {"sustained_anomaly_threshold": bad}}})


def _two_quiet_entities() -> tuple[DecisionStage, float, list, Consensus]:
    """A stage after 2.1 quiet days of e0 and e1, the next time, their keys and a quiet
    consensus of the topology and capacity agents."""
    stage = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    t0 = _quiet_days(stage, 2.1, n=2)
    c = Consensus(agents=("topology", "capacity"), risk=np.array([0.2, 0.1]),
                  level=np.array([0, 0]), voters=np.array([2, 2]), action=("none", "none"),
                  time_to_failure=np.array([np.nan, np.nan]),
                  contribution=np.array([[0.5, 0.5], [0.5, 0.5]]),
                  agreeing=np.zeros((2, 2), bool), explanation=("quiet", "quiet"))
    return stage, t0, [("e0",), ("e1",)], c


def test_gate_explains_an_escalated_entity_and_credits_topology() -> None:
    from exporter.results import TopologyResult

    stage, t0, keys, c = _two_quiet_entities()
    contribution = np.array([[0.1, 0.9], [0.5, 0.5]])
    out = c
    for k in range(4):
        topo = TopologyResult(anomaly_score=np.array([0.9995, 0.3]), betti=np.zeros((2, 2)),
                              entropy=np.zeros((2, 2)), features=np.zeros((2, 0)),
                              feature_names=(), signal_contribution=contribution,
                              fleet_betti=np.zeros(2), fleet_outlier=np.zeros(2))
        out = gate(stage, keys, c, t0 + k * STEP, topo)
    assert out.level.tolist() == [1, 0]
    assert out.action == ("investigate", "none")
    assert out.agreeing.tolist() == [[True, False], [False, False]]
    np.testing.assert_array_equal(out.contribution[0], [0.1, 0.9])
    assert out.explanation[0] == (
        "sustained anomaly: its sustained topology anomaly score (30-min average and drift) "
        "has stayed at or above 0.998 (rarer "
        "than 1 in 500 of its own windows) for 30m, now 0.9995; no agent sees a failure "
        "mechanism (quiet)")
    assert out.explanation[1] == "quiet"


def test_state_round_trip_keeps_a_run_in_progress_and_reads_older_states() -> None:
    stage = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    t0 = _quiet_days(stage, 2.1)
    _hot_run(stage, t0, [0.999] * 2)
    saved = stage.state()
    again = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    again.restore(saved)
    np.testing.assert_array_equal(again.since_, stage.since_)
    # Held since t0: 20 min at the restore, 30 min one cycle later.
    assert [int(x.level[0]) for x in _hot_run(again, t0 + 2 * STEP, [0.999] * 3)] == [0, 1, 1]
    older = {k: v for k, v in saved.items() if k != "anomaly_since"}
    old = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    old.restore(older)
    assert np.isnan(old.since_).all() and len(old.since_) == 4


def test_a_gap_in_the_cycles_restarts_the_run() -> None:
    stage = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    t0 = _quiet_days(stage, 2.1)
    _hot_run(stage, t0, [0.999] * 3)
    # e0 absent for three hours (the others go on), then back and still extreme.
    keys = [(f"e{i}",) for i in range(1, 4)]
    for k in range(3, 21):
        stage.decide(keys, np.full(3, 0.1), np.zeros(3, int), t0 + k * STEP)
    back = _hot_run(stage, t0 + 21 * STEP, [0.999] * 4)
    assert [int(x.level[0]) for x in back] == [0, 0, 0, 1]
    assert back[0].anomaly_since[0] == t0 + 21 * STEP


def test_a_state_restored_after_downtime_starts_a_new_run() -> None:
    stage = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    t0 = _quiet_days(stage, 2.1)
    _hot_run(stage, t0, [0.999] * 5)
    again = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    again.restore(stage.state())
    later = _hot_run(again, t0 + 6 * H, [0.999] * 4)
    assert [int(x.level[0]) for x in later] == [0, 0, 0, 1]


def test_the_score_history_not_the_risk_reference_arms_it() -> None:
    # Three days of risk reference, but the topology relearned an hour ago (a refused state).
    stage = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    t0 = _quiet_days(stage, 3.0)
    keys = [(f"e{i}",) for i in range(4)]
    anomaly = np.array([0.9999, 0.5, 0.5, 0.5])
    levels = [int(stage.decide(keys, np.full(4, 0.1), np.zeros(4, int), t0 + k * STEP,
                               anomaly, np.full(4, H + k * STEP)).level[0]) for k in range(5)]
    assert levels == [0] * 5
    levels = [int(stage.decide(keys, np.full(4, 0.1), np.zeros(4, int), t0 + k * STEP,
                               anomaly, np.full(4, 2 * 86400.0)).level[0]) for k in range(5, 10)]
    # Armed, the run held since t0 counts at once.
    assert levels == [1] * 5


def _topology(score: list[float], contribution: np.ndarray):
    from exporter.results import TopologyResult

    e = len(score)
    return TopologyResult(anomaly_score=np.array(score), betti=np.zeros((e, 2)),
                          entropy=np.zeros((e, 2)), features=np.zeros((e, 0)),
                          feature_names=(), signal_contribution=contribution,
                          fleet_betti=np.zeros(2), fleet_outlier=np.zeros(e),
                          history_seconds=np.full(e, 3 * 86400.0))


def test_a_level_lowered_as_usual_and_raised_by_the_anomaly_says_both() -> None:
    stage = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    rng = np.random.default_rng(6)
    _replay(stage, np.vstack([_sawtooth(2 * DAY_STEPS + 20, 12, rng) for _ in range(2)]))
    t0 = (2 * DAY_STEPS + 20) * STEP
    keys = [("e0",), ("e1",)]
    c = Consensus(agents=("topology", "capacity"), risk=np.array([0.9, 0.1]),
                  level=np.array([2, 0]), voters=np.array([2, 2]),
                  action=("free_disk", "none"), time_to_failure=np.array([600.0, np.nan]),
                  contribution=np.full((2, 2), 0.5), agreeing=np.ones((2, 2), bool),
                  explanation=("disk fills", "quiet"))
    topo = _topology([0.9995, 0.3], np.array([[0.2, 0.8], [0.5, 0.5]]))
    outs = [gate(stage, keys, c, t0 + k * STEP, topo) for k in range(4)]
    assert [int(o.level[0]) for o in outs] == [0, 0, 0, 1]
    text = outs[3].explanation[0]
    assert text.startswith("sustained anomaly: ") and "for 30m, now 0.9995; usual for this " \
        "entity: consensus risk 0.90 needs more than" in text and text.endswith("(disk fills)")
    assert outs[3].action == ("investigate", "none")
    assert np.isnan(outs[3].time_to_failure[0])


def test_no_sustained_anomaly_without_the_topology_agent() -> None:
    stage = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    t0 = _quiet_days(stage, 2.1, n=2)
    c = Consensus(agents=("capacity",), risk=np.array([0.1, 0.1]), level=np.array([0, 0]),
                  voters=np.array([1, 1]), action=("none", "none"),
                  time_to_failure=np.array([np.nan, np.nan]), contribution=np.zeros((2, 2)),
                  agreeing=np.zeros((2, 1), bool), explanation=("quiet", "quiet"))
    topo = _topology([0.9995, 0.3], np.full((2, 2), 0.5))
    outs = [gate(stage, [("e0",), ("e1",)], c, t0 + k * STEP, topo) for k in range(5)]
    assert all(o.level.tolist() == [0, 0] for o in outs)


def test_rule_texts_name_the_sustained_anomaly_only_where_it_is_on() -> None:
    from exporter.config import parse_config
    from exporter.rulegen import alerts

    base = {"analyses": [{"name": "a", "entity_labels": ["instance"],
                          "signals": [{"name": "cpu", "query": "up"}]}]}

    def texts(agents: dict) -> str:
        cfg = parse_config({**base, "agents": agents})
        return " ".join(f"{a.summary} {a.description}" for a in alerts(cfg)
                        if a.name in ("AuraFailureRisk", "AuraTopologyAnomaly"))

    assert ("sustained anomaly: the topology anomaly score's sustained form (30-min average "
            "and drift) >= 0.998 for 30m") in texts({})
    assert "raises AuraFailureRisk" in texts({})
    for off in ({"decision": {"sustained_anomaly_threshold": 1}},
                {"topology": {"enabled": False}}, {"decision": {"enabled": False}}):
        assert "sustained" not in texts(off) and "raises AuraFailureRisk" not in texts(off)


def _windows(n: int, restarted: bool) -> np.ndarray:
    """[n, 1, 12] windows of an uptime signal; e0's restarted at step 8 when `restarted`."""
    v = np.tile(1e6 + 600.0 * np.arange(12), (n, 1, 1))
    if restarted:
        v[0, 0, 8:] = 600.0 * np.arange(4)
    return v


def test_a_run_that_starts_after_a_restart_never_escalates_and_the_next_one_does() -> None:
    stage = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    t0 = _quiet_days(stage, 2.1)
    keys = [(f"e{i}",) for i in range(4)]

    def cycle(k: int, a: float, restarted: bool):
        anomaly = np.array([a, 0.5, 0.5, 0.5])
        return stage.decide(keys, np.full(4, 0.1), np.zeros(4, int), t0 + k * STEP, anomaly,
                            values=_windows(4, restarted))

    # The run starts while e0's window holds its restart; it lasts 3 h and never escalates,
    # also once the restart has left the window.
    d = [cycle(k, 0.999, k < 12) for k in range(18)]
    assert not any(x.escalated.any() for x in d)
    assert d[-1].anomaly_since[0] == t0  # still the same run
    # The score falls back; a new run (no restart in the window) escalates after 30 min.
    d = [cycle(18 + k, a, False) for k, a in enumerate([0.5] + [0.999] * 4)]
    assert [int(x.level[0]) for x in d] == [0, 0, 0, 0, 1]
    # A restart 20 min into a run (a failure, then its repair) makes the run the restart's;
    # one after the run was raised leaves it raised.
    for restart_at, levels in ((2, [0] * 6), (4, [0, 0, 0, 1, 1, 1])):
        stage2 = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
        t1 = _quiet_days(stage2, 2.1)
        d = [stage2.decide(keys, np.full(4, 0.1), np.zeros(4, int), t1 + k * STEP,
                           np.array([0.999, 0.5, 0.5, 0.5]),
                           values=_windows(4, k >= restart_at)) for k in range(6)]
        assert [int(x.level[0]) for x in d] == levels


def _restored_as_saved_before_excuses(stage: DecisionStage) -> DecisionStage:
    """A new stage restored from `stage`'s state without the arrays of raised and excused
    runs (a state saved before they were kept)."""
    older = {k: v for k, v in stage.state().items()
             if k not in ("anomaly_raised", "anomaly_excused")}
    old = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    old.restore(older)
    return old


def test_state_round_trip_keeps_an_excused_run_excused() -> None:
    stage = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    t0 = _quiet_days(stage, 2.1)
    keys = [(f"e{i}",) for i in range(4)]
    hot = np.array([0.999, 0.5, 0.5, 0.5])
    stage.decide(keys, np.full(4, 0.1), np.zeros(4, int), t0, hot, values=_windows(4, True))
    again = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    again.restore(stage.state())
    d = [again.decide(keys, np.full(4, 0.1), np.zeros(4, int), t0 + k * STEP, hot,
                      values=_windows(4, False)) for k in range(1, 6)]
    assert not any(x.escalated.any() for x in d)
    # A state saved before excuses were kept: the run in progress counts (nothing excused).
    old = _restored_as_saved_before_excuses(stage)
    d = [old.decide(keys, np.full(4, 0.1), np.zeros(4, int), t0 + k * STEP, hot,
                    values=_windows(4, False)) for k in range(1, 4)]
    assert [int(x.level[0]) for x in d] == [0, 0, 1]
    with pytest.raises(DecisionError, match="window values"):
        stage.decide(keys, np.full(4, 0.1), np.zeros(4, int), t0 + 9 * STEP, hot,
                     values=np.zeros((3, 1, 12)))


def test_a_run_held_by_other_agents_then_a_repair_with_a_restart_is_not_raised() -> None:
    # A real failure: the agents hold level 2 and the score is extreme for 50 min; then the
    # host is repaired (uptime from 0), the agents go quiet and the score stays extreme.
    stage = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    t0 = _quiet_days(stage, 2.1)
    keys = [(f"e{i}",) for i in range(4)]
    hot = np.array([0.999, 0.5, 0.5, 0.5])
    levels = []
    for k in range(10):
        failing = k < 5
        d = stage.decide(keys, np.array([0.97 if failing else 0.1, 0.1, 0.1, 0.1]),
                         np.array([2 if failing else 0, 0, 0, 0]), t0 + k * STEP, hot,
                         values=_windows(4, not failing))
        levels.append(int(d.level[0]))
    assert levels == [2] * 5 + [0] * 5
    assert d.excused.tolist() == [True, False, False, False] and not d.escalated.any()


def test_gate_says_why_a_sustained_anomaly_after_a_restart_is_not_raised() -> None:
    from exporter.results import TopologyResult

    stage, t0, keys, c = _two_quiet_entities()
    topo = TopologyResult(anomaly_score=np.array([0.9995, 0.3]), betti=np.zeros((2, 2)),
                          entropy=np.zeros((2, 2)), features=np.zeros((2, 0)),
                          feature_names=(), signal_contribution=np.full((2, 2), 0.5),
                          fleet_betti=np.zeros(2), fleet_outlier=np.zeros(2))
    out = [gate(stage, keys, c, t0 + k * STEP, topo, _windows(2, True)) for k in range(4)]
    assert [int(x.level[0]) for x in out] == [0, 0, 0, 0]
    assert out[2].explanation[0] == "quiet"
    assert out[3].explanation == (
        "quiet; its sustained topology anomaly (30m) is not raised: it came with a restart "
        "(a signal reset like a counter in its window)", "quiet")


def test_gate_hands_the_failure_models_largest_horizon_to_the_sustained_rule() -> None:
    from exporter.decision import forecast_within
    from exporter.results import Forecast, TopologyResult

    fc = Forecast((3600.0, 14400.0), np.array([[0.1, 0.3], [0.4, 0.6], [np.nan, np.nan]]),
                  np.full(3, np.nan))
    np.testing.assert_array_equal(forecast_within(fc, 3), [0.3, 0.6, np.nan])
    assert forecast_within(None, 3) is None
    with pytest.raises(DecisionError, match="forecast probability"):
        forecast_within(fc, 2)

    def run(p0, agents=("topology", "forecast")):
        stage, t0, keys, c = _two_quiet_entities()
        c = replace(c, agents=agents)
        topo = TopologyResult(anomaly_score=np.array([0.9995, 0.3]), betti=np.zeros((2, 2)),
                              entropy=np.zeros((2, 2)), features=np.zeros((2, 0)),
                              feature_names=(), signal_contribution=np.full((2, 2), 0.5),
                              fleet_betti=np.zeros(2), fleet_outlier=np.zeros(2))
        f = Forecast((3600.0, 14400.0), np.array([[p0 / 2, p0], [0.9, 0.9]]), np.full(2, np.nan))
        return [int(gate(stage, keys, c, t0 + k * STEP, topo, _windows(2, False),
                         forecast=f).level[0]) for k in range(5)]

    assert run(0.3) == [0] * 5  # rare, and the failure model sees nothing coming
    assert run(0.6) == [0, 0, 0, 1, 1]
    # The forecast agent off: the model's probabilities are not its vote, nor a veto.
    assert run(0.3, ("topology", "capacity")) == [0, 0, 0, 1, 1]


def test_an_older_state_keeps_a_firing_warning_through_a_restart() -> None:
    # Saved before raised runs were kept, with a run raised (40 min long): a restart after
    # the restore (the operator restarting the service because of the alert) keeps it.
    stage = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    t0 = _quiet_days(stage, 2.1)
    keys = [(f"e{i}",) for i in range(4)]
    hot = np.array([0.999, 0.5, 0.5, 0.5])
    assert [int(x.level[0]) for x in _hot_run(stage, t0, [0.999] * 5)] == [0, 0, 0, 1, 1]
    old = _restored_as_saved_before_excuses(stage)
    d = [old.decide(keys, np.full(4, 0.1), np.zeros(4, int), t0 + k * STEP, hot,
                    values=_windows(4, True)) for k in range(5, 8)]
    assert [int(x.level[0]) for x in d] == [1, 1, 1]


def test_a_restart_is_not_named_where_the_history_is_too_short_anyway() -> None:
    stage = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    t0 = _quiet_days(stage, 2.1)
    keys = [(f"e{i}",) for i in range(4)]
    d = [stage.decide(keys, np.full(4, 0.1), np.zeros(4, int), t0 + k * STEP,
                      np.array([0.999, 0.5, 0.5, 0.5]), history=np.full(4, 3600.0),
                      values=_windows(4, True)) for k in range(5)]
    assert not any(x.excused.any() or x.escalated.any() for x in d)


def test_excuses_do_not_depend_on_the_row_block() -> None:
    rng = np.random.default_rng(5)
    n, cycles = 12, 10
    scores = np.where(rng.random((cycles, n)) < 0.7, 0.999, 0.5)
    restarted = rng.random(n) < 0.5
    out = []
    for block in (1, 5, 1024):
        stage = DecisionStage(DecisionConfig(), exclude_recent=4 * H, row_block=block)
        t0 = _quiet_days(stage, 2.1, n=n)
        keys = [(f"e{i}",) for i in range(n)]
        values = np.tile(1e6 + 600.0 * np.arange(12), (n, 1, 1))
        values[restarted, 0, 8:] = 600.0 * np.arange(4)
        runs = [stage.decide(keys, np.full(n, 0.1), np.zeros(n, int), t0 + k * STEP,
                             scores[k], values=values) for k in range(cycles)]
        out.append([(x.level.tolist(), x.excused.tolist()) for x in runs])
    assert out[0] == out[1] == out[2]
    levels = np.array([lv for lv, _ in out[0]])
    assert levels[:, ~restarted].any() and not levels[:, restarted].any()


def test_an_entity_whose_samples_stopped_is_undecided_not_ok() -> None:
    # A host down: no sample of any signal in the window's last NO_DATA_STEPS steps. Its
    # verdict from older samples is not current: undecided (level -1, so no aura_risk_level
    # or aura_risk_score series), no risk, no action, "no data" said; nothing of it is learned.
    # A gap earlier in the window, or one signal missing at the end, changes nothing.
    from exporter.windows import NO_DATA_STEPS

    stage = _stage()
    values = np.ones((3, 2, 12))
    values[0, :, -NO_DATA_STEPS:] = np.nan  # stopped
    values[1, :, 3:8] = np.nan  # a gap, then samples again
    values[2, 0, -NO_DATA_STEPS:] = np.nan  # one signal missing at the end, the other present
    out = gate(stage, [("a",), ("b",), ("c",)], _consensus([0.95, 0.2, 0.2]), 0.0,
               values=values)
    assert out.level.tolist()[0] == -1 and np.isnan(out.risk[0])
    assert out.action[0] == "none" and np.isnan(out.time_to_failure[0])
    assert out.explanation[0].startswith("no data: no sample of any signal in the last 2 steps")
    assert out.level.tolist()[1:] == [0, 0]
    # Read against the cold-start bar (0.8): 0.2 of the way to it, below the warning bar.
    assert out.risk[1:] == pytest.approx([0.2 * 0.5 / 0.8] * 2)
    assert stage.decide([("a",)], np.array([0.5]), np.array([0]), 600.0).own_samples[0] == 0
    # Without the window (no values known) nothing is judged stale.
    assert gate(_stage(), [("a",)], _consensus([0.95]), 0.0).level[0] != -1


def test_exported_risk_reads_the_consensus_risk_against_the_entity_bar() -> None:
    # Bars (threshold + MARGIN) 0.9 (a noisy entity), 0.3 (a quiet one: kept), none (kept).
    thr = np.array([0.9, 0.3, np.nan]) - MARGIN
    for r in (0.0, 0.45, 0.7, 0.9, 0.95, 1.0):
        risk = np.full(3, r)
        want = np.array([r * 0.5 / 0.9 if r <= 0.9 else 0.5 + 0.5 * (r - 0.9) / 0.1, r, r])
        level = np.where(want >= 0.8, 2, np.where(want >= 0.5, 1, 0))  # as the gate would
        out = exported_risk(risk, thr, level, 0.5)
        assert out == pytest.approx(want)
    # Monotone per entity, within 0..1, NaN (undecided) stays NaN.
    grid = np.linspace(0, 1, 101)
    out = exported_risk(grid, np.full(101, 0.7), np.where(grid > 0.72, 1, 0), 0.5)
    assert (np.diff(out) >= 0).all() and out.min() >= 0 and out.max() <= 1
    assert np.isnan(exported_risk(np.array([np.nan]), np.array([0.5]), np.array([-1]), 0.5,
                                  np.array([0.999]))[0])


def test_exported_risk_ranks_rare_anomalies_below_the_warning_bar_and_agrees_with_the_level(
) -> None:
    anomaly = np.array([0.5, 0.99, 0.998, 0.999999, np.nan])
    risk = np.full(5, 0.01)
    out = exported_risk(risk, np.full(5, np.nan), np.zeros(5, int), 0.5, anomaly, 0.998)
    assert out[0] == pytest.approx(0.5 * np.log(0.5) / np.log(0.002))
    assert out[0] < out[1] < out[2] < 0.5 and out[3] == out[2]  # capped under the bar
    assert out[4] == 0.01  # no score: the consensus risk
    # The bands are the levels: a level 1 (passed, or raised by a sustained anomaly) reads
    # from the warning bar to under the critical one, level 2 at least the critical one,
    # level 0 under the warning bar whatever its consensus risk; undecided stays NaN.
    up = exported_risk(risk, np.full(5, np.nan), np.ones(5, int), 0.5, anomaly, 0.998, 0.8)
    assert ((up >= 0.5) & (up < 0.8)).all()
    grid = np.linspace(0, 1, 11)
    for lvl, lo, hi in ((0, 0.0, 0.5), (1, 0.5, 0.8), (2, 0.8, 1.0001)):
        out = exported_risk(grid, np.full(11, 0.3), np.full(11, lvl), 0.5, None, 0.998, 0.8)
        assert ((out >= lo) & (out < hi)).all(), (lvl, out)


def test_gate_exports_the_read_risk_and_learns_the_consensus_risk() -> None:
    # A noisy entity whose model reads 0.9 every few hours: at 0.9 it exports below the
    # warning bar (its level is lowered as usual), and the reference keeps learning 0.9.
    stage = _stage()
    rng = np.random.default_rng(6)
    _replay(stage, np.vstack([_sawtooth(300, 12, rng) for _ in range(4)]))
    c = _consensus([0.9, 0.99])
    row = stage.rows_[("e0",)]
    seen = int(np.isclose(stage.risk_[row], 0.9).sum())
    out = gate(stage, [("e0",), ("e1",)], c, 300 * STEP)
    assert out.level.tolist()[0] == 0 and out.risk[0] < 0.5
    assert out.level.tolist()[1] >= 1 and out.risk[1] >= 0.5
    assert out.risk[0] == pytest.approx(exported_risk(c.risk, out.threshold, out.level, 0.5)[0])
    assert int(np.isclose(stage.risk_[row], 0.9).sum()) == seen + 1  # learned 0.9 itself
    assert out.consensus_risk is not None and out.consensus_risk.tolist() == [0.9, 0.99]


def test_exported_risk_keeps_the_level_band_however_close_the_bars() -> None:
    # critical_risk may sit just above warning_risk: a warning still reads at least the
    # warning bar and under the critical one.
    out = exported_risk(np.array([0.3, 0.9, 0.9]), np.full(3, np.nan), np.array([1, 1, 2]),
                        0.5, None, 0.998, 0.505)
    assert 0.5 <= out[0] < 0.505 and 0.5 <= out[1] < 0.505 and out[2] >= 0.505


def test_gate_reads_the_anomaly_as_risk_only_once_it_is_calibrated_on_enough_history() -> None:
    # Two quiet entities (consensus risk 0.01) whose exported anomaly score is 0.999: the one
    # with two days of history behind its score reads it (0.5 * ln(0.001) / ln(0.002) capped
    # at 0.49), the one with a day does not.
    stage = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    c = _consensus([0.01, 0.01])
    c = Consensus(agents=("capacity", "topology"), risk=c.risk, level=c.level, voters=c.voters,
                  action=c.action, time_to_failure=c.time_to_failure,
                  contribution=c.contribution, agreeing=np.ones((2, 2), bool),
                  explanation=c.explanation)
    topo = _topology([0.999, 0.999], np.zeros((2, 0)))
    # (The sustained form, which the warning rule judges, is usual: the exported score counts.)
    topo = replace(topo, history_seconds=np.array([2 * 86400.0, 86400.0]),
                   sustained_score=np.array([0.2, 0.2]))
    out = gate(stage, [("a",), ("b",)], c, 0.0, topo)
    assert out.risk[0] == pytest.approx(min(0.5 * np.log(0.001) / np.log(0.002), 0.49))
    assert out.risk[1] < 0.02
    # Without the topology agent among the consensus's agents, no anomaly term.
    plain = gate(DecisionStage(DecisionConfig(), exclude_recent=4 * H), [("a",), ("b",)],
                 _consensus([0.01, 0.01]), 0.0, topo)
    assert (plain.risk < 0.02).all()


def test_fleet_wide_needed_is_the_binomial_tail_of_independent_alerts() -> None:
    from scipy.stats import binom

    from exporter.decision import FLEET_WIDE_MIN, FLEET_WIDE_RATE, TYPICAL_ALERT_SECONDS
    from exporter.decision import fleet_wide_needed as needed

    # The documented defaults: budget 0.05 a day, a 30-min window, alpha 1e-4.
    assert [needed(n, 0.05, 1800.0, 1e-4) for n in (8, 36, 58, 100, 10_000)] == \
        [3, 4, 5, 6, 95]
    p = FLEET_WIDE_RATE * 0.05 * (TYPICAL_ALERT_SECONDS + 1800.0) / 86400.0
    for n in (8, 36, 58, 100, 1000):
        k = needed(n, 0.05, 1800.0, 1e-4)
        # The smallest count at least FLEET_WIDE_MIN whose tail is below alpha.
        assert binom.sf(k - 1, n, p) < 1e-4
        assert k == FLEET_WIDE_MIN or binom.sf(k - 2, n, p) >= 1e-4
    assert needed(2, 0.05, 1800.0, 1e-4) == 0  # too few entities to tell
    assert needed(40, 0.05, 1800.0, 0.0) == 0  # off


def _fleet(n: int, alpha: float = 1e-4) -> tuple[DecisionStage, list, float]:
    """n entities with two quiet days of references (risk 0.1)."""
    stage = DecisionStage(DecisionConfig(fleet_wide_alpha=alpha), exclude_recent=4 * H)
    entities = [(f"h{i}",) for i in range(n)]
    t = 0.0
    quiet = np.full(n, 0.1)
    for _ in range(int(2 * 86400 / STEP)):
        stage.decide(entities, quiet, _level(quiet), t)
        t += STEP
    return stage, entities, t


def test_a_surge_that_lights_many_entities_at_once_is_held_as_fleet_wide() -> None:
    """A traffic surge saturates many workers together: more entities at a level at once than
    independent failures explain (4 of 36) is a shared cause, held and explained; fewer are
    each their own (3 of 36 page as usual)."""
    stage, entities, t = _fleet(36)
    risk = np.full(36, 0.1)
    risk[:3] = 0.9
    d = stage.decide(entities, risk, _level(risk), t)
    assert (d.level[:3] == 2).all() and not d.fleet_wide.any()
    assert (d.elevated_now, d.fleet_wide_needed) == (3, 4)
    # Ten minutes later a fourth joins: all four are held (the first three, too).
    risk[3] = 0.9
    d = stage.decide(entities, risk, _level(risk), t + STEP)
    assert (d.level[:4] == 0).all() and d.fleet_wide[:4].all() and not d.fleet_wide[4:].any()
    assert d.elevated_now == 4
    # An entity that went quiet (or absent) within the window still counts.
    risk[:3] = 0.1
    d = stage.decide(entities[3:], risk[3:], _level(risk[3:]), t + 2 * STEP)
    assert d.level[0] == 0 and d.fleet_wide[0] and d.elevated_now == 4
    # Once the window has passed, a lone level pages again.
    later = t + 2 * STEP + 1800.0
    d = stage.decide(entities, risk, _level(risk), later)
    assert d.level[3] == 2 and not d.fleet_wide.any() and d.elevated_now == 1


def test_the_fleet_wide_rule_is_off_at_alpha_zero_and_validated() -> None:
    from exporter.config import ConfigError, parse_config

    stage, entities, t = _fleet(36, alpha=0.0)
    risk = np.full(36, 0.9)
    d = stage.decide(entities, risk, _level(risk), t)
    assert (d.level == 2).all() and not d.fleet_wide.any() and d.fleet_wide_needed == 0
    for bad in ({"fleet_wide_alpha": 1.0}, {"fleet_wide_alpha": -0.1},
                {"fleet_wide_window": "0s"}):
        with pytest.raises(ConfigError, match="fleet_wide"):
            parse_config({"analyses": [{"name": "a", "preset": "node"}],
                          "agents": {"decision": bad}})


def test_gate_explains_a_fleet_wide_hold_and_bands_the_risk_under_the_warning() -> None:
    stage, entities, t = _fleet(8)
    risk = [0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1]
    out = gate(stage, entities, _consensus(risk), t)
    assert list(out.level) == [0, 0, 0, 0, 0, 0, 0, 0]
    assert out.explanation[0].startswith("fleet-wide: 3 of 8 entities reached a level within "
                                         "30m, more than independent failures explain (3 or "
                                         "more): a shared cause")
    assert out.action[0] == "none" and np.isnan(out.time_to_failure[0])
    assert (np.asarray(out.risk[:3]) < 0.5).all() and out.consensus_risk[0] == 0.9


def test_an_entity_at_a_level_before_the_event_began_keeps_it() -> None:
    """A failure developing for hours is not part of a surge that starts later: its level
    stands while the four surge entities are held."""
    stage, entities, t = _fleet(36)
    risk = np.full(36, 0.1)
    risk[35] = 0.9  # a leak, at a level for two hours
    for k in range(12):
        d = stage.decide(entities, risk, _level(risk), t + k * STEP)
        assert d.level[35] == 2 and not d.fleet_wide.any()
    t += 12 * STEP
    risk[:4] = 0.9  # the surge
    d = stage.decide(entities, risk, _level(risk), t)
    assert d.fleet_wide[:4].all() and (d.level[:4] == 0).all()
    assert d.level[35] == 2 and not d.fleet_wide[35] and d.elevated_now == 4
    # Saved and restored mid-event: the same decision next cycle.
    again = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    again.restore(stage.state())
    a, b = (s.decide(entities, risk, _level(risk), t + STEP) for s in (stage, again))
    np.testing.assert_array_equal(a.level, b.level)
    np.testing.assert_array_equal(a.fleet_wide, b.fleet_wide)
    assert a.fleet_wide[:4].all() and a.level[35] == 2


def test_no_fleet_wide_hold_while_the_decision_stage_is_off() -> None:
    stage = DecisionStage(DecisionConfig(enabled=False), exclude_recent=4 * H)
    entities = [(f"h{i}",) for i in range(8)]
    risk = np.array([0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1])
    d = stage.decide(entities, risk, _level(risk), 0.0)
    assert (d.level[:4] == 2).all() and not d.fleet_wide.any() and d.fleet_wide_needed == 0


def _own_peak(steps: int) -> DecisionStage:
    """A 4-entity fleet quiet at 0.1 for `steps` samples where e0 spent 5 h at 0.95 on its
    first afternoon (hours 14-19)."""
    risk = np.full((4, steps), 0.1)
    risk[0, 84:114] = 0.95
    stage = _stage()
    _replay(stage, risk)
    return stage


@pytest.mark.parametrize("steps, span", [(300, "2d2h"), (500, "3d")])
def test_suppressed_explanation_names_the_history_the_own_bound_read(steps, span) -> None:
    """"the highest it reached in the last ..." names the span of the entity's own risk
    history, at most `reference` (3d): a two-day-old entity's bar is not three days'."""
    entities = [(f"e{i}",) for i in range(4)]
    now = steps * STEP  # 2:00 or 11:20, off the peak's time of day
    d = _own_peak(steps).decide(entities, np.array([0.9, 0.1, 0.1, 0.1]),
                                np.array([2, 0, 0, 0]), now)
    assert d.suppressed[0] and d.bound[0] == "own", (d.suppressed, d.bound)
    out = gate(_own_peak(steps), entities, _consensus([0.9, 0.1, 0.1, 0.1]), now)
    assert f"the highest it reached in the last {span} (" in out.explanation[0], \
        out.explanation[0]


# ------------------------------------------------------------ references by leading signal


def _replay_led(stage: DecisionStage, risk: np.ndarray, lead: np.ndarray) -> np.ndarray:
    """`_replay` with the leading signal [E, N] of each risk passed to the stage."""
    entities = [(f"e{i}",) for i in range(risk.shape[0])]
    out = np.zeros(risk.shape, dtype=int)
    for k in range(risk.shape[1]):
        out[:, k] = stage.decide(entities, risk[:, k], _level(risk[:, k]), k * STEP,
                                 lead=lead[:, k]).level
    return out


def _disk_sawtooth_then(lead_at_end: int, rng: np.random.Generator):
    """Three days of e0 whose disk (signal 0) reaches risk 0.9 every 3 h (a log-rotation
    sawtooth the capacity agent projects), then 2 h of a new rise to 0.75 led by
    `lead_at_end`; five quiet peers. Returns (risk, lead) [6, N]."""
    n = 3 * 144
    risk = np.vstack([_sawtooth(n, 18, rng)] + [np.clip(0.1 + 0.02 * rng.standard_normal(n),
                                                         0, 1) for _ in range(5)])
    lead = np.zeros(risk.shape, dtype=np.int64)
    lead[:, 1::2] = 2  # quiet samples led by whatever moved most
    lead[0, risk[0] > 0.5] = 0
    risk[0, -12:] = np.linspace(0.55, 0.75, 12)
    lead[0, -12:] = lead_at_end
    return risk, lead


def test_a_new_signal_rising_is_not_held_by_another_signals_usual_peaks() -> None:
    """A disk sawtooth at risk 0.9 sits in e0's reference; a memory rise to 0.75 on the same
    host is new for memory and alerts, the same rise led by the disk is usual and does not,
    and without leads (the scalar reference) it is held as before."""
    memory, disk = (_replay_led(_stage(), *_disk_sawtooth_then(k, np.random.default_rng(3)))
                    for k in (1, 0))
    assert (memory[0, -12:] >= 1).sum() >= 8
    assert (disk[0, -12:] >= 1).sum() == 0
    plain = _replay(_stage(), _disk_sawtooth_then(1, np.random.default_rng(3))[0])
    assert (plain[0, -12:] >= 1).sum() == 0
    # The sawtooth itself stays usual once the reference holds it, with leads as without.
    own = int((86400 + 4 * H) / STEP) + 1
    assert (memory[0, own:-12] >= 1).sum() == 0


def test_the_fleets_bar_reads_every_sample_whatever_led_it() -> None:
    """Read by leading signal, the fleet's bar let first-time events through on many
    signals (benchmarks/README.md, "References by leading signal"): five peers whose disk
    reaches 0.9 every 3 h hold e0, quiet for three days, at 0.75 led by its memory."""
    rng = np.random.default_rng(4)
    n = 3 * 144
    risk = np.vstack([np.clip(0.1 + 0.02 * rng.standard_normal(n), 0, 1)]
                     + [_sawtooth(n, 18, rng) for _ in range(5)])
    lead = np.zeros(risk.shape, dtype=np.int64)
    stage = _stage()
    _replay_led(stage, risk[:, :-1], lead[:, :-1])
    last = lead[:, -1].copy()
    last[0] = 1
    risk[0, -1] = 0.75
    out = stage.decide([(f"e{i}",) for i in range(6)], risk[:, -1], _level(risk[:, -1]),
                       (n - 1) * STEP, lead=last)
    assert out.level[0] == 0 and out.bound[0] == "fleet"


def test_the_daily_pattern_counts_only_the_same_leading_signal() -> None:
    """Yesterday at 19:00 e0 reached 0.80 with its disk leading (a nightly job); today at
    19:10 0.85 led by the disk is the daily pattern, led by memory it is not."""
    quiet = np.full((4, 2 * 144), 0.1)
    quiet[0, 114:120] = 0.80
    lead = np.full(quiet.shape, 2, dtype=np.int64)
    lead[0, 114:120] = 0
    out = {}
    for k in (0, 1):
        stage = _stage()
        _replay_led(stage, quiet, lead)
        out[k] = stage.decide([(f"e{i}",) for i in range(4)], np.array([0.85, 0.1, 0.1, 0.1]),
                              np.array([2, 0, 0, 0]), (144 + 115) * STEP,
                              lead=np.array([k, 2, 2, 2]))
    assert out[0].suppressed[0] and out[0].bound[0] == "daily"
    assert out[0].phase_high[0] == pytest.approx(0.8)
    assert not out[1].suppressed[0] and np.isnan(out[1].phase_high[0])


def test_leads_are_saved_and_an_older_state_counts_them_for_every_signal() -> None:
    rng = np.random.default_rng(5)
    risk, lead = _disk_sawtooth_then(1, rng)
    stage = _stage()
    _replay_led(stage, risk[:, :-12], lead[:, :-12])
    saved = stage.state()
    again = _stage()
    again.restore({k: v.copy() for k, v in saved.items()})
    np.testing.assert_array_equal(again.lead_, stage.lead_)
    assert (stage.lead_[0] == 0).any() and (stage.lead_[0] == 2).any()
    older = {k: v.copy() for k, v in saved.items() if k != "lead"}
    old = _stage()
    old.restore(older)
    assert (old.lead_ == 255).all()
    keys = [(f"e{i}",) for i in range(6)]
    now = (risk.shape[1] - 12) * STEP
    # The memory rise: new for memory in the saved state, usual in the one without leads.
    fresh = again.decide(keys, risk[:, -1], _level(risk[:, -1]), now, lead=lead[:, -1])
    unknown = old.decide(keys, risk[:, -1], _level(risk[:, -1]), now, lead=lead[:, -1])
    assert fresh.level[0] == 1 and unknown.level[0] == 0
    with pytest.raises(ValueError):
        bad = {k: v.copy() for k, v in saved.items()}
        bad["lead"] = bad["lead"][:, :3]
        _stage().restore(bad)


def test_gate_reads_the_lead_from_the_contributions_and_says_so() -> None:
    from exporter.decision import lead_signal

    c = np.array([[0.2, 0.8], [np.nan, np.nan], [0.0, 0.0], [0.6, 0.4]])
    assert lead_signal(c, 4).tolist() == [1, -1, -1, 0]
    assert lead_signal(np.zeros((2, 0)), 2).tolist() == [-1, -1]
    import copy

    rng = np.random.default_rng(6)
    stage = _stage()
    risk = np.vstack([_sawtooth(300, 12, rng)] + [np.full(300, 0.1)] * 3)
    _replay_led(stage, risk, np.zeros(risk.shape, dtype=np.int64))
    out = {}
    for name, row in (("disk", [1.0, 0.0]), ("memory", [0.1, 0.9])):
        con = Consensus(agents=("capacity",), risk=np.array([0.9]), level=np.array([2]),
                        voters=np.array([1]), action=("free_disk",),
                        time_to_failure=np.array([600.0]), contribution=np.array([row]),
                        agreeing=np.ones((1, 1), bool), explanation=(f"{name} rises",))
        out[name] = gate(copy.deepcopy(stage), [("e0",)], con, 300 * STEP)
    assert out["disk"].level[0] == 0 and out["memory"].level[0] == 2
    assert "(the same signal leading)" in out["disk"].explanation[0]

