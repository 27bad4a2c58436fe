"""Two failure models on held-out seeds of the plain simulator, at 1 m and 5 m steps.

    .venv/bin/python models/compare_heldout.py OLD_MODEL_DIR NEW_MODEL_DIR [FLEETS]

Fleets: seeds 7000.. (never in a training corpus: those use 1000..1059), 16 hosts, 2.5 days,
35 % failing, every 6th benign, the plain simulator (no extra benign families, no domain
randomisation). Windows of the 2 h analysis of `aura demo` every 10 minutes, scored with
`exporter.lnn.trainer.evaluate` (alert while P(fail within 4h) >= threshold) at several thresholds,
so the models can be compared at similar false-alert rates. The models are used directly,
without the predictor's trained_for check (a model trained at 1 m is scored at 5 m too).
"""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np

from exporter.config import Duration
from exporter.lnn.artifacts import load_model
from exporter.lnn.corpus import history_from_fleet
from exporter.lnn.dataset import Samples, build_samples
from exporter.lnn.trainer import MODEL_HORIZONS, evaluate, incident_list, predict_raw
from exporter.source.simulator import demo_config, simulate_fleet


def main(old: str, new: str, fleets: int = 6) -> None:
    models = {"old": load_model(old)[0], "new": load_model(new)[0]}
    base = demo_config().analysis()
    for step in (60.0, 300.0):
        analysis = replace(base, step=Duration(step))
        stride = int(600 // step)
        parts, histories, offsets, off = [], [], [], 0
        for k in range(fleets):
            fleet = simulate_fleet(7000 + k, 16, 1_800_000_000.0 + k * 7 * 86400, 2.5 * 86400,
                                   step=step, families=[] if k % 6 == 5 else None,
                                   failure_fraction=0.35)
            h = history_from_fleet(fleet, group=k)
            parts.append(build_samples(h, analysis, MODEL_HORIZONS, stride=stride,
                                       entity_offset=off))
            histories.append(h)
            offsets.append(off)
            off += len(h.entities)
        s = Samples.concat(parts)
        incidents = incident_list(histories, offsets)
        for name, net in models.items():
            m = evaluate(net, s, incidents, step, stride)
            p, _ = predict_raw(net, s.x)
            print(f"step={step:.0f} model={name} windows={len(s)} "
                  f"auroc_1h={m['horizons']['1h']['auroc']} auroc_4h={m['horizons']['4h']['auroc']}"
                  f" p4h_median_quiet={np.median(p[s.y[:, -1] == 0, -1]):.3f}")
            for thr in (0.3, 0.5, 0.7, 0.8, 0.9):
                a = evaluate(net, s, incidents, step, stride, threshold=thr)["alerting"]
                print(f"   threshold={thr} recall={a['event_recall_predictable']} "
                      f"(of {a['incidents_predictable']}) false_per_entity_day="
                      f"{a['false_alerts_per_entity_day']} median_lead_s="
                      f"{a['median_lead_time_seconds']} by_family={a['warned_by_family']}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 6)
