"""The batched backtest replay gives exactly the cycle-by-cycle (`run_cycle`) outputs.

A fixed-seed simulated fleet (6 hosts: the fleet terms of topology and the network agent are
live) with a failure, replayed with the shipped failure model (window 2h at 1m, as trained, so
the forecast does not abstain): scores.csv and alerts.csv must be byte-identical whether the
replay batches cycles (in several batches, so batch boundaries and the bootstrap are crossed) or
runs them one by one as the live exporter does.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

from exporter import stacking
from exporter.agents import AGENTS, AgentInput
from exporter.cli import main
from exporter.config import parse_config
from exporter.pipeline import FORECAST_ROW_BLOCK, ROW_WISE_AGENTS
from exporter.results import Forecast, TopologyResult
from exporter.source import sim_writers
from exporter.source.sim_scenarios import FailurePlan
from exporter.source.simulator import fleet_signals, simulate_fleet
from exporter.windows import Window

H = 3600.0
T0 = 1_760_000_000.0
SEED = 5151
MODEL = Path(__file__).resolve().parent.parent / "models" / "default"


def _signals() -> list[dict]:
    return [{"name": s.name, "query": s.query, "kind": s.kind,
             **({"capacity": s.capacity} if s.capacity is not None else {})}
            for s in fleet_signals()]


def _replay_both(tmp: Path, hosts: int, failing: int, jobs: int = 0) -> dict[str, Path]:
    fleet = simulate_fleet(SEED, hosts, T0, 8 * H, 60, failures=[
        FailurePlan(failing, "memory_leak", T0 + 7 * H, 2 * H, 30 * 60, "linear")], missing=True)
    data = tmp / "data.csv"
    with data.open("w") as f:
        sim_writers.write_csv(fleet, f)
    cfg = tmp / "aura.yml"
    cfg.write_text(yaml.safe_dump({"interval": "1m", "analyses": [{
        "name": "fleet", "entity_labels": ["instance"], "window": "2h", "step": "1m",
        "horizons": ["30m", "1h", "2h"], "signals": _signals()}]}))
    out = {}
    modes = [("cycles", ["--replay=cycles"]),
             ("batched", ["--replay=batched", "--replay.rows=100"])]
    if jobs:  # the topology stage split over processes (TopologyShards)
        modes.append(("jobs", ["--replay=batched", "--replay.rows=100", f"--jobs={jobs}"]))
    for mode, extra in modes:
        out[mode] = tmp / mode
        rc = main(["backtest", f"--config.file={cfg}", f"--input={data}",
                   f"--output-dir={out[mode]}", "--interval=5m", f"--model.path={MODEL}",
                   "--topology.workers=1", "--no-plots", "--log.level=warn", *extra])
        assert rc == 0
    return out


@pytest.fixture(scope="module")
def replays(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _replay_both(tmp_path_factory.mktemp("btb"), 6, 2, jobs=3)


def test_batched_replay_writes_identical_outputs(replays: dict[str, Path]) -> None:
    for name in ("scores.csv", "alerts.csv"):
        a = (replays["cycles"] / name).read_text()
        assert a == (replays["batched"] / name).read_text(), name
        assert a == (replays["jobs"] / name).read_text(), f"--jobs=3 {name}"
    rows = (replays["batched"] / "scores.csv").read_text().splitlines()
    # Every column was exercised: forecasts, anomaly scores (after warm-up) and levels.
    header = rows[0].split(",")
    cols = list(zip(*(r.split(",") for r in rows[1:]), strict=True))
    for name in ("risk", "level", "anomaly_score", "failure_probability_1h"):
        assert any(v != "" for v in cols[header.index(name)]), name
    assert len(rows) == 1 + 6 * 73  # 6 hosts x evaluations every 5m from 2h to 8h


def test_small_fleet_replay_skips_diagram_features_with_identical_outputs(
        tmp_path: Path) -> None:
    # Two hosts (no fleet outliers) and a model without topology inputs: the replay skips
    # the feature clouds' persistence (backtest.topology_features_needed); same outputs.
    from exporter.backtest import topology_features_needed
    from exporter.pipeline import load_predictor

    predictor, _ = load_predictor(str(MODEL))
    assert not topology_features_needed(predictor, 2)
    assert topology_features_needed(predictor, 6) and topology_features_needed(object(), 1)
    out = _replay_both(tmp_path, 2, 1)
    for name in ("scores.csv", "alerts.csv"):
        assert (out["cycles"] / name).read_text() == (out["batched"] / name).read_text(), name
    rows = (out["batched"] / "scores.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert any(r.split(",")[header.index("anomaly_score")] != "" for r in rows[1:])


def _window(seed: int, e: int, s: int = 9, t: int = 120) -> Window:
    rng = np.random.default_rng(seed)
    values = rng.normal(0.5, 0.1, (e, s, t)).cumsum(axis=2) / 10
    values[0, 2, 60:] = np.nan  # a gap
    return Window("fleet", ("instance",), tuple((f"h{seed}-{i}",) for i in range(e)),
                  tuple(x["name"] for x in _signals()), 60.0 * np.arange(t), values)


def _topology(seed: int, e: int, s: int = 9) -> TopologyResult:
    rng = np.random.default_rng(seed)
    return TopologyResult(rng.random(e), rng.integers(0, 4, (e, 2)).astype(float),
                          rng.random((e, 2)), rng.random((e, 6)), tuple("abcdef"),
                          rng.dirichlet(np.ones(s), e), np.array([1.0, 0.0]), rng.random(e))


def _forecast(seed: int, e: int) -> Forecast:
    rng = np.random.default_rng(seed)
    p = np.sort(rng.random((e, 3)) ** 3, axis=1)
    return Forecast((1800.0, 3600.0, 7200.0), p, np.where(p[:, -1] > 0.5, 1000.0, np.nan))


@pytest.mark.parametrize("name", sorted(ROW_WISE_AGENTS))
def test_row_wise_agents_vote_alike_alone_and_stacked(name: str) -> None:
    """What lets the replay run these agents once on many cycles: a row's vote does not
    depend on the other rows."""
    analysis = parse_config({"analyses": [{"name": "fleet", "entity_labels": ["instance"],
                                           "window": "2h", "step": "1m",
                                           "horizons": ["30m", "1h", "2h"],
                                           "signals": _signals()}]}).analyses[0]
    parts = [(_window(k, e), _topology(k, e), _forecast(k, e)) for k, e in ((1, 3), (2, 7))]
    agent = AGENTS[name]()
    alone = [agent.assess(AgentInput(analysis, w, t, f, 0.0)) for w, t, f in parts]
    stacked = agent.assess(AgentInput(
        analysis, stacking.stack_windows([p[0] for p in parts]),
        stacking.stack_rows([p[1] for p in parts]), stacking.stack_rows([p[2] for p in parts]),
        0.0))
    _assert_same_votes(stacking.split(stacked, stacking.offsets([p[0] for p in parts])), alone)


def _assert_same_votes(got: list, want: list) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        for f in dataclasses.fields(w):
            a, b = getattr(g, f.name), getattr(w, f.name)
            if isinstance(b, np.ndarray):
                np.testing.assert_array_equal(a, b, err_msg=f.name)
            else:
                assert a == b, f.name


def test_network_agent_votes_cycles_alike_alone_and_stacked() -> None:
    """The network agent has a fleet term (a quantile over each cycle's entities): on the
    stacked rows of cycles of different sizes, `assess_cycles` gives every cycle the votes of
    `assess` on that cycle alone; one fleet of all the rows would not."""
    analysis = parse_config({"analyses": [{"name": "fleet", "entity_labels": ["instance"],
                                           "window": "2h", "step": "1m",
                                           "horizons": ["30m", "1h", "2h"],
                                           "signals": _signals()}]}).analyses[0]
    windows = [_window(k, e) for k, e in ((1, 3), (2, 7), (3, 3), (4, 1), (5, 7))]
    # Cycle 2's fleet is quiet: its floor (a quarter of the fleet's usual level) is low.
    windows[2].values[:, :, :] *= 1e-3
    windows[2].values[0, :, -20:] *= 50
    agent = AGENTS["network"]()
    alone = [agent.assess(AgentInput(analysis, w, None, None, 0.0)) for w in windows]
    bounds = stacking.offsets(windows)
    inp = AgentInput(analysis, stacking.stack_windows(windows), None, None, 0.0)
    _assert_same_votes(stacking.split(agent.assess_cycles(inp, bounds), bounds), alone)
    assert np.nanmax(alone[2].risk) > 0
    one_fleet = stacking.split(agent.assess(inp), bounds)
    assert not np.array_equal(one_fleet[2].risk, alone[2].risk, equal_nan=True)


def test_stack_pads_to_whole_blocks_and_splits_back() -> None:
    ws = [_window(3, 2), _window(4, 5)]
    st = stacking.stack_windows(ws, FORECAST_ROW_BLOCK)
    assert len(st.entities) == FORECAST_ROW_BLOCK == len(st.values)
    assert np.isfinite(st.values[7:]).all() and st.entities[7:] == ((),) * (FORECAST_ROW_BLOCK - 7)
    topo = stacking.stack_rows([_topology(3, 2), _topology(4, 5)])
    assert topo.anomaly_score.shape == (7,) and topo.features.shape == (7, 6)
    back_topo = stacking.split(topo, stacking.offsets(ws))
    np.testing.assert_array_equal(back_topo[1].signal_contribution,
                                  _topology(4, 5).signal_contribution)
    np.testing.assert_array_equal(back_topo[0].fleet_betti, topo.fleet_betti)
    f = stacking.stack_rows([_forecast(3, 2), _forecast(4, 5)])
    back = stacking.split(f, stacking.offsets(ws))
    np.testing.assert_array_equal(back[1].probability, _forecast(4, 5).probability)
    assert back[0].horizons == f.horizons


def test_forecast_in_row_blocks_gives_the_same_numbers() -> None:
    # The model is called on at most FORECAST_MAX_ROWS rows at a time (memory): blocks of a
    # multiple of FORECAST_ROW_BLOCK rows give every row exactly the one-call numbers.
    from exporter.backtest import ReplaySource
    from exporter.pipeline import Pipeline, load_predictor

    cfg = parse_config({"interval": "1m", "analyses": [{
        "name": "fleet", "entity_labels": ["instance"], "window": "2h", "step": "1m",
        "horizons": ["30m", "1h", "2h"], "signals": _signals()}]})
    analysis = cfg.analyses[0]
    predictor, info = load_predictor(str(MODEL))
    window = stacking.stack_windows([_window(7, 300)], FORECAST_ROW_BLOCK)
    pipe = Pipeline(cfg, ReplaySource(window), predictor=predictor, model_info=info)
    try:
        whole = predictor.predict(window, analysis)
        blocks = pipe._predict_rows(window, analysis, max_rows=2 * FORECAST_ROW_BLOCK)
        # Unpadded rows (a live window, passed without a padded copy): blocks before the
        # last are views, the last is padded; the same rows out, padding included.
        unpadded = pipe._predict_rows(_window(7, 300), analysis,
                                      max_rows=2 * FORECAST_ROW_BLOCK)
    finally:
        pipe.close()
    assert whole is not None and blocks is not None and unpadded is not None
    assert np.isfinite(whole.probability).all()
    for got in (blocks, unpadded):
        assert whole.probability.tobytes() == got.probability.tobytes()
        assert whole.time_to_failure.tobytes() == got.time_to_failure.tobytes()
