"""Consensus: Byzantine bounds as properties, then the level/action/ttf/explanation rules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.config import ConfigError, ConsensusConfig, parse_config
from exporter.consensus import ConsensusError, combine, fault_tolerance
from exporter.results import Votes

SIGNALS = ("cpu", "memory", "network_errors")
# The BFT properties are about ballots; confidence gating is tested on its own below.
CFG = ConsensusConfig(warning_risk=0.5, critical_risk=0.8, min_voters=3, min_confidence=0.0)


def _votes(
    agent: str,
    risk,
    action="none",
    ttf=np.nan,
    contribution=None,
    confidence=1.0,
    reason="",
) -> Votes:
    risk = np.atleast_1d(np.asarray(risk, dtype=np.float64))
    e = len(risk)
    if contribution is None:
        contribution = np.full((e, len(SIGNALS)), 1 / len(SIGNALS))
    return Votes(
        agent,
        risk,
        np.broadcast_to(np.asarray(confidence, dtype=np.float64), (e,)).copy(),
        (action,) * e if isinstance(action, str) else tuple(action),
        np.broadcast_to(np.asarray(ttf, dtype=np.float64), (e,)).copy(),
        np.broadcast_to(np.asarray(contribution, dtype=np.float64), (e, len(SIGNALS))).copy(),
        (reason,) * e,
    )


def _combine(risks, cfg=CFG, **kw) -> tuple:
    """Combine one entity's votes given as a list (NaN = abstain)."""
    votes = [_votes(f"a{i}", [r], **kw) for i, r in enumerate(risks)]
    c = combine(votes, cfg, SIGNALS)
    return float(c.risk[0]), int(c.level[0]), c


# --------------------------------------------------------------------------------------------
# Properties

unit = st.floats(0, 1, allow_nan=False)
anything = st.one_of(unit, st.floats(allow_nan=True, allow_infinity=True))


@st.composite
def byzantine_round(draw):
    """Honest votes, up to f of them replaced by arbitrary ones, abstainers, random weights."""
    n = draw(st.integers(1, 7))
    abstainers = draw(st.integers(0, 3))
    honest = draw(st.lists(unit, min_size=n, max_size=n))
    f = int(fault_tolerance(np.array(n)))
    faulty_at = draw(st.lists(st.integers(0, n - 1), min_size=f, max_size=f, unique=True))
    votes = list(honest)
    for i in faulty_at:
        votes[i] = draw(anything)
    conf = draw(st.lists(st.floats(0, 1), min_size=n + abstainers, max_size=n + abstainers))
    for i in faulty_at:  # a faulty agent may also lie about its confidence
        conf[i] = draw(st.sampled_from([0.0, 1.0, float("nan")]))
    weights = draw(st.lists(st.floats(0, 10), min_size=n + abstainers, max_size=n + abstainers))
    honest_votes = [v for i, v in enumerate(honest) if i not in faulty_at]
    order = draw(st.permutations(range(n + abstainers)))
    return votes + [np.nan] * abstainers, honest_votes, faulty_at, conf, weights, order


def _run(votes, conf, weights, order, cfg):
    vs = [_votes(f"a{j}", [votes[i]], confidence=conf[i]) for j, i in enumerate(order)]
    w = {f"a{j}": weights[i] for j, i in enumerate(order)}
    return combine(vs, cfg, SIGNALS, w)


@settings(max_examples=400, deadline=None)
@given(byzantine_round(), st.integers(1, 4))
def test_risk_stays_within_honest_range(case, min_voters):
    votes, honest, faulty, conf, weights, order = case
    cfg = ConsensusConfig(0.5, 0.8, min_voters, min_confidence=0.0)
    c = _run(votes, conf, weights, order, cfg)
    n = int(np.sum(~np.isnan(np.asarray(votes, dtype=np.float64))))
    assert int(c.voters[0]) == n
    if n < min_voters:
        assert np.isnan(c.risk[0]) and c.level[0] == -1
        return
    if honest:  # n >= 1 and f < n: at least one honest vote always exists
        assert min(honest) - 1e-12 <= c.risk[0] <= max(honest) + 1e-12
    assert 0 <= c.risk[0] <= 1


@settings(max_examples=400, deadline=None)
@given(byzantine_round(), st.floats(0.05, 0.9), st.floats(0, 0.5))
def test_level_needs_quorum(case, warning, extra):
    votes, honest, faulty, conf, weights, order = case
    cfg = ConsensusConfig(warning, min(1.0, warning + extra), 1, min_confidence=0.0)
    c = _run(votes, conf, weights, order, cfg)
    r = np.clip(np.asarray(votes, dtype=np.float64), 0, 1)
    r = r[~np.isnan(r)]
    n = len(r)
    f = (n - 1) // 3
    level = int(c.level[0])
    if n == 0:
        assert level == -1
        return
    assert level >= 0
    # Faulty agents that abstain lower n, but never below what the remaining faulty need.
    faulty_voting = sum(1 for i in faulty if not np.isnan(float(votes[i])))
    assert faulty_voting <= f
    for lvl, thr in ((1, cfg.warning_risk), (2, cfg.critical_risk)):
        if level >= lvl:
            assert np.sum(r >= thr) >= 2 * f + 1
            # Of those, at least f + 1 are honest: faulty agents alone never set a level.
            assert sum(1 for h in honest if h >= thr) >= f + 1
            assert c.risk[0] >= cfg.warning_risk - 1e-12
    agreeing = c.agreeing[0]
    assert agreeing.sum() <= n
    if level >= 1:
        assert agreeing.sum() >= 2 * f + 1


@given(st.floats(0, 1), st.integers(1, 7))
def test_unanimous_votes_give_that_risk(x, n):
    risk, _, _ = _combine([x] * n, ConsensusConfig(0.5, 0.8, 1, min_confidence=0.0))
    assert risk == pytest.approx(x)


# --------------------------------------------------------------------------------------------
# Rules on literal votes


@pytest.mark.parametrize(
    "risks, level",
    [
        ([0.9, 0.9, 0.9, 0.0], 2),  # n=4, f=1: 3 agents at critical
        ([0.9, 0.9, 0.0, 0.0], 0),  # only 2 of the 3 needed
        ([0.9, 0.9, 0.6, 0.0], 1),  # 3 at warning, 2 at critical
        ([0.9, 0.9, 0.9, 0.0, 0.0], 2),  # n=5: trimmed mean 0.6 >= warning, 3 at critical
        ([0.95, 0.0, 0.0], 0),  # n=3, f=0: one agent, but the combined risk is low
        ([0.95, 0.6, 0.3], 2),  # n=3: one at critical and combined >= warning
        ([0.9, 0.9, np.nan, np.nan, np.nan], -1),  # 2 voters < min_voters
        ([0.1, 0.2, 0.3, 0.1, 0.0, 0.2, 0.1], 0),
        ([1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0], 2),  # n=7, f=2: 5 needed
        ([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0], 0),
    ],
)
def test_levels(risks, level):
    _, got, _ = _combine(risks)
    assert got == level


def test_trimming_drops_outliers_on_both_sides():
    risk, _, _ = _combine([0.0, 0.4, 0.5, 1.0])  # n=4, f=1: mean of 0.4 and 0.5
    assert risk == pytest.approx(0.45)
    risk, _, _ = _combine([0.2, 0.3, 0.4])  # n=3, f=0: nothing dropped
    assert risk == pytest.approx(0.3)


def test_weights_and_confidence_weight_the_mean():
    votes = [_votes("a", [0.2]), _votes("b", [0.6]), _votes("c", [0.6], confidence=0.5)]
    c = combine(votes, CFG, SIGNALS, {"a": 3.0, "b": 1.0, "c": 2.0})
    assert c.risk[0] == pytest.approx((3 * 0.2 + 1 * 0.6 + 2 * 0.5 * 0.6) / (3 + 1 + 1))
    zero = combine(votes, CFG, SIGNALS, {"a": 0.0, "b": 0.0, "c": 0.0})
    assert zero.risk[0] == pytest.approx((0.2 + 0.6 + 0.6) / 3)  # no weight left: plain mean


def test_action_majority_among_supporters_then_highest_risk():
    votes = [
        _votes("capacity", [0.9], action="raise_memory_limit"),
        _votes("network", [0.95], action="investigate_network"),
        _votes("stability", [0.85], action="raise_memory_limit"),
        _votes("forecast", [0.9]),
        _votes("topology", [0.1], action="scale_out"),  # not supporting: ignored
    ]
    c = combine(votes, CFG, SIGNALS)
    assert c.level[0] == 2 and c.action[0] == "raise_memory_limit"
    tie = [votes[0], votes[1], votes[3], _votes("x", [0.0]), _votes("y", [0.0])]
    c = combine(tie, CFG, SIGNALS)
    assert c.level[0] == 2 and c.action[0] == "investigate_network"  # tie: highest risk wins
    plain = [_votes("a", [0.9]), _votes("b", [0.9]), _votes("c", [0.9])]
    assert combine(plain, CFG, SIGNALS).action[0] == "investigate"
    low = [_votes("a", [0.1], action="scale_out")] * 3
    assert combine(low, CFG, SIGNALS).action[0] == "none"


def test_ttf_is_median_of_supporters_and_absent_when_ok():
    votes = [
        _votes("a", [0.9, 0.1], ttf=[3600, 600]),
        _votes("b", [0.9, 0.1], ttf=[7200, 600]),
        _votes("c", [0.9, 0.1]),
        _votes("d", [0.2, 0.1], ttf=[60, 60]),  # not supporting
    ]
    c = combine(votes, CFG, SIGNALS)
    assert c.level.tolist() == [2, 0]
    assert c.time_to_failure[0] == pytest.approx(5400)
    assert np.isnan(c.time_to_failure[1])


def test_contribution_is_risk_weighted_over_supporters():
    mem = [0.0, 1.0, 0.0]
    net = [0.0, 0.0, 1.0]
    votes = [
        _votes("capacity", [0.9], contribution=mem),
        _votes("forecast", [0.9], contribution=[np.nan] * 3),  # unknown: skipped
        _votes("topology", [0.6], contribution=net),
        _votes("network", [0.1], contribution=net),  # not supporting
    ]
    c = combine(votes, CFG, SIGNALS)
    assert c.level[0] == 1
    np.testing.assert_allclose(c.contribution[0], [0.0, 0.9 / 1.5, 0.6 / 1.5])
    assert c.agreeing[0].tolist() == [True, True, True, False]


def test_explanation_names_signal_time_and_agents():
    mem = [0.0, 1.0, 0.0]
    votes = [
        _votes("capacity", [0.9], "raise_memory_limit", 7800, mem,
               reason="memory rises towards its limit"),
        _votes("forecast", [0.85], ttf=7800, contribution=[np.nan] * 3),
        _votes("topology", [0.6], contribution=mem),
        _votes("network", [0.0], confidence=0.3),
        _votes("stability", [0.0], confidence=0.3),
    ]
    even = combine(votes[:3] + [_votes("network", [0.0]), _votes("stability", [0.0])], CFG,
                   SIGNALS)
    assert even.level[0] == 0 and "consensus risk 0.48 stays below 0.5" in even.explanation[0]
    c = combine(votes, CFG, SIGNALS)
    assert c.level[0] == 1
    assert c.explanation[0] == (
        "memory rises towards its limit, about 2h10m left; capacity, forecast and topology agree"
    )
    c = combine(votes[:2] + [_votes("n", [np.nan])], CFG, SIGNALS)
    assert c.level[0] == -1 and c.explanation[0].startswith("undecided: 2 of 3")
    alone = [votes[0], _votes("b", [0.1]), _votes("c", [0.1]), _votes("d", [0.1])]
    c = combine(alone, CFG, SIGNALS)
    assert c.level[0] == 0 and "capacity sees a risk" in c.explanation[0]


def test_bad_input_is_refused():
    with pytest.raises(ConsensusError):
        combine([], CFG, SIGNALS)
    with pytest.raises(ConsensusError):
        combine([_votes("a", [0.1]), _votes("b", [0.1, 0.2])], CFG, SIGNALS)


def test_config_refuses_fewer_agents_than_min_voters():
    base = {"analyses": [{"name": "a", "signals": [{"name": "x", "query": "up"}]}]}
    agents = {"consensus": {"min_voters": 3}, "topology": {"enabled": False},
              "forecast": {"enabled": False}, "network": {"enabled": False}}
    with pytest.raises(ConfigError, match="min_voters"):
        parse_config({**base, "agents": agents})
    parse_config({**base, "agents": {**agents, "consensus": {"min_voters": 2}}})


def test_low_confidence_votes_are_opinions_not_ballots():
    """A quiet specialist (low confidence) neither votes an entity down nor counts for quorum."""
    import numpy as np

    from exporter.results import Votes

    def v(agent, risk, conf):
        return Votes(agent, np.array([risk]), np.array([conf]), ("none",), np.array([np.nan]),
                     np.full((1, 1), np.nan), ("",))

    votes = [v("capacity", 0.9, 0.9), v("forecast", 0.7, 0.8), v("network", 0.0, 0.24),
             v("stability", 0.0, 0.21), v("topology", 0.0, 0.5)]
    c = combine(votes, ConsensusConfig(0.5, 0.8, 1, min_confidence=0.6), ("memory",))
    assert int(c.voters[0]) == 2 and int(c.level[0]) >= 1
    # Counting every vote (min_confidence 0) lets the quiet majority veto the warning.
    c_all = combine(votes, ConsensusConfig(0.5, 0.8, 1, min_confidence=0.0), ("memory",))
    assert int(c_all.voters[0]) == 5 and int(c_all.level[0]) == 0
    # No ballot at all: undecided, never healthy.
    quiet = [v("network", 0.0, 0.2), v("stability", 0.0, 0.2)]
    c_none = combine(quiet, ConsensusConfig(0.5, 0.8, 1, min_confidence=0.6), ("memory",))
    assert int(c_none.level[0]) == -1 and np.isnan(c_none.risk[0])


# --------------------------------------------------------------------------------------------
# Corroboration: the learned forecast never makes a level alone


def test_forecast_alone_makes_no_level_and_says_why():
    """The forecast at 0.95 with every specialist quiet (opinions, not ballots): the risk is
    shown as combined, but the level stays 0 and the explanation names the missing specialist.
    With `corroborate: []` the same votes make a critical level (the rule is what changes it)."""
    cfg = ConsensusConfig(min_voters=1, min_confidence=0.6)
    votes = [_votes("forecast", [0.95], action="investigate", reason="model sees failure"),
             _votes("capacity", [0.05], confidence=0.2),
             _votes("network", [0.02], confidence=0.2)]
    c = combine(votes, cfg, SIGNALS)
    assert c.level[0] == 0 and c.risk[0] == pytest.approx(0.95)
    assert "needs an agent that sees a failure mechanism" in c.explanation[0]
    plain = combine(votes, ConsensusConfig(min_voters=1, min_confidence=0.6, corroborate=()),
                    SIGNALS)
    assert plain.level[0] == 2


def test_a_specialist_corroborates_up_to_its_own_level():
    """Forecast and stability agree at 0.95 on every entity; capacity at 0.85 corroborates
    critical, at 0.6 only a warning, at 0.4 nothing (no level though two agents are at
    critical)."""
    cfg = ConsensusConfig(min_voters=1, min_confidence=0.6)
    votes = [_votes("forecast", [0.95] * 3), _votes("stability", [0.95] * 3),
             _votes("capacity", [0.85, 0.6, 0.4])]
    c = combine(votes, cfg, SIGNALS)
    assert c.level.tolist() == [2, 1, 0]
    assert c.agreeing[1].tolist() == [True, True, True]
    assert c.explanation[1].endswith("(a warning: critical needs capacity at 0.8)")
    assert "a warning" not in c.explanation[0]


def test_topology_is_never_the_mechanism_a_level_needs():
    """Even where min_confidence lets topology vote, forecast + stability + topology make no
    level: topology flags the unusual, not a failure mechanism."""
    cfg = ConsensusConfig(min_voters=1, min_confidence=0.3)
    votes = [_votes("forecast", [0.95]), _votes("stability", [0.95]), _votes("topology", [0.85])]
    c = combine(votes, cfg, SIGNALS)
    assert c.level.tolist() == [0]
    assert "needs an agent that sees a failure mechanism" in c.explanation[0]


def test_corroborate_names_known_agents_and_leaves_a_level_reachable():
    base = {"analyses": [{"name": "n", "signals": [{"name": "cpu", "query": "up"}]}]}
    with pytest.raises(ConfigError, match="corroborate: unknown agents"):
        parse_config({**base, "agents": {"consensus": {"corroborate": ["oracle"]}}})
    no_mechanism = {"capacity": {"enabled": False}, "network": {"enabled": False}}
    with pytest.raises(ConfigError, match="no level could ever be reached"):
        parse_config({**base, "agents": no_mechanism})


def test_explanation_says_under_a_minute_without_about():
    cfg = ConsensusConfig(min_voters=1, min_confidence=0.0)
    c = combine([_votes("capacity", [0.95], ttf=20.0, reason="disk rises towards its limit")],
                cfg, SIGNALS)
    assert ", under a minute left" in c.explanation[0] and "about under" not in c.explanation[0]


def test_a_crash_loop_alone_is_left_to_its_own_alerts_unless_configured():
    """Stability's strong ballot (a crash loop) makes no level by default; with
    `corroborate: [forecast]` it pages alone again."""
    votes = [_votes("stability", [0.85], action="investigate", reason="restarted about 4 times"),
             _votes("capacity", [0.05], confidence=0.2)]
    cfg = ConsensusConfig(min_voters=1, min_confidence=0.6)
    assert combine(votes, cfg, SIGNALS).level[0] == 0
    alone = ConsensusConfig(min_voters=1, min_confidence=0.6, corroborate=("forecast",))
    assert combine(votes, alone, SIGNALS).level[0] == 2


def test_a_risk_seen_with_too_little_confidence_is_said_not_called_quiet():
    # A new host whose leak starts at boot: capacity projects memory full in half an hour but
    # on a window mostly empty yet, so its confidence is below min_confidence and it casts no
    # ballot; the forecast calls it healthy. The level stays 0 (that is the rule), and the
    # explanation says which agent sees what and why it does not count, never "no agent sees
    # a failure coming".
    cfg = ConsensusConfig(warning_risk=0.5, critical_risk=0.8, min_voters=1, min_confidence=0.6)
    votes = [
        _votes("forecast", [0.03, 0.03], confidence=0.9),
        _votes("capacity", [0.97, 0.10], confidence=[0.22, 0.22],
               reason="memory rises towards its limit, about 31m left"),
    ]
    c = combine(votes, cfg, SIGNALS)
    assert c.level.tolist() == [0, 0]
    assert c.explanation[0].startswith("capacity sees a risk (memory rises towards its limit")
    assert "confidence 0.22, below 0.6" in c.explanation[0]
    assert c.explanation[1] == "no agent sees a failure coming"


def test_topology_below_the_confidence_bar_by_design_is_not_called_short_of_evidence():
    cfg = ConsensusConfig(warning_risk=0.5, critical_risk=0.8, min_voters=1, min_confidence=0.6)
    votes = [_votes("forecast", [0.03], confidence=0.9),
             _votes("topology", [0.9], confidence=0.5, reason="unusual shape")]
    assert combine(votes, cfg, SIGNALS).explanation[0] == "no agent sees a failure coming"
