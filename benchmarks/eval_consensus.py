"""Compare consensus rules on held-out simulated fleets (a command that prints figures).

Runs the real pipeline cycle by cycle over fleets the shipped model never saw, keeps every
agent's votes, then applies each candidate rule offline and scores its alerts with the
backtest's own figure code (lead time, recall, false alerts per entity-day).

    .venv/bin/python benchmarks/eval_consensus.py --fleets 2 --entities 16 --days 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np


def collect(seed: int, entities: int, days: float, interval: float, workers: int | None) -> Any:
    from exporter.pipeline import Pipeline, load_predictor
    from exporter.source.simulator import SimulatorSource, demo_config, simulate_fleet

    start = 1_790_000_000.0 + seed * 86400 * 10
    fleet = simulate_fleet(seed, entities, start, days * 86400, 60, failure_fraction=0.5)
    cfg = demo_config()
    predictor, info = load_predictor(cfg.model.path)
    pipe = Pipeline(cfg, SimulatorSource(fleet), predictor=predictor, model_info=info,
                    topology_workers=workers)
    a = cfg.analyses[0]
    times = np.arange(start + a.window, start + days * 86400, interval)
    votes = []  # per cycle: (entities, {agent: (risk, conf)})
    for t in times:
        snap = asyncio.run(pipe.run_cycle(float(t)))
        r = snap.results[0]
        votes.append((r.entities, {v.agent: (v.risk.copy(), v.confidence.copy()) for v in r.votes},
                      r.consensus.level.copy() if r.consensus is not None else None))
    pipe.close()
    return fleet, times, votes


def to_matrix(fleet: Any, votes: list[Any]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                                                     np.ndarray]:
    ents = list(fleet.entities)
    n, e = len(votes), len(ents)
    agents = sorted({a for _, vs, _ in votes for a in vs})
    risk = {a: np.full((e, n), np.nan) for a in agents}
    conf = {a: np.full((e, n), np.nan) for a in agents}
    level = np.full((e, n), -1.0)
    for k, (rows, vs, lvl) in enumerate(votes):
        idx = [ents.index(x) for x in rows]
        for a, (r, c) in vs.items():
            risk[a][idx, k] = r
            conf[a][idx, k] = c
        if lvl is not None:
            level[idx, k] = lvl
    return risk, conf, level


def consensus_level(risk: dict[str, np.ndarray], conf: dict[str, np.ndarray],
                    min_confidence: float, weights: dict[str, float]) -> np.ndarray:
    """Warning condition [E, N] from the real `exporter.consensus.combine` under a setting."""
    from exporter.config import ConsensusConfig
    from exporter.consensus import combine
    from exporter.results import Votes

    agents = sorted(risk)
    e, n = risk[agents[0]].shape
    cfg = ConsensusConfig(min_voters=1, min_confidence=min_confidence)
    out = np.zeros((e, n), dtype=bool)
    for k in range(n):
        votes = [Votes(a, risk[a][:, k], conf[a][:, k], ("none",) * e, np.full(e, np.nan),
                       np.full((e, 1), np.nan), ("",) * e) for a in agents]
        out[:, k] = combine(votes, cfg, ("x",), weights).level >= 1
    return out


def score(fleet: Any, times: np.ndarray, cond: np.ndarray, for_: float, horizon: float) -> dict:
    from exporter.backtest_report import alert_events, score_system, scored_incidents

    alerts = alert_events("X", "warning", fleet.entities, times, cond, for_)
    incs = [i for i in scored_incidents(fleet.incidents) if times[0] <= i.start <= times[-1]]
    days = len(fleet.entities) * (times[-1] - times[0]) / 86400
    s = score_system(alerts, incs, horizon=horizon, last_eval=float(times[-1]), entity_days=days)
    return {"alerts": s["alerts"], "precision": s["precision"],
            "false_per_entity_day": s["false_alerts_per_entity_day"],
            "recall": s["recall"], "lead_p50": s["lead_time_seconds_quantiles"]["p50"],
            "incidents": s["incidents"], "detected": s["detected"]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--fleets", type=int, default=2)
    p.add_argument("--entities", type=int, default=16)
    p.add_argument("--days", type=float, default=2.0)
    p.add_argument("--interval", type=float, default=300.0)
    p.add_argument("--seed", type=int, default=9100)
    p.add_argument("--workers", type=int, default=None)
    args = p.parse_args()
    t0 = time.time()
    rules: dict[str, list[dict]] = {}
    for k in range(args.fleets):
        cache = Path(f"/tmp/aura-votes-{args.seed + k}-{args.entities}-{args.days}.pkl")
        if cache.exists():  # votes are expensive (topology); rules are cheap to re-score
            fleet, times, votes = pickle.loads(cache.read_bytes())
        else:
            fleet, times, votes = collect(args.seed + k, args.entities, args.days,
                                          args.interval, args.workers)
            cache.write_bytes(pickle.dumps((fleet, times, votes)))
        risk, conf, level = to_matrix(fleet, votes)
        w = {a: 1.0 for a in risk}
        cands = {
            "as collected (all votes, equal w.)": level >= 1,
            "all votes, equal weights": consensus_level(risk, conf, 0.0, w),
            "ballots conf>=0.6, equal weights": consensus_level(risk, conf, 0.6, w),
            "ballots conf>=0.6, capacity x3": consensus_level(risk, conf, 0.6,
                                                              {**w, "capacity": 3.0}),
            "all votes, capacity x3": consensus_level(risk, conf, 0.0, {**w, "capacity": 3.0}),
            "forecast or capacity": (np.nan_to_num(risk["forecast"]) >= 0.5)
            | (np.nan_to_num(risk["capacity"]) >= 0.5),
            "capacity alone": np.nan_to_num(risk["capacity"]) >= 0.5,
            "forecast alone": np.nan_to_num(risk["forecast"]) >= 0.5,
            "topology alone": np.nan_to_num(risk["topology"]) >= 0.5,
            "network alone": np.nan_to_num(risk["network"]) >= 0.5,
            "stability alone": np.nan_to_num(risk["stability"]) >= 0.5,
        }
        for name, cond in cands.items():
            rules.setdefault(name, []).append(score(fleet, times, cond, 900.0, 14400.0))
    print(f"{args.fleets} fleets x {args.entities} entities x {args.days} d, "
          f"{time.time() - t0:.0f} s")
    print(f"{'rule':34} {'inc':>4} {'det':>4} {'rec>=0':>7} {'rec>=30m':>8} {'rec>=2h':>7} "
          f"{'alerts':>6} {'prec':>5} {'false/ed':>8} {'lead p50':>8}")
    out = {}
    for name, rows in rules.items():
        inc = sum(r["incidents"] for r in rows)
        det = sum(r["detected"] for r in rows)
        al = sum(r["alerts"] for r in rows)
        rec = {key: np.mean([r["recall"][key] for r in rows if r["recall"][key] is not None])
               for key in rows[0]["recall"]}
        prec = np.mean([r["precision"] for r in rows if r["precision"] is not None] or [np.nan])
        fpd = np.mean([r["false_per_entity_day"] for r in rows])
        leads = [r["lead_p50"] for r in rows if r["lead_p50"] is not None]
        keys = list(rec)
        print(f"{name:34} {inc:4d} {det:4d} {rec[keys[0]]:7.2f} {rec[keys[1]]:8.2f} "
              f"{rec[keys[2]]:7.2f} {al:6d} {prec:5.2f} {fpd:8.3f} "
              f"{(np.median(leads) / 60 if leads else float('nan')):7.0f}m")
        out[name] = rows
    print(json.dumps({"args": vars(args)}, default=str))


if __name__ == "__main__":
    main()
