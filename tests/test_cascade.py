"""A caller's errors that follow a failing dependency's are its symptom (exporter.cascade)."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.cascade import propagating_signals, relative_rise, symptoms
from exporter.config import ConfigError, DecisionConfig, SignalConfig, parse_config
from exporter.decision import SYMPTOM, DecisionStage, gate
from exporter.results import Consensus
from tests.test_decision import STEP, H, _level

T = 120  # a 2 h window at 1 m


def _fleet_window(seed: int = 1) -> np.ndarray:
    """[5, 2, T]: signal 0 cpu (flat), signal 1 an error ratio (0.1 % when healthy). Entity 0
    (a database) fails: its error ratio climbs to ~20 % over the last 40 steps, noisily;
    entity 1 sends it 40 % of its requests and shows that share of its errors on top of its
    own; entity 2 fails on its own at the same time (the same climb, its own noise); entity 3
    is quiet; entity 4 sends the database 20 % of its requests."""
    rng = np.random.default_rng(seed)
    v = np.full((5, 2, T), np.nan)
    v[:, 0, :] = 0.3 + 0.01 * rng.standard_normal((5, T))
    v[:, 1, :] = 0.001 + 0.0003 * np.abs(rng.standard_normal((5, T)))
    ramp = np.zeros(T)
    ramp[-40:] = np.linspace(0.0, 0.2, 40)
    failing = ramp + 0.01 * np.abs(rng.standard_normal(T)) * (ramp > 0)
    v[0, 1] += failing
    v[1, 1] += 0.4 * failing
    v[2, 1] += ramp + 0.01 * np.abs(rng.standard_normal(T)) * (ramp > 0)
    v[4, 1] += 0.2 * failing
    return v


def test_relative_rise_is_the_newest_mean_over_the_older_half() -> None:
    w = np.concatenate([np.full(60, 2.0), np.full(60, 5.0)])
    assert relative_rise(w) == pytest.approx(1.5)  # (5 - 2) / (|2| + 0)
    assert relative_rise(w[::-1]) == pytest.approx(0.0)  # falling: now at its calm level
    # The base is the calm quarter, not the older half: an outage that fills 3/4 of the
    # window is still measured from before it.
    outage = np.concatenate([np.full(30, 1.0), np.full(90, 10.0)])
    assert relative_rise(outage) == pytest.approx(9.0)
    assert np.isnan(relative_rise(np.full(T, np.nan)))


def test_pearson_paths_agree_with_numpy_corrcoef() -> None:
    """Both of the module's Pearson paths (gap-free rows by one matrix-vector product, rows
    with gaps pair by pair) give numpy.corrcoef's r over the steps both series have."""
    from exporter.cascade import MIN_PAIRS, _correlation, _standardized

    rng = np.random.default_rng(3)
    d = rng.standard_normal((40, 60))
    d[5:10] += 2.0 * d[0]  # correlated with row 0
    d[12, [3, 17, 40]] = np.nan  # gaps
    d[13, :55] = np.nan  # fewer than MIN_PAIRS known: no r
    d[14] = 1.0  # constant: no r
    z, full = _standardized(d)
    want = np.full(40, np.nan)
    for k in range(40):
        ok = np.isfinite(d[0]) & np.isfinite(d[k])
        if ok.sum() >= MIN_PAIRS and np.std(d[k, ok]) > 0:
            want[k] = np.corrcoef(d[0, ok], d[k, ok])[0, 1]
    fast = np.full(40, np.nan)
    with np.errstate(invalid="ignore"):
        fast[full] = z[full] @ z[0] / z.shape[1]
    np.testing.assert_allclose(fast[full], want[full], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(_correlation(d[0], d), want, rtol=1e-9, atol=1e-12)
    assert not full[12] and np.isfinite(want[12]) and np.isnan(want[13]) and np.isnan(want[14])


def test_a_caller_following_a_failing_dependency_is_its_symptom() -> None:
    v = _fleet_window()
    at = np.array([True, True, True, False, True])
    lead = np.array([1, 1, 1, 1, 1])
    sym = symptoms(v, at, lead, propagating_signals(["resource", "errors"]))
    # Both callers (1, 4) follow the database (0) step by step and rose less: its symptoms.
    # The independent failure (2) climbs the same way but moves with nobody step by step,
    # and the database is the strongest riser of its group: both judged on their own.
    assert list(sym.source) == [-1, 0, -1, -1, 0]
    assert (sym.correlation[[1, 4]] >= 0.9).all() and (sym.rise_ratio[[1, 4]] >= 1.2).all()
    assert np.isnan(sym.correlation[[0, 2, 3]]).all() and np.isnan(sym.rise_ratio[0])
    # A caller is held whether or not the database is at a level itself.
    at[0] = False
    assert symptoms(v, at, lead, propagating_signals(["resource", "errors"])).source[1] == 0


def test_only_propagating_leading_signals_and_rising_entities_count() -> None:
    v = _fleet_window()
    at = np.array([True, True, True, False, False])
    # The error ratio is a resource here (no propagation): nobody is a symptom.
    sym = symptoms(v, at, np.full(5, 1), propagating_signals(["resource", "resource"]))
    assert (sym.source == -1).all()
    # The caller led by cpu (signal 0): judged on its own.
    sym = symptoms(v, at, np.array([1, 0, 1, 1, 1]), propagating_signals(["resource", "errors"]))
    assert sym.source[1] == -1
    # Unknown lead, or a falling signal: never a symptom.
    falling = v[:, :, ::-1].copy()
    assert (symptoms(falling, at, np.full(5, 1), np.array([False, True])).source == -1).all()
    assert (symptoms(v, at, np.full(5, -1), np.array([False, True])).source == -1).all()
    # Thresholds: the caller is kept when the ratio asked is above what the database's rise
    # is to its own, or the correlation asked above what the two reach.
    sym = symptoms(v, at, np.full(5, 1), np.array([False, True]))
    assert sym.source[1] == 0
    tight = symptoms(v, at, np.full(5, 1), np.array([False, True]),
                     min_rise_ratio=sym.rise_ratio[1] * 1.01)
    assert tight.source[1] == -1
    strict = symptoms(v, at, np.full(5, 1), np.array([False, True]),
                      min_correlation=min(1.0, sym.correlation[1] + 0.001))
    assert strict.source[1] == -1
    with pytest.raises(ValueError, match="window values"):
        symptoms(v[0], at, np.full(5, 1), np.array([False, True]))


def _consensus(level: list[int], lead: int) -> Consensus:
    n = len(level)
    contribution = np.zeros((n, 2))
    contribution[:, lead] = 1.0
    return Consensus(agents=("network",), risk=np.where(np.array(level) >= 1, 0.9, 0.1),
                     level=np.array(level), voters=np.ones(n, int),
                     action=("investigate_dependency",) * n, time_to_failure=np.full(n, 900.0),
                     contribution=contribution, agreeing=np.ones((n, 1), bool),
                     explanation=("error_ratio rises",) * n)


SIGNALS = [SignalConfig(name="cpu", query="c", kind="resource"),
           SignalConfig(name="error_ratio", query="e", kind="errors")]


def _quiet_fleet(n: int) -> tuple[DecisionStage, list, float]:
    """A decision stage after two quiet days (risk 0.1) of `n` services."""
    stage = DecisionStage(DecisionConfig(), exclude_recent=4 * H)
    entities = [(f"svc-{i}",) for i in range(n)]
    t, quiet = 0.0, np.full(n, 0.1)
    for _ in range(int(2 * 86400 / STEP)):
        stage.decide(entities, quiet, _level(quiet), t)
        t += STEP
    return stage, entities, t


def test_gate_holds_the_caller_and_names_the_dependency() -> None:
    n = 20  # a fleet large enough that two entities at a level are no fleet-wide event
    stage, entities, t = _quiet_fleet(n)
    v = np.concatenate([_fleet_window()[:4], np.repeat(_fleet_window()[3:4], n - 4, axis=0)])
    v[4:, 1] += 0.0003 * np.abs(np.random.default_rng(5).standard_normal((n - 4, T)))
    level = [2, 2] + [0] * (n - 2)
    out = gate(stage, entities, _consensus(level, 1), t, values=v, signals=SIGNALS)
    assert list(out.level[:2]) == [2, 0]
    assert out.explanation[1].startswith(f"{SYMPTOM} svc-0: its error_ratio moves with "
                                         "svc-0's step by step (r = ")
    assert "error_ratio rises" in out.explanation[1]
    # The database's own explanation names the caller that follows it.
    assert out.explanation[0] == ("error_ratio rises; 1 entity follows it, held as its "
                                  "symptoms: svc-1")
    assert out.action[1] == "none" and np.isnan(out.time_to_failure[1])
    assert out.risk[1] < 0.5 and out.consensus_risk[1] == pytest.approx(0.9)
    # Off at symptom_correlation 0, and without the signals' kinds.
    off = DecisionStage(DecisionConfig(symptom_correlation=0.0), exclude_recent=4 * H)
    off.restore(stage.state())
    assert list(gate(off, entities, _consensus(level, 1), t + STEP, values=v,
                     signals=SIGNALS).level[:2]) == [2, 2]
    assert list(gate(stage, entities, _consensus(level, 1), t + 2 * STEP,
                     values=v).level[:2]) == [2, 2]


def test_a_dependency_and_its_callers_that_make_a_fleet_wide_event_are_held_together() -> None:
    """In a fleet of 8, a database and the two services calling it reaching a level at once
    are 3 of 8: a fleet-wide event holds all three (AuraFleetWideEvent fires instead); the
    symptom rule reads only the entities it does not hold. In a fleet of 20 the same three
    are no fleet-wide event: the callers are held as the database's symptoms, it pages."""
    n = 8
    stage, entities, t = _quiet_fleet(n)
    v = np.concatenate([_fleet_window(), np.repeat(_fleet_window(2)[3:4], n - 5, axis=0)])
    level = [2, 2, 0, 0, 2] + [0] * (n - 5)
    out = gate(stage, entities, _consensus(level, 1), t, values=v, signals=SIGNALS)
    assert list(out.level[[0, 1, 4]]) == [0, 0, 0] and out.fleet_wide_event
    assert all(out.explanation[i].startswith("fleet-wide") for i in (0, 1, 4))
    n = 20
    stage, entities, t = _quiet_fleet(n)
    v = np.concatenate([_fleet_window(), np.repeat(_fleet_window(2)[3:4], n - 5, axis=0)])
    out = gate(stage, entities, _consensus(level + [0] * 12, 1), t, values=v, signals=SIGNALS)
    assert list(out.level[[0, 1, 4]]) == [2, 0, 0] and not out.fleet_wide_event
    assert out.explanation[1].startswith(f"{SYMPTOM} svc-0")


def test_symptom_settings_are_validated() -> None:
    base = {"analyses": [{"name": "n", "preset": "node"}]}
    with pytest.raises(ConfigError, match="symptom_correlation"):
        parse_config({**base, "agents": {"decision": {"symptom_correlation": 1.5}}})
    with pytest.raises(ConfigError, match="symptom_rise_ratio"):
        parse_config({**base, "agents": {"decision": {"symptom_rise_ratio": 0.5}}})
