"""Baselines: predict_linear and static threshold on literal series with known answers."""

from __future__ import annotations

import numpy as np

from exporter.backtest_report import fire_intervals
from exporter.baselines import baseline_rules, predict_linear
from exporter.config import AnalysisConfig, Duration, SignalConfig
from exporter.windows import Window

STEP = 60.0
T0 = 1_700_000_000.0


def _analysis(direction: str = "up") -> AnalysisConfig:
    return AnalysisConfig(
        name="a", window=Duration(7200), step=Duration(STEP),
        horizons=(Duration(3600), Duration(7200), Duration(14400)),
        signals=(SignalConfig("disk", "q", capacity=1.0, kind="resource",
                              direction=direction),  # type: ignore[arg-type]
                 SignalConfig("latency", "q", kind="latency")))


def _window(disk: np.ndarray, latency: np.ndarray) -> Window:
    ts = T0 + STEP * np.arange(disk.shape[-1])
    values = np.stack([disk, latency], axis=1)
    return Window("a", ("instance",), tuple((f"h{i}",) for i in range(len(disk))),
                  ("disk", "latency"), ts, values)


def _eval_times(w: Window) -> np.ndarray:
    return np.arange(w.timestamps[0] + 7200, w.timestamps[-1] + 1, 300.0)


def test_predict_linear_matches_least_squares() -> None:
    ts = T0 + STEP * np.arange(100)
    y = 0.3 + 2e-5 * (ts - T0) + 0.01 * np.sin(np.arange(100))
    y[7] = np.nan
    t = ts[-1]
    got = predict_linear(y[None, :], ts, np.array([t]), 3600.0, 1800.0)[0, 0]
    sel = (ts > t - 3600) & ~np.isnan(y)
    slope, intercept = np.polyfit(ts[sel] - t, y[sel], 1)
    assert np.isclose(got, intercept + slope * 1800.0)


def test_fire_on_linear_fill_silent_on_flat() -> None:
    n = 16 * 60  # 16 h of 1 m samples
    k = np.arange(n, dtype=float)
    fill = 0.2 + 0.75 * k / (12 * 60)  # reaches 0.95 at 12 h, 1.0 at 12.8 h
    rng = np.random.default_rng(0)
    flat = 0.5 + 0.002 * rng.standard_normal(n)
    lat_flat = 0.1 + 0.001 * rng.standard_normal(n)
    w = _window(np.stack([fill, flat]), np.stack([lat_flat, lat_flat]))
    times = _eval_times(w)
    rules = {r.name: r for r in baseline_rules(w, _analysis(), times)}
    assert set(rules) == {"BaselinePredictLinear", "BaselineStaticThreshold"}

    pl = fire_intervals(times, rules["BaselinePredictLinear"].condition, 3600.0)
    exhaust = T0 + (1.0 - 0.2) / 0.75 * 12 * 3600
    assert [row for row, _, _ in pl] == [0]
    # 4 h horizon + 1 h for: fires about 3 h before exhaustion, never on the flat host.
    assert exhaust - 4 * 3600 <= pl[0][1] <= exhaust - 2.5 * 3600

    st = fire_intervals(times, rules["BaselineStaticThreshold"].condition, 300.0)
    cross = T0 + (0.9 - 0.2) / 0.75 * 12 * 3600
    assert [row for row, _, _ in st] == [0]
    assert cross <= st[0][1] <= cross + 600 + 300


def test_direction_down_and_zscore() -> None:
    n = 16 * 60
    k = np.arange(n, dtype=float)
    free = 0.8 - 0.75 * k / (12 * 60)  # free space shrinking: bad direction is down
    rng = np.random.default_rng(1)
    lat = 0.1 + 0.002 * rng.standard_normal(n)
    lat_spike = lat.copy()
    lat_spike[-30:] = 0.5  # a sustained latency jump: z >> 3
    w = _window(np.stack([free, np.full(n, 0.8)]), np.stack([lat, lat_spike]))
    times = _eval_times(w)
    rules = {r.name: r for r in baseline_rules(w, _analysis("down"), times)}
    pl = fire_intervals(times, rules["BaselinePredictLinear"].condition, 3600.0)
    assert [row for row, _, _ in pl] == [0]
    st = rules["BaselineStaticThreshold"].condition
    assert st[0].any()  # free space below 10 % of capacity
    # A single noisy evaluation may pass 3 sigma; the 5 m `for:` needs it held.
    fired = fire_intervals(times, st, 300.0)
    assert [(row, end) for row, _, end in fired if row == 1] == [(1, None)]
    assert [start for row, start, _ in fired if row == 1][0] >= times[-7]


def test_horizon_variant_when_largest_horizon_is_not_4h() -> None:
    a = AnalysisConfig(name="a", window=Duration(7200), step=Duration(STEP),
                       horizons=(Duration(3600),),
                       signals=(SignalConfig("disk", "q", capacity=1.0),))
    ts = T0 + STEP * np.arange(600)
    w = Window("a", ("instance",), (("h",),), ("disk",), ts, np.full((1, 1, 600), 0.5))
    names = [r.name for r in baseline_rules(w, a, _eval_times(w))]
    assert names == ["BaselinePredictLinear", "BaselinePredictLinear4h", "BaselineStaticThreshold"]
