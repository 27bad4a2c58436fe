"""Topology anomaly score on real servers (ASD) next to a rolling and a seasonal z-score.

Usage: gunzip -c ../shared/data/asd/data.csv.gz > /tmp/asd.csv
       .venv/bin/python benchmarks/eval_anomaly.py [--data /tmp/asd.csv] [--cases uni,multi]
       [--window 7200] [--every 900] [--warm-days 3] [--set field=value ...] [--workers N]
       [--patch module.CONSTANT=value ...]

Drives the real `TopologyStage` as the pipeline does, streaming and causal: at the data's step
(5 min) and the product's default 2 h window, a cold-start bootstrap (`learn`, one window per
baseline admission over the `--bootstrap` seconds before the start, as
exporter/pipeline.py does), then `run` on one window per cycle in time order (`run_batch`, a
day of cycles per call). Cycles are subsampled to one every `--every` seconds (15 min; the
live exporter runs every step) so the univariate pass takes minutes on 2 cores. The stage
starts `--warm-days` before each server's labelled test period; only test-period cycles count.

Cases: "uni" = every signal of every server as its own entity (152 one-signal entities, one
analysis); "multi" = every server with its 19 signals (8 entities). Events: the labelled
incidents (../shared/data/asd/incidents.csv); for a one-signal case only the incidents whose
expert-named signals include it (cycles near the server's other incidents are left out).

Scores compared, all causal and evaluated at the same cycles:
- `topology`: `TopologyResult.anomaly_score` (NaN while warming: left out and counted);
- `zscore`: |x - mean| / std of each signal's previous 24 h (max over signals);
- `seasonal`: |x - mean| / std of the same time of day (+-10 min) on each of the previous 7
  days (max over signals). std floored at 0.01 (the data are min-max scaled to [0, 1]).

Figures: AUROC (Mann-Whitney) of the score in the 4 h before an event's start ("before"), and
before-or-during ("+during"), against cycles more than 12 h from any incident of the server
("far"); and per-event detection at matched false alarms: for each score the threshold is
the lowest with at most F false-alarm episodes per entity-day (an episode = a run of cycles
at or above the threshold starting outside every [start - 4 h, end] window), an event counts
as detected when a cycle in [start - 4 h, end] is at or above it; lead = start - first such
cycle (median over detected events). Then the NAB-style score (`nab_score`: the scoring of
streaming detectors in Lavin & Ahmad, "Evaluating real-time anomaly detection algorithms -
the Numenta Anomaly Benchmark", ICMLA 2015, standard profile), with a seeded uniform random
score as the chance line. Last: how often the `AuraTopologyAnomaly` rule (score > threshold
for `for`, exporter/config.py RulesConfig) would fire per entity-day far from incidents.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import warnings
from pathlib import Path

import numpy as np

STEP = 300.0
DAY = 86400.0
BEFORE = 4 * 3600.0
FAR = 12 * 3600.0
STD_FLOOR = 0.01
ROOT = Path(__file__).resolve().parents[1]
ASD = ROOT.parent / "shared" / "data" / "asd"


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC curve (P(positive outranks negative), ties 1/2); NaN if empty."""
    from scipy.stats import rankdata

    pos, neg = pos[np.isfinite(pos)], neg[np.isfinite(neg)]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2)
                 / (len(pos) * len(neg)))


def load(path: Path) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """servers, signals, timestamps [T], values [servers, signals, T] on a 5-min grid."""
    with open(path) as f:
        header = f.readline().strip().split(",")
        rows = [line.rstrip("\n").split(",") for line in f]
    signals = header[2:]
    servers = sorted({r[1] for r in rows})
    ts_all = np.array([float(r[0]) for r in rows])
    grid = np.arange(ts_all.min(), ts_all.max() + STEP / 2, STEP)
    values = np.full((len(servers), len(signals), len(grid)), np.nan)
    index = {s: i for i, s in enumerate(servers)}
    cols = np.round((ts_all - grid[0]) / STEP).astype(int)
    for r, c in zip(rows, cols, strict=True):
        values[index[r[1]], :, c] = [float(x) if x else np.nan for x in r[2:]]
    return servers, signals, grid, values


def incidents(path: Path) -> list[tuple[float, float, str, set[str]]]:
    out = []
    with open(path) as f:
        f.readline()
        for line in f:
            start, end, server, _, sigs = line.rstrip("\n").split(",")
            out.append((float(start), float(end), server, set(sigs.split())))
    return out


def zscores(values: np.ndarray, grid: np.ndarray, at: np.ndarray) -> dict[str, np.ndarray]:
    """Rolling (24 h) and seasonal (same time of day, 7 days) |z| [E, C] at cycle times."""
    cols = np.searchsorted(grid, at)
    day = int(DAY / STEP)
    out = {"zscore": np.full((len(values), len(at)), np.nan),
           "seasonal": np.full((len(values), len(at)), np.nan)}
    for j, c in enumerate(cols):
        x = values[:, :, c]
        past = values[:, :, max(c - day, 0):c]
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mu, sd = np.nanmean(past, axis=2), np.fmax(np.nanstd(past, axis=2), STD_FLOOR)
            out["zscore"][:, j] = np.nanmax(np.abs(x - mu) / sd, axis=1)
            idx = [c - k * day + d for k in range(1, 8) for d in (-2, -1, 0, 1, 2)
                   if c - k * day + d >= 0]
            if len(idx) >= 10:
                same = values[:, :, idx]
                mu, sd = np.nanmean(same, axis=2), np.fmax(np.nanstd(same, axis=2), STD_FLOOR)
                out["seasonal"][:, j] = np.nanmax(np.abs(x - mu) / sd, axis=1)
    return out


def topology_scores(values: np.ndarray, grid: np.ndarray, entities: list[tuple[str, ...]],
                    signals: tuple[str, ...], at: np.ndarray, args: argparse.Namespace
                    ) -> np.ndarray:
    """The real TopologyStage's anomaly_score [E, C] at cycle times `at` (streaming)."""
    from exporter.config import AnalysisConfig, Duration, SignalConfig, TopologyConfig
    from exporter.tda import TopologyStage
    from exporter.windows import Window

    overrides = {}
    for item in args.set:
        key, _, raw = item.partition("=")
        default = getattr(TopologyConfig(), key)
        overrides[key] = (raw.lower() in ("1", "true", "yes") if isinstance(default, bool)
                          else type(default)(float(raw)) if not isinstance(default, str)
                          else raw)
    topo = dataclasses.replace(TopologyConfig(), **overrides)
    analysis = AnalysisConfig(name="asd", entity_labels=("server", "signal")[: len(entities[0])],
                              window=Duration(args.window), step=Duration(STEP),
                              signals=tuple(SignalConfig(name=s, query=s) for s in signals),
                              topology=topo)
    steps = analysis.steps
    ents = tuple(entities)

    def window(end_col: int) -> Window:
        sl = slice(end_col - steps + 1, end_col + 1)
        return Window("asd", analysis.entity_labels, ents, signals, grid[sl], values[:, :, sl])

    stage = TopologyStage(analysis, workers=args.workers)
    try:
        cols = np.searchsorted(grid, at)
        every = max(float(topo.baseline_admit_every), STEP)
        for end in np.arange(at[0] - args.bootstrap, at[0] - STEP / 2, every):
            c = int(np.searchsorted(grid, end))
            if c >= steps:
                stage.learn(window(c), float(grid[c]))
        out = np.full((len(ents), len(at)), np.nan)
        per_call = max(1, int(DAY / args.every))
        for a in range(0, len(at), per_call):
            chunk = range(a, min(a + per_call, len(at)))
            res = stage.run_batch([window(int(cols[j])) for j in chunk],
                                  [float(grid[cols[j]]) for j in chunk])
            for j, r in zip(chunk, res, strict=True):
                out[:, j] = r.anomaly_score
    finally:
        stage.close()
    return out


def evaluate(name: str, scores: dict[str, np.ndarray], at: np.ndarray, events: list,
             near_other: np.ndarray, far: np.ndarray, rule: tuple[float, float],
             every: float) -> None:
    """Print AUROC and matched-false-alarm detection for each score of one case type.

    events: (entity row, start, end); near_other [E, C]: cycles to leave out;
    far [E, C]: negatives.
    """
    e, c = far.shape
    before = np.zeros((e, c), dtype=bool)
    during = np.zeros((e, c), dtype=bool)
    inwin = np.zeros((e, c), dtype=bool)
    for row, start, end in events:
        before[row] |= (at >= start - BEFORE) & (at < start)
        during[row] |= (at >= start) & (at <= end)
    inwin = before | during
    days = (c * every / DAY) * e
    print(f"\n== {name}: {e} entities, {len(events)} events, {c} cycles every {every:.0f} s "
          f"({days:.0f} entity-days)")
    print(f"{'score':<10} {'cover':>6} {'AUROC before':>13} {'+during':>8}   detected events "
          "(median lead min) at false alarms/entity-day <= 0.25 | 1 | 4")
    for key, s in scores.items():
        ok = np.isfinite(s)
        a_before = auc(s[before & ok], s[far & ok])
        a_all = auc(s[inwin & ok], s[far & ok])
        cells = []
        for target in (0.25, 1.0, 4.0):
            det, lead = detection(s, at, events, inwin, near_other, target * days)
            cells.append(f"{det:>3}/{len(events)} ({lead:>5.0f})")
        print(f"{key:<10} {ok[far | inwin].mean():>6.2f} {a_before:>13.3f} {a_all:>8.3f}   "
              + " | ".join(cells))
    chance = np.random.default_rng(0).random(far.shape)
    cells = [f"{key} {nab_score(s, at, events, near_other)[0]:.1f}"
             for key, s in {**scores, "random": chance}.items()]
    print("NAB-style score (standard profile; 0 = none detected, 100 = perfect): "
          + " | ".join(cells))
    s = scores.get("topology")
    if s is not None:
        thr, hold = rule
        need = max(1, int(np.ceil(hold / every)) + 1)
        above = np.nan_to_num(s, nan=0.0) > thr
        fires = 0
        for r in range(e):
            run = 0
            for j in range(c):
                run = run + 1 if above[r, j] else 0
                if run == need and far[r, j]:
                    fires += 1
        far_days = far.sum() * every / DAY
        print(f"AuraTopologyAnomaly (> {thr} for {hold:.0f} s = {need} cycles): {fires} fires "
              f"over {far_days:.0f} entity-days far from incidents = "
              f"{fires / max(far_days, 1e-9):.2f} per entity-day")


# NAB's standard application profile (Lavin & Ahmad 2015, section "Scoring"): weights of a true
# positive, a false positive and a false negative; windows span 10 % of an entity's cycles
# shared among its events; the first 15 % of cycles (at most 750) are a probation nothing is
# counted in, and windows that reach into it are dropped (NAB's labeler does the same).
NAB_TP, NAB_FP, NAB_FN = 1.0, 0.11, 1.0
NAB_WINDOW_SHARE = 0.10
NAB_PROBATION = 0.15
NAB_PROBATION_MAX = 750


def _nab_sigmoid(y: np.ndarray | float) -> np.ndarray | float:
    """NAB's scaled sigmoid of a position y relative to a window's end (in window lengths):
    ~0.987 at the window's start (y = -1), 0 at its end, towards -1 long after it."""
    return 2.0 / (1.0 + np.exp(5.0 * np.asarray(y))) - 1.0


def nab_score(s: np.ndarray, at: np.ndarray, events: list, skip: np.ndarray) -> tuple[float, float]:
    """NAB-style score (0 = no detection at all, 100 = every window at its first cycle) of
    scores s [E, C] at cycle times `at` and the threshold that gives it.

    As NAB scores a corpus: per entity, one window per event of width NAB_WINDOW_SHARE x the
    entity's span / its events, centred on the event's start (ASD's events have an end: the
    window reaches it at least), overlapping windows merged, windows reaching into the
    probation dropped. At a threshold, the first cycle at or above it in a window earns
    NAB_TP x sigmoid(its position) / sigmoid(-1) (NAB_TP at the window's start); a window
    without one
    costs NAB_FN; every cycle at or above it outside windows costs NAB_FP x the sigmoid of
    its distance after the preceding window (the full NAB_FP before any). Cycles in the first
    NAB_PROBATION of the cycles (at most NAB_PROBATION_MAX) and `skip` [E, C] (other
    incidents of a one-signal case) are not counted. One threshold for all entities, the
    best of ~140 of the score's upper quantiles or one above every score (NAB tries every
    distinct value; a quantile grid can only understate a score, by a little), so the score
    is at least 0. NaN scores count as no detection. Positions are in time (NAB counts rows:
    the same on a regular grid); windows are not clipped to the data's range.
    """
    e, c = s.shape
    span = at[-1] - at[0] if c > 1 else 0.0
    probation = at[min(int(NAB_PROBATION * c), NAB_PROBATION_MAX, c - 1)] if c else 0.0
    per: list[list[tuple[float, float]]] = [[] for _ in range(e)]
    for row, start, end in events:
        per[int(row)].append((float(start), float(end)))
    prep = []
    for row in range(e):
        wins: list[tuple[float, float]] = []
        if per[row]:
            half = NAB_WINDOW_SHARE * span / len(per[row]) / 2.0
            for a, b in sorted((st - half, max(en, st + half)) for st, en in per[row]):
                if wins and a <= wins[-1][1]:
                    wins[-1] = (wins[-1][0], max(wins[-1][1], b))
                else:
                    wins.append((a, b))
            wins = [(a, b) for a, b in wins if a >= probation]
        inside = np.full(c, -1)
        cost = np.full(c, -NAB_FP)
        for k, (a, b) in enumerate(wins):
            inside[(at >= a) & (at <= b)] = k
            nxt = wins[k + 1][0] if k + 1 < len(wins) else np.inf
            after = (at > b) & (at < nxt)
            cost[after] = NAB_FP * _nab_sigmoid((at[after] - b) / (b - a))
        counted = (at >= probation) & ~skip[row]
        prep.append((wins, inside, cost, counted))
    n_win = sum(len(w) for w, _, _, _ in prep)
    if n_win == 0:
        return float("nan"), float("nan")
    null, perfect = -NAB_FN * n_win, NAB_TP * n_win
    top = float(_nab_sigmoid(-1.0))
    vals = s[np.isfinite(s)]
    if len(vals) == 0:
        return 0.0, float("nan")
    cands = np.unique(np.quantile(vals, np.concatenate([np.linspace(0.5, 0.99, 50),
                                                        1.0 - np.logspace(-2, -6.5, 91)])))
    # Above every score: nothing detected, NAB's null detector (0).
    best, best_thr = null, float("inf")
    for thr in cands:
        total = 0.0
        for row, (wins, inside, cost, counted) in enumerate(prep):
            hit = (np.nan_to_num(s[row], nan=-np.inf) >= thr) & counted
            for k, (a, b) in enumerate(wins):
                first = np.flatnonzero(hit & (inside == k))
                total += NAB_TP * float(_nab_sigmoid((at[first[0]] - b) / (b - a))) / top \
                    if len(first) else -NAB_FN
            total += float(cost[hit & (inside < 0)].sum())
        if total > best:
            best, best_thr = total, float(thr)
    return 100.0 * (best - null) / (perfect - null), best_thr


def detection(s: np.ndarray, at: np.ndarray, events: list, inwin: np.ndarray,
              skip: np.ndarray, max_fa: float) -> tuple[int, float]:
    """Events detected and median lead (minutes) at the lowest threshold with <= max_fa."""
    vals = np.unique(s[np.isfinite(s)])
    if len(vals) == 0:
        return 0, float("nan")
    # Quantiles of the distinct values and of all values (a calibrated score has few distinct
    # values in its body and many in its tail: distinct values alone leave no low thresholds).
    cands = np.unique(np.concatenate([np.quantile(vals, np.linspace(0.5, 1.0, 101)),
                                      np.quantile(s[np.isfinite(s)],
                                                  np.linspace(0.5, 1.0, 201))]))
    best = (0, float("nan"))
    for thr in cands:
        alarm = np.nan_to_num(s, nan=-np.inf) >= thr
        onset = alarm & ~np.concatenate([np.zeros((len(s), 1), bool), alarm[:, :-1]], axis=1)
        fa = int((onset & ~inwin & ~skip).sum())
        if fa > max_fa:
            continue
        leads = []
        for row, start, end in events:
            hit = np.flatnonzero(alarm[row] & (at >= start - BEFORE) & (at <= end))
            if len(hit):
                leads.append((start - at[hit[0]]) / 60.0)
        best = (len(leads), float(np.median(leads)) if leads else float("nan"))
        break
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("/tmp/asd.csv"))
    p.add_argument("--cases", default="uni,multi")
    p.add_argument("--window", type=float, default=7200.0)
    p.add_argument("--every", type=float, default=900.0)
    p.add_argument("--warm-days", type=float, default=3.0)
    p.add_argument("--bootstrap", type=float, default=DAY)
    p.add_argument("--days", type=float, default=15.0, help="test-period days evaluated")
    p.add_argument("--set", action="append", default=[], help="TopologyConfig field=value")
    p.add_argument("--patch", action="append", default=[],
                   help="module.CONSTANT=value, for ablations (e.g. "
                        "exporter.tda.baseline.SEASONAL=0)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--dump", help="save the scores to DUMP-<case>.npz")
    args = p.parse_args()
    import importlib

    for item in args.patch:
        target, _, raw = item.partition("=")
        module, _, name = target.rpartition(".")
        mod = importlib.import_module(module)
        setattr(mod, name, type(getattr(mod, name))(float(raw)))

    from exporter.config import RulesConfig

    t0 = time.perf_counter()
    servers, signals, grid, values = load(args.data)
    incs = incidents(ASD / "incidents.csv")
    test_start = min(float(line.split(",")[3]) for line in
                     (ASD / "split.csv").read_text().splitlines()[1:])
    start = test_start - args.warm_days * DAY
    run_at = np.arange(start, min(test_start + args.days * DAY, grid[-1] + 1), args.every)
    keep = run_at >= test_start
    at = run_at[keep]
    rules = RulesConfig()
    rule = (float(rules.topology_anomaly_threshold), float(rules.topology_anomaly_for))
    print(f"ASD: {len(servers)} servers x {len(signals)} signals, test from {test_start:.0f}, "
          f"window {args.window:.0f} s, cycles every {args.every:.0f} s, settings "
          f"{args.set + args.patch}")
    for case in args.cases.split(","):
        if case == "multi":
            ents = [(s,) for s in servers]
            vals = values
            sigs = tuple(signals)
            named = [None] * len(ents)
        else:
            ents = [(s, m) for s in servers for m in signals]
            vals = values.reshape(-1, 1, values.shape[2])
            sigs = ("value",)
            named = [m for _ in servers for m in signals]
        t1 = time.perf_counter()
        topo = topology_scores(vals, grid, ents, sigs, run_at, args)[:, keep]
        took = time.perf_counter() - t1
        z = zscores(vals, grid, at)
        events, near_other = [], np.zeros((len(ents), len(at)), dtype=bool)
        far = np.ones((len(ents), len(at)), dtype=bool)
        for row, key in enumerate(ents):
            for start_i, end_i, server, sig in incs:
                if server != key[0]:
                    continue
                far[row] &= ~((at >= start_i - FAR) & (at <= end_i + FAR))
                if named[row] is None or named[row] in sig:
                    events.append((row, start_i, end_i))
                else:
                    near_other[row] |= (at >= start_i - BEFORE) & (at <= end_i)
        evaluate(case, {"topology": topo, **z}, at, events, near_other, far, rule, args.every)
        if args.dump:
            Path(args.dump).parent.mkdir(parents=True, exist_ok=True)
            np.savez(f"{args.dump}-{case}.npz", at=at, topology=topo, far=far,
                     near_other=near_other, events=np.array(events, dtype=np.float64), **z)
        print(f"(topology stage {took:.0f} s)")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
