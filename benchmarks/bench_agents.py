"""Per-agent and consensus cost at 10 000 entities x 8 signals x 120 steps.

    .venv/bin/python benchmarks/bench_agents.py [half|realistic]

Builds the fleet of tests/test_agents.py (leaks, disk fills, network degradation, crash loops,
sawtooth, plateaus, surges): `half` has half the fleet failing (every reason string is built),
`realistic` 2 %. Prints the median wall and CPU time of 3 runs per agent.
"""
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_agents import NOW, SIGNALS, _fleet, _stage_results  # noqa: E402

from exporter.agents import AGENTS, AgentInput, agent_weights  # noqa: E402
from exporter.config import AgentsConfig, AnalysisConfig, SignalConfig  # noqa: E402
from exporter.consensus import combine  # noqa: E402
from exporter.windows import Window  # noqa: E402

mode = sys.argv[1] if len(sys.argv) > 1 else "half"
win, kinds, _ = _fleet(seed=0, copies=2500)
if mode == "half":  # half the fleet failing: every reason string gets built
    rows = np.arange(0, 20000, 2)
else:  # 2 % failing: closer to a real fleet
    benign = [i for i, k in enumerate(kinds) if k in ("healthy", "sawtooth", "plateau", "surge")]
    bad = [i for i, k in enumerate(kinds) if k not in ("healthy", "sawtooth", "plateau", "surge")]
    rows = np.sort(np.r_[benign[:9800], bad[::50][:200]])
win = win.select(rows)
kinds = [kinds[i] for i in rows]
rng = np.random.default_rng(0)
extra = np.abs(0.1 * rng.standard_normal((len(kinds), 1, 120)))  # 8th signal: errors kind
values = np.concatenate([win.values, extra], axis=1)
sigs = SIGNALS + (SignalConfig("http_errors", kind="errors"),)
an = AnalysisConfig(name="nodes", signals=sigs)
w = Window("nodes", ("instance",), win.entities, tuple(s.name for s in sigs), win.timestamps, values)
topo, fc = _stage_results(kinds)
topo = type(topo)(topo.anomaly_score, topo.betti, topo.entropy, topo.features, topo.feature_names,
                  np.concatenate([topo.signal_contribution, np.zeros((len(kinds), 1))], 1),
                  topo.fleet_betti, topo.fleet_outlier)
inp = AgentInput(an, w, topo, fc, NOW)
print("mode", mode, "entities", values.shape)
votes = []
for name, cls in AGENTS.items():
    wall, cpu = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        v = cls().assess(inp)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    votes.append(v)
    runs = ", ".join(f"{x * 1000:.0f}" for x in wall)
    print(f"{name:10s} wall {np.median(wall) * 1000:7.1f} ms  cpu {np.median(cpu) * 1000:7.1f} ms"
          f"  (wall runs {runs})")
cfg = AgentsConfig()
wall, cpu = [], []
for _ in range(3):
    t0, c0 = time.perf_counter(), time.process_time()
    c = combine(votes, cfg.consensus, w.signals, agent_weights(cfg))
    wall.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
print(f"consensus  wall {np.median(wall) * 1000:7.1f} ms  cpu {np.median(cpu) * 1000:7.1f} ms"
      f"  levels -1/0/1/2: {np.bincount(c.level + 1, minlength=4).tolist()}")

# The network agent's trend-line noise (exporter/agents/network.py `_detrended_sigma`): its
# own least squares against the library's (np.polynomial.polynomial.polyfit), on the earlier
# windows of every entity's network signals (a bound: the agent fits only candidate rows).
from exporter.agents.network import _detrended_sigma  # noqa: E402
from exporter.numeric import mad_sigma  # noqa: E402

rows2d = values[:, [i for i, s in enumerate(sigs) if s.kind in ("network", "latency", "errors")],
                :105].reshape(-1, 105)
x = np.arange(105, dtype=np.float64)


def _polyfit_sigma(v: np.ndarray) -> np.ndarray:
    icpt, slope = np.polynomial.polynomial.polyfit(x, v.T, 1)
    return mad_sigma(v - (icpt[:, None] + slope[:, None] * x))


for n_rows in (rows2d.shape[0], 200):  # all rows at once; chunks as the agent's candidates
    for label, fn in (("detrend own", _detrended_sigma), ("detrend polyfit", _polyfit_sigma)):
        wall, cpu = [], []
        for _ in range(3):
            t0, c0 = time.perf_counter(), time.process_time()
            for lo in range(0, rows2d.shape[0], n_rows):
                fn(rows2d[lo:lo + n_rows])
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        print(f"{label:16s} wall {np.median(wall) * 1000:7.1f} ms  cpu "
              f"{np.median(cpu) * 1000:7.1f} ms  ({rows2d.shape[0]} rows x 105, {n_rows} per call)")
