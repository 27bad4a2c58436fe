"""Does the topology stage help the failure model? Two models, identical but for topology inputs.

    .venv/bin/python models/topology_ablation.py [--fleets 6] [--epochs 4] [--max-minutes 6]
        [--seed 1] [--asd-csv F --asd-incidents F] [--fleetgen DIR ...]

Issue 17, item 4. `aura train` never fed the model topology inputs (the shipped card says
`topology_inputs: false`), and after this measurement `step_features` leaves inputs 16-21 at
zero for good, so this script produces them itself: every replayed cycle of a history (every 10 minutes of its
time, as `aura train` replays it) goes through the real `TopologyStage.run_batch` in time
order (baselines learn as live), and the six inputs 16-21 (`lnn.features`: available,
anomaly score 0..1, H0/H1 entropy / log(max_points), log1p Betti 0/1) are filled from its
result; the windows, labels, thinning, fleet split, seed, network and budget are those of
`aura train --corpus=simulator`, built once and shared. Model A sees zeros there (as the
shipped model), model B the topology. Each is calibrated on the validation fleets.

Scores: AUROC of P(fail within 4h), windows in the 4 h before an incident start against
windows more than 12 h from any incident of that entity (models/scores_auroc.py's rule), and
`trainer.evaluate`'s AUROC 1h / 4h over all windows, on
- the corpus' held-out test fleets (domain-randomised simulator),
- held-out plain simulator seeds 7000.. (models/compare_heldout.py's fleets, 1 m),
- out of distribution: benchmarks/fleetgen.py fleets (DIR with data.csv, incidents.csv,
  aura.yml) and the ASD servers (benchmarks/asd/aura-asd.yml; --asd-csv: the last 18 days
  of ../shared/data/asd/data.csv.gz unzipped, --asd-incidents: its incidents.csv without the
  `signals` column, as in models/README.md's ASD comparison).
Never run on public anomaly benchmark corpora.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from exporter.config import AnalysisConfig, Duration, load_config
from exporter.lnn.corpus import history_from_fleet, history_from_window, simulator_corpus
from exporter.lnn.dataset import History, Samples, build_samples
from exporter.lnn.features import TOPOLOGY_COLUMNS
from exporter.lnn.trainer import (
    MODEL_HORIZONS,
    auroc,
    calibrate,
    evaluate,
    incident_list,
    predict_raw,
    train_network,
)
from exporter.source.simulator import simulate_fleet
from exporter.tda.stage import TopologyStage
from exporter.train import split_groups, weighted_subset
from exporter.windows import Window

BEFORE, FAR = 4 * 3600.0, 12 * 3600.0
CHUNK = 64  # cycles per run_batch call (memory only)


def topology_inputs(history: History, analysis: AnalysisConfig, stride: int) -> np.ndarray:
    """[cycles, E, 6] inputs 16-21 for the cycles `build_samples` replays, in its order."""
    stage = TopologyStage(analysis, workers=1)
    steps = analysis.steps
    ends = np.arange(steps - 1, len(history.timestamps), stride)
    norm = np.log(max(2, analysis.topology.max_points))
    out = np.zeros((len(ends), len(history.entities), 6), np.float32)
    try:
        for c0 in range(0, len(ends), CHUNK):
            cyc = ends[c0:c0 + CHUNK]
            wins = [Window(analysis.name, history.label_names, tuple(history.entities),
                           history.signals, history.timestamps[c - steps + 1:c + 1],
                           history.values[:, :, c - steps + 1:c + 1]) for c in cyc]
            for k, res in enumerate(stage.run_batch(wins, history.timestamps[cyc].tolist())):
                row = out[c0 + k]
                row[:, 0] = 1.0
                row[:, 1] = np.nan_to_num(np.clip(res.anomaly_score, 0, 1))
                row[:, 2:4] = np.nan_to_num(np.asarray(res.entropy, np.float64) / norm)
                row[:, 4:6] = np.log1p(np.clip(np.nan_to_num(
                    np.asarray(res.betti, np.float64)), 0, None))
    finally:
        stage.close()
    return out


def with_topology(s: Samples, cols: np.ndarray, history: History, stride: int,
                  steps: int, offset: int) -> Samples:
    """A copy of `s` (one history's samples) with inputs 16-21 taken from `cols`."""
    ends = np.arange(steps - 1, len(history.timestamps), stride)
    cyc = np.searchsorted(history.timestamps[ends], s.t)
    out = Samples(*(getattr(s, f) for f in ("x", "y", "ttf", "weight", "entity", "group",
                                            "family", "t", "unpredictable")))
    out.x = s.x.copy()
    out.x[:, :, TOPOLOGY_COLUMNS] = cols[cyc, s.entity - offset][:, None, :]
    return out


def replay(histories: list[History], analyses: list[AnalysisConfig], strides: list[int],
           keep: list[float], seed: int) -> tuple[Samples, Samples, list[Any]]:
    """(samples without topology, the same with topology, evaluate's incidents)."""
    rng = np.random.default_rng(seed)
    plain, topo, offsets, off = [], [], [], 0
    for h, an, st, kp in zip(histories, analyses, strides, keep, strict=True):
        t0 = time.monotonic()
        s = build_samples(h, an, MODEL_HORIZONS, stride=st, negative_keep=kp, rng=rng,
                          entity_offset=off)
        cols = topology_inputs(h, an, st)
        plain.append(s)
        topo.append(with_topology(s, cols, h, st, an.steps, off))
        print(f"replay entities={len(h.entities)} step={float(an.step):.0f} windows={len(s)} "
              f"topology_s={time.monotonic() - t0:.0f}", flush=True)
        offsets.append(off)
        off += len(h.entities)
    return Samples.concat(plain), Samples.concat(topo), incident_list(histories, offsets)


def before_far_auroc(p4: np.ndarray, s: Samples, incidents: list[Any]) -> dict[str, Any]:
    """AUROC of P(4h): windows within 4 h before an incident start vs > 12 h from any."""
    by_ent: dict[int, list[float]] = {}
    for ent, start, _, _ in incidents:
        by_ent.setdefault(int(ent), []).append(float(start))
    y = np.full(len(s), -1)
    for i, (ent, t) in enumerate(zip(s.entity, s.t, strict=True)):
        starts = np.asarray(by_ent.get(int(ent), []))
        if np.any((starts - BEFORE <= t) & (t < starts)):
            y[i] = 1
        elif np.all(np.abs(starts - t) > FAR):
            y[i] = 0
    k = y >= 0
    return {"before": int((y == 1).sum()), "far": int((y == 0).sum()),
            "auroc_4h_before_vs_far": round(auroc(p4[k], y[k]), 3)}


def score(nets: dict[str, Any], data: dict[str, Samples], incidents: list[Any], step: float,
          stride: int, name: str) -> None:
    for tag, net in nets.items():
        s = data[tag]
        m = evaluate(net, s, incidents, step, stride)
        p, _ = predict_raw(net, s.x)
        print(f"score set={name} model={tag} windows={len(s)} "
              f"auroc_1h={m['horizons']['1h']['auroc']} auroc_4h={m['horizons']['4h']['auroc']} "
              f"{before_far_auroc(p[:, -1], s, incidents)} "
              f"recall={m['alerting']['event_recall_predictable']} "
              f"false_per_entity_day={m['alerting']['false_alerts_per_entity_day']}",
              flush=True)


def csv_history(config: str, data: str, incidents: str) -> tuple[History, AnalysisConfig]:
    """A CSV history (`aura backtest --input` format) and its incidents, as `aura train` reads it."""
    from exporter.source.csvfile import CsvSource, read_incidents

    analysis = load_config(config, require_queries=False).analysis()
    source = CsvSource(data, analysis)
    start, end = source.time_range()

    async def fetch() -> Any:
        try:
            return await getattr(source, "fetch_range", source.fetch)(analysis, start, end)
        finally:
            await source.close()

    window = asyncio.run(fetch()).block
    return history_from_window(window, list(read_incidents(incidents,
                                                           analysis.entity_labels))), analysis


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fleets", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--max-minutes", dest="max_minutes", type=float, default=6.0,
                    help="training budget per model")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--heldout", type=int, default=3, help="plain simulator fleets 7000..")
    ap.add_argument("--fleetgen", nargs="*", default=[], help="fleetgen output directories")
    ap.add_argument("--asd-csv", dest="asd_csv")
    ap.add_argument("--asd-incidents", dest="asd_incidents")
    args = ap.parse_args()

    corpus = simulator_corpus(args.fleets, args.seed)
    n = len(corpus.histories)
    tr, va, te = split_groups(np.arange(n), args.seed)
    analyses = [corpus.analysis_of(i) for i in range(n)]
    plain, topo, incidents = replay(corpus.histories, analyses, corpus.strides or [10] * n,
                                    [0.25 if i in tr else 1.0 for i in range(n)], args.seed)
    in_tr, in_va, in_te = (np.isin(plain.group, list(g)) for g in (tr, va, te))
    negative = plain.y[:, -1] == 0
    val_thin = np.random.default_rng(args.seed + 3).random(len(plain)) < 0.35
    nets = {}
    for tag, s in (("no_topology", plain), ("topology", topo)):
        r = train_network(s.subset(in_tr & ~s.unpredictable),
                          weighted_subset(s, in_va & ~s.unpredictable & (~negative | val_thin),
                                          0.35),
                          seed=args.seed, units=32, epochs=args.epochs,
                          deadline=time.monotonic() + 60 * args.max_minutes, tag=tag)
        val = s.subset(in_va)
        val.weight = np.ones(len(val))
        calibrate(r.net, val)
        nets[tag] = r.net
        print(f"trained model={tag} epochs={r.epochs} best_val_loss={r.best_val:.4f} "
              f"seconds={r.seconds:.0f}", flush=True)
    test_ents = set(np.unique(plain.entity[in_te]).tolist())
    score(nets, {"no_topology": plain.subset(in_te), "topology": topo.subset(in_te)},
          [i for i in incidents if i[0] in test_ents], float(corpus.analysis.step), 10,
          "corpus_test_fleets")

    base = corpus.analysis
    hs = [history_from_fleet(simulate_fleet(7000 + k, 16, 1_800_000_000.0 + k * 7 * 86400,
                                            2.5 * 86400, step=60.0,
                                            families=[] if k % 6 == 5 else None,
                                            failure_fraction=0.35), group=k)
          for k in range(args.heldout)]
    an60 = replace(base, step=Duration(60.0))
    p, t, inc = replay(hs, [an60] * len(hs), [10] * len(hs), [1.0] * len(hs), args.seed)
    score(nets, {"no_topology": p, "topology": t}, inc, 60.0, 10, "heldout_sim_7000")

    sets = [(f"fleetgen_{Path(d).name}", str(Path(d) / "aura.yml"), str(Path(d) / "data.csv"),
             str(Path(d) / "incidents.csv")) for d in args.fleetgen]
    if args.asd_csv:
        sets.append(("asd", "benchmarks/asd/aura-asd.yml", args.asd_csv, args.asd_incidents))
    for name, cfg, data, inc_csv in sets:
        h, an = csv_history(cfg, data, inc_csv)
        stride = max(1, int(round(600 / float(an.step))))
        p, t, inc = replay([h], [an], [stride], [1.0], args.seed)
        score(nets, {"no_topology": p, "topology": t}, inc, float(an.step), stride, name)


if __name__ == "__main__":
    main()
