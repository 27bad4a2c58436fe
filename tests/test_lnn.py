"""Failure model: features, network, artifacts, predictor, dataset labels (tiny, CPU, fixed seed)."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from exporter.config import AnalysisConfig, Duration, SignalConfig
from exporter.lnn.dataset import History, build_samples
from exporter.lnn.features import FEATURE_NAMES, TOKENS, step_features
from exporter.windows import Window

torch = pytest.importorskip("torch")

HORIZONS = (900.0, 1800.0, 3600.0, 7200.0, 14400.0)


def analysis(memory_capacity: float = 1.0, disk_capacity: float = 100.0,
             horizons: tuple[float, ...] = (3600.0, 7200.0, 14400.0)) -> AnalysisConfig:
    return AnalysisConfig(
        name="t",
        horizons=tuple(Duration(h) for h in horizons),
        signals=(
            SignalConfig("cpu", "q", 1.0, "saturation"),
            SignalConfig("memory", "q", memory_capacity, "resource"),
            SignalConfig("disk_free", "q", disk_capacity, "resource", "down"),
            SignalConfig("latency", "q", None, "latency"),
            SignalConfig("errors", "q", None, "errors"),
        ),
    )


def window(n_ent: int = 6, steps: int = 120, seed: int = 0, leak: bool = True) -> Window:
    rng = np.random.default_rng(seed)
    ts = 1_700_000_000.0 + 60.0 * np.arange(steps)
    v = np.empty((n_ent, 5, steps))
    v[:, 0] = 0.3 + 0.05 * rng.standard_normal((n_ent, steps))
    v[:, 1] = 0.5 + 0.01 * rng.standard_normal((n_ent, steps))
    if leak:
        v[0, 1] += np.linspace(0, 0.45, steps)
    v[:, 2] = 60 + rng.standard_normal((n_ent, steps))
    v[:, 3] = 0.2 * np.exp(0.1 * rng.standard_normal((n_ent, steps)))
    v[:, 4] = np.abs(0.01 * rng.standard_normal((n_ent, steps)))
    v[rng.random(v.shape) < 0.05] = np.nan
    ents = tuple((f"n{i}",) for i in range(n_ent))
    return Window("t", ("instance",), ents, ("cpu", "memory", "disk_free", "latency", "errors"),
                  ts, v)


def tiny_net(seed: int = 0, units: int = 8):
    from exporter.lnn.network import NetworkSpec, build

    return build(NetworkSpec(len(FEATURE_NAMES), HORIZONS, units=units, motor=3), seed=seed)


# -- features -----------------------------------------------------------------------------


def test_features_shape_and_finite():
    w = window()
    w.values[2] = np.nan  # an entity that is down
    x = step_features(w, analysis())
    assert x.shape == (6, TOKENS, len(FEATURE_NAMES))
    assert x.dtype == np.float32
    assert np.isfinite(x).all()
    assert x[2, :, FEATURE_NAMES.index("missing_ratio")].min() == 1.0
    # The leaking entity is the most urgent and the most used.
    used = x[:, -1, FEATURE_NAMES.index("capacity_used_max")]
    assert np.argmax(used) == 0
    assert x[0, -1, FEATURE_NAMES.index("slope_z_max")] > x[1, -1,
                                                               FEATURE_NAMES.index("slope_z_max")]


def test_features_do_not_modify_window():
    w = window()
    before = w.values.copy()
    w.values[0, 0, 0] = np.inf
    before[0, 0, 0] = np.inf
    step_features(w, analysis())
    np.testing.assert_array_equal(w.values, before)


def test_features_are_scale_free():
    w = window(seed=3)
    x = step_features(w, analysis())
    scaled = w.values.copy()
    scaled[:, 1] *= 1000.0  # memory in other units, capacity alike
    scaled[:, 2] *= 1000.0  # free disk in other units, capacity alike
    scaled[:, 3] *= 1000.0  # latency in ms instead of s
    w2 = Window(w.analysis, w.label_names, w.entities, w.signals, w.timestamps, scaled)
    x2 = step_features(w2, analysis(memory_capacity=1000.0, disk_capacity=100_000.0))
    np.testing.assert_allclose(x, x2, atol=1e-5)


def test_features_independent_of_signal_count_and_order():
    w = window(seed=4)
    x = step_features(w, analysis())
    # The same data with a duplicate cpu column and reordered signals: same F columns.
    order = [4, 3, 2, 1, 0, 0]
    names = tuple(w.signals[i] for i in order[:5]) + ("cpu2",)
    a = analysis()
    a2 = AnalysisConfig(name="t", signals=a.signals + (SignalConfig("cpu2", "q", 1.0,
                                                                    "saturation"),))
    w2 = Window(w.analysis, w.label_names, w.entities, names, w.timestamps, w.values[:, order])
    x2 = step_features(w2, a2)
    assert x2.shape == x.shape
    for name in ("z_max_all", "z_max_resource", "capacity_used_max", "capacity_urgency",
                 "slope_z_max", "z_max_latency"):
        j = FEATURE_NAMES.index(name)
        np.testing.assert_allclose(x[:, :, j], x2[:, :, j], atol=1e-5, err_msg=name)


def test_features_topology_columns_reserved_zero():
    # Topology inputs are not fed (README "Design notes"): the columns stay, always 0, and
    # step_features takes no topology result.
    x = step_features(window(), analysis())
    cols = [FEATURE_NAMES.index(n) for n in FEATURE_NAMES if n.startswith("topology_")]
    assert len(cols) == 6 and (x[:, :, cols] == 0).all()
    with pytest.raises(TypeError):
        step_features(window(), analysis(), None)  # type: ignore[misc]


# -- network --------------------------------------------------------------------------------


def test_network_shapes_and_monotone_horizons():
    net = tiny_net()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, TOKENS, len(FEATURE_NAMES), generator=g) * 3
    with torch.no_grad():
        net.hazard.weight.normal_(0, 2.0, generator=g)
        net.calib_scale.copy_(torch.tensor([0.5, 2.0, 1.0, 3.0, 0.7]))
        net.calib_bias.copy_(torch.tensor([1.0, -2.0, 0.5, -1.0, 0.0]))
        p, ttf = net(x)
    assert p.shape == (64, len(HORIZONS)) and ttf.shape == (64,)
    assert (p >= 0).all() and (p <= 1).all()
    assert (p[:, 1:] >= p[:, :-1]).all()
    assert (ttf > 0).all()


def test_overfits_small_batch():
    from exporter.lnn.network import hazard_loss

    net = tiny_net(seed=1)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, TOKENS, len(FEATURE_NAMES), generator=g)
    # Cumulative labels, like real ones: failing within 15 min implies within 4 h.
    first = torch.randint(0, 6, (32,), generator=g)
    y = (torch.arange(5)[None, :] >= first[:, None]).float()
    w = torch.ones(32)
    opt = torch.optim.Adam(net.parameters(), lr=2e-2)
    losses = []
    for _ in range(120):
        opt.zero_grad()
        cum, _ = net.cumulative_hazard(x)
        loss = hazard_loss(cum, y, w)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.4 * losses[0], losses[::20]


# -- artifacts -----------------------------------------------------------------------------


def _save(tmp_path: Path, net=None) -> Path:
    from exporter.lnn.artifacts import save_model

    net = net or tiny_net()
    d = tmp_path / "m"
    save_model(d, net, {"name": "tiny", "version": "0.0.1", "ttf_threshold": 0.5})
    return d


def test_save_load_round_trip(tmp_path):
    from exporter.lnn.artifacts import load_model

    net = tiny_net(seed=5)
    with torch.no_grad():
        net.calib_scale.fill_(0.8)
        net.calib_bias.fill_(-0.3)
    d = _save(tmp_path, net)
    card = yaml.safe_load((d / "model.yaml").read_text())
    assert card["inputs"] == list(FEATURE_NAMES)
    assert card["temperature"] == [pytest.approx(1.25)] * 5
    loaded, _ = load_model(d)
    x = torch.randn(10, TOKENS, len(FEATURE_NAMES))
    net.eval()
    with torch.no_grad():
        a, ta = net(x)
        b, tb = loaded(x)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(ta, tb)


def test_load_refuses_pickled_module(tmp_path):
    from exporter.lnn.artifacts import ModelError, load_model

    d = _save(tmp_path)
    torch.save(tiny_net(), d / "model.pt")  # a whole pickled nn.Module
    card = yaml.safe_load((d / "model.yaml").read_text())
    card["sha256"] = hashlib.sha256((d / "model.pt").read_bytes()).hexdigest()
    (d / "model.yaml").write_text(yaml.safe_dump(card))
    with pytest.raises(ModelError, match="refused"):
        load_model(d)


def test_load_refuses_sha_mismatch_and_other_inputs(tmp_path):
    from exporter.lnn.artifacts import ModelError, load_model

    d = _save(tmp_path)
    data = bytearray((d / "model.pt").read_bytes())
    data[-10] ^= 0xFF
    (d / "model.pt").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        load_model(d)
    d2 = _save(tmp_path / "b")
    card = yaml.safe_load((d2 / "model.yaml").read_text())
    card["inputs"] = card["inputs"][::-1]
    (d2 / "model.yaml").write_text(yaml.safe_dump(card))
    with pytest.raises(ModelError, match="inputs"):
        load_model(d2)
    with pytest.raises(ModelError, match="model card"):
        load_model(tmp_path / "nowhere")


def test_load_refuses_a_card_with_topology_inputs(tmp_path):
    from exporter.lnn.artifacts import ModelError, load_model

    d = _save(tmp_path)
    load_model(d)  # no key: loads
    card = yaml.safe_load((d / "model.yaml").read_text())
    for value, ok in ((False, True), (True, False)):
        card["topology_inputs"] = value
        (d / "model.yaml").write_text(yaml.safe_dump(card))
        if ok:
            load_model(d)
        else:
            with pytest.raises(ModelError, match="topology_inputs: True.*no topology inputs"):
                load_model(d)


# -- predictor -----------------------------------------------------------------------------


def test_predictor_all_nan_entity_and_horizon_mapping(tmp_path):
    from exporter.lnn.predictor import FailurePredictor

    d = _save(tmp_path)
    pred = FailurePredictor.load(d)
    w = window()
    w.values[3] = np.nan
    a = analysis(horizons=(3600.0, 10800.0, 28800.0))
    f = pred.predict(w, a, None)
    assert f.probability.shape == (6, 3)
    assert f.time_to_failure.shape == (6,)
    assert np.isnan(f.probability[3]).all()
    assert np.isnan(f.probability[:, 2]).all()  # 8h is beyond the model's 4h
    ok = np.delete(f.probability[:, :2], 3, axis=0)
    assert np.isfinite(ok).all() and (ok[:, 1] >= ok[:, 0]).all()
    # The horizon is the model's problem; an entity without samples is not (a scrape gap must
    # not churn aura_model_info{status} nor log a warning): its row is NaN, nothing more.
    assert "8h" in pred.info["status"] and "entities" not in pred.info["status"]
    assert pred.info["model"] == "tiny"
    f2 = pred.predict(w, analysis(), None)
    assert np.isfinite(np.delete(f2.probability, 3, axis=0)).all()
    assert np.isnan(f2.time_to_failure[3]) and np.isnan(f2.probability[3]).all()
    assert pred.info["status"] == "ok"


def test_predictor_reads_a_signal_an_entity_lacks_as_zero(tmp_path):
    # A signal with no sample in an entity's whole window is a flat 0 to the network (it was
    # never trained on a signal missing throughout); the entity keeps a forecast, the same as
    # with that signal at 0, and the other entities' rows are untouched.
    from exporter.lnn.predictor import FailurePredictor, absent_as_zero

    pred = FailurePredictor.load(_save(tmp_path))
    w = window()
    lacking, zero = w.values.copy(), w.values.copy()
    lacking[2, 1] = np.nan
    zero[2, 1] = 0.0
    a = analysis()
    got = pred.predict(dataclasses.replace(w, values=lacking), a, None)
    want = pred.predict(dataclasses.replace(w, values=zero), a, None)
    assert np.isfinite(got.probability[2]).all()
    np.testing.assert_array_equal(got.probability, want.probability)
    assert "entities" not in pred.info["status"]
    assert absent_as_zero(w) is w  # nothing absent: the same window, no copy
    # A free-space signal (bad direction "down", with a capacity) reads as all free, not full.
    a_down = analysis()
    down = [k for k, sig in enumerate(a_down.signals) if sig.direction == "down" and sig.capacity]
    assert down, "the fixture has a free-space signal"
    k = down[0]
    free = w.values.copy()
    free[1, k] = np.nan
    filled = absent_as_zero(dataclasses.replace(w, values=free), a_down).values
    assert (filled[1, k] == float(a_down.signals[k].capacity)).all()
    partly = w.values.copy()
    partly[2, 1, :5] = np.nan  # partly missing: left to the features' missing share
    assert np.isnan(absent_as_zero(dataclasses.replace(w, values=partly)).values[2, 1, :5]).all()


def test_map_horizons_exact_and_interpolated():
    from exporter.lnn.predictor import map_horizons

    mh = np.array(HORIZONS)
    p = np.array([[0.1, 0.2, 0.3, 0.5, 0.7]])
    out = map_horizons(p, mh, np.array([900.0, 3600.0, 5400.0, 450.0, 20000.0]))
    assert out[0, 0] == pytest.approx(0.1) and out[0, 1] == pytest.approx(0.3)
    assert 0.3 < out[0, 2] < 0.5 and 0 < out[0, 3] < 0.1
    assert np.isnan(out[0, 4])


# -- dataset -------------------------------------------------------------------------------


def test_build_samples_labels_and_exclusions():
    steps_total = 600
    w = window(n_ent=2, steps=steps_total, leak=False)
    t0 = float(w.timestamps[0])
    inc_start = t0 + 60.0 * 400
    h = History(("instance",), w.entities, w.signals, w.timestamps, w.values,
                np.array([inc_start]), np.array([inc_start + 1800.0]), np.array([0]),
                np.array([True]))
    a = analysis()
    s = build_samples(h, a, HORIZONS, stride=10)
    e0 = s.entity == 0
    lead = inc_start - s.t
    # Labels: within (t, t+h].
    for k, hz in enumerate(HORIZONS):
        expect = (lead > 0) & (lead <= hz) & e0
        np.testing.assert_array_equal(s.y[:, k] == 1, expect)
    # No window while entity 0 is down; entity 1 keeps all its windows.
    assert not (e0 & (s.t >= inc_start) & (s.t < inc_start + 1800)).any()
    assert (s.entity == 1).sum() == len(range(a.steps - 1, steps_total, 10))
    assert np.isnan(s.ttf[~e0]).all()
    np.testing.assert_allclose(s.ttf[e0 & (lead <= 14400) & (lead > 0)],
                               lead[e0 & (lead <= 14400) & (lead > 0)])
    assert s.x.shape[1:] == (TOKENS, len(FEATURE_NAMES))


def test_training_is_deterministic_and_calibration_keeps_monotone():
    import time

    from exporter.lnn.dataset import Samples
    from exporter.lnn.trainer import calibrate, predict_raw, train_network

    rng = np.random.default_rng(0)
    n = 96
    first = rng.integers(0, 7, n)
    y = (np.arange(5)[None, :] >= first[:, None]).astype(np.float32)
    x = rng.standard_normal((n, TOKENS, len(FEATURE_NAMES))).astype(np.float32)
    x[:, :, 10] = (first[:, None] < 5) * 0.8  # an informative input
    ttf = np.where(first < 5, np.array(HORIZONS + (0.0, 0.0))[first] * 0.7, np.nan)
    s = Samples(x, y, ttf, np.ones(n), np.arange(n), np.zeros(n, np.int64),
                np.array([""] * n, dtype=object), np.zeros(n), np.zeros(n, bool))
    runs = [train_network(s, s, seed=4, units=8, epochs=2, deadline=time.monotonic() + 60)
            for _ in range(2)]
    for (k, a), (_, b) in zip(runs[0].net.state_dict().items(),
                              runs[1].net.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=k)
    net = runs[0].net
    calibrate(net, s)
    p, _ = predict_raw(net, x)
    assert (np.diff(p, axis=1) >= 0).all()
    assert not torch.equal(net.calib_bias, torch.zeros(5))


@pytest.mark.parametrize("step", [15.0, 30.0, 120.0, 300.0])
def test_trend_and_capacity_inputs_are_per_second_whatever_the_step(step):
    # A 2 h window of a memory ramp (+0.25 per 2 h) and a flat latency: the trend, capacity
    # and z inputs of the last token at `step` match those at 60 s.
    def last_token(st: float) -> np.ndarray:
        ts = 1_700_000_000.0 + st * np.arange(int(7200 // st))
        v = np.stack([0.4 + 0.25 * (ts - ts[0]) / 7200, np.full(len(ts), 0.2)])[None]
        an = AnalysisConfig(name="t", step=Duration(st), signals=(
            SignalConfig("memory", "q", 1.0, "resource"), SignalConfig("lat", "q", None, "latency")))
        return step_features(Window("t", ("instance",), (("a",),), ("memory", "lat"), ts, v),
                             an)[0, -1]

    ref, got = last_token(60.0), last_token(step)
    for name in ("z_max_resource", "capacity_used_max", "capacity_used_change",
                 "capacity_urgency", "slope_z_max", "slope_z_mean"):
        i = FEATURE_NAMES.index(name)
        assert got[i] == pytest.approx(ref[i], rel=0.03, abs=0.01), name
    assert ref[FEATURE_NAMES.index("slope_z_max")] > 1.0
